"""A Connection: one open socket, and the protocol driven over it.

A frame's path, start to end: the transport calls :meth:`Connection.receive`
with the payload; it is decoded, its direction read, and then

* a REQUEST runs the routed request handler (plain functions inline, coroutine
  functions in a task of their own), whose answer goes back through
  :meth:`Connection._answer`;
* a MESSAGE runs the routed message handler (acknowledged first under
  ``wyre.v2`` when it carries a key);
* a REPLY, ERROR or PARTIAL settles the matching :class:`Request` in
  ``_pending``;
* ``wyre.v2`` control frames settle an acknowledged send (ACK) or cancel a
  running handler (CANCEL).

Anything that cannot be handled becomes an ``error`` event (and an ERROR
reply when the frame carried a usable key); the connection goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import traceback
import uuid
from collections.abc import Awaitable, Callable, Generator
from functools import partial
from inspect import isawaitable
from random import getrandbits
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from .context import ANSWERED, CANCELLED, Context
from .exceptions import (
    CodecError,
    ConnectionClosed,
    LimitExceeded,
    LocalProtocolError,
    RemoteProtocolError,
    RequestError,
    WyreError,
)
from .protocol import SUBPROTOCOL, Direction, parse_direction
from .protocol.direction import SPELLINGS as _SPELLINGS
from .request import Callback, Delivery, Request, call_back
from .transport import TransportClosing

if TYPE_CHECKING:
    from .endpoint import Endpoint
    from .transport import Transport

__all__ = ["Connection"]

_UNSET: Any = object()

REQUEST = Direction.REQUEST
REPLY = Direction.REPLY
ERROR = Direction.ERROR
PARTIAL = Direction.PARTIAL
MESSAGE = Direction.MESSAGE
ACK = Direction.ACK
CANCEL = Direction.CANCEL
_WIRE = {direction: direction.value for direction in Direction}  # plain str, as sent

# Keys of requests we gave up on (timeout, cancellation) are remembered for a
# while, so that their late answers are dropped quietly instead of being
# reported as protocol errors.
_ABANDONED_MEMORY = 1024

# Deadlines falling within this many seconds of each other expire together.
_SWEEP_SLACK = 0.01

# Version and variant bits of a uuid4, placed into 128 random bits.
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_key() -> str:
    """A fresh uuid4 string for a request key.

    Keys only need to be unique among one connection's pending requests, not
    secret, so the fast ``random`` generator stands in for ``os.urandom``.
    """
    h = "%032x" % ((getrandbits(128) & _UUID4_CLEAR) | _UUID4_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class _Done:
    """An awaitable that is already complete: what a send returns when no wait is needed."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # pragma: no cover - makes this a generator

    def done(self) -> bool:
        return True


DONE = _Done()


def _split_options(options: Any, callback: Any, flags: dict[str, Any]) -> Callback | None:
    """Accept the original's ``(message[, options], callback)`` argument shapes.

    ``options`` (not None) may be the callback itself, or a dict of flags
    (``binary``, ``compress``, ``mask``) merged into ``flags``.
    """
    if callable(options) and callback is None:
        return options  # type: ignore[no-any-return]
    if not isinstance(options, dict):
        raise TypeError(f"options must be a dict of flags, not {type(options).__name__}")
    for name, value in options.items():
        flags.setdefault(name, value)
    return callback  # type: ignore[no-any-return]


