"""The default transport: the ``websockets`` library's Sans-I/O protocol, under our own I/O.

:class:`WebsocketsTransport` is an :class:`asyncio.Protocol`: the event loop
hands it the bytes read from the socket, websockets' Sans-I/O objects
(:class:`~websockets.server.ServerProtocol`,
:class:`~websockets.client.ClientProtocol`) turn them into frames, and
complete messages go straight to the :class:`~wyre.transport.Receiver`
from ``data_received``: no task and no queue per connection.

::

    socket ─ data_received ─ protocol.receive_data ─ frames ─ Assembler ─ receiver.receive
    receiver ─ write ─ protocol.send_text ─ (coalesced) ─ transport.write ─ socket

Writes are coalesced: the frames written during one event-loop step (or
while handling what one read brought) go out in a single
``transport.write()``, one system call instead of one per frame.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from websockets.client import ClientProtocol
from websockets.exceptions import (
    InvalidState,
    InvalidStatus,
    InvalidURI,
)
from websockets.extensions.permessage_deflate import (
    enable_client_permessage_deflate,
    enable_server_permessage_deflate,
)
from websockets.frames import BINARY, CLOSE, CONT, PONG, TEXT, Close, Frame
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from ..exceptions import ConnectError, Reject
from ..handshake import Handshake
from ..transport import (
    KEEPALIVE_TIMEOUT,
    TransportClosing,
    bind_socket,
    close_status,
    enable_tcp_keepalive,
    socket_debug,
)
from .frames import Assembler, FrameError
from .keepalive import Keepalive, wanted
from .upgrade import (
    VERSION_HEADERS,
    client_script_response,
    handshake_of,
    reason_of,
    refusal,
    remote_address,
    subprotocol_selector,
    unreadable,
    unsupported_version,
)

if TYPE_CHECKING:
    from ..config import Options
    from ..transport import Gate, OnOpen, Receiver

__all__ = ["WebsocketsDriver", "WebsocketsTransport"]

_FLUSH_AT = 64 * 1024
"""Unflushed bytes past which a write goes out at once instead of at the end of the step."""

_CONNECTING = State.CONNECTING

_HOLD_LIMIT = 64 * 1024
"""Bytes kept from a client while the gate decides on its handshake; past it, reading waits."""


def _drop(data: str | bytes) -> None:
    """Where messages go when nobody may see them (before opening, after closing)."""


def _status(close: Close | None) -> tuple[int, str] | None:
    return None if close is None else (int(close.code), close.reason)


class WebsocketsTransport(asyncio.Protocol):
    """A :class:`~wyre.transport.Transport` for one socket, and its asyncio protocol.

    One object from the TCP accept (or connect) to the end: it runs the
    opening handshake, calls ``on_open`` once it succeeds, then moves
    messages. ``connection_lost`` is reported to the receiver exactly once,
    with :func:`~wyre.transport.close_status` of the close frames exchanged
    (or :data:`~wyre.transport.KEEPALIVE_TIMEOUT`).
    """

    __slots__ = (
        "_admission",
        "_assembler",
        "_backlog",
        "_close_timer",
        "_closing",
        "_drain_waiters",
        "_dropping",
        "_eof_written",
        "_flush_scheduled",
        "_gone",
        "_headers",
        "_held_bytes",
        "_keepalive",
        "_listener",
        "_loop",
        "_lost",
        "_lost_status",
        "_on_open",
        "_open_timer",
        "_opened",
        "_options",
        "_paused",
        "_protocol",
        "_reading_stopped",
        "_receive",
        "_receiver",
        "_transport",
        "_unflushed",
        "_url",
        "_writing_paused",
        "handshake",
        "identity",
        "subprotocol",
    )

    _transport: asyncio.Transport  # set by connection_made, before anything else runs

    def __init__(
        self,
        options: Options,
        on_open: OnOpen,
        protocol: ServerProtocol | ClientProtocol,
        *,
        listener: _Listener | None = None,
        url: str = "",
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        self._options = options
        self._on_open = on_open
        self._protocol = protocol
        self._listener = listener
        self._url = url
        self._headers = headers
        self._loop = asyncio.get_running_loop()
        self.subprotocol: str | None = None
        self.handshake: Handshake | None = None
        self.identity: Any = None
        self._admission: asyncio.Task[None] | None = None  # the gate is deciding
        self._held_bytes: bytearray | None = None  # what arrived while it decided
        self._receiver: Receiver | None = None
        # Where the next complete message goes: the receiver, the backlog
        # while reading is paused, or nowhere (swapping it costs nothing per frame).
        self._receive: Callable[[str | bytes], None] = _drop
        self._assembler = Assembler(options.max_message_size)
        self._keepalive: Keepalive | None = None
        self._paused = False  # the receiver asked for no messages
        self._reading_stopped = False  # the asyncio transport is paused
        self._backlog: deque[str | bytes] | None = None
        self._unflushed = 0
        self._flush_scheduled = False
        self._eof_written = False
        self._writing_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._closing = False  # a close frame went or came, the handshake failed, or aborted
        self._dropping = False  # this side closed: frames still arriving are dropped
        self._gone = False  # the socket is closed or being aborted
        self._open_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._lost_status: tuple[int, str] | None = None
        self._lost: asyncio.Future[None] = self._loop.create_future()
        # A client's connect() waits on this for the handshake's outcome.
        self._opened: asyncio.Future[Receiver] | None = (
            self._loop.create_future() if isinstance(protocol, ClientProtocol) else None
        )

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport = cast(asyncio.Transport, transport)
        options = self._options
        transport.set_write_buffer_limits(high=options.write_limit, low=options.write_limit // 4)
        enable_tcp_keepalive(transport.get_extra_info("socket"), options.ping_interval or 20)
        protocol = self._protocol
        if isinstance(protocol, ClientProtocol):
            request = protocol.connect()
            for name, value in self._headers:
                request.headers[name] = value
            protocol.send_request(request)
            self._flush()
            return  # connect() bounds the handshake
        listener = self._listener
        if listener is not None:
            listener.handshakes.add(self)
            if not listener.accepting:
                self.refuse()
                return
        if options.open_timeout is not None:
            self._open_timer = self._loop.call_later(options.open_timeout, self._open_timed_out)

    def data_received(self, data: bytes) -> None:
        held = self._held_bytes
        if held is not None:  # the gate is deciding: keep it for later, keep reading for EOF
            held += data
            if len(held) > _HOLD_LIMIT and not self._reading_stopped:
                self._reading_stopped = True  # a client that talks before the 101: wait
                self._transport.pause_reading()
            return
        protocol = self._protocol
        protocol.receive_data(data)
        events = protocol.events_received()
        # What handling these frames writes goes out below, in one write.
        self._flush_scheduled = True
        try:
            if self._receiver is None:
                events = self._handshake(events)
            self._frames(events)
        finally:
            self._flush_scheduled = False
            self._flush()
        if not self._closing:
            if protocol.close_expected():
                self._begin_closing()
            elif self._paused and not self._reading_stopped:
                self._reading_stopped = True
                self._transport.pause_reading()

    def _frames(self, events: list[Any]) -> None:
        """Hand the messages in these frames to the receiver (or the backlog)."""
        feed = self._assembler.feed
        for frame in cast(list[Frame], events):
            opcode = frame.opcode
            if opcode is TEXT or opcode is BINARY or opcode is CONT:
                try:
                    message = feed(opcode, frame.fin, frame.data)  # type: ignore[arg-type]
                except FrameError as exc:
                    self._fail(exc.code, exc.reason)
                    break
                if message is not None:
                    self._receive(message)
            elif opcode is PONG:
                if self._keepalive is not None:
                    self._keepalive.pong(frame.data)  # type: ignore[arg-type]
            elif opcode is CLOSE:
                self._debug("close frame received: %s", self._protocol.close_rcvd)
            # a PING is answered by the protocol itself

    def eof_received(self) -> bool | None:
        if self._admission is not None:  # the client left while the gate was deciding
            self._admission.cancel()
            self._admission = None
            self._held_bytes = None
            return None
        protocol = self._protocol
        protocol.receive_eof()
        events = protocol.events_received()
        if events and self._receiver is None:
            self._handshake(events)  # a response that ends with the stream
        self._flush()
        return None  # the TCP connection closes: WebSocket needs no half-open socket

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone = self._closing = self._dropping = True
        self._receive = _drop
        protocol = self._protocol
        protocol.receive_eof()  # idempotent; the protocol is now CLOSED
        if self._admission is not None:
            self._admission.cancel()  # the client gave up while the gate was deciding
            self._admission = None
        for timer in (self._open_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        self._open_timer = self._close_timer = None
        if self._keepalive is not None:
            self._keepalive.stop()
            self._keepalive = None
        if self._listener is not None:
            self._listener.handshake_ended(self)
        receiver, self._receiver = self._receiver, None
        if receiver is not None:
            status = self._lost_status or close_status(
                _status(protocol.close_rcvd), _status(protocol.close_sent)
            )
            receiver.connection_lost(*status)
        elif self._opened is not None and not self._opened.done():
            cause = protocol.handshake_exc or exc
            detail = f": {cause}" if cause is not None else ""
            self._opened.set_exception(
                ConnectError(f"cannot connect to {self._url}: connection lost in handshake{detail}")
            )
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionError("socket closed"))
        if not self._lost.done():
            self._lost.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- Transport -------------------------------------------------------------

    def write(self, data: str | bytes, binary: bool) -> None:
        if self._closing:
            if self._gone:
                raise ConnectionError("socket closed")
            raise TransportClosing("closing handshake under way")
        if data.__class__ is str:
            data = data.encode()
        try:
            if binary:
                self._protocol.send_binary(data)  # type: ignore[arg-type]
            else:
                self._protocol.send_text(data)  # type: ignore[arg-type]
        except InvalidState:  # the peer's close frame was just read
            raise TransportClosing("closing handshake under way") from None
        self._unflushed += len(data)
        if self._unflushed >= _FLUSH_AT:  # a long burst streams out as it is produced
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._scheduled_flush)

    def write_buffer_size(self) -> int:
        return self._unflushed + self._transport.get_write_buffer_size()

    async def drain(self) -> None:
        self._flush()
        if self._gone:
            raise ConnectionError("socket closed")
        if self._writing_paused:
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._drain_waiters.append(waiter)
            try:
                await waiter
            finally:
                self._drain_waiters.remove(waiter)

    def pause_reading(self) -> None:
        # The socket itself stops after the next read, whose messages wait in
        # the backlog: pausing it at once would starve a receiver that pauses
        # again within the step in which it resumed (a sender flooding a
        # congested socket), since the read would never get its turn.
        if self._paused:
            return
        self._paused = True
        if self._keepalive is not None:
            self._keepalive.suspend()
        if self._backlog is None:
            self._backlog = deque()
        self._route()

    def resume_reading(self) -> None:
        if not self._paused:
            return
        self._paused = False
        backlog = self._backlog
        if backlog:
            # Messages read before the pause go first; the receiver may pause
            # again meanwhile, and then keeps the rest for later.
            while backlog and not self._paused and not self._dropping:
                assert self._receiver is not None
                self._receiver.receive(backlog.popleft())
            if self._paused:
                return
        self._backlog = None
        if self._keepalive is not None:
            self._keepalive.resume()
        self._route()
        if self._reading_stopped:
            self._reading_stopped = False
            if not self._closing:
                self._transport.resume_reading()

    async def close(self, code: int, reason: str) -> None:
        if not self._closing:
            self._protocol.send_close(code, reason)  # raises for a code one may not send
            self._dropping = True
            self._backlog = None
            self._route()
            self._flush()
            self._begin_closing()
        elif not self._gone:
            self._dropping = True  # failing, or answering the peer's close: nothing more comes
            self._backlog = None
            self._route()
        await asyncio.shield(self._lost)

    def abort(self) -> None:
        self._closing = self._dropping = self._gone = True
        self._receive = _drop
        if self._keepalive is not None:
            self._keepalive.stop()
            self._keepalive = None
        self._transport.abort()

    # -- inside ----------------------------------------------------------------

    def _route(self) -> None:
        """Point ``_receive`` where messages must go now."""
        if self._dropping or self._receiver is None:
            self._receive = _drop
        elif self._paused and self._backlog is not None:
            self._receive = self._backlog.append
        else:
            self._receive = self._receiver.receive

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def _flush(self) -> None:
        """Hand every frame written so far to the socket, in one write."""
        self._unflushed = 0
        chunks = self._protocol.data_to_send()
        if not chunks or self._gone or self._eof_written:
            return
        if all(chunks):
            self._transport.write(b"".join(chunks))
            return
        # An empty chunk means "end of stream" (websockets' SEND_EOF): it is last.
        data = b"".join(chunks)
        if data:
            self._transport.write(data)
        self._eof_written = True
        if self._transport.can_write_eof():
            try:
                self._transport.write_eof()
            except Exception:  # the socket is already gone: connection_lost follows
                self._transport.abort()
        else:  # TLS: no half-close; close once the buffer is written
            self._transport.close()

    def _handshake(self, events: list[Request | Response | Frame]) -> list[Any]:
        """Handle the opening handshake; returns the events that follow it (frames)."""
        protocol = self._protocol
        for index, event in enumerate(events):
            if isinstance(event, Request) and isinstance(protocol, ServerProtocol):
                listener = self._listener
                if listener is not None and not listener.accepting:
                    response = protocol.reject(503, "The server is shutting down.\n")
                elif (
                    script := client_script_response(event, self._options.client_script)
                ) is not None:
                    protocol.send_response(script)  # a plain GET for wyre.js; then it closes
                    return []
                elif unsupported_version(event):
                    response = protocol.reject(426, "unsupported WebSocket version\n")
                    response.headers.update(VERSION_HEADERS)
                else:
                    response = protocol.accept(event)  # checks the request; sends nothing
                if response.status_code != 101:
                    self._refused(response)
                    return []
                peer = remote_address(self._transport.get_extra_info("peername"))
                self.handshake = handshake_of(event, peer)
                gate = listener.gate if listener is not None else None
                if gate is None:
                    protocol.send_response(response)
                    self._open()
                    return events[index + 1 :]
                # The gate may take its time: keep what comes meanwhile for
                # later (reading on, to see a client that leaves), and let
                # the gate's own bound apply.
                self._held_bytes = bytearray()
                if self._open_timer is not None:
                    self._open_timer.cancel()
                    self._open_timer = None
                self._admission = self._loop.create_task(
                    self._admit(gate, response, events[index + 1 :])
                )
                return []
            if isinstance(event, Response) and self._opened is not None:
                if protocol.handshake_exc is not None:
                    self._handshake_failed(protocol.handshake_exc)
                    return []
                self._open()
                return events[index + 1 :]
        if protocol.handshake_exc is not None:
            if self._opened is not None:
                self._handshake_failed(protocol.handshake_exc)  # not even an HTTP response
            elif self.handshake is None and self._listener is not None:
                self._unreadable(protocol.handshake_exc)
        return []

    def _refused(self, response: Response) -> None:
        """Send an HTTP error instead of the upgrade; tell the gate when the request was bad."""
        assert isinstance(self._protocol, ServerProtocol)
        self._protocol.send_response(response)
        status = response.status_code
        self._options.logger.debug(
            "handshake refused with HTTP %s: %s", status, reason_of(response)
        )
        listener = self._listener
        # 503: shutting down. 426: a plain HTTP request, not a WebSocket client.
        if listener is not None and listener.gate is not None and status not in (503, 426):
            peer = remote_address(self._transport.get_extra_info("peername"))
            listener.gate.refused(status, reason_of(response), peer)

    def _unreadable(self, exc: Exception) -> None:
        """The request could not be parsed: websockets sent a status, or only EOF."""
        listener = self._listener
        assert listener is not None
        status, reason = unreadable(exc)
        if status == 400:  # websockets closes without a word: say why
            self._transport.write(refusal(status, reason))
        # else websockets (>= 17) queued its own 414 or 431
        self._options.logger.debug("handshake refused with HTTP %s: %s", status, reason)
        if listener.gate is not None:
            peer = remote_address(self._transport.get_extra_info("peername"))
            listener.gate.refused(status, reason, peer)

    async def _admit(self, gate: Gate, response: Response, early: list[Any]) -> None:
        """Ask the gate about this handshake; then upgrade, or answer with its refusal."""
        assert self.handshake is not None
        protocol = self._protocol
        assert isinstance(protocol, ServerProtocol)
        try:
            identity = await gate.admit(self.handshake)
        except Reject as exc:
            status, reason = exc.status, exc.reason
        except Exception as exc:  # a gate must only raise Reject; never leave the client hanging
            self._options.logger.exception("the handshake gate failed")
            status, reason = 500, f"{type(exc).__name__}"
        else:
            self._admission = None
            listener = self._listener
            if listener is not None and not listener.accepting:
                status, reason = 503, "The server is shutting down."
            else:
                # In the step admit() returned in, as the Gate contract asks.
                self.identity = identity
                protocol.send_response(response)
                held, self._held_bytes = self._held_bytes, None
                self._flush_scheduled = True
                try:
                    self._open()
                    self._frames(early)
                    if held:
                        protocol.receive_data(bytes(held))
                        self._frames(protocol.events_received())
                finally:
                    self._flush_scheduled = False
                    self._flush()
                if not self._closing:
                    if protocol.close_expected():
                        self._begin_closing()
                    elif self._paused:
                        self._reading_stopped = True  # the receiver paused already
                        self._transport.pause_reading()
                    elif self._reading_stopped:
                        self._reading_stopped = False
                        self._transport.resume_reading()
                return
        self._admission = None
        self._held_bytes = None
        if self._gone or not isinstance(protocol, ServerProtocol):
            return
        protocol.send_response(protocol.reject(status, reason.rstrip("\n") + "\n"))
        self._options.logger.debug("handshake refused with HTTP %s: %s", status, reason)
        self._flush()
        self._reading_stopped = False
        self._transport.resume_reading()  # to see the client's end of the TCP connection
        self._begin_closing()

    def _handshake_failed(self, exc: Exception) -> None:
        assert self._opened is not None
        if self._opened.done():
            return
        if isinstance(exc, InvalidStatus):
            status: int | None = exc.response.status_code
            reason = reason_of(exc.response)
            detail = f"the server answered HTTP {status}" + (f": {reason}" if reason else "")
        else:
            status, reason, detail = None, "", str(exc)
        self._opened.set_exception(
            ConnectError(f"cannot connect to {self._url}: {detail}", status=status, reason=reason)
        )

    def _open(self) -> None:
        """The handshake succeeded: start keepalive, make the receiver."""
        if self._open_timer is not None:
            self._open_timer.cancel()
            self._open_timer = None
        if self._listener is not None:
            self._listener.handshake_ended(self)
        options = self._options
        self.subprotocol = self._protocol.subprotocol
        if wanted(options, self.subprotocol):
            assert options.ping_interval is not None
            self._keepalive = Keepalive(
                options.ping_interval, options.ping_timeout, self._ping, self._keepalive_expired
            )
        try:
            receiver = self._on_open(self)
        except Exception as exc:
            options.logger.exception("opening a connection failed")
            self.abort()
            if self._opened is not None and not self._opened.done():
                self._opened.set_exception(exc)
            return
        self._receiver = receiver
        self._route()
        if self._opened is not None and not self._opened.done():
            self._opened.set_result(receiver)

    def _fail(self, code: int, reason: str) -> None:
        """A frame broke wyre's rules: fail the connection with ``code``."""
        self._debug("failing the connection: %s %s", code, reason)
        self._protocol.fail(code, reason)
        self._dropping = True
        self._route()

    def _begin_closing(self) -> None:
        """A close frame went or came (or the handshake failed): bound the wait for the end."""
        self._closing = True
        if self._keepalive is not None:
            self._keepalive.stop()
            self._keepalive = None
        if self._reading_stopped:
            self._reading_stopped = False
            if not self._gone:
                self._transport.resume_reading()  # to see the peer's close and the TCP end
        timeout = self._options.close_timeout
        if timeout is not None and self._close_timer is None and not self._gone:
            self._close_timer = self._loop.call_later(timeout, self._close_timed_out)

    def _close_timed_out(self) -> None:
        self._close_timer = None
        self._debug("closing handshake timed out: dropping the socket")
        self.abort()

    def _open_timed_out(self) -> None:
        self._open_timer = None
        self._options.logger.debug("opening handshake timed out: dropping the socket")
        self.abort()

    def _ping(self, payload: bytes) -> None:
        self._protocol.send_ping(payload)
        self._flush()

    def _keepalive_expired(self) -> None:
        self._keepalive = None
        self._debug("keepalive ping timed out: dropping the socket")
        self._lost_status = KEEPALIVE_TIMEOUT
        self.abort()

    def _debug(self, msg: str, *args: Any) -> None:
        """A debug record about this socket (see :func:`~wyre.transport.socket_debug`)."""
        socket_debug(self._receiver, self._options.logger, msg, *args)

    def refuse(self) -> None:
        """Answer a handshake in progress with HTTP 503 (the server stops accepting)."""
        protocol = self._protocol
        if self._receiver is not None or self._gone or not isinstance(protocol, ServerProtocol):
            return
        if protocol.state is not _CONNECTING or protocol.close_expected():
            return  # already answered
        if self._admission is not None:
            self._admission.cancel()
            self._admission = None
            self._held_bytes = None
            self._reading_stopped = False
            self._transport.resume_reading()
        protocol.send_response(protocol.reject(503, "The server is shutting down.\n"))
        self._flush()
        self._begin_closing()


