"""The wyre protocol for one connection, without I/O: frames in, events and frames out.

A :class:`Session` holds every rule of ``docs/protocol.md`` that is not about
sockets or time: reading a frame's direction, the table of pending requests
and acknowledged sends, each incoming request's answer state (answered once,
and only once), ``ACK`` and ``CANCEL`` under ``wyre.v2``, which bad frames get
an ERROR back, and the keys of abandoned requests. It never imports asyncio
and has no clock: deadlines are numbers the caller compares with its own.

Driving it (what :class:`~wyre.Connection` does)::

    session = Session(envelope, extensions=True, write=write)  # write(data, binary, answering)
    event = session.receive(frame)          # an Event, or None
    session.request(message, pending)       # writes the REQUEST through ``write``
    session.answer(incoming, REPLY, body)   # writes the REPLY; False if cancelled
    expired, next_deadline = session.expire(now)

A binary codec (:attr:`Codec.binary <wyre.Codec.binary>`: MessagePack) has
every frame written as binary, whatever a send's ``binary`` flag says. Frames
the session emits itself (ACK, CANCEL, the ERROR for a bad request) go
through ``write`` too; a failure to write one of those is ignored (the
connection is closing and reports that itself). Every other method raises
before anything is written when the message cannot be sent, and leaves the
session unchanged.

The answer state of an incoming request (see :mod:`.events`)::

    OPEN ──PARTIAL──> OPEN ──REPLY / ERROR──> ANSWERED
      └────CANCEL / connection closed────> CANCELLED   (later answers are dropped)
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from typing import Any

from ..exceptions import (
    CodecError,
    LimitExceeded,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    preview,
)
from .direction import SPELLINGS, Direction, parse_direction
from .envelope import Envelope
from .events import (
    ANSWERED,
    CANCELLED,
    OPEN,
    AckReceived,
    AnswerDropped,
    AnswerReceived,
    CancelReceived,
    Event,
    FrameRejected,
    IncomingMessage,
    IncomingRequest,
)
from .pending import ABANDONED_MEMORY, Pending, new_key

__all__ = ["BAD_FRAME_WINDOW", "Session", "Write"]

Write = Callable[[str | bytes, bool, bool], None]
"""Where the session's frames go: ``write(data, binary, answering)``; may raise when closed.