class Connection:
    """One open WebSocket, on either side: ``id``, ``send``, ``request``, ``close``.

    Made by a :class:`~wyre.Server` for each accepted socket and by
    :meth:`Client.connect <wyre.Client.connect>`. Every operation returns an
    awaitable and also accepts the original's node-style callback; awaiting
    is optional when a callback is given.

    Attributes:
        id: a uuid4 made by this side when the socket opened.
        extensions: whether both ends speak ``wyre.v2`` (acknowledged sends,
            cancellation); otherwise the original semantics apply.
        close_code, close_reason: set once the connection is closed.
    """

    # Slots keep an idle connection small: a server may hold many thousands.
    __slots__ = (
        "_abandoned",
        "_acks",
        "_closing",
        "_decode",
        "_drained",
        "_encode",
        "_find_message",
        "_find_request",
        "_get_direction",
        "_get_key",
        "_get_type",
        "_loop",
        "_max_pending",
        "_max_running",
        "_message_tasks",
        "_pending",
        "_reading_paused",
        "_reading_stopped",
        "_request_timeout",
        "_requires_dict",
        "_running",
        "_set_direction",
        "_set_key",
        "_state",
        "_sweeper",
        "_transport",
        "_write_limit",
        "close_code",
        "close_reason",
        "endpoint",
        "extensions",
        "id",
        "logger",
    )

    def __init__(self, endpoint: Endpoint, transport: Transport) -> None:
        self.id = str(uuid.uuid4())
        self.endpoint = endpoint
        self.logger = endpoint.logger
        self.extensions = transport.subprotocol == SUBPROTOCOL
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._closing: asyncio.Task[None] | None = None
        options = endpoint.options
        self._request_timeout = options.request_timeout
        self._max_pending = options.max_pending_requests
        self._max_running = options.max_running_handlers
        self._write_limit = options.write_limit
        envelope = endpoint.envelope
        self._decode = envelope.codec.decode
        self._encode = envelope.codec.encode
        self._get_key = envelope.get_key
        self._set_key = envelope.set_key
        self._get_direction = envelope.get_direction
        self._set_direction = envelope.set_direction
        self._get_type = envelope.get_type
        self._requires_dict = envelope.requires_dict
        self._find_request = endpoint.router.find_request
        self._find_message = endpoint.router.find_message
        self._pending: dict[Any, Request] = {}
        self._acks: dict[Any, Delivery] = {}
        self._abandoned: dict[Any, None] = {}
        self._running: dict[Any, tuple[asyncio.Task[None], Context]] = {}
        self._message_tasks: set[asyncio.Future[Any]] = set()
        self._reading_paused = False
        self._reading_stopped = False
        self._drained: asyncio.Future[None] | None = None
        self._state: dict[str, Any] | None = None
        self._sweeper: asyncio.TimerHandle | None = None

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
    def subprotocol(self) -> str | None:
        """The subprotocol agreed in the handshake."""
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
        return len(self._pending)

    def send(
        self,
        message: Any,
        options: Any = None,
        callback: Callback | None = None,
        *,
        ack: bool | None = None,
        timeout: float | None = _UNSET,
        **flags: Any,
    ) -> Awaitable[None]:
        """Send a one-way message.

        With ``ack`` (the default when a callback is given, as the original
        promised the callback fires once the other end received the message)
        and a ``wyre.v2`` peer, the message gets a key and the returned
        awaitable resolves when the peer acknowledges it (after decoding,
        before its handler runs), or fails with RequestTimeout after
        ``timeout``. Without ``ack``, or with a peer speaking the original
        protocol, it resolves once the frame is handed to the socket and the
        write buffer is below the high-water mark.

        Flags: ``binary`` sends a binary frame; ``compress`` and ``mask`` are
        accepted for compatibility (compression is negotiated per connection,
        a client always masks and a server never does, as RFC 6455 requires).

        Raises (from the awaitable, or to the callback):
            ConnectionClosed: the connection is closed.
            RequestTimeout: no acknowledgement in time.
            LocalProtocolError, CodecError: the message cannot be sent.
        """
        if options is not None:
            callback = _split_options(options, callback, flags)
        if ack is None:
            ack = callback is not None
        binary = bool(flags) and bool(flags.get("binary"))
        if not (ack and self.extensions):
            try:
                written = self._send_now(message, binary)
            except WyreError as exc:
                return self._failed(exc, callback)
            if callback is not None:
                self._loop.call_soon(call_back, callback, self, None)
            return written
        delivery = Delivery(self, callback)
        try:
            key = self._get_key(message)
            if key is None:
                key = new_key()
                self._set_key(message, key)
            if key in self._acks:
                raise LocalProtocolError(f"a send with key {key!r} is already awaiting its ACK")
            delivery.key = key
            self._acks[key] = delivery
            self._send_now(message, binary)
        except WyreError as exc:
            self._acks.pop(delivery.key, None)
            delivery._fail(exc)
            return delivery
        except Exception as exc:
            delivery._fail(LocalProtocolError(f"cannot send this message: {exc}", frame=message))
            return delivery
        self._watch(delivery, self._request_timeout if timeout is _UNSET else timeout)
        return delivery

    def request(
        self,
        message: Any,
        options: Any = None,
        callback: Callback | None = None,
        *,
        timeout: float | None = _UNSET,
        **flags: Any,
    ) -> Request:
        """Send a request; the result is awaited for the reply's :class:`Context`.

        Sets ``direction`` to REQUEST and a uuid4 ``key`` unless the message
        has one (the message object is modified, as in the original). The
        request fails with RequestTimeout after ``timeout`` seconds (default:
        the endpoint's ``request_timeout``; ``None`` waits for ever).

        The callback, if given, is called as ``cb(None, None, partial)`` for
        each partial, then ``cb(None, reply)`` or ``cb(error)``.

        Raises (from the awaitable, or to the callback): RequestError,
        RequestTimeout, ConnectionClosed, LimitExceeded (too many pending
        requests; nothing was sent), LocalProtocolError, CodecError.
        """
        if options is not None:
            callback = _split_options(options, callback, flags)
        request = Request(self, callback)
        if self.close_code is not None:
            request._fail(self._closed_error())
            return request
        if len(self._pending) >= self._max_pending:
            request._fail(LimitExceeded(f"{self._max_pending} requests already pending"))
            return request
        try:
            key = self._get_key(message)
            if key is None:
                key = new_key()
            self._stamp(message, key, "REQUEST")
        except Exception as exc:
            request._fail(
                LocalProtocolError(f"cannot make a request of this: {exc}", frame=message)
            )
            return request
        try:
            duplicate = key in self._pending
        except TypeError:  # an unhashable key set by the caller
            request._fail(LocalProtocolError(f"a request key must be a string, not {key!r}"))
            return request
        if duplicate:
            request._fail(LocalProtocolError(f"a request with key {key!r} is already pending"))
            return request
        request.key = key
        self._pending[key] = request
        try:
            self._send_now(message, bool(flags.get("binary")))
        except WyreError as exc:
            self._pending.pop(key, None)
            request._fail(exc)
            return request
        self._watch(request, self._request_timeout if timeout is _UNSET else timeout)
        return request

    def close(
        self, code: int = 1000, reason: str = "", callback: Callback | None = None
    ) -> Awaitable[None]:
        """Close the connection with a WebSocket close code and reason.

        Idempotent; bounded by the endpoint's ``close_timeout`` (the socket is
        dropped when the peer does not complete the handshake in time). Every
        pending request fails with ConnectionClosed.
        """
        if self._closing is None:
            self._closing = self._loop.create_task(self._close(code, reason))
        if callback is not None:
            self._closing.add_done_callback(lambda _: call_back(callback, self, None))
        # Shielded: a caller that stops waiting (a timeout around close())
        # must not stop the closing itself, which other callers may await.
        return asyncio.shield(self._closing)

    async def _close(self, code: int, reason: str) -> None:
        if self.close_code is not None:
            return
        try:
            await self._transport.close(code, reason)
        except (Exception, asyncio.CancelledError):
            # A failed or interrupted closing handshake still ends the connection.
            self.logger.debug("closing handshake failed", exc_info=True)
            self._transport.abort()
        if self.close_code is None:
            self.connection_lost(code, reason)

    def __repr__(self) -> str:
        state = "open" if self.close_code is None else f"closed {self.close_code}"
        return f"<Connection {self.id} {state}>"

    # -- from the transport ------------------------------------------------

    def receive(self, data: str | bytes) -> None:
        """Handle one received frame; never raises (see the module docstring)."""
        try:
            message = self._decode(data)
        except Exception as exc:
            self._reject(CodecError(f"undecodable frame ({type(exc).__name__})", frame=data))
            return
        if self._requires_dict and message.__class__ is not dict:
            self._reject(RemoteProtocolError("frame is not a JSON object", frame=data))
            return
        try:
            direction = self._get_direction(message)
            direction = _SPELLINGS.get(direction) or parse_direction(direction)
            if direction is REQUEST:
                self._on_request(message, data)
            elif direction is REPLY or direction is ERROR or direction is PARTIAL:
                self._on_answer(message, direction, data)
            elif direction is MESSAGE:
                if self.extensions:
                    key = self._get_key(message)
                    if key is not None:
                        self._control(ACK, key)
                type_ = self._get_type(message)
                handler = self._find_message(type_)
                if handler is None:
                    self.logger.info("no message handler for type %r", type_)
                    return
                self._on_message(handler, Context(message, type_, self, None, MESSAGE))
            elif self.extensions and direction is ACK:
                delivery = self._acks.pop(self._get_key(message), None)
                if delivery is not None:
                    delivery._resolve(None)
            elif self.extensions and direction is CANCEL:
                running = self._running.get(self._get_key(message))
                if running is not None:
                    task, context = running
                    context._state = CANCELLED
                    task.cancel()
            else:
                raise RemoteProtocolError(
                    f"unknown direction {self._get_direction(message)!r}", frame=data
                )
        except RemoteProtocolError as exc:
            self._reject(exc, message)
        except Exception as exc:
            self._reject(RemoteProtocolError(f"cannot handle frame: {exc!r}", frame=data), message)

    def connection_lost(self, code: int, reason: str) -> None:
        """The socket closed: fail everything pending, cancel handlers, emit ``close``."""
        if self.close_code is not None:
            return
        self.close_code = code
        self.close_reason = reason
        error = self._closed_error()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        pending, self._pending = self._pending, {}
        for request in pending.values():
            request._fail(error)
        acks, self._acks = self._acks, {}
        for delivery in acks.values():
            delivery._fail(error)
        for task, context in list(self._running.values()):
            context._state = CANCELLED
            task.cancel()
        for message_task in list(self._message_tasks):
            message_task.cancel()
        if self._drained is not None and not self._drained.done():
            self._drained.set_exception(error)
            self._drained.exception()
        self.endpoint._connection_closed(self)

    # -- incoming ----------------------------------------------------------

    def _on_request(self, message: Any, data: str | bytes) -> None:
        key = self._get_key(message)
        if key.__class__ is not str:
            raise RemoteProtocolError(
                "request without a key" if key is None else f"request key is not a string: {key!r}",
                frame=data,
            )
        type_ = self._get_type(message)
        context = Context(message, type_, self, key, REQUEST)
        if key in self._running:
            self._reply_error(context, "DuplicateKey", f"request {key} is already running")
            raise RemoteProtocolError(f"duplicate request key {key!r}", frame=data)
        handler = self._find_request(type_)
        if handler is None:
            self.logger.warning("no request handler for type %r", type_)
            self._reply_error(context, "NoHandler", f"no request handler for type {type_!r}")
            return
        try:
            result = handler(context)
        except Exception as exc:
            self._handler_failed(context, exc)
            return
        if result is None:
            return
        if result.__class__ is dict:
            if not context._state:
                self._finish(context, result)
            return
        if result.__class__ is CoroutineType or isawaitable(result):
            task = self._loop.create_task(self._run_handler(context, result))
            self._running[key] = (task, context)
            task.add_done_callback(partial(self._handler_done, key, result))
            if self._busy() >= self._max_running:
                self._update_reading()
        elif not context._state:
            self._finish(context, result)

    def _on_message(self, handler: Callable[..., Any], context: Context) -> None:
        """Run a message handler; a coroutine one counts toward ``max_running_handlers``."""
        try:
            result = handler(context)
        except Exception as exc:
            self.endpoint._handler_raised(handler, exc)
            return
        if result is not None and isawaitable(result):
            task = self.endpoint._spawn(self.endpoint._await(handler, result))
            self._message_tasks.add(task)
            task.add_done_callback(self._message_done)
            if self._busy() >= self._max_running:
                self._update_reading()

    def _message_done(self, task: asyncio.Future[Any]) -> None:
        self._message_tasks.discard(task)
        if self._reading_paused:
            self._update_reading()

    def _busy(self) -> int:
        """Coroutine handlers running for this connection: requests and messages."""
        return len(self._running) + len(self._message_tasks)

    def _handler_tasks(self) -> list[asyncio.Future[Any]]:
        """The tasks of the coroutine handlers running for this connection."""
        return [task for task, _ in self._running.values()] + list(self._message_tasks)

    async def _run_handler(self, context: Context, coroutine: Awaitable[Any]) -> None:
        try:
            result = await coroutine
        except asyncio.CancelledError:
            context._state = CANCELLED  # a cancelled handler's answer is never sent
        except Exception as exc:
            self._handler_failed(context, exc)
        else:
            if result is not None and not context._state:
                self._finish(context, result)

    def _handler_done(self, key: Any, awaitable: Any, task: asyncio.Task[None]) -> None:
        """Forget a finished handler task; it may have been cancelled before it started."""
        entry = self._running.get(key)
        if entry is not None and entry[0] is task:
            del self._running[key]
        if task.cancelled() and asyncio.iscoroutine(awaitable):
            awaitable.close()  # never started: close it, or Python warns it was never awaited
        if self._reading_paused:
            self._update_reading()

    def _finish(self, context: Context, result: Any) -> None:
        """Send a handler's return value as the REPLY (the lean path of ``reply()``)."""
        try:
            self._stamp(result, context.key, "REPLY")
        except Exception as exc:
            error = LocalProtocolError(f"a handler must return an object: {exc}", frame=result)
            self._handler_failed(context, error)
            return
        try:
            self._send_now(result, False)
        except WyreError as exc:
            self._handler_failed(context, exc)
        else:
            context._state = ANSWERED

    def _handler_failed(self, context: Context, exc: BaseException) -> None:
        if isinstance(exc, ConnectionClosed):
            return
        self.logger.error("request handler for %r raised", context.type, exc_info=exc)
        if not context._state and self.close_code is None:
            detail = (
                "".join(traceback.format_exception(exc))
                if self.endpoint.options.debug_errors
                else None
            )
            self._reply_error(context, type(exc).__name__, str(exc), detail)
        with contextlib.suppress(Exception):
            exc.connection = self  # type: ignore[attr-defined]
        self.endpoint._emit_error(exc, logged=True)

    def _on_answer(self, message: Any, direction: Direction, data: str | bytes) -> None:
        key = self._get_key(message)
        pending = self._pending
        request = pending.get(key) if direction is PARTIAL else pending.pop(key, None)
        if request is not None:
            context = Context(message, self._get_type(message), self, key, direction)
            if direction is PARTIAL:
                request._partial(context)
            elif direction is REPLY:
                request._resolve(context)
            else:
                request._fail(RequestError(context))
            return
        if key.__class__ is not str:
            raise RemoteProtocolError(f"{direction} key is not a string: {key!r}", frame=data)
        if key in self._abandoned:
            self.logger.debug("dropped late %s for %s", direction, key)
            return
        raise RemoteProtocolError(f"{direction} for unknown key {key!r}", frame=data)

    def _reject(self, error: WyreError, message: Any = None) -> None:
        """Report a frame that cannot be handled; answer it if it may be a keyed request.

        Frames that are themselves answers (REPLY, ERROR, PARTIAL, ACK, CANCEL)
        never get an ERROR back: two ends rejecting each other's answers would
        loop for ever.
        """
        error.connection = self
        if message is not None and self.close_code is None:
            try:
                key = self._get_key(message)
                direction = parse_direction(self._get_direction(message))
                running = key in self._running
            except Exception:
                key, direction, running = None, None, True
            if key is not None and direction in (REQUEST, None) and not running:
                self._reply_error(
                    Context(message, None, self, key, REQUEST), type(error).__name__, str(error)
                )
        self.endpoint._emit_error(error)

    # -- outgoing ----------------------------------------------------------

    def _answer(
        self,
        context: Context,
        message: Any,
        direction: Direction,
        options: Any,
        callback: Callback | None,
        flags: dict[str, Any],
    ) -> Awaitable[None]:
        """Send a REPLY, ERROR or PARTIAL for ``context`` (see :class:`Context`)."""
        if options is not None:
            callback = _split_options(options, callback, flags)
        if context._state or context.direction is not REQUEST:
            if context._state is CANCELLED:
                return DONE  # the requester gave up; its handler's answers are dropped
            if context.direction is not REQUEST:
                raise LocalProtocolError(f"cannot answer a {context.direction}: only a REQUEST")
            raise LocalProtocolError(f"request {context.key} was already answered")
        if direction is not PARTIAL:
            context._state = ANSWERED
        if message is None:
            message = {}
        try:
            self._stamp(message, context.key, _WIRE[direction])
        except Exception as exc:
            raise LocalProtocolError(f"an answer must be an object: {exc}", frame=message) from exc
        try:
            written = self._send_now(message, bool(flags) and bool(flags.get("binary")))
        except WyreError as exc:
            return self._failed(exc, callback)
        if callback is not None:
            self._loop.call_soon(call_back, callback, self, None)
        return written

    def _reply_error(
        self, context: Context, name: str, text: str, detail: str | None = None
    ) -> None:
        """Send the safe ERROR reply that reports a failure we caught."""
        body: dict[str, Any] = {"error": name, "message": text}
        if detail is not None:
            body["traceback"] = detail
        context._state = ANSWERED
        try:
            self._stamp(body, context.key, "ERROR")
            self._send_now(body, False)
        except WyreError:
            self.logger.debug("could not send an error reply", exc_info=True)

    def _control(self, direction: Direction, key: Any) -> None:
        """Send a ``wyre.v2`` control frame (ACK, CANCEL)."""
        body: dict[str, Any] = {}
        self._stamp(body, key, _WIRE[direction])
        try:
            self._send_now(body, False)
        except WyreError:
            self.logger.debug("could not send %s", direction, exc_info=True)

    def _stamp(self, message: Any, key: Any, direction: str) -> None:
        """Write the key and direction into an outgoing message.

        Raises whatever the message raises when it cannot hold them (e.g. a
        list under the default envelope); callers turn that into their error.
        """
        if self._requires_dict:  # the default envelope: fields at the top level
            message["key"] = key
            message["direction"] = direction
        else:
            self._set_key(message, key)
            self._set_direction(message, direction)

    def _send_now(self, message: Any, binary: bool) -> Awaitable[None]:
        """Encode and write one frame; the awaitable waits out a full write buffer.

        Raises:
            ConnectionClosed: the connection is closed.
            CodecError: the message cannot be encoded.
        """
        if self.close_code is not None or self._closing is not None:
            raise self._closed_error()  # closed, or close() was called: nothing more goes out
        try:
            data = self._encode(message)
        except Exception as exc:
            raise CodecError(f"cannot encode message ({exc})", frame=message) from exc
        try:
            self._transport.write(data, binary)
        except TransportClosing as exc:
            raise self._closed_error() from exc
        except Exception as exc:
            self.logger.debug("write failed", exc_info=True)
            self._transport.abort()
            self.connection_lost(1006, "write failed")
            raise self._closed_error() from exc
        if self._transport.write_buffer_size() > self._write_limit:
            return self._congested()
        return DONE

    def _congested(self) -> asyncio.Future[None]:
        """Start waiting for the peer to read: pause reading it, bound the wait."""
        if self._drained is None:
            self._drained = self._loop.create_future()
            self._update_reading()
            self._loop.create_task(self._drain())
        return self._drained

    async def _drain(self) -> None:
        drained = self._drained
        assert drained is not None
        try:
            async with asyncio.timeout(self.endpoint.options.write_timeout):
                await self._transport.drain()
        except TimeoutError:
            self.logger.warning(
                "peer %s read nothing for %s s: dropping it",
                self.id,
                self.endpoint.options.write_timeout,
            )
            self._transport.abort()
            self.connection_lost(1006, "peer stopped reading")
        except Exception:
            self.connection_lost(1006, "write failed")
        else:
            if not drained.done():
                drained.set_result(None)
        finally:
            self._drained = None
            self._update_reading()

    def _update_reading(self) -> None:
        """Pause or resume reading the socket: the single place that decides.

        Reading pauses while the server shuts down, while the write buffer
        waits for the peer, and while ``max_running_handlers`` handlers run:
        backpressure reaches the peer through TCP instead of piling up tasks.
        """
        if self.close_code is not None:
            return
        pause = (
            self._reading_stopped or self._drained is not None or self._busy() >= self._max_running
        )
        if pause != self._reading_paused:
            self._reading_paused = pause
            if pause:
                self._transport.pause_reading()
            else:
                self._transport.resume_reading()

    def _stop_reading(self) -> None:
        """Read no more frames (shutdown); answers can still be sent."""
        self._reading_stopped = True
        self._update_reading()

    def _failed(self, exc: WyreError, callback: Callback | None) -> Awaitable[None]:
        """An awaitable already failed with ``exc``, reported to ``callback`` too.

        Marked as retrieved: a send that fails because the connection closed
        is normal at shutdown and is logged at debug level instead.
        """
        future: asyncio.Future[None] = self._loop.create_future()
        future.set_exception(exc)
        future.exception()
        self.logger.debug("send failed: %s", exc)
        if callback is not None:
            self._loop.call_soon(call_back, callback, self, exc)
        return future

    def _closed_error(self, code: int | None = None, reason: str | None = None) -> ConnectionClosed:
        error = ConnectionClosed(
            code if code is not None else (self.close_code or 1006),
            reason if reason is not None else (self.close_reason or ""),
        )
        error.connection = self
        return error

    def _watch(self, delivery: Delivery, timeout: float | None) -> None:
        """Give ``delivery`` a deadline, enforced by :meth:`_sweep`.

        One timer per connection, not one per request: it is set for the
        earliest deadline, and requests sent later with the same timeout
        expire later, so the common case costs no timer work at all.
        """
        if timeout is None:
            return
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
        earliest: float | None = None
        expired: list[Delivery] = []
        for table in (self._pending, self._acks):
            for delivery in table.values():
                deadline = delivery.deadline
                if deadline is None:
                    continue
                if deadline <= now:
                    expired.append(delivery)
                elif earliest is None or deadline < earliest:
                    earliest = deadline
        for delivery in expired:
            delivery._expire()  # its callback may send and _watch() a new deadline
        if earliest is not None and self.close_code is None:
            # A little slack batches expiries that fall close together.
            when = max(earliest, now + _SWEEP_SLACK)
            if self._sweeper is not None:
                if self._sweeper.when() <= when:
                    return
                self._sweeper.cancel()
            self._sweeper = self._loop.call_at(when, self._sweep)

    def _abandon(self, delivery: Delivery, *, cancelled: bool) -> None:
        """Forget a request or acknowledged send we gave up on; tell a v2 peer."""
        key = delivery.key
        if key is None:
            return
        table: dict[Any, Any] = self._pending if isinstance(delivery, Request) else self._acks
        if table.get(key) is not delivery:
            return
        del table[key]
        self._abandoned[key] = None
        if len(self._abandoned) > _ABANDONED_MEMORY:
            del self._abandoned[next(iter(self._abandoned))]
        if self.extensions and isinstance(delivery, Request) and self.close_code is None:
            self._control(CANCEL, key)
        if cancelled:
            self.logger.debug("request %s cancelled", key)
