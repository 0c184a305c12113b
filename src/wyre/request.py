"""Outgoing frames that wait for an answer: requests and acknowledged sends.

:class:`Delivery` and :class:`Request` extend the session's
:class:`~wyre.protocol.pending.Pending` record (key, deadline) with what an
application awaits or iterates, and how each outcome reaches it: the
awaitable, and the original's node-style callback. The session keeps them in
its pending table; the :class:`~wyre.Connection` settles them as answers
arrive.

Both are awaitable and also coroutine-compatible, so
``asyncio.create_task(conn.request(...))`` and ``TaskGroup.create_task``
accept them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, Protocol

from .exceptions import RequestTimeout
from .protocol.pending import Pending

if TYPE_CHECKING:
    from .connection import Connection
    from .context import Context
    from .endpoint import Endpoint
    from .reporting import Log

__all__ = ["Callback", "Delivery", "Owner", "Request"]

Callback = Callable[..., Any]
"""A node-style callback: ``cb(err)``, ``cb(None, value)``, ``cb(None, None, partial)``."""


class Owner(Protocol):
    """What settles a :class:`Delivery`: a :class:`~wyre.Connection`, or a cluster's hub.

    A request to a connection on another node (:meth:`wyre.Server.peer`)
    is the same :class:`Request`, owned by the server's hub instead.
    """

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        """The event loop its futures belong to."""

    @property
    def _log(self) -> Log:
        """Where a failed delivery is logged (at debug level)."""

    @property
    def endpoint(self) -> Endpoint:
        """The Server or Client it belongs to (its options and reporter)."""

    def _abandon(self, pending: Pending) -> None:
        """The application gave up on ``pending``: forget it and tell the peer."""

    def _hold_partials(self, on: bool) -> None:
        """A request's unread partials hold (or release) reading from the peer."""


def call_back(callback: Callback, owner: Owner, *args: Any) -> None:
    """Call an application's callback; what it raises is reported, never propagated."""
    try:
        callback(*args)
    except Exception as exc:
        owner.endpoint.reporter.report(exc, connection=_connection_of(owner), raised_by=callback)


def _connection_of(owner: Owner) -> Connection | None:
    """The connection ``owner`` is, for log records; None for a cluster's hub."""
    from .connection import Connection  # at call time: connection imports this module

    return owner if isinstance(owner, Connection) else None


class Delivery(Pending):
    """An outgoing frame that waits for something: an acknowledgement or a reply.

    Await it for the outcome. A failure is marked as retrieved when it
    happens: a request nobody awaits (fire and forget) fails quietly, with a
    debug log line, instead of Python's "exception was never retrieved".
    """

    __slots__ = ("_callback", "_connection", "_future", "_steps")

    def __init__(self, connection: Owner, callback: Callback | None) -> None:
        # Pending's fields, set here rather than through super(): one call less per request.
        self.key: Any = None
        self.type: Any = None
        self.timeout: float | None = None
        self.deadline: float | None = None
        self._connection = connection
        self._callback = callback
        self._future: asyncio.Future[Any] = connection._loop.create_future()
        self._steps: Generator[Any, None, Any] | None = None

    def __await__(self) -> Generator[Any, None, Any]:
        future = self._future
        try:
            return (yield from future)
        except asyncio.CancelledError:
            if future.cancelled():
                # The task awaiting us was cancelled (or timed out).
                self._connection._abandon(self)
            raise

    # Coroutine protocol: lets asyncio.create_task() run a Delivery directly.
    def send(self, value: Any) -> Any:
        if self._steps is None:
            self._steps = self.__await__()
        return self._steps.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        if self._steps is None:
            self._steps = self.__await__()
        return self._steps.throw(typ if val is None else val)

    def close(self) -> None:
        if self._steps is not None:
            self._steps.close()

    def done(self) -> bool:
        """Whether the outcome is known."""
        return self._future.done()

    def cancel(self) -> bool:
        """Give up: fail awaiters with CancelledError and, under v2, tell the peer."""
        if self._future.done():
            return False
        self._connection._abandon(self)
        return self._future.cancel()

    def _timed_out(self) -> None:
        self._fail(RequestTimeout(f"no answer to {self.describe()} within {self.timeout:g} s"))

    def _resolve(self, value: Any) -> None:
        if not self._future.done():
            self._future.set_result(value)
        if self._callback is not None:
            call_back(self._callback, self._connection, None)

    def _fail(self, exc: BaseException) -> None:
        future = self._future
        if future.done():
            return
        future.set_exception(exc)
        future.exception()  # retrieved: an awaiter still gets it
        owner = self._connection
        owner._log.debug("%s failed: %s", self.describe(), exc, connection=_connection_of(owner))
        if self._callback is not None:
            call_back(self._callback, self._connection, exc)


