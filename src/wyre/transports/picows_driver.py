"""The fast transport: ``picows``, a Cython WebSocket library (``fast`` extra).

picows hands over frames from its ``data_received`` callback with no task
per connection and no queue, which suits wyre's inline dispatch. It delivers
frames rather than messages, so fragmented messages are reassembled here, and
the closing handshake is driven here too.
"""

from __future__ import annotations

import asyncio
import os
import struct
from typing import TYPE_CHECKING, Any

from picows import (
    WSAutoPingStrategy,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_connect,
    ws_create_server,
)

try:  # websockets' C helper; websockets is wyre's hard dependency anyway
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its C extension
    from websockets.utils import apply_mask

from ..exceptions import ConnectError
from ..protocol import SUBPROTOCOL
from ..transport import TransportClosing, close_status

if TYPE_CHECKING:
    from ..client import Client
    from ..config import Options
    from ..connection import Connection
    from ..endpoint import Endpoint
    from ..server import Server

__all__ = ["PicowsTransport", "connect", "listen"]

TEXT = WSMsgType.TEXT
BINARY = WSMsgType.BINARY
CONTINUATION = WSMsgType.CONTINUATION
CLOSE = WSMsgType.CLOSE
_NO_LIMIT = 1 << 62
_FLUSH_AT = 64 * 1024
_MASK_POOL = 4096
_TEXT_HEADERS = [bytes((0x81, n)) for n in range(126)]
_BINARY_HEADERS = [bytes((0x82, n)) for n in range(126)]
_pack_8 = struct.Struct("!BB").pack
_pack_16 = struct.Struct("!BBH").pack
_pack_64 = struct.Struct("!BBQ").pack


def _offered(headers: Any) -> list[str]:
    """The subprotocols named in Sec-WebSocket-Protocol header lines."""
    values = headers.getall("Sec-WebSocket-Protocol", ())
    return [p.strip() for value in values for p in value.split(",") if p.strip()]


