"""A Connection: one open socket, the asyncio driver of its protocol session.

The rules of the protocol live in :class:`~wyre.protocol.session.Session`;
this module gives them an event loop. A frame's way, start to end:

1. the transport calls :meth:`Connection.receive` with the payload;
2. ``session.receive()`` decodes it and returns an event;
3. :meth:`Connection.receive` dispatches the event:

   * ``IncomingRequest``: the routed request handler runs (a plain function
     inline, a coroutine function through the :class:`~wyre.runner.Runner`);
     its return value or ``ctx.reply()`` goes back through ``session.answer()``;
   * ``IncomingMessage``: the routed message handler runs, the same way;
   * ``AnswerReceived`` / ``AckReceived``: the waiting
     :class:`~wyre.Request` / :class:`~wyre.Delivery` is settled;
   * ``CancelReceived``: the handler running for that key is cancelled;
   * ``FrameRejected``: reported (the session already sent any ERROR back).

Every frame the session writes goes through :meth:`Connection._write`, the
one choke point that checks the connection is open and watches the write
buffer. The parts around the session, each in its own module:
:class:`~wyre.runner.Runner` (handler tasks and their limit),
:class:`~wyre.flow.Flow` (when to stop reading; slow peers) and
:class:`~wyre.reporting.Reporter` (where failures go). Deadlines are here:
one timer per connection, for the earliest one.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from inspect import isawaitable
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from .context import Context
from .exceptions import (
    ConnectionClosed,
    LocalProtocolError,
    RequestError,
    RequestTimeout,
    WyreError,
    preview,
)
from .flow import BACKLOG, DONE, OPENING, QUEUE_FULL, YIELD, YIELD_EVERY, Flow
from .protocol import Direction
from .protocol.events import (
    OPEN,
    AckReceived,
    AnswerDropped,
    AnswerReceived,
    CancelReceived,
    FrameRejected,
    IncomingMessage,
    IncomingRequest,
)
from .protocol.negotiation import extensions_agreed
from .protocol.pending import Pending
from .protocol.session import Session
from .request import Callback, Delivery, Request, call_back
from .runner import Runner
from .transport import TransportClosing

if TYPE_CHECKING:
    from .client import Client
    from .endpoint import Endpoint
    from .hub import Hub
    from .transport import Transport

__all__ = ["Connection"]


def _retrieved(task: asyncio.Future[Any]) -> None:
    """A send nobody awaits fails quietly (the callback, if any, was told)."""
    if not task.cancelled():
        task.exception()


class _Unset:
    """The type of :data:`UNSET`: "not given", as opposed to None ("no limit")."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()

_DROP: list[Any] = []  # Connection._held while shutting down: new work is dropped

_SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015)})

REPLY = Direction.REPLY
PARTIAL = Direction.PARTIAL

# Deadlines falling within this many seconds of each other expire together.
_SWEEP_SLACK = 0.01

_FLAGS = frozenset({"binary", "compress", "mask"})


def _split_options(options: Any, callback: Callback | None) -> tuple[Callback | None, bool]:
    """Accept the original's ``(message[, options], callback)`` argument shapes.

    ``options`` may be the callback itself, or a dict of the original's flags
    (``binary``, ``compress``, ``mask``). Returns the callback and ``binary``.

    Raises:
        TypeError: anything else, or an unknown flag.
    """
    if callable(options) and callback is None:
        return options, False
    if not isinstance(options, dict):
        raise TypeError(f"options must be a dict of flags, not {type(options).__name__}")
    unknown = set(options) - _FLAGS
    if unknown:
        raise TypeError(f"unknown option {sorted(unknown)[0]!r}: expected binary, compress, mask")
    return callback, bool(options.get("binary"))


