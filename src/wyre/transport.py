"""The seam between the protocol and a WebSocket library: the driver contract.

A **driver** (:class:`Driver`) opens sockets: it listens or connects, runs
the WebSocket handshake and frame rules (RFC 6455) and, for each socket that
opens, hands a :class:`Transport` to the ``on_open`` callback it was given.
That callback returns the :class:`Receiver` (a :class:`~wyre.Connection`)
that the driver feeds every complete message to, and tells once when the
socket is gone. A transport moves messages; it knows nothing of keys,
directions or handlers.

::

    driver.listen(options, on_open, gate=...)      driver.connect(options, on_open, url, ...)
            │  gate.admit(handshake) -> identity           │
            │  (or Reject: an HTTP error, no socket)       │
            └──── on_open(transport) -> receiver ──────────┘
                      receiver.receive(data)            one message in
                      transport.write(data, binary)     one message out
                      receiver.connection_lost(code, reason)

The drivers that ship are in :mod:`wyre.transports`; :class:`MemoryTransport`
here connects two endpoints in memory, without a network.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .protocol import SUBPROTOCOL

if TYPE_CHECKING:
    import ssl

    from .config import Options
    from .connection import Connection
    from .endpoint import Endpoint
    from .handshake import Handshake

__all__ = [
    "KEEPALIVE_TIMEOUT",
    "MAX_FRAGMENTS",
    "Driver",
    "Gate",
    "Listener",
    "MemoryTransport",
    "OnOpen",
    "Receiver",
    "Transport",
    "TransportClosing",
    "bind_socket",
    "close_status",
    "enable_tcp_keepalive",
    "memory_pair",
    "socket_debug",
]

KEEPALIVE_TIMEOUT = (1011, "keepalive ping timeout")
"""The close code and reason every driver reports for a peer that missed its pong."""

MAX_FRAGMENTS = 4096
"""Most frames one message may be split into; past it the message is refused with 1009.

A peer sending endless tiny (or empty) continuation frames would otherwise
hold memory and CPU without ever finishing a message."""


class TransportClosing(ConnectionError):
    """Raised by :meth:`Transport.write` once the closing handshake has begun.

    The socket is fine and finishing its handshake: the write is refused, but
    the connection must not be dropped for it.
    """


def close_status(received: tuple[int, str] | None, sent: tuple[int, str] | None) -> tuple[int, str]:
    """The (code, reason) to report for a socket that closed.

    The peer's close frame when one arrived. Otherwise, when this side failed
    the connection (it sent an error code: 1009 for an oversized frame, 1011
    for a keepalive timeout...), that code, which says what happened. Otherwise
    1006: the connection was lost without a closing handshake (RFC 6455 7.1.5).
    """
    if received is not None:
        return received
    if sent is not None and sent[0] not in (1000, 1001):
        return sent
    return 1006, ""


class Transport(Protocol):
    """One open WebSocket, as a :class:`~wyre.Connection` needs it."""

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol agreed in the handshake."""

    @property
    def handshake(self) -> Handshake | None:
        """The upgrade request, on the server side (None on a client's socket)."""

    @property
    def identity(self) -> Any:
        """What the server's gate admitted this socket as (None without a gate)."""

    def write(self, data: str | bytes, binary: bool) -> None:
        """Queue one message without waiting (text unless ``binary``; bytes are UTF-8 text).

        Raises:
            TransportClosing: the closing handshake has begun.
            Exception: any other error means the socket is unusable; the
                caller drops the connection.
        """

    def write_buffer_size(self) -> int:
        """Bytes queued but not yet handed to the kernel."""

    async def drain(self) -> None:
        """Wait until the write buffer is below the transport's low-water mark."""

    def pause_reading(self) -> None:
        """Stop delivering messages until :meth:`resume_reading` (backpressure).

        The connection pauses only as a last resort (the peer does not read
        its answers, too much work is queued, partials are read too slowly;
        see :mod:`wyre.flow`). Control frames may stop being read too, so
        the driver suspends its own keepalive deadline meanwhile; messages
        the socket already delivered wait and come first on resume.
        """

    def resume_reading(self) -> None:
        """Deliver messages again."""

    async def close(self, code: int, reason: str) -> None:
        """Run the closing handshake, bounded by the options' ``close_timeout``."""

    def abort(self) -> None:
        """Drop the socket at once, without a closing handshake."""


