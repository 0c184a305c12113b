"""The fast driver: ``picows``, a Cython WebSocket library (``fast`` extra).

picows hands over frames from its ``data_received`` callback with no task
per connection and no queue, which suits wyre's inline dispatch. It delivers
frames rather than messages, so this driver reassembles fragmented messages
(:class:`~wyre.transports.frames.Assembler`), builds and coalesces outgoing
frames itself (:class:`~wyre.transports.frames.FrameWriter`: one socket write
per event-loop step, and close codes picows' API does not take), runs the
closing handshake and sends the keepalive pings
(:class:`~wyre.transports.keepalive.Keepalive`).

picows itself still parses frames, answers pings, bounds a single frame by
``max_message_size`` (1009) and refuses malformed frames (1002).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from picows import (
    WSAutoPingStrategy,
    WSFrame,
    WSHandshakeError,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_connect,
)
from picows.picows import WSProtocol  # type: ignore[attr-defined]
from websockets.http11 import Request
from websockets.server import ServerProtocol

from ..exceptions import ConnectError, Reject
from ..handshake import Handshake
from ..transport import (
    KEEPALIVE_TIMEOUT,
    OnOpen,
    Receiver,
    TransportClosing,
    bind_socket,
    close_status,
    enable_tcp_keepalive,
    socket_debug,
)
from . import frames
from .frames import Assembler, FrameError, FrameWriter, parse_close
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
    import ssl as ssl_module

    from ..config import Options
    from ..transport import Gate

__all__ = ["PicowsDriver", "PicowsTransport"]

TEXT = WSMsgType.TEXT
BINARY = WSMsgType.BINARY
CLOSE = WSMsgType.CLOSE
PING = WSMsgType.PING
PONG = WSMsgType.PONG
_NO_LIMIT = 1 << 62
_HOLD_LIMIT = 64 * 1024
"""Bytes kept from a client while the gate decides on its handshake; past it, reading waits."""
_FLUSH_AT = 64 * 1024


def _offered(headers: Any) -> list[str]:
    """The subprotocols named in Sec-WebSocket-Protocol header lines."""
    values = headers.getall("Sec-WebSocket-Protocol", ())
    return [p.strip() for value in values for p in value.split(",") if p.strip()]


def _drop(data: str | bytes) -> None:
    """Where messages go once this side has started closing."""


class PicowsTransport(WSListener):
    """A :class:`~wyre.transport.Transport` and picows listener for one socket."""

    __slots__ = (
        "_assembler",
        "_backlog",
        "_buffer_size",
        "_close_received",
        "_close_sent",
        "_deadline",
        "_disconnected",
        "_flush_scheduled",
        "_fragmented",
        "_frame",
        "_keepalive",
        "_loop",
        "_on_open",
        "_open",
        "_options",
        "_out",
        "_receive",
        "_receiver",
        "_send",
        "_writable",
        "_writer",
        "_ws",
        "handshake",
        "identity",
        "subprotocol",
    )

    def __init__(self, options: Options, on_open: OnOpen, subprotocol: str | None) -> None:
        super().__init__()
        self.subprotocol = subprotocol
        self.handshake: Handshake | None = None
        self.identity: Any = None
        self._options = options
        self._on_open = on_open
        self._loop = asyncio.get_running_loop()
        self._ws: WSTransport | None = None
        self._receiver: Receiver | None = None
        # Where complete messages go: the receiver, the backlog while reading
        # is paused, or nowhere once closing (swapping the callable costs
        # nothing per frame).
        self._receive: Callable[[str | bytes], None] = _drop
        self._backlog: list[str | bytes] | None = None
        self._assembler = Assembler(options.max_message_size)
        self._fragmented = False  # a fragmented message is under way
        self._open = False  # writes are accepted
        self._close_received: tuple[int, str] | None = None
        self._close_sent: tuple[int, str] | None = None
        self._deadline: asyncio.TimerHandle | None = None  # bounds the closing handshake
        self._disconnected: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._keepalive: Keepalive | None = None
        self._out = bytearray()
        self._flush_scheduled = False
        self._writer = FrameWriter(mask=False)
        self._frame = self._writer.data_writer()
        self._buffer_size: Callable[[], int] = _nothing_buffered
        self._send: Callable[[bytes], None] = _drop

    # -- picows callbacks -----------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        options = self._options
        self._ws = transport
        self._writer = FrameWriter(mask=transport.is_client_side)
        self._frame = self._writer.data_writer()
        underlying = transport.underlying_transport
        underlying.set_write_buffer_limits(high=options.write_limit, low=options.write_limit // 4)
        self._buffer_size = underlying.get_write_buffer_size
        self._send = underlying.write
        enable_tcp_keepalive(underlying.get_extra_info("socket"), options.ping_interval or 20)
        self._open = True
        if wanted(options, self.subprotocol):
            assert options.ping_interval is not None
            self._keepalive = Keepalive(
                options.ping_interval, options.ping_timeout, self._ping, self._keepalive_expired
            )
        receiver = self._receiver = self._on_open(self)
        if self._close_sent is None and self._backlog is None:  # on_open may have paused
            self._receive = receiver.receive

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if frame.fin and not self._fragmented and not (frame.rsv1 or frame.rsv2 or frame.rsv3):
            if msg_type is TEXT:
                try:
                    text = frame.get_payload_as_utf8_text()
                except UnicodeDecodeError as exc:
                    self._fail(1007, f"invalid UTF-8 at position {exc.start}")
                    return
                self._receive(text)
            elif msg_type is BINARY:
                self._receive(frame.get_payload_as_bytes())
            else:
                self._other(frame, msg_type)
        else:
            self._other(frame, msg_type)
        if self._out and frame.last_in_buffer:
            # The answers to everything this socket read are ready: send them
            # now rather than one event-loop step later (the latency of a
            # lone request-reply).
            self.flush()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._open = False
        self._receive = _drop
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._keepalive is not None:
            self._keepalive.stop()
        sent = self._close_sent
        handshake = transport.close_handshake
        if handshake is not None and handshake.sent is not None:
            # picows failed the connection itself (a frame over max_frame_size,
            # a malformed frame): its close frame says why. On a client it also
            # keeps the error for wait_disconnected(); collect it there, or
            # asyncio logs "Future exception was never retrieved".
            if sent is None:
                sent = (int(handshake.sent.code.value), handshake.sent.reason)
            if transport.is_client_side and not self._loop.is_closed():
                self._loop.create_task(_settle(transport))
        code, reason = close_status(self._close_received, sent)
        if self._disconnected is None:
            self._disconnected = self._loop.create_future()
        if not self._disconnected.done():
            self._disconnected.set_result(None)
        self.resume_writing()
        if self._receiver is not None:
            self._receiver.connection_lost(code, reason)

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    # -- frames other than a whole text or binary message ----------------------

    def _other(self, frame: WSFrame, msg_type: WSMsgType) -> None:
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            self._fail(1002, "reserved bits set without a negotiated extension")
        elif msg_type is CLOSE:
            self._on_close(frame)
        elif msg_type is PONG:
            if self._keepalive is not None:
                self._keepalive.pong(frame.get_payload_as_bytes())
        elif msg_type is PING:
            pass  # picows answered it
        elif self._close_sent is None:  # a fragment, or a continuation without a message
            try:
                message = self._assembler.feed(
                    msg_type.value, frame.fin, frame.get_payload_as_bytes()
                )
            except FrameError as exc:
                self._fail(exc.code, exc.reason)
                return
            self._fragmented = self._assembler.in_message
            if message is not None:
                self._receive(message)

    def _on_close(self, frame: WSFrame) -> None:
        try:
            received = parse_close(frame.get_payload_as_bytes())
        except FrameError as exc:
            self._fail(exc.code, exc.reason)
            return
        self._close_received = received
        if self._close_sent is None:  # echo it (an empty one with 1000)
            self._send_close(*(received if received[0] != 1005 else (1000, "")))
        self._disconnect()

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7): send a close frame, then drop the socket."""
        if self._close_sent is not None:
            return  # already closing: the peer's answer or close_timeout ends it
        self._debug("failing the connection: %s %s", code, reason)
        self._send_close(code, reason)
        self._disconnect()

    def _send_close(self, code: int, reason: str) -> None:
        # picows' send_close() only takes its enum's codes; applications use
        # 4000-4999 too, so the close frame is built here.
        self._close_sent = (code, reason)
        self._open = False
        self._receive = _drop
        self._backlog = None
        if self._keepalive is not None:
            self._keepalive.stop()
        self._writer.close(self._out, code, reason)
        self.flush()

    def _disconnect(self) -> None:
        """Close the socket once the buffered frames are out, within close_timeout."""
        ws = self._ws
        assert ws is not None
        ws.disconnect()
        timeout = self._options.close_timeout
        if self._deadline is None and timeout is not None and not ws.is_disconnected:
            self._deadline = self._loop.call_later(timeout, self.abort)

    def _ping(self, payload: bytes) -> None:
        if not self._open:
            raise TransportClosing("closing handshake under way")
        self._writer.frame(self._out, frames.PING, payload)
        self.flush()

    def _keepalive_expired(self) -> None:
        self._debug("keepalive ping timed out: dropping the socket")
        if self._close_sent is None:
            self._send_close(*KEEPALIVE_TIMEOUT)  # best effort: the peer may be gone
        self.abort()

    def _debug(self, msg: str, *args: Any) -> None:
        """A debug record about this socket (see :func:`~wyre.transport.socket_debug`)."""
        socket_debug(self._receiver, self._options.logger, msg, *args)

    # -- Transport --------------------------------------------------------------

    def write(self, data: str | bytes, binary: bool) -> None:
        # Frames are built here and coalesced: one socket write per event-loop
        # step, not one per frame (a system call is most of a small frame's cost).
        if not self._open:
            closing = self._close_sent is not None or self._close_received is not None
            if closing and (self._disconnected is None or not self._disconnected.done()):
                # A closing handshake is under way: the connection ends with its
                # code, not as a failed write.
                raise TransportClosing("closing handshake under way")
            raise ConnectionError("socket closed")
        out = self._out
        self._frame(out, data, binary)
        if len(out) >= _FLUSH_AT:  # a long burst streams out as it is produced
            self.flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Hand every frame written so far to the socket in one write."""
        self._flush_scheduled = False
        out = self._out
        if out:
            ws = self._ws
            # Nothing goes out after picows sent a close frame of its own.
            if ws is not None and not ws.is_disconnected and not ws.is_close_frame_sent:
                self._send(bytes(out))
            out.clear()

    def write_buffer_size(self) -> int:
        return len(self._out) + int(self._buffer_size())

    async def drain(self) -> None:
        self.flush()
        if self._writable is not None:
            await self._writable

    def pause_reading(self) -> None:
        # picows still delivers every frame it already read from the socket,
        # so those wait in the backlog until reading resumes.
        assert self._ws is not None
        if self._backlog is None and self._close_sent is None:
            self._backlog = []
            self._receive = self._backlog.append
            self._ws.underlying_transport.pause_reading()
            if self._keepalive is not None:
                self._keepalive.suspend()

    def resume_reading(self) -> None:
        backlog = self._backlog
        if backlog is None or self._close_sent is not None or self._receiver is None:
            return
        self._backlog = None
        self._receive = self._receiver.receive
        for index, data in enumerate(backlog):
            self._receive(data)
            if self._backlog is not None:  # paused again: keep the rest
                self._backlog.extend(backlog[index + 1 :])
                return
        assert self._ws is not None
        if not self._ws.is_disconnected:
            self._ws.underlying_transport.resume_reading()
        if self._keepalive is not None:
            self._keepalive.resume()

    async def close(self, code: int, reason: str) -> None:
        ws = self._ws
        assert ws is not None
        if ws.is_disconnected:
            return
        if self._close_sent is None and not ws.is_close_frame_sent:
            self._send_close(code, reason)
        # Read on, to see the peer's close frame; messages are dropped from now.
        self._backlog = None
        self._receive = _drop
        ws.underlying_transport.resume_reading()
        if self._disconnected is None:
            self._disconnected = self._loop.create_future()
        try:
            async with asyncio.timeout(self._options.close_timeout):
                await asyncio.shield(self._disconnected)
        except TimeoutError:
            self.abort()
            await asyncio.shield(self._disconnected)

    def abort(self) -> None:
        if self._ws is not None:
            self._ws.disconnect(graceful=False)


def _nothing_buffered() -> int:
    return 0


async def _settle(transport: WSTransport) -> None:
    """Collect the error picows keeps for wait_disconnected() (the close code reported it)."""
    with contextlib.suppress(Exception):
        await transport.wait_disconnected()


class PicowsListener:
    """A :class:`~wyre.transport.Listener`: the asyncio server and its handshakes in progress."""

    def __init__(self, options: Options, on_open: OnOpen, gate: Gate | None) -> None:
        self.options = options
        self.on_open = on_open
        self.gate = gate
        self.accepting = True
        self.port = 0
        self.handshakes: set[_Doorman] = set()
        self._server: asyncio.Server | None = None
        self.select = subprotocol_selector(options)

    def make(self) -> _Doorman:
        """The protocol factory of the asyncio server: each socket starts at the door."""
        return _Doorman(self)

    def _serve(self, server: asyncio.Server) -> None:
        self._server = server
        self.port = int(server.sockets[0].getsockname()[1])

    def stop_accepting(self) -> None:
        self.accepting = False
        if self._server is not None:
            self._server.close()
        for doorman in list(self.handshakes):
            doorman.refuse(503, "The server is shutting down.")

    async def wait_closed(self) -> None:
        # asyncio.Server.wait_closed() would wait for every connection;
        # Server.close() closes those itself, and refused handshakes end at once.
        return None


class _Doorman(asyncio.Protocol):
    """An accepted socket until its upgrade request is admitted; then picows takes it over.

    picows decides on a handshake synchronously, but the server's gate may
    await (an ``authenticate`` coroutine). So the request is read here first,
    with websockets' Sans-I/O parser (the same checks and statuses as the
    websockets driver), and put to the gate while the socket is not read.
    Once admitted, the socket is switched to a picows protocol, which is
    given the bytes read so far and completes the upgrade in the same step.
    """

    def __init__(self, listener: PicowsListener) -> None:
        self._listener = listener
        self._parser = ServerProtocol(
            select_subprotocol=listener.select,
            max_size=listener.options.max_message_size,
        )
        self._received = bytearray()
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._admission: asyncio.Task[None] | None = None
        self._done = False  # answered, refused or handed over

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        listener = self._listener
        if not listener.accepting:
            self.refuse(503, "The server is shutting down.")
            return
        listener.handshakes.add(self)
        timeout = listener.options.open_timeout
        if timeout is not None:
            self._timer = asyncio.get_running_loop().call_later(timeout, self._timed_out)

    def data_received(self, data: bytes) -> None:
        if self._done:
            return
        self._received += data
        if self._admission is not None:  # the gate is deciding: keep it, keep reading for EOF
            if len(self._received) > _HOLD_LIMIT and self._transport is not None:
                self._transport.pause_reading()  # a client that talks before the 101: wait
            return
        parser = self._parser
        parser.receive_data(data)
        for event in parser.events_received():
            if isinstance(event, Request):
                self._request(event)
                return
        if parser.handshake_exc is not None:  # not a readable request
            status, reason = unreadable(parser.handshake_exc)
            self._report(status, reason)
            self.refuse(status, reason)

    def eof_received(self) -> bool | None:
        self._end()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()

    def _request(self, request: Request) -> None:
        assert self._transport is not None
        script = client_script_response(request, self._listener.options.client_script)
        if script is not None:  # a plain GET for wyre.js
            self._done = True
            self._end()
            self._transport.write(script.serialize())
            self._transport.close()
            return
        if unsupported_version(request):
            self.refuse(426, "unsupported WebSocket version", VERSION_HEADERS)
            return
        response = self._parser.accept(request)  # checks the request; sends nothing
        if response.status_code != 101:
            reason = reason_of(response)
            if response.status_code != 426:  # 426: plain HTTP, not a WebSocket client
                self._report(response.status_code, reason)
            self.refuse(response.status_code, reason)
            return
        subprotocol = response.headers.get("Sec-WebSocket-Protocol")
        peer = remote_address(self._transport.get_extra_info("peername"))
        handshake = handshake_of(request, peer)
        gate = self._listener.gate
        if gate is None:
            self._hand_over(handshake, None, subprotocol)
            return
        if self._timer is not None:  # the gate bounds itself
            self._timer.cancel()
            self._timer = None
        self._admission = asyncio.get_running_loop().create_task(
            self._admit(gate, handshake, subprotocol)
        )

    async def _admit(self, gate: Gate, handshake: Handshake, subprotocol: str | None) -> None:
        try:
            identity = await gate.admit(handshake)
        except Reject as exc:
            status, reason = exc.status, exc.reason
        except Exception as exc:  # a gate must only raise Reject; never leave the client hanging
            self._listener.options.logger.exception("the handshake gate failed")
            status, reason = 500, type(exc).__name__
        else:
            self._admission = None
            if self._listener.accepting and not self._done:
                self._hand_over(handshake, identity, subprotocol)  # same step, as Gate asks
                return
            status, reason = 503, "The server is shutting down."
        self._admission = None
        self.refuse(status, reason)

    def _hand_over(self, handshake: Handshake, identity: Any, subprotocol: str | None) -> None:
        """Switch the socket to picows and replay the request to it: it upgrades at once."""
        transport = self._transport
        assert transport is not None
        self._done = True
        self._end()
        listener = self._listener
        options = listener.options
        ws = PicowsTransport(options, listener.on_open, subprotocol)
        ws.handshake, ws.identity = handshake, identity
        extra = {"Sec-WebSocket-Protocol": subprotocol} if subprotocol else None
        ready = WSUpgradeResponseWithListener(
            WSUpgradeResponse.create_101_response(extra_headers=extra), ws
        )
        protocol = _server_protocol(options, lambda _: ready)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        data = memoryview(self._received)
        while data:
            buffer = protocol.get_buffer(len(data))
            n = min(len(buffer), len(data))
            buffer[:n] = data[:n]
            protocol.buffer_updated(n)
            data = data[n:]
        self._received = bytearray()
        transport.resume_reading()

    def refuse(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        """Answer with an HTTP error and close the socket (no upgrade)."""
        if self._done:
            return
        self._done = True
        self._end()
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self._listener.options.logger.debug("handshake refused with HTTP %s: %s", status, reason)
        transport.write(refusal(status, reason, headers))
        transport.close()  # after the response is written

    def _report(self, status: int, reason: str) -> None:
        gate = self._listener.gate
        if gate is not None and self._transport is not None:
            gate.refused(status, reason, remote_address(self._transport.get_extra_info("peername")))

    def _timed_out(self) -> None:
        self._timer = None
        self._listener.options.logger.debug("opening handshake timed out: dropping the socket")
        self._done = True
        self._end()
        if self._transport is not None:
            self._transport.abort()

    def _end(self) -> None:
        """No longer a handshake in progress: stop the timer and any admission."""
        self._listener.handshakes.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._admission is not None:
            self._admission.cancel()
            self._admission = None


def _server_protocol(options: Options, factory: Callable[[WSUpgradeRequest], Any]) -> Any:
    """picows' protocol for one server socket, as ``ws_create_server`` would make it.

    Built directly, since the socket was accepted (and its request read) by
    :class:`_Doorman`; the arguments are those of picows' own factory.
    """
    common = _common(options)
    return WSProtocol(
        None,  # host and port: a server's
        None,  # path: a server's
        False,  # not the client side
        factory,
        logging.getLogger("picows.server"),
        common["disconnect_on_exception"],
        common["websocket_handshake_timeout"],
        common["enable_auto_ping"],
        20.0,  # auto-ping idle timeout (auto-ping is off)
        20.0,  # auto-ping reply timeout
        WSAutoPingStrategy.PING_WHEN_IDLE,
        common["enable_auto_pong"],
        common["max_frame_size"],
        None,  # extra headers: the response carries them
        16 * 1024,  # initial read buffer
    )


def _common(options: Options) -> dict[str, Any]:
    """picows options for both sides: wyre runs keepalive pings itself."""
    return {
        "websocket_handshake_timeout": options.open_timeout,
        "enable_auto_ping": False,
        "enable_auto_pong": True,
        "max_frame_size": options.max_message_size or _NO_LIMIT,
        "disconnect_on_exception": True,
    }


class _Refused(Exception):
    """The server's handshake response is not one this client accepts."""


