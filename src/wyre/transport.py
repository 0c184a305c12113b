"""The seam between the protocol and a WebSocket library.

A transport moves frames; it knows nothing of keys, directions or handlers.
The glue for a WebSocket library (``wyre.transports.*``) or the ASGI adapter
implements :class:`Transport` and feeds what it receives to a
:class:`Receiver` (the :class:`~wyre.Connection`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

from .protocol import SUBPROTOCOL

if TYPE_CHECKING:
    from .connection import Connection
    from .endpoint import Endpoint

__all__ = [
    "Listener",
    "MemoryTransport",
    "Receiver",
    "Transport",
    "TransportClosing",
    "close_status",
    "memory_pair",
]


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
    """One open WebSocket, as the protocol needs it."""

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol agreed in the handshake."""

    def write(self, data: str | bytes, binary: bool) -> None:
        """Queue one frame without waiting (text unless ``binary``; bytes are UTF-8 text).

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
        """Stop delivering frames until :meth:`resume_reading` (backpressure)."""

    def resume_reading(self) -> None:
        """Deliver frames again."""

    async def close(self, code: int, reason: str) -> None:
        """Run the closing handshake, bounded by the transport's close timeout."""

    def abort(self) -> None:
        """Drop the socket at once, without a closing handshake."""


class Receiver(Protocol):
    """What a transport reports to (implemented by :class:`~wyre.Connection`)."""

    def receive(self, data: str | bytes) -> None:
        """One complete message arrived."""

    def connection_lost(self, code: int, reason: str) -> None:
        """The socket is closed; called exactly once."""


class Listener(Protocol):
    """A listening socket, as :class:`~wyre.Server` needs it."""

    @property
    def port(self) -> int:
        """The bound port."""

    def stop_accepting(self) -> None:
        """Close the listening socket; open connections are left alone."""

    async def wait_closed(self) -> None:
        """Wait until the listening socket is closed."""


class MemoryTransport:
    """An in-memory :class:`Transport`: frames go straight to the other end's Connection.

    Made in pairs by :func:`memory_pair`. Delivery is asynchronous (one
    event-loop step), like a socket's. Useful to run the protocol without a
    network: in tests, or to drive a Connection from another I/O layer.
    """

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
    left.receiver = a._open(left)
    right.receiver = b._open(right)
    return left.receiver, right.receiver