class _Listener:
    """A :class:`~wyre.transport.Listener`: the asyncio server and its handshakes in progress."""

    def __init__(self, options: Options, on_open: OnOpen, gate: Gate | None) -> None:
        self._options = options
        self._on_open = on_open
        self.gate = gate
        self.accepting = True
        self.handshakes: set[WebsocketsTransport] = set()
        self._server: asyncio.Server | None = None
        self._port = 0
        self._idle = asyncio.Event()
        self._select = subprotocol_selector(options)
        self._extensions = enable_server_permessage_deflate(None) if options.compression else None

    def make(self) -> WebsocketsTransport:
        """The protocol factory of the asyncio server: one transport per accepted socket."""
        protocol = ServerProtocol(
            extensions=self._extensions,
            select_subprotocol=self._select,
            max_size=self._options.max_message_size,
        )
        return WebsocketsTransport(self._options, self._on_open, protocol, listener=self)

    def handshake_ended(self, transport: WebsocketsTransport) -> None:
        self.handshakes.discard(transport)
        if not self.accepting and not self.handshakes:
            self._idle.set()

    @property
    def port(self) -> int:
        return self._port

    def serving(self, server: asyncio.Server) -> None:
        self._server = server
        self._port = int(server.sockets[0].getsockname()[1])

    def stop_accepting(self) -> None:
        if not self.accepting:
            return
        self.accepting = False
        if self._server is not None:
            self._server.close()
        for transport in list(self.handshakes):
            transport.refuse()
        if not self.handshakes:
            self._idle.set()

    async def wait_closed(self) -> None:
        """Wait until the listening socket is closed and refused handshakes are over.

        Each of those ends within ``close_timeout`` (or ``open_timeout``).
        """
        await self._idle.wait()