class PicowsTransport(WSListener):
    """A :class:`~wyre.transport.Transport` and picows listener for one socket."""

    __slots__ = (
        "_backlog",
        "_close_received",
        "_close_sent",
        "_disconnected",
        "_endpoint",
        "_flush_scheduled",
        "_fragment_size",
        "_fragment_type",
        "_fragments",
        "_loop",
        "_mask_at",
        "_masks",
        "_max_size",
        "_out",
        "_receive",
        "_writable",
        "_ws",
        "connection",
        "subprotocol",
    )

    def __init__(self, endpoint: Endpoint, subprotocol: str | None) -> None:
        super().__init__()
        self._endpoint = endpoint
        self.subprotocol = subprotocol
        self.connection: Connection | None = None
        self._ws: WSTransport | None = None
        # Where complete messages go: the connection, or the backlog while
        # reading is paused (swapping the callable costs nothing per frame).
        self._receive: Any = None
        self._backlog: list[str | bytes] | None = None
        self._fragments: list[bytes] | None = None
        self._fragment_size = 0
        self._fragment_type = TEXT
        self._max_size = endpoint.options.max_message_size or _NO_LIMIT
        self._close_received: tuple[int, str] | None = None
        self._close_sent: tuple[int, str] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._loop = asyncio.get_running_loop()
        self._disconnected: asyncio.Future[None] | None = None
        self._out = bytearray()
        self._masks: bytes | None = None  # a client's pool of masking keys
        self._mask_at = 0
        self._flush_scheduled = False

    # -- picows callbacks ---------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._ws = transport
        if transport.is_client_side:
            self._masks = os.urandom(_MASK_POOL)
        limit = self._endpoint.options.write_limit
        transport.underlying_transport.set_write_buffer_limits(high=limit, low=limit // 4)
        self.connection = self._endpoint._open(self)
        self._receive = self.connection.receive

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if frame.fin and not self._fragments:
            if msg_type is TEXT:
                try:
                    self._receive(frame.get_payload_as_utf8_text())
                except UnicodeDecodeError:
                    self._receive(frame.get_payload_as_bytes())
            elif msg_type is BINARY:
                self._receive(frame.get_payload_as_bytes())
            elif msg_type is CLOSE:
                self._on_close(transport, frame)
                return
        elif msg_type in (TEXT, BINARY, CONTINUATION):
            self._reassemble(transport, frame)
        elif msg_type is CLOSE:
            self._on_close(transport, frame)
            return
        if frame.last_in_buffer and self._out:
            # The answers to everything this socket read are ready: send them
            # now rather than one event-loop step later (the latency of a
            # lone request-reply).
            self.flush()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        sent = self._close_sent
        if sent is None and transport.close_handshake is not None:  # picows failed it
            info = transport.close_handshake.sent
            sent = None if info is None else (int(info.code.value), info.reason)
        code, reason = close_status(self._close_received, sent)
        if self._disconnected is not None and not self._disconnected.done():
            self._disconnected.set_result(None)
        self.resume_writing()
        if self.connection is not None:
            self.connection.connection_lost(code, reason)

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    def _reassemble(self, transport: WSTransport, frame: WSFrame) -> None:
        fragments = self._fragments
        if frame.msg_type is not CONTINUATION:
            if fragments:
                self._protocol_error(transport, 1002, "new message inside a fragmented one")
                return
            fragments = self._fragments = []
            self._fragment_type = frame.msg_type
        elif not fragments:
            self._protocol_error(transport, 1002, "continuation without a message")
            return
        payload = frame.get_payload_as_bytes()
        fragments.append(payload)
        self._fragment_size = size = (self._fragment_size if len(fragments) > 1 else 0) + len(
            payload
        )
        if size > self._max_size:
            self._fragments = None
            self._protocol_error(transport, 1009, "message too big")
            return
        if frame.fin:
            self._fragments = None
            data = b"".join(fragments)
            if self._fragment_type is TEXT:
                try:
                    self._receive(data.decode())
                    return
                except UnicodeDecodeError:
                    pass
            self._receive(data)

    def _on_close(self, transport: WSTransport, frame: WSFrame) -> None:
        code = int(frame.get_close_code().value) if frame.payload_size >= 2 else 1005
        try:
            reason = frame.get_close_reason() or ""
        except Exception:
            reason = ""
        self._close_received = (code, reason)
        if not self._close_sent:
            self._send_close(code if code != 1005 else 1000, reason)
        transport.disconnect()

    def _protocol_error(self, transport: WSTransport, code: int, reason: str) -> None:
        self._send_close(code, reason)
        transport.disconnect()

    def _send_close(self, code: int, reason: str) -> None:
        # picows' send_close() only takes its enum's codes; applications use
        # 4000-4999 too, so the CLOSE frame is built here.
        self._close_sent = (code, reason)
        assert self._ws is not None
        self.flush()
        self._ws.send(CLOSE, struct.pack("!H", code) + reason.encode())

    # -- Transport ------------------------------------------------------------

    def write(self, data: str | bytes, binary: bool) -> None:
        # Frames are built here and coalesced: one socket write per event-loop
        # step, not one per frame (a system call is most of a small frame's cost).
        ws = self._ws
        assert ws is not None
        if ws.is_disconnected:
            raise ConnectionError("socket closed")
        if self._close_sent:
            raise TransportClosing("closing handshake under way")
        if data.__class__ is str:
            data = data.encode()
        size = len(data)
        out = self._out
        if self._masks is None:  # server: frames are not masked
            if size < 126:
                out += (_BINARY_HEADERS if binary else _TEXT_HEADERS)[size]
            else:
                first = 0x82 if binary else 0x81
                out += _pack_16(first, 126, size) if size < 65536 else _pack_64(first, 127, size)
            out += data  # type: ignore[arg-type]
        else:  # client: every frame is masked with a fresh key (RFC 6455 5.3)
            first = 0x82 if binary else 0x81
            if size < 126:
                out += _pack_8(first, 0x80 | size)
            elif size < 65536:
                out += _pack_16(first, 0xFE, size)
            else:
                out += _pack_64(first, 0xFF, size)
            mask = self._mask()
            out += mask
            out += apply_mask(data, mask)  # type: ignore[arg-type]
        if len(out) >= _FLUSH_AT:  # a long burst streams out as it is produced
            self.flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def _mask(self) -> bytes:
        """Four bytes from a pool filled by os.urandom: a strong source, one call per 1024."""
        masks = self._masks
        assert masks is not None
        at = self._mask_at
        if at >= len(masks):
            masks = self._masks = os.urandom(_MASK_POOL)
            at = 0
        self._mask_at = at + 4
        return masks[at : at + 4]

    def flush(self) -> None:
        """Hand every frame written so far to the socket in one write."""
        if self._out and self._ws is not None and not self._ws.is_disconnected:
            self._ws.underlying_transport.write(bytes(self._out))
        self._out.clear()
        self._flush_scheduled = False

    def write_buffer_size(self) -> int:
        assert self._ws is not None
        return len(self._out) + int(self._ws.underlying_transport.get_write_buffer_size())

    async def drain(self) -> None:
        self.flush()
        if self._writable is not None:
            await self._writable

    def pause_reading(self) -> None:
        # picows still delivers every frame it already read from the socket,
        # so those wait in the backlog until reading resumes.
        assert self._ws is not None
        if self._backlog is None:
            self._backlog = []
            self._receive = self._backlog.append
            self._ws.underlying_transport.pause_reading()

    def resume_reading(self) -> None:
        backlog = self._backlog
        if backlog is None or self._close_sent or self.connection is None:
            return
        self._backlog = None
        self._receive = self.connection.receive
        for index, data in enumerate(backlog):
            self._receive(data)
            if self._backlog is not None:  # paused again: keep the rest
                self._backlog.extend(backlog[index + 1 :])
                return
        assert self._ws is not None
        if not self._ws.is_disconnected:
            self._ws.underlying_transport.resume_reading()

    async def close(self, code: int, reason: str) -> None:
        ws = self._ws
        assert ws is not None
        if ws.is_disconnected:
            return
        if not self._close_sent:
            self._send_close(code, reason)
        # Read on, to see the peer's CLOSE; data frames are dropped from now.
        self._backlog = None
        self._receive = _drop
        ws.underlying_transport.resume_reading()
        if self._disconnected is None:
            self._disconnected = self._loop.create_future()
        try:
            async with asyncio.timeout(self._endpoint.options.close_timeout):
                await asyncio.shield(self._disconnected)
        except TimeoutError:
            ws.disconnect(graceful=False)
            await asyncio.shield(self._disconnected)

    def abort(self) -> None:
        if self._ws is not None:
            self._ws.disconnect(graceful=False)


def _drop(data: str | bytes) -> None:
    """Where frames go once this side has started closing."""


def _common(options: Options) -> dict[str, Any]:
    keepalive = options.ping_interval is not None
    return {
        "websocket_handshake_timeout": options.open_timeout,
        "enable_auto_ping": keepalive,
        "auto_ping_idle_timeout": options.ping_interval if keepalive else 20,
        # picows waits for a pong at most as long as the ping interval
        "auto_ping_reply_timeout": min(options.ping_timeout or 20, options.ping_interval or 20),
        "auto_ping_strategy": WSAutoPingStrategy.PING_WHEN_IDLE,
        "max_frame_size": options.max_message_size or _NO_LIMIT,
        "disconnect_on_exception": True,
    }


class _Listener:
    def __init__(self, server: asyncio.Server) -> None:
        self._server = server
        self.port = int(server.sockets[0].getsockname()[1])

    def stop_accepting(self) -> None:
        self._server.close()

    async def wait_closed(self) -> None:
        # asyncio.Server.wait_closed() would wait for every connection;
        # Server.close() closes those itself.
        return None


async def listen(server: Server, host: str | None, port: int) -> _Listener:
    """Start accepting connections for ``server`` on ``host:port``."""
    options = server.options

    def accept(request: WSUpgradeRequest) -> Any:
        offered = _offered(request.headers)
        chosen = next((p for p in options.subprotocols if p in offered), None)
        if chosen is None and options.extensions and SUBPROTOCOL in offered:
            chosen = SUBPROTOCOL
        listener = PicowsTransport(server, chosen)
        if chosen is None:
            return listener
        response = WSUpgradeResponse.create_101_response(
            extra_headers={"Sec-WebSocket-Protocol": chosen}
        )
        return WSUpgradeResponseWithListener(response, listener)

    asyncio_server = await ws_create_server(accept, host, port, **_common(options))
    return _Listener(asyncio_server)


async def connect(client: Client, url: str, protocols: list[str]) -> Connection:
    """Open a connection to ``url`` for ``client``.

    Raises:
        ConnectError: nothing listening, handshake refused, or timed out.
    """
    options = client.options

    def make(_: WSUpgradeRequest, response: WSUpgradeResponse) -> PicowsTransport:
        chosen = next(iter(_offered(response.headers)), None)
        return PicowsTransport(client, chosen if chosen in protocols else None)

    headers = {"Sec-WebSocket-Protocol": ", ".join(protocols)} if protocols else None
    try:
        async with asyncio.timeout(options.open_timeout):
            _, listener = await ws_connect(make, url, extra_headers=headers, **_common(options))
    except Exception as exc:  # OSError, WSHandshakeError, TimeoutError, bad URL
        raise ConnectError(f"cannot connect to {url}: {exc}") from exc
    assert isinstance(listener, PicowsTransport) and listener.connection is not None
    return listener.connection