class Connection:
    """One open WebSocket, on either side: ``id``, ``send``, ``request``, ``close``.

    Made by a :class:`~wyre.Server` for each accepted socket and by
    :meth:`Client.connect <wyre.Client.connect>`. Every operation returns an
    awaitable and also accepts the original's node-style callback; awaiting
    is optional when a callback is given.

    Attributes:
        id: a uuid4 made by this side when the socket opened.
        endpoint: the Server or Client it belongs to.
        extensions: whether both ends speak ``wyre.v2`` (acknowledged sends,
            cancellation); otherwise the original semantics apply.
        codec: the :class:`~wyre.Codec` its frames are encoded with: MessagePack
            (``codec.name == "msgpack"``, binary frames) when the handshake agreed
            on ``wyre.v2.msgpack``, else the endpoint's JSON codec.
        close_code, close_reason: set once the connection is closed.
        handshake: on a server, the :class:`~wyre.Handshake` (path, query,
            headers, cookies, remote address) the client opened it with;
            None on a client.
        identity: on a server, what its ``authenticate`` hook returned for
            this connection (None without a hook).
    """

    # Slots keep an idle connection small: a server may hold many thousands.
    __slots__ = (
        "_bytes_received",
        "_bytes_sent",
        "_close_request",
        "_closing",
        "_find_message",
        "_find_request",
        "_flow",
        "_frames_received",
        "_frames_sent",
        "_greeting",
        "_groups",
        "_held",
        "_log",
        "_loop",
        "_partials_held",
        "_reconnecting",
        "_reporter",
        "_request_timeout",
        "_reviver",
        "_runner",
        "_sends",
        "_session",
        "_state",
        "_sweeper",
        "_transport",
        "_write_limit",
        "close_code",
        "close_reason",
        "codec",
        "endpoint",
        "extensions",
        "handshake",
        "id",
        "identity",
    )

    def __init__(self, endpoint: Endpoint, transport: Transport) -> None:
        self.id = str(uuid.uuid4())
        self.endpoint = endpoint
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.handshake = transport.handshake
        self.identity = transport.identity
        self._loop = asyncio.get_running_loop()
        self._reconnecting: asyncio.Future[None] | None = None  # waiting for a new socket
        self._reviver: Client | None = None  # the client that reconnects this connection
        self._closing: asyncio.Task[None] | None = None
        self._close_request: tuple[int, str] | None = None  # what close() was called with
        # New work held while the connection handler runs, or _DROP once shutting down.
        self._held: list[IncomingRequest | IncomingMessage] | None = None
        self._greeting: asyncio.Future[Any] | None = None
        self._state: dict[str, Any] | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._partials_held = 0  # requests whose unread partials stop reading
        self._groups: set[str] | None = None
        self._sends = 0  # plain sends completed without suspending, since the last yield
        # Traffic, summed by Endpoint.stats() (see wyre.metrics).
        self._frames_received = self._frames_sent = 0
        self._bytes_received = self._bytes_sent = 0
        options = endpoint.options
        self._request_timeout = options.request_timeout
        self._write_limit = options.write_limit
        self._reporter = endpoint.reporter
        self._log = endpoint.reporter.log
        self._find_request = endpoint.router.find_request
        self._find_message = endpoint.router.find_message
        self._bind(transport)

    def _bind(self, transport: Transport) -> None:
        """Take ``transport`` as this connection's socket: a fresh session, flow and runner.

        Called once when the connection opens, and again by a reconnecting
        :class:`~wyre.Client` for each new socket (what the old one had
        pending was failed when it was lost).
        """
        options = self.endpoint.options
        self._transport = transport
        self.extensions = extensions_agreed(transport.subprotocol)
        envelope = self.endpoint.envelope_for(transport.subprotocol)
        self.codec = envelope.codec
        self._session = Session(
            envelope,
            extensions=self.extensions,
            write=self._write,
            max_pending=options.max_pending_requests,
            max_bad_frames=options.max_bad_frames,
        )
        self._flow = Flow(transport, options.write_timeout, self._stalled)
        self._runner = Runner(
            options.max_running_handlers,
            options.max_queued_handlers,
            lambda full: self._flow.hold(QUEUE_FULL, full),
        )

    # -- public API --------------------------------------------------------

    @property
    def state(self) -> dict[str, Any]:
        """A dict for the application's own data about this connection (e.g. a user id)."""
        if self._state is None:
            self._state = {}
        return self._state

    @property
    def closed(self) -> bool:
        """Whether the socket is closed; sends and requests then fail."""
        return self.close_code is not None

    @property
    def groups(self) -> frozenset[str]:
        """The groups this connection is a member of (on a server)."""
        return frozenset(self._groups) if self._groups else frozenset()

    async def join(self, name: str) -> None:
        """Make this connection a member of group ``name`` (idempotent); see ``broadcast``.

        Membership ends with the connection. With a backplane it is
        recorded cluster-wide (during an outage, once the backplane is back).

        Raises:
            RuntimeError: a client's connection (groups are a server's).
            ConnectionClosed: the connection is closed.
        """
        await self._hub().join(self, name)

    async def leave(self, name: str) -> None:
        """Leave group ``name`` (idempotent)."""
        await self._hub().leave(self, name)

    def send_encoded(self, frame: str | bytes, binary: bool = False) -> None:
        """Write a MESSAGE frame that is already encoded (a broadcast encodes once for all).

        ``frame`` must be encoded with this connection's :attr:`codec`; a
        binary codec's frame is written as a binary frame whatever ``binary`` says.

        Raises:
            ConnectionClosed: the connection is closed or closing.
        """
        self._write(frame, binary or self.codec.binary, False)

    def _hub(self) -> Hub:
        hub = self.endpoint.hub
        if hub is None:
            raise RuntimeError("groups belong to a server's connections")
        return hub

    def _joined(self, name: str, member: bool) -> None:
        if member:
            if self._groups is None:
                self._groups = set()
            self._groups.add(name)
        elif self._groups is not None:
            self._groups.discard(name)

    @property
    def remote_host(self) -> str | None:
        """The peer's address (host part) as the server saw it, or None when unknown."""
        handshake = self.handshake
        if handshake is None or handshake.remote_address is None:
            return None
        return handshake.remote_address[0]

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol agreed in the handshake: an application's, ``wyre.v2``,
        ``wyre.v2.msgpack``, the placeholder ``wyre``, or None."""
        return self._transport.subprotocol

    @property
    def buffered_amount(self) -> int:
        """Bytes written but not yet handed to the network (as in the browser API).

        Stays near ``write_limit`` at most: above it, sends wait and reading
        pauses until the peer catches up.
        """
        return 0 if self.close_code is not None else self._transport.write_buffer_size()

    @property
    def pending_requests(self) -> int:
        """Outgoing requests still waiting for their reply."""
        return self._session.pending_requests

    def send(
        self,
        message: Any,
        options: Any = None,
        callback: Callback | None = None,
        *,
        ack: bool | None = None,
        timeout: float | _Unset | None = UNSET,
        binary: bool = False,
        compress: bool | None = None,
        mask: bool | None = None,
    ) -> Awaitable[None]:
        """Send a one-way message (a dict); it is not modified.

        With ``ack`` (the default when a callback is given, as the original
        promised the callback fires once the other end received the message)
        and a ``wyre.v2`` peer, a copy of the message gets a key and the
        returned awaitable resolves when the peer acknowledges it (after
        decoding, before its handler runs), or fails with RequestTimeout after
        ``timeout`` (default: ``request_timeout``). Without ``ack``, or with a
        peer speaking the original protocol, it resolves once the frame is
        handed to the socket and the write buffer is below ``write_limit``.

        Flags: ``binary`` sends a binary frame; ``compress`` and ``mask`` are
        accepted for compatibility (compression is negotiated per connection,
        a client always masks and a server never does, as RFC 6455 requires).

        Raises:
            TypeError: ``message`` is not a dict, or an unknown option.
            ConnectionClosed, RequestTimeout, CodecError, LocalProtocolError:
                from the awaitable (or to the callback).
        """
        if self._reconnecting is not None:
            return self._send_later(message, options, callback, ack, timeout, binary)
        if options is not None:
            callback, binary = _split_options(options, callback)
        if ack is None:
            ack = callback is not None
        if not (ack and self.extensions):
            try:
                self._session.send(message, binary)
            except WyreError as exc:
                return self._failed(exc, callback)
            if callback is not None:
                self._loop.call_soon(call_back, callback, self, None)
            waiter = self._flow.waiter()
            if waiter is DONE:
                self._sends += 1
                if self._sends >= YIELD_EVERY:  # a send loop must let the event loop run
                    self._sends = 0
                    return YIELD
            return waiter
        delivery = Delivery(self, callback)
        try:
            self._session.send_acked(message, delivery, binary)
        except WyreError as exc:
            delivery._fail(exc)
            return delivery
        self._watch(delivery, timeout)
        return delivery

    def request(
        self,
        message: Any,
        options: Any = None,
        callback: Callback | None = None,
        *,
        timeout: float | _Unset | None = UNSET,
        binary: bool = False,
        compress: bool | None = None,
        mask: bool | None = None,
    ) -> Request:
        """Send a request; the result is awaited for the reply's :class:`Context`.

        A copy of ``message`` is sent with ``direction`` REQUEST and the
        message's ``key``, or a fresh uuid4 one (the caller's dict is not
        modified, so one dict can be reused). The request fails with
        RequestTimeout after ``timeout`` seconds (default: the endpoint's
        ``request_timeout``; ``None`` waits for ever).

        The callback, if given, is called as ``cb(None, None, partial)`` for
        each partial, then ``cb(None, reply)`` or ``cb(error)``.

        Raises:
            TypeError: ``message`` is not a dict, or an unknown option.
            RequestError, RequestTimeout, ConnectionClosed, LimitExceeded (too
                many pending requests; nothing was sent), LocalProtocolError,
                CodecError: from the awaitable (or to the callback).
        """
        if self._reconnecting is not None:
            return self._request_later(message, options, callback, timeout, binary)
        if options is not None:
            callback, binary = _split_options(options, callback)
        request = Request(self, callback)
        try:
            self._session.request(message, request, binary)
        except WyreError as exc:
            request._fail(exc)
            return request
        self._watch(request, timeout)
        return request

    def close(
        self, code: int = 1000, reason: str = "", callback: Callback | None = None
    ) -> Awaitable[None]:
        """Close the connection with a WebSocket close code and reason.

        Idempotent; bounded by the endpoint's ``close_timeout`` (the socket is
        dropped when the peer does not complete the handshake in time). Every
        pending request fails with ConnectionClosed.

        Raises:
            ValueError: a code that may not be sent (RFC 6455 7.4: 1000-1003,
                1007-1014 and 3000-4999 may), or a reason over 123 bytes.
        """
        if not (code in _SENDABLE_CODES or 3000 <= code <= 4999) or isinstance(code, bool):
            raise ValueError(
                f"close code {code!r} may not be sent: use 1000-1003, 1007-1014 or 3000-4999"
            )
        if len(reason.encode()) > 123:
            raise ValueError("a close reason is at most 123 bytes of UTF-8")
        if self._reconnecting is not None and self._reviver is not None:
            self._reviver._give_up(self, code, reason)  # no socket to close
        if self._closing is None:
            self._close_request = (code, reason)
            self._closing = self._loop.create_task(self._close(code, reason))
        if callback is not None:
            self._closing.add_done_callback(lambda _: call_back(callback, self, None))
        # Shielded: a caller that stops waiting (a timeout around close())
        # must not stop the closing itself, which other callers may await.
        return asyncio.shield(self._closing)

    async def _close(self, code: int, reason: str) -> None:
        if self.close_code is not None:
            return
        self._log.debug("closing with %s %r", code, reason, connection=self)
        try:
            await self._transport.close(code, reason)
        except (Exception, asyncio.CancelledError):
            # A failed or interrupted closing handshake still ends the connection.
            self._log.debug("closing handshake failed", connection=self)
            self._transport.abort()
        if self.close_code is None:
            self.connection_lost(code, reason)

    def log(self, level: int, msg: str, *args: Any, stacklevel: int = 1) -> None:
        """Log a record about this connection, carrying its id as ``connection_id``.

        Through the endpoint's logger and at its ``log_level``, like wyre's own
        records about the connection, so that one connection's story can be
        found with grep; drivers log through it too. ``msg % args`` is only
        formatted when the level is enabled. ``stacklevel`` as in
        :meth:`logging.Logger.log` (1: the caller's line is the record's).
        """
        self._log.log(level, msg, *args, connection=self, stacklevel=stacklevel + 1)

    def __repr__(self) -> str:
        state = "open" if self.close_code is None else f"closed {self.close_code}"
        return f"<Connection {self.id} {state}>"

    # -- from the endpoint -------------------------------------------------

    def start(self, greet: Callable[[Connection], Any] | None) -> None:
        """Run the ``connection`` handler; new work waits until a coroutine one finished.

        So a handler that loads the user before anything else happens sees
        no request race it. Answers, ACKs and CANCELs are handled meanwhile:
        the handler may itself await a request to its peer. It is bounded by
        ``open_timeout``; a handler that raises or times out closes the
        connection with 1011.
        """
        if greet is None:
            return
        try:
            result = greet(self)
        except Exception as exc:
            self._reporter.report(exc, connection=self, raised_by=greet)
            self.close(1011, "connection handler failed")
            return
        if result is None or not isawaitable(result):
            return
        self._held = []
        self._greeting = self.endpoint.spawn(self._greeted(greet, result))

    async def _greeted(self, greet: Callable[..., Any], awaitable: Awaitable[Any]) -> None:
        try:
            async with asyncio.timeout(self.endpoint.options.open_timeout):
                await awaitable
        except BaseException as exc:
            self._held = None
            self._flow.hold(OPENING, False)
            if not isinstance(exc, asyncio.CancelledError):
                self._reporter.report(exc, connection=self, raised_by=greet)
            self.close(1011, "connection handler failed")
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            self._greeting = None
        held, self._held = self._held, None
        for event in held or ():
            if self._closing is not None:
                break
            self._dispatch_work(event)
        self._flow.hold(OPENING, False)

    def _hold_partials(self, on: bool) -> None:
        """A request whose partials are read too slowly holds (or releases) reading."""
        self._partials_held += 1 if on else -1
        self._flow.hold(BACKLOG, self._partials_held > 0)

    def stop_reading(self) -> None:
        """Take no new work (shutdown): new requests and messages are dropped from now.

        Answers, ACKs and CANCELs are still read, so running handlers that
        await their peer can finish within the grace period.
        """
        self._held = _DROP

    def handler_tasks(self) -> list[asyncio.Task[None]]:
        """The tasks of the coroutine handlers running for this connection."""
        return self._runner.tasks()

    # -- from the transport ------------------------------------------------

    def receive(self, data: str | bytes) -> None:
        """Handle one received frame (see the module docstring); never raises.

        Once :meth:`close` was called, frames are dropped (they still count
        as received in :meth:`Server.stats() <wyre.Server.stats>`).
        """
        self._frames_received += 1
        self._bytes_received += len(data)
        if self._closing is not None:
            return
        event = self._session.receive(data)
        cls = event.__class__
        if cls is IncomingRequest:
            if self._held is None:
                self._on_request(event)  # type: ignore[arg-type]
            else:
                self._hold(event)  # type: ignore[arg-type]
        elif cls is AnswerReceived:
            self._on_answer(event)  # type: ignore[arg-type]
        elif cls is IncomingMessage:
            if self._held is None:
                self._on_message(event)  # type: ignore[arg-type]
            else:
                self._hold(event)  # type: ignore[arg-type]
        elif cls is AckReceived:
            delivery: Any = event.pending  # type: ignore[union-attr]
            delivery._resolve(None)
        elif cls is CancelReceived:
            self._runner.cancel(event.request.key)  # type: ignore[union-attr]
        elif cls is FrameRejected:
            self._on_rejected(event)  # type: ignore[arg-type]
        elif cls is AnswerDropped:
            self._log.debug(
                "dropped late %s for %s",
                event.direction,  # type: ignore[union-attr]
                event.key,  # type: ignore[union-attr]
                connection=self,
            )

    def _hold(self, event: IncomingRequest | IncomingMessage) -> None:
        """New work while the ``connection`` handler runs (kept) or during shutdown (dropped)."""
        held = self._held
        if held is _DROP or held is None:
            self._log.debug("shutting down: dropped a %s", event.direction, connection=self)
            return
        held.append(event)
        if len(held) > self.endpoint.options.max_queued_handlers:
            self._flow.hold(OPENING, True)  # enough waiting: the peer must wait too

    def _dispatch_work(self, event: IncomingRequest | IncomingMessage) -> None:
        if isinstance(event, IncomingRequest):
            if event.state == OPEN:  # not cancelled meanwhile
                self._on_request(event)
        else:
            self._on_message(event)

    def connection_lost(self, code: int, reason: str) -> None:
        """The socket closed: fail everything pending, cancel handlers, emit ``close``."""
        if self.close_code is not None:
            return
        self.close_code = code
        self.close_reason = reason
        self._log.debug("closed: %s %r", code, reason, connection=self)
        error = self._closed_error()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for pending in self._session.close():
            pending._fail(error)  # type: ignore[attr-defined]
        self._held = None
        if self._greeting is not None:
            self._greeting.cancel()
        self._runner.cancel_all()
        self._flow.lost(error)
        reviver = self._reviver
        if reviver is not None and self._close_request is None and reviver._revive(self):
            return  # the client opens a new socket for this connection
        self.endpoint.detach(self)

    # -- reconnection (a Client with the reconnect option) ---------------------

    @property
    def reconnecting(self) -> bool:
        """Whether the socket was lost and a new one is being opened (see ``reconnect``).

        Meanwhile ``closed`` is True, and sends and requests wait for the new
        socket, each within its timeout.
        """
        return self._reconnecting is not None

    def _rebind(self, transport: Transport) -> Connection:
        """The new socket of a reconnecting connection (the driver's ``on_open``)."""
        self._bind(transport)
        self.close_code = self.close_reason = None
        self._closing = None
        self._close_request = None
        self._partials_held = 0
        return self

    async def _reconnected(self, within: float | _Unset | None) -> float | None:
        """Wait for the new socket within ``within`` seconds; returns the time left of it.

        Raises:
            RequestTimeout: no new socket in time.
            ConnectionClosed: the client gave up reconnecting.
        """
        if within is UNSET:
            within = self._request_timeout
        assert not isinstance(within, _Unset)
        started = self._loop.time()
        waiter = self._reconnecting
        if waiter is not None:
            try:
                await asyncio.wait_for(asyncio.shield(waiter), within)
            except TimeoutError:
                raise RequestTimeout(f"not reconnected within {within:g} s") from None
        if within is None:
            return None
        return max(0.0, within - (self._loop.time() - started))

    def _send_later(
        self, message: Any, options: Any, callback: Callback | None, ack: bool | None,
        timeout: float | _Unset | None, binary: bool,
    ) -> Awaitable[None]:  # fmt: skip
        """A send made while reconnecting: it goes on the new socket, or fails in time."""

        async def later() -> None:
            try:
                left = await self._reconnected(timeout)
            except WyreError as exc:
                if callback is not None:
                    call_back(callback, self, exc)
                raise
            await self.send(message, options, callback, ack=ack, timeout=left, binary=binary)

        task = self.endpoint.spawn(later())
        task.add_done_callback(_retrieved)
        return task

    def _request_later(
        self, message: Any, options: Any, callback: Callback | None,
        timeout: float | _Unset | None, binary: bool,
    ) -> Request:  # fmt: skip
        """A request made while reconnecting: sent on the new socket, within its timeout."""
        if options is not None:
            callback, binary = _split_options(options, callback)
        request = Request(self, callback)

        async def later() -> None:
            try:
                left = await self._reconnected(timeout)
            except WyreError as exc:
                request._fail(exc)
                return
            if request.done():  # given up meanwhile
                return
            try:
                self._session.request(message, request, binary)
            except WyreError as exc:
                request._fail(exc)
                return
            self._watch(request, left)

        self.endpoint.spawn(later())
        return request

    # -- incoming ----------------------------------------------------------

    def _on_request(self, request: IncomingRequest) -> None:
        type_ = request.type
        handler = self._find_request(type_)
        if handler is None:
            name = preview(type_, 60)
            self._session.answer_error(request, "NoHandler", f"no request handler for type {name}")
            self._log.log(
                logging.WARNING, "no request handler for type %s", name, connection=self,
                kind="no request handler",
            )  # fmt: skip
            return
        context = Context(request, self)
        try:
            result = handler(context)
        except Exception as exc:
            self._handler_failed(context, handler, exc)
            return
        if result is None:
            if request.state == OPEN:  # the original's style: ctx.reply() later
                self._log.debug("%r left request %s open", handler, request.key, connection=self)
            return
        if result.__class__ is CoroutineType or (
            result.__class__ is not dict and isawaitable(result)
        ):
            job = partial(self._serve_request, context, handler, result)
            self._runner.submit(request.key, job, result)
        elif request.state == OPEN:
            try:  # the return value is the REPLY
                self._session.answer(request, REPLY, result)
            except Exception as exc:
                self._handler_failed(context, handler, exc)

    async def _serve_request(
        self, context: Context, handler: Callable[..., Any], awaitable: Awaitable[Any]
    ) -> None:
        try:
            result = await awaitable
        except Exception as exc:
            self._handler_failed(context, handler, exc)
            return
        request = context._event
        assert request.__class__ is IncomingRequest
        if request.state != OPEN:
            return
        if result is not None:
            self._reply(context, handler, result)
            return
        # A coroutine handler that ends without answering has forgotten to:
        # say so now rather than let the requester wait out its timeout.
        self._log.log(
            logging.WARNING, "request handler %r returned without answering request %s",
            handler, request.key, connection=self, kind="no reply",
        )  # fmt: skip
        self._session.answer_error(
            request, "NoReply", f"the handler for type {preview(context.type, 60)} sent no reply"
        )

    def _reply(self, context: Context, handler: Callable[..., Any], result: Any) -> None:
        """Send a handler's return value as the REPLY."""
        request = context._event
        assert request.__class__ is IncomingRequest
        try:
            self._session.answer(request, REPLY, result)
        except Exception as exc:
            self._handler_failed(context, handler, exc)

    def _handler_failed(
        self, context: Context, handler: Callable[..., Any], exc: Exception
    ) -> None:
        """A request handler raised (or its answer could not be sent): ERROR back, report."""
        if isinstance(exc, ConnectionClosed) and exc.connection is self:
            return  # this very connection closed: nobody to answer
        request = context._event
        if request.__class__ is IncomingRequest and request.state == OPEN and not self.closed:
            detail = (
                "".join(traceback.format_exception(exc))
                if self.endpoint.options.debug_errors
                else None
            )
            self._session.answer_error(request, type(exc).__name__, str(exc), detail)
        self._reporter.report(exc, connection=self, raised_by=handler)

    def _on_message(self, event: IncomingMessage) -> None:
        type_ = event.type
        handler = self._find_message(type_)
        if handler is None:
            self._log.log(
                logging.INFO, "no message handler for type %s", preview(type_, 60),
                connection=self, kind="no message handler",
            )  # fmt: skip
            return
        context = Context(event, self)
        try:
            result = handler(context)
        except Exception as exc:
            self._reporter.report(exc, connection=self, raised_by=handler)
            return
        if result is not None and isawaitable(result):
            job = partial(self._serve_message, handler, result)
            self._runner.submit(None, job, result)

    async def _serve_message(self, handler: Callable[..., Any], awaitable: Awaitable[Any]) -> None:
        try:
            await awaitable
        except Exception as exc:
            self._reporter.report(exc, connection=self, raised_by=handler)

    def _on_answer(self, event: AnswerReceived) -> None:
        request: Any = event.pending
        # The context keeps the event; the event must not keep the request, or
        # request -> its result (the context) -> event -> request is a cycle
        # that only the cyclic garbage collector frees, one per request.
        event.pending = None  # type: ignore[assignment]
        direction = event.direction
        context = Context(event, self)
        if direction is PARTIAL:
            request._partial(context)
        elif direction is REPLY:
            request._resolve(context)
        else:
            request._fail(RequestError(context))

    def _on_rejected(self, event: FrameRejected) -> None:
        self.endpoint.counters.bad_frames += 1
        self._reporter.report(event.error, connection=self, kind="bad frame")
        close = self._session.penalise(self._loop.time())
        if close is not None and self._closing is None:
            self._log.log(logging.WARNING, "closing: %s", close[1], connection=self)
            self.close(*close)

    # -- outgoing ----------------------------------------------------------

    def _answer(
        self,
        context: Context,
        direction: Direction,
        message: Any,
        options: Any,
        callback: Callback | None,
        binary: bool,
    ) -> Awaitable[None]:
        """Send a REPLY, ERROR or PARTIAL for ``context`` (see :class:`Context`)."""
        if options is not None:
            callback, binary = _split_options(options, callback)
        request = context._event
        if request.__class__ is not IncomingRequest:
            raise LocalProtocolError(f"cannot answer a {context.direction}: only a REQUEST")
        try:
            sent = self._session.answer(request, direction, message, binary)
        except LocalProtocolError:
            raise  # already answered: a mistake in the caller's code
        except WyreError as exc:
            return self._failed(exc, callback)
        if callback is not None:
            self._loop.call_soon(call_back, callback, self, None)
        return self._flow.waiter() if sent else DONE

    def _write(self, data: str | bytes, binary: bool, answering: bool) -> None:
        """Write one frame: the choke point every frame of this connection passes.

        Counts it for :meth:`Server.stats() <wyre.Server.stats>` once the
        transport took it.

        Above ``write_limit``, sends wait for the peer to read; when the frame
        answers the peer (``answering``), reading the peer stops too, so a peer
        that sends without reading what it asked for is slowed down by TCP.
        This side's own sends never stop its reading: the answers it waits
        for must still get in.

        Raises:
            ConnectionClosed: the connection is closed or closing.
        """
        if self.close_code is not None or self._closing is not None:
            raise self._closed_error()  # closed, or close() was called: nothing more goes out
        try:
            self._transport.write(data, binary)
        except TransportClosing as exc:
            raise self._closed_error() from exc
        except Exception as exc:
            self._log.debug("write failed: %s", exc, connection=self)
            self.connection_lost(1006, "write failed")
            self._transport.abort()
            raise self._closed_error() from exc
        self._frames_sent += 1
        self._bytes_sent += len(data)
        if self._transport.write_buffer_size() > self._write_limit:
            self._flow.congested(answering)

    def _stalled(self, why: str) -> None:
        """The peer stopped reading (or a write failed): drop it."""
        if self.close_code is None:
            self._log.log(logging.WARNING, "dropping peer %s: %s", self.id, why, connection=self)
            self.connection_lost(1006, why)
            self._transport.abort()

    def _failed(self, exc: WyreError, callback: Callback | None) -> Awaitable[None]:
        """An awaitable already failed with ``exc``, reported to ``callback`` too.

        Marked as retrieved: a send that fails because the connection closed
        is normal at shutdown and is logged at debug level instead.
        """
        future: asyncio.Future[None] = self._loop.create_future()
        future.set_exception(exc)
        future.exception()
        self._log.debug("send failed: %s", exc, connection=self)
        if callback is not None:
            self._loop.call_soon(call_back, callback, self, exc)
        return future

    def _closed_error(self) -> ConnectionClosed:
        code, reason = self.close_code, self.close_reason
        if code is None:  # closing: the code this side asked for, else not known yet
            code, reason = self._close_request or (1006, "")
        error = ConnectionClosed(code, reason or "")
        error.connection = self
        return error

    # -- deadlines ---------------------------------------------------------

    def _watch(self, delivery: Delivery, timeout: float | _Unset | None) -> None:
        """Give ``delivery`` a deadline, enforced by :meth:`_sweep`.

        One timer per connection, not one per request: it is set for the
        earliest deadline, and requests sent later with the same timeout
        expire later, so the common case costs no timer work at all.
        """
        if timeout is UNSET:
            timeout = self._request_timeout
        if timeout is None:
            return
        assert not isinstance(timeout, _Unset)
        delivery.timeout = timeout
        deadline = delivery.deadline = self._loop.time() + timeout
        if self._sweeper is None or deadline < self._sweeper.when():
            if self._sweeper is not None:
                self._sweeper.cancel()
            self._sweeper = self._loop.call_at(deadline, self._sweep)

    def _sweep(self) -> None:
        """Expire what is past its deadline; set the timer for the next deadline."""
        self._sweeper = None
        now = self._loop.time()
        expired, earliest = self._session.expire(now)
        if expired:
            self.endpoint.counters.timed_out += len(expired)
        for delivery in expired:
            delivery._timed_out()  # type: ignore[attr-defined]
        if earliest is not None and self.close_code is None:
            # A little slack batches expiries that fall close together.
            when = max(earliest, now + _SWEEP_SLACK)
            if self._sweeper is not None:  # a timed-out callback sent another request
                if self._sweeper.when() <= when:
                    return
                self._sweeper.cancel()
            self._sweeper = self._loop.call_at(when, self._sweep)

    def _abandon(self, pending: Pending) -> None:
        """Forget a request or acknowledged send the application gave up on."""
        if self._session.abandon(pending):
            self._log.debug("%s cancelled", pending.describe(), connection=self)
