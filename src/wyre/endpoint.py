"""What a Server and a Client share: options, handlers, envelopes, events.

An endpoint owns the handler registry (:mod:`wyre.routing`) and the envelopes
(:mod:`wyre.protocol.envelope`): one for the connections that speak JSON (or
the codec ``use("codec")`` set) and, with ``codec="msgpack"``, one for those
that agreed on MessagePack. A connection reads the registry and its envelope
when it opens, so register handlers and call :meth:`Endpoint.use` before
listening or connecting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar, overload

from .config import Options
from .connection import Connection
from .metrics import Counters, Stats
from .protocol import Envelope
from .protocol.negotiation import msgpack_agreed
from .reporting import Log, Reporter
from .routing import Router

if TYPE_CHECKING:
    from .hub import Hub
    from .transport import Transport

__all__ = ["Endpoint"]

H = TypeVar("H", bound=Callable[..., Any])


class Endpoint:
    """Base of :class:`~wyre.Server` and :class:`~wyre.Client`."""

    def __init__(self, **options: Any) -> None:
        self.options = Options(**options)
        self.logger = self.options.logger
        self.router = Router()
        self.counters = Counters()
        """The running counts behind :meth:`stats` (see :mod:`wyre.metrics`)."""
        self.reporter = Reporter(
            Log(self.logger, self.options.level),
            lambda: self.router.untyped.get("error"),
            self.spawn,
            self.counters,
        )
        """Where failures go: the ``error`` handler, else the log (see :mod:`wyre.reporting`)."""
        self.envelope = Envelope(codec=self.options.make_codec())
        """The envelope of connections that did not agree on MessagePack (JSON, or the
        codec ``use("codec")`` set); also what crosses a server's backplane."""
        msgpack = self.options.make_msgpack_codec()
        self.msgpack_envelope = None if msgpack is None else Envelope(codec=msgpack)
        """The envelope of connections that agreed on ``wyre.v2.msgpack``; None when
        this endpoint does not speak MessagePack (``codec`` is not ``"msgpack"``)."""
        self._tasks: set[asyncio.Future[Any]] = set()
        self.connections: dict[str, Connection] = {}
        """The open connections, by id."""
        self._refusing: tuple[int, str] | None = None  # (code, reason) while shutting down
        self.hub: Hub | None = None
        """A server's groups and cluster (:mod:`wyre.hub`); None on a client."""

    # -- registration ------------------------------------------------------

    @overload
    def on(self, event: str, /) -> Callable[[H], H]: ...
    @overload
    def on(self, event: str, handler: H, /) -> H: ...
    @overload
    def on(self, event: str, type_: str | int, /) -> Callable[[H], H]: ...
    @overload
    def on(self, event: str, type_: str | int, handler: H, /) -> H: ...

    def on(self, event: str, *args: Any) -> Any:
        """Register a handler for an event, optionally only for one message type.

        ``on(event, handler)``, ``on(event, type, handler)``, or as a decorator,
        ``@on(event)`` / ``@on(event, type)``. Events and handler arguments:

        * ``connection``: the :class:`~wyre.Connection` that opened;
        * ``message``: a :class:`~wyre.Context` (direction absent or MESSAGE);
        * ``request``: a :class:`~wyre.Context`; answer with ``ctx.reply()``,
          ``ctx.error()``, ``ctx.partial()``, or return a value (sent as the
          reply) or raise (sent as an ERROR reply);
        * ``close``: ``code, reason, connection``;
        * ``error``: the exception (a :class:`~wyre.WyreError` carries
          ``.connection``; a frame error also a ``.preview`` of the frame).

        Handlers may be plain or coroutine functions. Plain functions run
        inline as the frame is read and are the cheapest, but one that blocks
        (sleeps, does blocking I/O, computes for long) stalls every connection
        of the process: make such work a coroutine handler that awaits, or
        ``await asyncio.to_thread(...)`` it. Coroutine functions run in a task
        of their own. A coroutine request handler that returns ``None``
        without answering sends an ERROR ``NoReply`` at once; a plain one
        may keep ``ctx`` and answer later (the original's style).

        Registering again for the same event and type replaces the handler;
        :meth:`off` removes it.

        Raises:
            ValueError: unknown event, or a type for an event without types.
            TypeError: the handler is not callable.
        """
        if len(args) > 2:
            raise TypeError("on() takes an event, an optional type and a handler")
        if len(args) == 2 or (args and callable(args[0])):
            *rest, handler = args
            self.router.add(event, rest[0] if rest else None, handler)
            return handler
        type_ = args[0] if args else None
        self.router.check(event, type_)  # fail at the decorator's line, not later

        def register(handler: H) -> H:
            self.router.add(event, type_, handler)
            return handler

        return register

    def off(self, event: str, type_: str | int | None = None, /) -> None:
        """Remove the handler for ``event`` (and ``type_``); nothing happens if there is none.

        Raises:
            ValueError: unknown event, or a type for an event without types.
        """
        self.router.remove(event, type_)

    def use(
        self, kind: str, getter: Callable[..., Any], setter: Callable[..., Any] | None = None
    ) -> None:
        """Change where a protocol field lives, or the whole codec.

        ``use("key", get, set)``, ``use("direction", get, set)``,
        ``use("type", get)``, ``use("codec", decode, encode)``, as in the
        original; a getter takes the message, a setter the message and the
        value. Both ends must agree.

        The fields move on every connection. A codec replaces JSON only: with
        ``codec="msgpack"``, connections that agreed on MessagePack keep it
        (what the handshake agreed on is what both ends speak).

        Raises:
            ValueError: unknown kind, or a missing setter where one is needed.
        """
        self.envelope = self.envelope.using(kind, getter, setter)
        if self.msgpack_envelope is not None and kind != "codec":
            self.msgpack_envelope = self.msgpack_envelope.using(kind, getter, setter)

    def envelope_for(self, subprotocol: str | None) -> Envelope:
        """The envelope of a connection whose handshake agreed on ``subprotocol``.

        MessagePack's on ``wyre.v2.msgpack`` (a handshake selects it only when
        this endpoint speaks it), the JSON one on anything else.
        """
        if self.msgpack_envelope is not None and msgpack_agreed(subprotocol):
            return self.msgpack_envelope
        return self.envelope

    # -- metrics -------------------------------------------------------------

    def stats(self) -> Stats:
        """What this endpoint has done so far, and its connections' state now.

        Connections opened and closed (by close code), frames and bytes each
        way, requests in flight each way, handler errors, timeouts, bad
        frames: see :class:`~wyre.metrics.Stats`. The counts are kept all
        the time at a cost of a few integer additions per frame; this call
        sums them over the open connections. It may be called from another
        thread (a metrics exporter's); :func:`wyre.metrics.prometheus_collector`
        serves them to Prometheus.
        """
        return self.counters.snapshot(self.connections.values())

    # -- connections and tasks (the package-internal interface) --------------

    def attach(self, transport: Transport) -> Connection:
        """Make the Connection for a newly opened socket and announce it.

        This is the ``on_open`` callback handed to drivers
        (:class:`~wyre.transport.Driver`); applications do not call it.
        """
        connection = Connection(self, transport)
        self.connections[connection.id] = connection
        self.counters.opened += 1
        connection.log(logging.DEBUG, "opened, subprotocol %s", connection.subprotocol)
        if self._refusing is not None:  # shutting down: close it straight away
            connection.close(*self._refusing)
            return connection
        connection.start(self.router.untyped.get("connection"))
        return connection

    def detach(self, connection: Connection) -> None:
        """A connection closed: forget it and emit ``close`` (called by the Connection)."""
        self.counters.retire(connection, self.connections)
        handler = self.router.untyped.get("close")
        if handler is not None:
            self.reporter.call(
                handler,
                connection.close_code,
                connection.close_reason,
                connection,
                connection=connection,
            )

    def spawn(self, awaitable: Awaitable[Any]) -> asyncio.Future[Any]:
        """Run ``awaitable`` in a task that close() waits for (then cancels)."""
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _settle_tasks(self, grace: float | None) -> None:
        """Let event-handler tasks finish within ``grace`` seconds, then cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)

    # -- context manager ---------------------------------------------------

    async def close(self) -> None:
        """Close every connection; overridden by Server and Client."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
