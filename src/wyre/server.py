"""The Server: listens, accepts connections, routes their frames to handlers."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from .admission import Admission
from .connection import Connection
from .endpoint import Endpoint
from .hub import Hub
from .metrics import Stats
from .peer import Peer
from .reporting import Log
from .transport import Listener
from .transports import driver

if TYPE_CHECKING:
    import ssl as ssl_module

    from .backplane import Backplane
    from .transport import Transport
    from .transports.asgi import AsgiApp

__all__ = ["Server"]


class Server(Endpoint):
    """A wyre server. Options: see :class:`~wyre.config.Options`.

    ::

        server = wyre.Server()

        @server.on("request", "greet")
        def greet(ctx):
            return {"text": f"hello {ctx.message['name']}"}

        await server.listen(port=8765)

    Who may connect is decided before a socket opens (:mod:`wyre.admission`):
    the ``origins`` and ``max_connections`` options, and an ``authenticate``
    hook that sees the :class:`~wyre.Handshake` and returns the connection's
    identity (``conn.identity``) or raises :class:`~wyre.Reject`.

    Attributes:
        connections: the open connections, by id.
        port: the bound port once listening (useful with ``port=0``).
        admission: the handshake rules and the connection count they use.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.admission = Admission(self.options, self.reporter)
        self.hub: Hub = Hub(self, _backplane(self.options.backplane))
        self._listener: Listener | None = None
        self._port: int | None = None
        self._closed: asyncio.Event | None = None

    def configure(self, **changes: Any) -> None:
        """Change options after construction, before listening.

        For launchers that get a ready-made Server and apply their own flags
        (``wyre serve --transport picows --backplane redis://...``). The
        changes are validated like constructor options.

        Raises:
            RuntimeError: the server is listening or has connections.
            TypeError, ValueError: an unknown or invalid option.
        """
        if self._listener is not None or self.connections:
            raise RuntimeError("configure() a server before it listens")
        self.options = dataclasses.replace(self.options, **changes)
        self.logger = self.options.logger
        self.reporter.log = Log(self.logger, self.options.level)
        if "codec" in changes:  # new codecs; the fields stay where use() put them
            self.envelope = dataclasses.replace(self.envelope, codec=self.options.make_codec())
            msgpack = self.options.make_msgpack_codec()
            self.msgpack_envelope = (
                None if msgpack is None else dataclasses.replace(self.envelope, codec=msgpack)
            )
        self.admission = Admission(self.options, self.reporter)
        if "backplane" in changes:
            workers = self.hub.workers
            self.hub = Hub(self, _backplane(self.options.backplane))
            self.hub.workers = workers

    @property
    def port(self) -> int:
        """The port the server listens on (useful with ``port=0``).

        Raises:
            RuntimeError: before :meth:`listen`.
        """
        if self._port is None:
            raise RuntimeError("the server is not listening: call listen() first")
        return self._port

    @property
    def listening(self) -> bool:
        """Whether the server accepts connections."""
        return self._listener is not None

    async def listen(
        self,
        options: dict[str, Any] | None = None,
        /,
        *,
        port: int | None = None,
        host: str | None = None,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        """Start listening on ``host:port`` (no host: every interface).

        Accepts the original's ``listen({"port": 1234, "host": ...})`` too.
        ``port=0`` picks a free port; read it from :attr:`port`. With
        ``ssl`` (a server-side :class:`ssl.SSLContext` holding the
        certificate chain) clients connect with ``wss://``.

        Raises:
            ValueError: no port, an invalid port, or options that are not a dict.
            OSError: the address is in use or cannot be bound.
        """
        if options is not None:
            if not isinstance(options, dict):
                raise ValueError(f"listen() options must be a dict, not {type(options).__name__}")
            unknown = set(options) - {"port", "host"}
            if unknown:
                raise ValueError(f"unknown listen() option {sorted(unknown)[0]!r}: use port, host")
            port = options.get("port", port)
            host = options.get("host", host)
        if port is None:
            raise ValueError("listen() needs a port")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"invalid port {port!r}: expected an int from 0 to 65535")
        if self._listener is not None:
            raise RuntimeError("this server is already listening")
        await self.hub.start()  # BackplaneError: the cluster cannot be joined
        self._listener = await driver(self.options.transport).listen(
            self.options, self.attach, host=host, port=port, ssl=ssl, gate=self.admission
        )
        self._port = self._listener.port
        self._closed = asyncio.Event()
        self.reporter.log.log(logging.INFO, "listening on %s:%s", host or "*", self.port)

    def stats(self) -> Stats:
        """What this server has done so far, and its connections' state now.

        As :meth:`Endpoint.stats <wyre.Client.stats>` (see
        :class:`~wyre.metrics.Stats`), with the handshakes refused by status.
        """
        return self.counters.snapshot(self.connections.values(), self.admission.refused_by_status)

    def asgi(self) -> AsgiApp:
        """An ASGI 3 application serving this server's connections (uvicorn, hypercorn...).

        Mount it beside HTTP routes (``app.mount("/ws", server.asgi())`` in
        Starlette or FastAPI) or run it on its own (``uvicorn module:app``):
        no :meth:`listen` is needed. Connections through it are admitted by
        the same rules (``origins``, ``authenticate``, the limits), appear in
        :attr:`connections` and close with :meth:`close`, like those of a
        listening socket.

        A framework does not pass its lifespan on to a mounted application:
        give the app's :meth:`~wyre.transports.asgi.AsgiApp.lifespan` to the
        framework (``FastAPI(lifespan=ws.lifespan)``). Its start joins the
        cluster when there is a ``backplane`` (what :meth:`listen` does for a
        socket; needed then), and its end closes the server. Which WebSocket
        rules the ASGI server enforces instead of wyre (keepalive, frame
        sizes, the closing handshake's timeout) is in ``docs/asgi.md``.

        The app takes the options as they are: call :meth:`configure` first.
        """
        from .transports.asgi import AsgiApp

        async def start() -> None:
            await self.hub.start()  # BackplaneError: the cluster cannot be joined

        return AsgiApp(self.options, self.attach, self.admission, start=start, close=self.close)

    def attach(self, transport: Transport) -> Connection:
        connection = super().attach(transport)
        self.admission.opened(connection)
        if connection.close_code is None:
            self.hub.opened(connection)
        return connection

    def detach(self, connection: Connection) -> None:
        self.admission.closed(connection)
        self.hub.closed(connection)
        super().detach(connection)

    # -- groups and the cluster ----------------------------------------------------

    @property
    def node_id(self) -> str:
        """This server's id in the cluster: unique per running server (new at each listen)."""
        return self.hub.node_id

    async def broadcast(self, message: Any, group: str | None = None, exclude: Any = None) -> None:
        """Send ``message`` (a dict) as a MESSAGE to every connection of ``group``.

        ``group=None`` reaches every connection. With a backplane it reaches
        every node's connections, at most once (pub/sub: see
        ``docs/cluster.md``). ``exclude`` is a connection, an id, or an
        iterable of them (e.g. the sender). It is encoded once and written
        to each member without waiting: a member far behind on reading
        misses it, and one that stops reading is dropped after
        ``write_timeout``.

        Raises:
            TypeError: ``message`` is not a dict.
            CodecError: it cannot be encoded.
            BackplaneError: the backplane is unreachable (this node's members
                got it; the others did not).
            LimitExceeded: too big for the backplane.
        """
        await self.hub.broadcast(message, group, exclude)

    def peer(self, connection_id: str) -> Peer:
        """The :class:`~wyre.Peer` of a connection on any node (no I/O to make one).

        A connection of this server is reached directly; one on another node
        through the backplane. Its methods raise
        :class:`~wyre.NoSuchConnection` when no live node holds the id.
        """
        if not isinstance(connection_id, str):
            raise TypeError("a connection id is a str")
        return Peer(self, connection_id)

    async def presence(self, group: str | None = None) -> dict[str, str]:
        """``{connection id: node id}`` for every connection (of ``group``), cluster-wide.

        Raises:
            BackplaneError: the backplane is unreachable.
        """
        return await self.hub.presence(group)

    async def nodes(self) -> list[str]:
        """The ids of the live nodes of the cluster (just this one without a backplane).

        Raises:
            BackplaneError: the backplane is unreachable.
        """
        return await self.hub.nodes()

    async def serve_forever(self) -> None:
        """Wait until the server is closed (asyncio's convention); listen() first.

        Cancelling the waiting task (Ctrl-C under ``asyncio.run``) closes
        the server gracefully before the cancellation propagates.

        Raises:
            RuntimeError: the server is not listening.
        """
        if self._closed is None:
            raise RuntimeError("the server is not listening: call listen() first")
        try:
            await self._closed.wait()
        except asyncio.CancelledError:
            await asyncio.shield(self.close())
            raise

    async def wait_closed(self) -> None:
        """Wait until :meth:`close` has finished (returns at once if not listening)."""
        if self._closed is not None:
            await self._closed.wait()

    async def close(
        self, code: int = 1001, reason: str = "", *, grace: float | None = None
    ) -> None:
        """Stop the server: stop accepting, drain handlers, close every connection.

        Running request handlers get ``grace`` seconds (default: the
        ``shutdown_grace`` option) to finish while no new frames are read;
        the rest are cancelled. Then every connection is closed with ``code``
        and ``reason`` (default 1001, going away), each bounded by
        ``close_timeout``. Returns within about grace + close_timeout and
        leaves no task running.
        """
        self._refusing = (code, reason)  # a handshake that completes now is closed at once
        self.admission.closing = True
        if self._listener is not None:
            self._listener.stop_accepting()
        connections = list(self.connections.values())
        for connection in connections:
            connection.stop_reading()
        handlers = [task for c in connections for task in c.handler_tasks()]
        if handlers:
            grace = self.options.shutdown_grace if grace is None else grace
            _, late = await asyncio.wait(handlers, timeout=grace)
            for task in late:
                task.cancel()
        connections = list(self.connections.values())
        if connections:
            await asyncio.gather(*(c.close(code, reason) for c in connections))
        if handlers:  # the cancelled ones finish their cleanup
            await asyncio.wait(handlers, timeout=self.options.close_timeout)
        if self._listener is not None:
            try:
                await asyncio.wait_for(self._listener.wait_closed(), self.options.close_timeout)
            except TimeoutError:
                self.reporter.log.log(logging.WARNING, "connections did not finish closing in time")
            self._listener = None
        await self.hub.stop()
        await self._settle_tasks(self.options.close_timeout)
        self._refusing = None
        self.admission.closing = False
        if self._closed is not None:
            self._closed.set()


def _backplane(option: str | Backplane | None) -> Backplane | None:
    """The backplane an option names: a ``redis://`` URL or a Backplane object."""
    if option is None or not isinstance(option, str):
        return option
    from .backplane.redis import RedisBackplane  # the redis extra, needed only here

    return RedisBackplane(option)