Coroutine.register(Delivery)


class Request(Delivery):
    """A request in flight: await it for the reply, iterate it for partials.

    ::

        request = conn.request({"type": "count"})
        async for partial in request.partials():   # optional
            print(partial.message)
        reply = await request                       # the REPLY's Context

    Awaiting raises :class:`~wyre.RequestError` for an ERROR reply,
    :class:`~wyre.RequestTimeout` when no reply came in time, and
    :class:`~wyre.ConnectionClosed` when the connection closed first.
    Cancelling the awaiting task cancels the request (and, under ``wyre.v2``,
    the peer's handler).

    Partials are buffered until read, so reading them is optional and may
    start late. The buffer holds ``max_buffered_partials``. Past it:

    * while :meth:`partials` is being iterated, the connection stops reading
      until the reader has caught up (backpressure: nothing is lost);
    * while nobody iterates, the oldest are dropped and counted in
      :attr:`dropped_partials` (a request whose partials are never read
      cannot grow without bound, and its reply still arrives).
    """

    __slots__ = ("_holding", "_limit", "_partials", "_readers", "_waiters", "dropped_partials")

    def __init__(self, connection: Owner, callback: Callback | None) -> None:
        super().__init__(connection, callback)
        self._partials: deque[Context] = deque()
        self._waiters: list[asyncio.Future[None]] | None = None
        self._limit = connection.endpoint.options.max_buffered_partials
        self._readers = 0  # partials() iterators running
        self._holding = False  # whether this request holds its connection's reading
        self.dropped_partials = 0
        """Partials dropped unread because the buffer was full and nobody was reading."""

    async def partials(self) -> AsyncIterator[Context]:
        """Yield each PARTIAL's context, in order, until the request ends.

        Raises the request's failure (RequestError, RequestTimeout,
        ConnectionClosed) after the last partial, so that a loop over the
        partials cannot miss it; on success the loop just ends and
        ``await request`` gives the reply. Cancelling the task that iterates
        cancels the request, as cancelling one that awaits it does. Several
        iterators may run at once; each partial goes to one of them.
        """
        partials = self._partials
        future = self._future
        self._readers += 1
        try:
            while True:
                while partials:
                    context = partials.popleft()
                    if self._holding and len(partials) <= self._limit // 2:
                        self._hold(False)  # caught up: let the connection read again
                    yield context
                if future.done():
                    if not future.cancelled() and future.exception() is not None:
                        await future  # raises the failure
                    return
                waiter: asyncio.Future[None] = self._connection._loop.create_future()
                if self._waiters is None:
                    self._waiters = []
                self._waiters.append(waiter)
                try:
                    await waiter
                except asyncio.CancelledError:
                    self.cancel()
                    raise
        finally:
            self._readers -= 1
            if self._holding and not self._readers:
                self._hold(False)

    def _hold(self, on: bool) -> None:
        self._holding = on
        self._connection._hold_partials(on)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, None  # later partials of a burst skip this
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def _partial(self, context: Context) -> None:
        partials = self._partials
        if len(partials) >= self._limit:
            if self._readers:
                if not self._holding:
                    self._hold(True)  # a reader is behind: the peer must wait
            else:
                partials.popleft()
                self.dropped_partials += 1
        partials.append(context)
        if self._waiters is not None:
            self._wake()
        if self._callback is not None:
            call_back(self._callback, self._connection, None, None, context)

    def _resolve(self, value: Any) -> None:
        if not self._future.done():
            self._future.set_result(value)
        self._wake()
        if self._callback is not None:
            call_back(self._callback, self._connection, None, value)

    def _fail(self, exc: BaseException) -> None:
        super()._fail(exc)
        self._wake()
        if self._holding:  # the request ended: its partials hold nothing back any more
            self._hold(False)