class Receiver(Protocol):
    """What a transport reports to (implemented by :class:`~wyre.Connection`)."""

    def receive(self, data: str | bytes) -> None:
        """One complete message arrived."""

    def connection_lost(self, code: int, reason: str) -> None:
        """The socket is closed; called exactly once."""

    def log(self, level: int, msg: str, *args: Any, stacklevel: int = 1) -> None:
        """Log a record about this connection (``msg % args``, formatted only if enabled).

        A driver logs what it has to say about an open socket here rather
        than to ``options.logger``: the record then carries the connection's
        id and follows its endpoint's ``log_level``. Before ``on_open``
        returned there is no receiver, and records go to ``options.logger``.
        """


OnOpen = Callable[[Transport], Receiver]
"""Called by a driver for each socket whose handshake completed."""


def socket_debug(receiver: Receiver | None, logger: logging.Logger, msg: str, *args: Any) -> None:
    """A driver's debug record about one socket: through its connection once it opened
    (the record then carries its id and follows its level), else to ``logger``.

    The record names the driver's line that called its own ``_debug``.
    """
    if receiver is not None:
        receiver.log(logging.DEBUG, msg, *args, stacklevel=3)
    else:
        logger.debug(msg, *args, stacklevel=3)


class Gate(Protocol):
    """Who may connect: a listening driver asks it about every upgrade request.

    Implemented by :class:`wyre.admission.Admission` (origins, connection
    limits, the ``authenticate`` hook). The driver parses the request,
    answers malformed ones itself (and tells :meth:`refused`), then awaits
    :meth:`admit`, without reading further from that socket meanwhile. On
    success it completes the upgrade and calls ``on_open`` **in the same
    event-loop step** as ``admit`` returned, so that the gate's count of
    connections never misses one; on :class:`~wyre.Reject` it answers with
    that HTTP status and the reason as body, and no socket opens.
    """

    async def admit(self, handshake: Handshake) -> Any:
        """The identity of the connection about to open.

        Bounded by the gate itself (``open_timeout``); the driver cancels it
        when the socket is lost meanwhile.

        Raises:
            Reject: refuse it, with this status and reason. Nothing else.
        """

    def refused(self, status: int, reason: str, remote_address: tuple[str, int] | None) -> None:
        """The driver refused a request before :meth:`admit` (malformed, oversized...)."""


class Listener(Protocol):
    """A listening socket, as :class:`~wyre.Server` needs it."""

    @property
    def port(self) -> int:
        """The bound port."""

    def stop_accepting(self) -> None:
        """Close the listening socket; open connections are left alone.

        Handshakes still in progress are refused (HTTP 503): no connection
        opens after this returns.
        """

    async def wait_closed(self) -> None:
        """Wait until the listening socket is closed."""


