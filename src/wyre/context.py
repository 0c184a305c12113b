"""The message context: what a ``message`` or ``request`` handler receives.

It is also what a request resolves to (``reply.message`` is the reply object)
and what ``RequestError.context`` and each partial reply carry.

``message`` is the object exactly as the peer sent it, protocol fields
(``key``, ``direction``, ``type``) included, as in the original: code ported
from a JavaScript handler reads the same fields, and stripping them would
cost a copy of every message. ``ctx.key`` and ``ctx.direction`` hold them
too. Outgoing messages, on the other hand, are never modified: ``request()``,
``send(ack=True)`` and the answers send a copy with the fields added.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from .protocol import Direction
from .protocol.events import OPEN, AnswerReceived, IncomingMessage, IncomingRequest

if TYPE_CHECKING:
    from .connection import Connection
    from .request import Callback

__all__ = ["Context"]


class Context:
    """One received message, with the means to answer it if it is a request.

    A thin view of the session's record of the frame, made once per frame.

    Attributes:
        message: the decoded message object, protocol fields included.
        type: the message's type (as sent), or ``None``.
        connection: the :class:`~wyre.Connection` it arrived on.
        key: the request key, or ``None``.
        direction: its :class:`~wyre.Direction`.
    """

    __slots__ = ("_event", "connection")

    def __init__(
        self, event: IncomingRequest | IncomingMessage | AnswerReceived, connection: Connection
    ) -> None:
        self._event = event  # for a request, also the record of its answer state
        self.connection = connection

    @property
    def message(self) -> Any:
        """The decoded message object, protocol fields included."""
        return self._event.message

    @property
    def type(self) -> Any:
        """The message's type (as sent), or ``None``."""
        return self._event.type

    @property
    def key(self) -> Any:
        """The request key, or ``None``."""
        return self._event.key

    @property
    def direction(self) -> Direction:
        """REQUEST, MESSAGE, or for an answer PARTIAL, REPLY or ERROR."""
        return self._event.direction

    @property
    def answered(self) -> bool:
        """Whether a REPLY or ERROR was sent (or the requester cancelled)."""
        event = self._event
        return event.__class__ is IncomingRequest and event.state != OPEN

    def reply(
        self,
        message: Any = None,
        options: Any = None,
        callback: Callback | None = None,
        *,
        binary: bool = False,
        compress: bool | None = None,
        mask: bool | None = None,
    ) -> Awaitable[None]:
        """Answer the request: send ``message`` (a copy, with the request's key) as its REPLY.

        Ends the request. Awaitable like :meth:`Connection.send
        <wyre.Connection.send>`; awaiting it is optional. After the requester
        cancelled, the answer is dropped.

        Raises:
            LocalProtocolError: the request was already answered, or this
                context is not a request.
            TypeError: ``message`` is not a dict.
            CodecError, ConnectionClosed: from the awaitable (or to the callback);
                the request stays open after a CodecError, so an ERROR can follow.
        """
        return self.connection._answer(self, Direction.REPLY, message, options, callback, binary)

    def error(
        self,
        message: Any = None,
        options: Any = None,
        callback: Callback | None = None,
        *,
        binary: bool = False,
        compress: bool | None = None,
        mask: bool | None = None,
    ) -> Awaitable[None]:
        """Fail the request: like :meth:`reply`, marked ERROR."""
        return self.connection._answer(self, Direction.ERROR, message, options, callback, binary)

    def partial(
        self,
        message: Any = None,
        options: Any = None,
        callback: Callback | None = None,
        *,
        binary: bool = False,
        compress: bool | None = None,
        mask: bool | None = None,
    ) -> Awaitable[None]:
        """Send a piece of progress (PARTIAL); the request stays open."""
        return self.connection._answer(self, Direction.PARTIAL, message, options, callback, binary)

    def __repr__(self) -> str:
        return f"<Context {self.direction} type={self.type!r} key={self.key!r}>"