``answering`` is true for what answers the peer (REPLY, ERROR, PARTIAL, ACK):
frames the peer made this side write. A connection that cannot write those out
should stop reading the peer; its own sends and requests should just wait."""

BAD_FRAME_WINDOW = 10.0
"""Seconds over which ``max_bad_frames`` is counted (a leaky bucket)."""

REQUEST = Direction.REQUEST
REPLY = Direction.REPLY
ERROR = Direction.ERROR
PARTIAL = Direction.PARTIAL
MESSAGE = Direction.MESSAGE
ACK = Direction.ACK
CANCEL = Direction.CANCEL
_WIRE = {direction: direction.value for direction in Direction}  # plain str, as sent

_NEXT_STATE = {REPLY: ANSWERED, ERROR: ANSWERED, PARTIAL: OPEN}
"""What an answer sent in state OPEN moves the request to."""


class Session:
    """One connection's protocol state. See the module docstring for the rules.

    Args:
        envelope: where the protocol fields live, and the codec (a binary
            codec's frames are all written binary).
        extensions: whether both ends agreed on ``wyre.v2`` (ACK, CANCEL).
        write: called with each frame to send.
        max_pending: outgoing requests allowed to wait at once; also the most
            incoming requests open at once (a peer with the same limit never
            reaches it; past it a request gets an ERROR back).
        max_bad_frames: bad frames allowed per :data:`BAD_FRAME_WINDOW`
            seconds before :meth:`penalise` says to close; None: no limit.
    """

    __slots__ = (
        "_abandoned",
        "_acks",
        "_bad_level",
        "_bad_since",
        "_decode",
        "_encode",
        "_fallback",
        "_get_direction",
        "_get_key",
        "_get_type",
        "_incoming",
        "_max_bad_frames",
        "_max_pending",
        "_requests",
        "_requires_dict",
        "_set_direction",
        "_set_key",
        "_write",
        "extensions",
    )

    def __init__(
        self,
        envelope: Envelope,
        *,
        extensions: bool,
        write: Write,
        max_pending: int = 1024,
        max_bad_frames: int | None = 100,
    ) -> None:
        self.extensions = extensions
        # MessagePack: every frame binary, decided once here rather than per frame.
        self._write = _always_binary(write) if envelope.codec.binary else write
        self._decode = envelope.codec.decode
        self._encode = envelope.codec.encode
        self._fallback = envelope.codec.fallback
        self._get_key = envelope.get_key
        self._set_key = envelope.set_key
        self._get_direction = envelope.get_direction
        self._set_direction = envelope.set_direction
        self._get_type = envelope.get_type
        self._requires_dict = envelope.requires_dict
        self._max_pending = max_pending
        self._max_bad_frames = max_bad_frames
        self._requests: dict[Any, Pending] = {}
        self._acks: dict[Any, Pending] = {}
        self._incoming: dict[Any, IncomingRequest] = {}
        self._abandoned: dict[Any, None] = {}
        self._bad_level = 0.0
        self._bad_since = 0.0

    # -- what it holds --------------------------------------------------------

    @property
    def pending_requests(self) -> int:
        """Outgoing requests waiting for their REPLY or ERROR."""
        return len(self._requests)

    @property
    def open_requests(self) -> int:
        """Incoming requests not answered yet."""
        return len(self._incoming)

    # -- frames in ------------------------------------------------------------

    def receive(self, data: str | bytes) -> Event | None:
        """Handle one received frame: the event it makes, or None when it needs nothing.

        Never raises: a frame that cannot be handled is a :class:`FrameRejected`
        (after an ERROR went back, when the frame may be a keyed request).
        Writes the ACK for a keyed message under ``wyre.v2``.
        """
        try:
            message = self._decode(data)
        except Exception as exc:
            error = CodecError(f"undecodable frame ({type(exc).__name__})", frame=data)
            return self._reject(error, None)
        try:
            if self._requires_dict:  # the default envelope: plain dict look-ups, inline
                if message.__class__ is not dict:
                    not_object = RemoteProtocolError(
                        "frame is not an object (a JSON object or a MessagePack map)", frame=data
                    )
                    return self._reject(not_object, None)
                raw = message.get("direction")
                key = message.get("key")
                type_ = message.get("type")
            else:
                raw = self._get_direction(message)
                key = self._get_key(message)
                type_ = self._get_type(message)
            direction = SPELLINGS.get(raw) if raw.__class__ is str else None
            if direction is None:
                direction = parse_direction(raw)
            if direction is REQUEST:
                if key.__class__ is not str:
                    raise RemoteProtocolError(
                        "request without a key"
                        if key is None
                        else f"request key is not a string: {preview(key, 40)}",
                        frame=data,
                    )
                incoming = self._incoming
                if key in incoming:
                    # Refused with an ERROR of its own; the running request stays open.
                    duplicate = RemoteProtocolError(f"duplicate request key {key!r}", frame=data)
                    sent = self._write_error(
                        key, "DuplicateKey", f"request {key} is already running"
                    )
                    return FrameRejected(duplicate, replied=sent)
                if len(incoming) >= self._max_pending:
                    raise RemoteProtocolError(
                        f"more than {self._max_pending} requests open at once", frame=data
                    )
                request = incoming[key] = IncomingRequest(key, type_, message)
                return request
            if direction is REPLY or direction is ERROR or direction is PARTIAL:
                requests = self._requests
                pending = requests.get(key) if direction is PARTIAL else requests.pop(key, None)
                if pending is not None:
                    return AnswerReceived(pending, direction, key, type_, message)
                if key.__class__ is not str:
                    raise RemoteProtocolError(f"{direction} key is not a string", frame=data)
                if key in self._abandoned:
                    return AnswerDropped(direction, key)
                raise RemoteProtocolError(
                    f"{direction} for unknown key {preview(key, 40)}", frame=data
                )
            if direction is MESSAGE:
                if key is not None and self.extensions:
                    self._control(ACK, key)
                return IncomingMessage(key, type_, message)
            if self.extensions and direction is ACK:
                pending = self._acks.pop(key, None)
                return None if pending is None else AckReceived(pending)
            if self.extensions and direction is CANCEL:
                cancelled = self._incoming.pop(key, None)
                if cancelled is None:
                    return None  # answered already, or never ours: nothing to stop
                cancelled.state = CANCELLED
                return CancelReceived(cancelled)
            raise RemoteProtocolError(f"unknown direction {preview(raw, 40)}", frame=data)
        except RemoteProtocolError as exc:
            return self._reject(exc, message)
        except Exception as exc:
            failure = RemoteProtocolError(f"cannot handle frame ({type(exc).__name__})", frame=data)
            return self._reject(failure, message)

    def _reject(self, error: ProtocolError, message: Any) -> FrameRejected:
        """A frame that cannot be handled; answer it if it may be a keyed request.

        Frames that are themselves answers (REPLY, ERROR, PARTIAL, ACK, CANCEL)
        never get an ERROR back: two ends rejecting each other's answers would
        loop for ever. Neither does a key that is already running.
        """
        if message is None:
            return FrameRejected(error, replied=False)
        try:
            key = self._get_key(message)
            direction = parse_direction(self._get_direction(message))
            answerable = (
                key is not None and direction in (REQUEST, None) and key not in self._incoming
            )
        except Exception:
            answerable = False
        if answerable:
            answerable = self._write_error(key, type(error).__name__, str(error))
        return FrameRejected(error, replied=answerable)

    def _write_error(self, key: Any, name: str, text: str) -> bool:
        """Write an ERROR for ``key`` outside any request's answer state; False if it failed."""
        try:
            body = self._stamp({"error": name, "message": text}, key, "ERROR")
            self._write(self._encode(body), False, True)
        except Exception:
            return False
        return True

    def penalise(self, now: float) -> tuple[int, str] | None:
        """Count one bad frame at time ``now``; the close to send when there were too many.

        A leaky bucket: ``max_bad_frames`` per :data:`BAD_FRAME_WINDOW`
        seconds, so occasional mistakes never close a connection but a flood
        does (1008, policy violation).
        """
        limit = self._max_bad_frames
        if limit is None:
            return None
        drained = (now - self._bad_since) * limit / BAD_FRAME_WINDOW
        self._bad_level = max(0.0, self._bad_level - drained) + 1
        self._bad_since = now
        if self._bad_level > limit:
            return 1008, f"more than {limit} bad frames in {BAD_FRAME_WINDOW:g} s"
        return None

    # -- frames out -----------------------------------------------------------

    def send(self, message: Any, binary: bool = False) -> None:
        """Write a one-way MESSAGE, as it is (it is not modified).

        Raises:
            TypeError: the message is not an object the envelope can carry.
            CodecError: it cannot be encoded.
            Exception: whatever ``write`` raises (the connection is closed).
        """
        if self._requires_dict and message.__class__ is not dict:
            _check_dict(message, "message")
        self._write(self._encode_checked(message), binary, False)

    def send_acked(self, message: Any, pending: Pending, binary: bool = False) -> None:
        """Write a keyed MESSAGE that the peer will ACK (``wyre.v2`` only); track ``pending``.

        The message gets a fresh key unless it has one; a copy is sent.

        Raises:
            LocalProtocolError: not under ``wyre.v2``, or that key already awaits its ACK.
            TypeError, CodecError, Exception: as for :meth:`send`.
        """
        if not self.extensions:
            raise LocalProtocolError("acknowledged sends need a wyre.v2 peer")
        key = self._key_of(message)
        if key in self._acks:
            raise LocalProtocolError(f"a send with key {key!r} is already awaiting its ACK")
        body = self._copy(message, "message")
        if self._requires_dict:
            body["key"] = key
        else:
            self._set_key(body, key)
        self._write(self._encode_checked(body), binary, False)
        pending.key = key
        self._acks[key] = pending

    def request(self, message: Any, pending: Pending, binary: bool = False) -> None:
        """Write a REQUEST (a copy of ``message`` with its key and direction); track ``pending``.

        The key is the message's own when it has one, else a fresh uuid4.

        Raises:
            LimitExceeded: ``max_pending`` requests are already waiting.
            LocalProtocolError: the key is not a string, or already pending.
            TypeError, CodecError, Exception: as for :meth:`send`.
        """
        if len(self._requests) >= self._max_pending:
            raise LimitExceeded(f"{self._max_pending} requests already pending")
        if message.__class__ is dict and self._requires_dict:  # the common case, inline
            key = message.get("key")
            if key is None:
                key = new_key()
            elif key.__class__ is not str:
                key = self._key_of(message)  # raises: a key must be a string
        else:
            key = self._key_of(message)
        if key in self._requests:
            raise LocalProtocolError(f"a request with key {key!r} is already pending")
        if self._requires_dict and message.__class__ is dict:  # the common case, inline
            body = {**message, "key": key, "direction": "REQUEST"}
        else:
            body = self._stamp(message, key, "REQUEST")
        try:
            data = self._encode(body)
        except Exception as exc:
            data = self._encode_slowly(body, exc)
        self._write(data, binary, False)
        pending.key = key
        pending.type = body.get("type") if self._requires_dict else self._get_type(body)
        self._requests[key] = pending

    def answer(
        self, request: IncomingRequest, direction: Direction, message: Any, binary: bool = False
    ) -> bool:
        """Write a PARTIAL, REPLY or ERROR for ``request``; False if it was cancelled.

        The answer is validated and encoded before the request's state
        changes, so an answer that cannot be sent leaves the request open
        for another (e.g. an ERROR saying why).

        Raises:
            LocalProtocolError: the request was already answered.
            TypeError, CodecError, Exception: as for :meth:`send`.
        """
        next_state = _NEXT_STATE.get(direction)
        if next_state is None:
            raise LocalProtocolError(f"{direction} is not an answer: use PARTIAL, REPLY or ERROR")
        state = request.state
        if state != OPEN:
            if state == CANCELLED:
                return False  # the requester gave up; its handler's answers are dropped
            raise LocalProtocolError(f"request {request.key} was already answered")
        if message is None:
            message = {}
        if self._requires_dict and message.__class__ is dict:  # the common case, inline
            body = {**message, "key": request.key, "direction": _WIRE[direction]}
        else:
            body = self._stamp(message, request.key, _WIRE[direction])
        try:
            data = self._encode(body)
        except Exception as exc:
            data = self._encode_slowly(body, exc)
        self._write(data, binary, True)
        if next_state != OPEN:
            request.state = next_state
            # An OPEN request is the one its key maps to (duplicates are refused).
            del self._incoming[request.key]
        return True

    def answer_error(
        self, request: IncomingRequest, name: str, text: str, detail: str | None = None
    ) -> bool:
        """Send the ERROR that reports a failure caught by wyre: ``{"error", "message"}``.

        Never raises; returns whether it was sent. ``detail`` (a traceback)
        is added as ``traceback`` when given.
        """
        body: dict[str, Any] = {"error": name, "message": text}
        if detail is not None:
            body["traceback"] = detail
        try:
            return self.answer(request, ERROR, body)
        except Exception:
            return False

    def abandon(self, pending: Pending) -> bool:
        """Give up on ``pending``: forget it, remember its key, and CANCEL a request under v2.

        Returns False when it was no longer waiting (already settled).
        """
        key = pending.key
        if self._requests.get(key) is pending:
            del self._requests[key]
            if self.extensions:
                self._control(CANCEL, key)
        elif self._acks.get(key) is pending:
            del self._acks[key]
        else:
            return False
        abandoned = self._abandoned
        abandoned[key] = None
        if len(abandoned) > ABANDONED_MEMORY:
            del abandoned[next(iter(abandoned))]
        return True

    def expire(self, now: float) -> tuple[list[Pending], float | None]:
        """Abandon everything whose deadline is at or before ``now``.

        Returns what expired (to fail with a timeout) and the earliest
        deadline still ahead, if any (when to call again).
        """
        expired: list[Pending] = []
        earliest: float | None = None
        for table in (self._requests, self._acks):
            for pending in table.values():
                deadline = pending.deadline
                if deadline is None:
                    continue
                if deadline <= now:
                    expired.append(pending)
                elif earliest is None or deadline < earliest:
                    earliest = deadline
        for pending in expired:
            self.abandon(pending)
        return expired, earliest

    def close(self) -> list[Pending]:
        """The connection is gone: returns everything still pending (to fail).

        Incoming requests become CANCELLED: their handlers' answers are dropped.
        """
        pending = [*self._requests.values(), *self._acks.values()]
        self._requests.clear()
        self._acks.clear()
        for request in self._incoming.values():
            request.state = CANCELLED
        self._incoming.clear()
        return pending

    # -- helpers --------------------------------------------------------------

    def _key_of(self, message: Any) -> str:
        """The key a message asks for, or a fresh one."""
        if self._requires_dict:
            if message.__class__ is not dict:
                _check_dict(message, "message")
            key = message.get("key")
        else:
            key = self._get_key(message)
        if key is None:
            return new_key()
        if key.__class__ is not str:
            raise LocalProtocolError(f"a key must be a string, not {type(key).__name__}")
        return str(key)

    def _copy(self, message: Any, what: str) -> Any:
        """A copy to add fields to: the caller's object is never modified."""
        if self._requires_dict:
            if message.__class__ is not dict:
                _check_dict(message, what)
            return dict(message)
        return copy.deepcopy(message)  # a custom setter may write anywhere inside it

    def _stamp(self, message: Any, key: Any, direction: str) -> Any:
        """A copy of ``message`` carrying ``key`` and ``direction``."""
        if self._requires_dict:  # the default envelope: fields at the top level
            if message.__class__ is not dict:
                _check_dict(message, "message")
            return {**message, "key": key, "direction": direction}
        body = copy.deepcopy(message)  # a custom setter may write anywhere inside it
        self._set_key(body, key)
        self._set_direction(body, direction)
        return body

    def _encode_checked(self, message: Any) -> str | bytes:
        try:
            return self._encode(message)
        except Exception as exc:
            return self._encode_slowly(message, exc)

    def _encode_slowly(self, message: Any, exc: Exception) -> str | bytes:
        """The codec's fallback for what its fast encoder refused; CodecError if none takes it."""
        if self._fallback is not None:
            try:
                return self._fallback(message)
            except Exception as again:
                exc = again
        raise CodecError(f"cannot encode message ({exc})", frame=message) from exc

    def _control(self, direction: Direction, key: Any) -> None:
        """Write a ``wyre.v2`` control frame (ACK, CANCEL); best effort."""
        # A failure means the connection is closing; it reports that itself.
        with contextlib.suppress(Exception):
            self._write(
                self._encode(self._stamp({}, key, _WIRE[direction])), False, direction is ACK
            )


def _always_binary(write: Write) -> Write:
    """``write``, with every frame binary (a binary codec's frames are not text)."""

    def write_binary(data: str | bytes, binary: bool, answering: bool) -> None:
        write(data, True, answering)

    return write_binary


def _check_dict(message: Any, what: str) -> None:
    """Refuse a message that is not a dict (JSON object); dict subclasses are fine."""
    if not isinstance(message, dict):
        raise TypeError(
            f"a {what} must be a dict (a JSON object), not {type(message).__name__}: "
            "the protocol fields (key, direction, type) live at its top level"
        )
