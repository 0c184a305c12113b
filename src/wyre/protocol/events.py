"""What a :class:`~wyre.protocol.session.Session` reports about a received frame.

``Session.receive()`` returns one of these (or ``None`` when the frame needed
nothing more, e.g. an ACK for a send nobody waits for). They are plain
slotted records: built once per frame on the hot path, read once by the
:class:`~wyre.Connection` that drives the session.

::

    Event
    ├── IncomingRequest   a REQUEST to answer (also the record of its answer state)
    ├── IncomingMessage   a MESSAGE for the message handler (already ACKed under v2)
    ├── AnswerReceived    a PARTIAL, REPLY or ERROR for one of our pending requests
    ├── AckReceived       the peer acknowledged one of our sends
    ├── CancelReceived    the peer gave up on a request we are answering
    ├── AnswerDropped     a late answer to a request this side gave up on
    └── FrameRejected     the frame could not be handled (an ERROR may have gone back)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .direction import Direction

if TYPE_CHECKING:
    from ..exceptions import ProtocolError
    from .pending import Pending

__all__ = [
    "ANSWERED",
    "CANCELLED",
    "OPEN",
    "AckReceived",
    "AnswerDropped",
    "AnswerReceived",
    "CancelReceived",
    "Event",
    "FrameRejected",
    "IncomingMessage",
    "IncomingRequest",
]

# The answer state of an IncomingRequest; only the Session changes it.
OPEN = 0
"""Not answered yet: PARTIALs, then one REPLY or ERROR, may be sent."""
ANSWERED = 1
"""A REPLY or ERROR was sent: nothing more may be."""
CANCELLED = 2
"""The requester gave up (CANCEL) or the connection closed: answers are dropped."""


class Event:
    """Base of the session's events."""

    __slots__ = ()


class IncomingRequest(Event):
    """A REQUEST from the peer; ``state`` tracks whether it has been answered."""

    __slots__ = ("key", "message", "state", "type")
    direction = Direction.REQUEST

    def __init__(self, key: str, type_: Any, message: Any) -> None:
        self.key = key
        self.type = type_
        self.message = message
        self.state = OPEN

    def __repr__(self) -> str:
        return f"<IncomingRequest {self.key} type={self.type!r} state={self.state}>"


class IncomingMessage(Event):
    """A one-way MESSAGE from the peer (``key`` only when the sender asked for an ACK)."""

    __slots__ = ("key", "message", "type")
    direction = Direction.MESSAGE

    def __init__(self, key: Any, type_: Any, message: Any) -> None:
        self.key = key
        self.type = type_
        self.message = message


class AnswerReceived(Event):
    """An answer to one of our requests. REPLY and ERROR end it; PARTIAL does not."""

    __slots__ = ("direction", "key", "message", "pending", "type")

    def __init__(
        self, pending: Pending, direction: Direction, key: Any, type_: Any, message: Any
    ) -> None:
        self.pending = pending
        self.direction = direction
        self.key = key
        self.type = type_
        self.message = message


class AckReceived(Event):
    """``wyre.v2``: the peer decoded the keyed message of ``pending``."""

    __slots__ = ("pending",)

    def __init__(self, pending: Pending) -> None:
        self.pending = pending


class CancelReceived(Event):
    """``wyre.v2``: the peer gave up on ``request``; its handler should stop."""

    __slots__ = ("request",)

    def __init__(self, request: IncomingRequest) -> None:
        self.request = request


class AnswerDropped(Event):
    """A late answer to a request this side abandoned (timeout, cancel): dropped quietly."""

    __slots__ = ("direction", "key")

    def __init__(self, direction: Direction, key: str) -> None:
        self.direction = direction
        self.key = key


class FrameRejected(Event):
    """A frame that could not be handled.

    ``replied`` says whether an ERROR went back to the peer (only for what
    may be a keyed request). The connection reports ``error`` and counts the
    frame with ``Session.penalise()``.
    """

    __slots__ = ("error", "replied")

    def __init__(self, error: ProtocolError, replied: bool) -> None:
        self.error = error
        self.replied = replied