class Driver(Protocol):
    """A WebSocket implementation wyre can run on (``websockets``, ``picows``, ...).

    Every driver enforces the same WebSocket-level rules, checked by the
    driver conformance tests: messages above ``max_message_size`` or of
    more than ``MAX_FRAGMENTS`` fragments close with 1009, invalid UTF-8 in a
    text message with 1007, a broken fragment sequence with 1002; the
    opening handshake is bounded by ``open_timeout`` and the closing one by
    ``close_timeout``; keepalive pings (only to ``wyre.v2`` peers unless
    ``ping_base_peers``) drop a silent peer with :data:`KEEPALIVE_TIMEOUT`.
    """

    name: str

    async def listen(
        self,
        options: Options,
        on_open: OnOpen,
        *,
        host: str | None,
        port: int,
        ssl: ssl.SSLContext | None = None,
        gate: Gate | None = None,
    ) -> Listener:
        """Start accepting WebSocket connections on ``host:port`` (TLS with ``ssl``).

        Every upgrade request goes through ``gate`` (none: all are admitted).

        Raises:
            OSError: the address is in use or cannot be bound.
        """

    async def connect(
        self,
        options: Options,
        on_open: OnOpen,
        url: str,
        *,
        subprotocols: Sequence[str],
        ssl: ssl.SSLContext | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> Receiver:
        """Open a connection to ``url``; returns what ``on_open`` returned for it.

        ``headers`` go into the upgrade request (e.g. a bearer token);
        ``ssl`` is the TLS context for a ``wss://`` URL (None: the system's
        default trust).

        Raises:
            ConnectError: nothing listening, the handshake was refused, or it
                took longer than ``open_timeout``.
        """


def bind_socket(host: str | None, port: int, reuse_port: bool = False) -> socket.socket | None:
    """A listening socket for ``host:port``, or None to let the driver bind ``host``.

    With no host, one socket serves every address on one port: IPv6 with
    IPv4-mapped addresses where the system has IPv6, else IPv4 only. (Binding
    each address family separately would give each its own port when
    ``port`` is 0.) With ``reuse_port`` the socket is always made here, with
    ``SO_REUSEPORT``, so that several processes can listen on one port and
    the kernel spreads connections over them.

    Raises:
        OSError: the address cannot be bound, or ``SO_REUSEPORT`` does not
            exist on this system.
    """
    if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
        raise OSError("SO_REUSEPORT is not available on this system (it is on Linux, BSD, macOS)")
    if host is not None:
        if not reuse_port:
            return None
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        return _listening(socket.socket(family, kind, proto), address, reuse_port)
    if socket.has_ipv6:
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        except OSError:
            pass
        else:
            try:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            except OSError:
                sock.close()
            else:
                try:
                    return _listening(sock, ("::", port), reuse_port)
                except OSError:
                    pass  # no IPv6 here after all (_listening closed it)
    return _listening(
        socket.socket(socket.AF_INET, socket.SOCK_STREAM), ("0.0.0.0", port), reuse_port
    )


def _listening(sock: socket.socket, address: Any, reuse_port: bool) -> socket.socket:
    """Bind and listen; close the socket when that fails."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def enable_tcp_keepalive(sock: socket.socket | None, idle: float | None) -> None:
    """Let the kernel probe a silent peer: dead-peer detection that needs no ping frame.

    Used for every connection, and the only detection for peers that are not
    pinged (those speaking the original protocol: see ``ping_base_peers``).
    A peer that vanished is then noticed after about ``idle`` + 3 x 10 s.
    """
    if sock is None or idle is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, max(1, int(idle)))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
    except OSError:  # pragma: no cover - a platform without these options
        pass


class MemoryTransport:
    """An in-memory :class:`Transport`: frames go straight to the other end's Connection.

    Made in pairs by :func:`memory_pair`. Delivery is asynchronous (one
    event-loop step), like a socket's. Useful to run the protocol without a
    network: in tests, or to drive a Connection from another I/O layer.
    """

    handshake: Handshake | None = None
    identity: Any = None

    def __init__(self, subprotocol: str | None) -> None:
        self.subprotocol = subprotocol
        self.peer: MemoryTransport | None = None
        self.receiver: Receiver | None = None
        self.closed = False
        self._paused = False
        self._backlog: list[str | bytes] = []

    def write(self, data: str | bytes, binary: bool) -> None:
        if self.closed or self.peer is None:
            raise TransportClosing("memory transport closed")
        asyncio.get_running_loop().call_soon(self.peer._deliver, data)

    def _deliver(self, data: str | bytes) -> None:
        if self._paused:
            self._backlog.append(data)
        elif self.receiver is not None and not self.closed:
            self.receiver.receive(data)

    def write_buffer_size(self) -> int:
        return 0

    async def drain(self) -> None:
        return None

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        self._paused = False
        backlog, self._backlog = self._backlog, []
        for data in backlog:
            self._deliver(data)

    async def close(self, code: int, reason: str) -> None:
        self._lose(code, reason)

    def abort(self) -> None:
        self._lose(1006, "")

    def _lose(self, code: int, reason: str) -> None:
        for end in (self, self.peer):
            if end is not None and not end.closed:
                end.closed = True
                if end.receiver is not None:
                    end.receiver.connection_lost(code, reason)


def memory_pair(
    a: Endpoint, b: Endpoint, *, subprotocol: str | None = SUBPROTOCOL
) -> tuple[Connection, Connection]:
    """Connect endpoints ``a`` and ``b`` in memory; returns (a's, b's) connection.

    Must be called with a running event loop. ``subprotocol=None`` makes both
    ends speak the original protocol, without the ``wyre.v2`` extensions.
    """
    left, right = MemoryTransport(subprotocol), MemoryTransport(subprotocol)
    left.peer, right.peer = right, left
    a_conn, b_conn = a.attach(left), b.attach(right)
    left.receiver, right.receiver = a_conn, b_conn
    return a_conn, b_conn