def _connect_error(url: str, exc: BaseException, options: Options) -> ConnectError:
    if isinstance(exc, WSHandshakeError) and exc.response is not None:
        status = int(exc.response.status)
        if status != 101:
            phrase = getattr(exc.response.status, "phrase", "")
            body = exc.raw_body or b""
            reason = body.decode(errors="replace").strip()
            detail = f"the server answered HTTP {status} {phrase}".rstrip()
            return ConnectError(
                f"cannot connect to {url}: {detail}" + (f": {reason}" if reason else ""),
                status=status,
                reason=reason,
            )
    if isinstance(exc, TimeoutError):
        return ConnectError(
            f"cannot connect to {url}: no handshake within {options.open_timeout} s"
        )
    return ConnectError(f"cannot connect to {url}: {str(exc) or type(exc).__name__}")


class PicowsDriver:
    """The :class:`~wyre.transport.Driver` for picows."""

    name = "picows"

    async def listen(
        self,
        options: Options,
        on_open: OnOpen,
        *,
        host: str | None,
        port: int,
        ssl: ssl_module.SSLContext | None = None,
        gate: Gate | None = None,
    ) -> PicowsListener:
        listener = PicowsListener(options, on_open, gate)
        loop = asyncio.get_running_loop()
        tls_timeout = options.open_timeout if ssl is not None else None
        sock = bind_socket(host, port, options.reuse_port)
        try:
            if sock is None:
                server = await loop.create_server(
                    listener.make, host, port, ssl=ssl, ssl_handshake_timeout=tls_timeout
                )
            else:  # one socket, one port, for IPv4 and IPv6
                server = await loop.create_server(
                    listener.make, sock=sock, ssl=ssl, ssl_handshake_timeout=tls_timeout
                )
        except BaseException:
            if sock is not None:
                sock.close()
            raise
        listener._serve(server)
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
        offered = list(subprotocols)
        made: list[PicowsTransport] = []

        def make(_: WSUpgradeRequest, response: WSUpgradeResponse) -> PicowsTransport:
            selected = _offered(response.headers)
            if len(selected) > 1 or (selected and selected[0] not in offered):
                raise _Refused(
                    f"the server selected subprotocol {', '.join(selected)!r}, "
                    f"which was not offered"
                )
            transport = PicowsTransport(options, on_open, selected[0] if selected else None)
            made.append(transport)
            return transport

        extra = list(headers)
        if offered:
            extra.append(("Sec-WebSocket-Protocol", ", ".join(offered)))
        try:
            async with asyncio.timeout(options.open_timeout):
                _, listener = await ws_connect(
                    make, url, ssl_context=ssl, extra_headers=extra or None, **_common(options)
                )
        except BaseException as exc:
            for transport in made:  # opened just as the time ran out
                transport.abort()
            if not isinstance(exc, Exception):
                raise
            raise _connect_error(url, exc, options) from exc
        if not isinstance(listener, PicowsTransport) or listener._receiver is None:
            # The socket went down as the handshake ended (picows then gives no listener).
            for transport in made:
                transport.abort()
            raise ConnectError(f"cannot connect to {url}: connection lost in handshake")
        return listener._receiver
