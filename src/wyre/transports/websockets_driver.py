"""The default transport: the ``websockets`` library's asyncio implementation.

Frames are written synchronously through the connection's Sans-I/O protocol
object (as ``websockets.broadcast`` does), so that a plain-function handler
can answer without a task; ``drain()`` provides the flow control.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import Server as WsServer
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.protocol import OPEN
from websockets.typing import Subprotocol

from ..exceptions import ConnectError
from ..protocol import SUBPROTOCOL
from ..transport import TransportClosing, close_status

if TYPE_CHECKING:
    from ..client import Client
    from ..config import Options
    from ..connection import Connection
    from ..server import Server

__all__ = ["WebsocketsTransport", "connect", "listen"]

_FLUSH_AT = 64 * 1024


class WebsocketsTransport:
    """A :class:`~wyre.transport.Transport` over one websockets connection.

    Writes are coalesced: frames written during one event-loop step go out
    in a single ``transport.write()``, one system call instead of one per
    frame, which is most of the cost of a small reply. A flush happens at
    the end of the step, or before waiting on a full buffer.
    """

    __slots__ = (
        "_closing",
        "_flush_scheduled",
        "_loop",
        "_paused",
        "_resumed",
        "_unflushed",
        "_ws",
        "subprotocol",
    )

    def __init__(self, ws: ServerConnection | ClientConnection) -> None:
        self._ws = ws
        self._loop = asyncio.get_running_loop()
        self.subprotocol: str | None = ws.subprotocol
        self._paused = False
        self._resumed: asyncio.Future[None] | None = None
        self._unflushed = 0
        self._flush_scheduled = False
        self._closing = False

    def write(self, data: str | bytes, binary: bool) -> None:
        ws = self._ws
        if ws.protocol.state is not OPEN:
            raise TransportClosing("closing handshake under way")
        if ws.transport.is_closing():
            raise ConnectionError("socket closed")
        if data.__class__ is str:
            data = data.encode()
        if binary:
            ws.protocol.send_binary(data)  # type: ignore[arg-type]
        else:
            ws.protocol.send_text(data)  # type: ignore[arg-type]
        self._unflushed += len(data)
        if self._unflushed >= _FLUSH_AT:  # a long burst streams out as it is produced
            self.flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Hand every frame written so far to the socket in one write."""
        self._flush_scheduled = False
        self._unflushed = 0
        ws = self._ws
        chunks = ws.protocol.data_to_send()
        if not chunks or ws.transport.is_closing():
            return
        if all(chunks):
            ws.transport.write(b"".join(chunks))
        else:  # an empty chunk means "half-close": let websockets handle it
            ws.protocol.writes[:0] = chunks
            ws.send_data()

    def write_buffer_size(self) -> int:
        return self._unflushed + self._ws.transport.get_write_buffer_size()

    async def drain(self) -> None:
        self.flush()
        await self._ws.drain()

    def pause_reading(self) -> None:
        # Not reading lets websockets' own queue fill up, and websockets then
        # pauses the socket: backpressure reaches the peer's TCP window.
        self._paused = True

    def resume_reading(self) -> None:
        self._paused = False
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)

    async def close(self, code: int, reason: str) -> None:
        self._closing = True
        self.resume_reading()
        await self._ws.close(code, reason)

    def abort(self) -> None:
        self._ws.transport.abort()

    async def _wait_resumed(self) -> None:
        """Wait until reading resumes, or the socket closes meanwhile."""
        self._resumed = self._loop.create_future()
        closed = asyncio.ensure_future(self._ws.wait_closed())
        try:
            await asyncio.wait({self._resumed, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            self._resumed = None

    async def run(self, connection: Connection) -> None:
        """Feed received messages to ``connection`` until the socket closes."""
        ws = self._ws
        recv = ws.recv
        receive = connection.receive
        try:
            while True:
                if self._paused:
                    await self._wait_resumed()
                data = await recv()
                if self._closing:
                    continue  # this side is closing: frames are dropped
                receive(data)
        except WsConnectionClosed:
            pass
        except asyncio.CancelledError:
            ws.transport.abort()
            raise
        except Exception:
            connection.logger.exception("reading from %s failed", connection.id)
            ws.transport.abort()
        finally:
            await ws.wait_closed()
            rcvd, sent = ws.protocol.close_rcvd, ws.protocol.close_sent
            connection.connection_lost(
                *close_status(
                    None if rcvd is None else (int(rcvd.code), rcvd.reason),
                    None if sent is None else (int(sent.code), sent.reason),
                )
            )


def _common(options: Options) -> dict[str, Any]:
    return {
        "compression": "deflate" if options.compression else None,
        "ping_interval": options.ping_interval,
        "ping_timeout": options.ping_timeout,
        "close_timeout": options.close_timeout,
        "max_size": options.max_message_size,
        "write_limit": options.write_limit,
    }


class _Listener:
    def __init__(self, server: WsServer) -> None:
        self._server = server
        self.port = int(server.sockets[0].getsockname()[1])

    def stop_accepting(self) -> None:
        self._server.close(close_connections=False)

    async def wait_closed(self) -> None:
        await self._server.wait_closed()


async def listen(server: Server, host: str | None, port: int) -> _Listener:
    """Start accepting connections for ``server`` on ``host:port``."""
    options = server.options
    accepted = options.subprotocols

    def select(_: ServerConnection, offered: Any) -> Subprotocol | None:
        for name in accepted:
            if name in offered:
                return Subprotocol(name)
        if options.extensions and SUBPROTOCOL in offered:
            return Subprotocol(SUBPROTOCOL)
        return None

    async def handle(ws: ServerConnection) -> None:
        transport = WebsocketsTransport(ws)
        await transport.run(server._open(transport))

    ws_server = await serve(handle, host, port, select_subprotocol=select, **_common(options))
    return _Listener(ws_server)


async def connect(client: Client, url: str, protocols: list[str]) -> Connection:
    """Open a connection to ``url`` for ``client``.

    Raises:
        ConnectError: nothing listening, handshake refused, or timed out.
    """
    options = client.options
    try:
        ws = await ws_connect(
            url,
            subprotocols=[Subprotocol(p) for p in protocols] or None,
            open_timeout=options.open_timeout,
            **_common(options),
        )
    except Exception as exc:  # OSError, InvalidHandshake, InvalidURI, TimeoutError
        raise ConnectError(f"cannot connect to {url}: {exc}") from exc
    transport = WebsocketsTransport(ws)
    connection = client._open(transport)
    client._spawn(transport.run(connection))
    return connection
