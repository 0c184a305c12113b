"""The ``asgi`` transport of the test suite: a server's connections through uvicorn.

:class:`UvicornDriver` listens the way the suite asks every driver to (``port=0``
on loopback), by serving the server's ASGI application
(:class:`wyre.transports.asgi.AsgiApp`, what ``Server.asgi()`` returns) with
an in-process uvicorn server on that socket. Registered as ``"asgi"``, it runs
every scenario written against ``wyre.Server(transport=transport)`` through
an ASGI server unchanged. Its client side is the websockets driver: ASGI is
a server-side interface.

uvicorn is configured from the wyre options where it has a setting for them
(keepalive pings, compression, the message size limit), as docs/asgi.md
advises: through ASGI those rules are the server's. (The adapter's own size
check, for a server whose limit is larger, is tested in test_asgi.py.)
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import uvicorn

from wyre.transport import bind_socket
from wyre.transports.asgi import AsgiApp
from wyre.transports.websockets_driver import WebsocketsDriver

if TYPE_CHECKING:
    import ssl as ssl_module

    from wyre.config import Options
    from wyre.transport import Gate, OnOpen, Receiver

# uvicorn logs every connection at INFO; the tests read wyre's logs only.
logging.getLogger("uvicorn.error").setLevel(logging.WARNING)


def uvicorn_config(app: Any, options: Options, **settings: Any) -> uvicorn.Config:
    """uvicorn settings matching ``options`` where uvicorn owns the rule."""
    return uvicorn.Config(
        app,
        lifespan="off",
        ws="websockets-sansio",
        ws_max_size=options.max_message_size,  # type: ignore[arg-type]
        ws_ping_interval=options.ping_interval,
        ws_ping_timeout=options.ping_timeout,
        ws_per_message_deflate=options.compression,
        log_level=logging.WARNING,
        access_log=False,
        **settings,
    )


class UvicornListener:
    """A :class:`~wyre.transport.Listener`: uvicorn serving one AsgiApp on one socket."""

    def __init__(self, app: AsgiApp, server: uvicorn.Server, sock: socket.socket) -> None:
        self.app = app
        self.server = server
        self.sock = sock
        self.port = int(sock.getsockname()[1])
        self._stopped: asyncio.Task[None] | None = None

    def stop_accepting(self) -> None:
        self.app.stop_accepting()
        for listening in self.server.servers:
            listening.close()

    async def wait_closed(self) -> None:
        # The wyre server closed its connections before waiting for this
        # (uvicorn's own shutdown would close them with 1012): uvicorn only
        # finishes its bookkeeping here.
        self.stop_accepting()
        await self.app.wait_handshakes()  # refused with 503, not cut short by uvicorn
        if self._stopped is None:
            self._stopped = asyncio.ensure_future(self.server.shutdown(sockets=[self.sock]))
        await asyncio.shield(self._stopped)


class UvicornDriver:
    """A :class:`~wyre.transport.Driver` whose listening side is uvicorn running the ASGI app."""

    name = "asgi"

    def __init__(self) -> None:
        self._client = WebsocketsDriver()

    async def listen(
        self,
        options: Options,
        on_open: OnOpen,
        *,
        host: str | None,
        port: int,
        ssl: ssl_module.SSLContext | None = None,
        gate: Gate | None = None,
    ) -> UvicornListener:
        app = AsgiApp(options, on_open, gate)
        sock = bind_socket(host, port)
        if sock is None:
            sock = socket.create_server((host or "", port))
            sock.setblocking(False)
        config = uvicorn_config(app, options)
        config.load()
        config.ssl = ssl  # uvicorn loads a context from files; the test has one already
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        try:
            await server.startup(sockets=[sock])
        except BaseException:
            sock.close()
            raise
        return UvicornListener(app, server, sock)

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
        return await self._client.connect(
            options, on_open, url, subprotocols=subprotocols, ssl=ssl, headers=headers
        )


class Running:
    """An in-process uvicorn server on a loopback port, as ``uvicorn app`` would run it."""

    def __init__(self, server: uvicorn.Server, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.port = int(sock.getsockname()[1])
        self.url = f"ws://127.0.0.1:{self.port}"
        self.http = f"http://127.0.0.1:{self.port}"
        self._main = asyncio.ensure_future(server.main_loop())
        self._stopped: asyncio.Future[None] | None = None

    async def stop(self) -> None:
        """Shut down as uvicorn does on SIGTERM (its shutdown, then the lifespan's end)."""
        if self._stopped is None:
            self._stopped = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopped)

    async def _stop(self) -> None:
        self.server.should_exit = True
        await self._main
        await self.server.shutdown(sockets=[self.sock])


@asynccontextmanager
async def uvicorn_serving(
    app: Any,
    *,
    server_class: type[uvicorn.Server] = uvicorn.Server,
    lifespan: str = "off",
    **settings: Any,
) -> AsyncIterator[Running]:
    """Serve the ASGI ``app`` with uvicorn on a free loopback port until the block ends."""
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    config = uvicorn.Config(
        app,
        lifespan=lifespan,
        ws="websockets-sansio",
        log_level=logging.WARNING,
        access_log=False,
        **settings,
    )
    config.load()
    server = server_class(config)
    server.lifespan = config.lifespan_class(config)
    try:
        await server.startup(sockets=[sock])
    except BaseException:
        sock.close()
        raise
    running = Running(server, sock)
    try:
        yield running
    finally:
        await running.stop()