class WebsocketsDriver:
    """The :class:`~wyre.transport.Driver` for the ``websockets`` library (Sans-I/O API)."""

    name = "websockets"

    async def listen(
        self,
        options: Options,
        on_open: OnOpen,
        *,
        host: str | None,
        port: int,
        ssl: ssl_module.SSLContext | None = None,
        gate: Gate | None = None,
    ) -> _Listener:
        loop = asyncio.get_running_loop()
        listener = _Listener(options, on_open, gate)
        tls_timeout = options.open_timeout if ssl is not None else None
        sock = bind_socket(host, port, options.reuse_port)
        if sock is None:
            server = await loop.create_server(
                listener.make, host, port, ssl=ssl, ssl_handshake_timeout=tls_timeout
            )
        else:
            try:
                server = await loop.create_server(
                    listener.make, sock=sock, ssl=ssl, ssl_handshake_timeout=tls_timeout
                )
            except BaseException:
                sock.close()
                raise
        listener.serving(server)
        return listener

    async def connect(
        self,
        options: Options,
        on_open: OnOpen,
        url: str,
        *,
        subprotocols: Sequence[str],
        ssl: ssl_module.SSLContext | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> Receiver:
        try:
            uri = parse_uri(url)
        except (InvalidURI, ValueError) as exc:  # urllib raises ValueError for a bad port
            raise ConnectError(f"cannot connect to {url}: {exc}") from exc
        if uri.secure and ssl is None:
            ssl = ssl_module.create_default_context()
        elif not uri.secure and ssl is not None:
            raise ConnectError(f"cannot connect to {url}: an SSL context for a ws:// URL")
        protocol = ClientProtocol(
            uri,
            subprotocols=[Subprotocol(p) for p in subprotocols] or None,
            extensions=enable_client_permessage_deflate(None) if options.compression else None,
            max_size=options.max_message_size,
        )
        loop = asyncio.get_running_loop()
        ws = WebsocketsTransport(options, on_open, protocol, url=url, headers=headers)
        opened = ws._opened
        assert opened is not None
        connected = False
        try:
            async with asyncio.timeout(options.open_timeout):
                try:
                    await loop.create_connection(
                        lambda: ws,
                        uri.host,
                        uri.port,
                        ssl=ssl,
                        server_hostname=uri.host if ssl is not None else None,
                    )
                except OSError as exc:
                    raise ConnectError(f"cannot connect to {url}: {exc}") from exc
                connected = True
                receiver = await opened
        except TimeoutError:
            if connected:
                ws.abort()
            raise ConnectError(
                f"cannot connect to {url}: no handshake within {options.open_timeout} s"
            ) from None
        except BaseException:
            if connected:
                ws.abort()
            if not opened.done():
                opened.cancel()
            raise
        return receiver
