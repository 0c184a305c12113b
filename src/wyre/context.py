"""The message context: what a ``message`` or ``request`` handler receives.

It is also what a request resolves to (``reply.message`` is the reply object)
and what ``RequestError.context`` and each partial reply carry.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from .protocol import Direction

if TYPE_CHECKING:
    from .connection import Connection
    from .request import Callback

__all__ = ["Context"]

# A request's answer state: still open, answered (REPLY/ERROR sent), or
# cancelled by the requester or by the connection closing.
OPEN = 0
ANSWERED = 1
CANCELLED = 2


class Context:
    """One received message, with the means to answer it if it is a request.

    Attributes:
        message: the decoded message object, protocol fields included.
        type: the message's type (as sent), or ``None``.
        connection: the :class:`~wyre.Connection` it arrived on.
        key: the request key, or ``None``.
        direction: its :class:`~wyre.Direction`.
    """

    __slots__ = ("_state", "connection", "direction", "key", "message", "type")

    def __init__(
        self,
        message: Any,
        type_: Any,
        connection: Connection,
        key: Any,
        direction: Direction,
    ) -> None:
        self.message = message
        self.type = type_
        self.connection = connection
        self.key = key
        self.direction = direction
        self._state = OPEN

    @property
    def answered(self) -> bool:
        """Whether a REPLY or ERROR was sent (or the requester cancelled)."""
        return self._state != OPEN

    def reply(
        self,
        message: Any = None,
        options: Any = None,
        callback: Callback | None = None,
        **flags: Any,
    ) -> Awaitable[None]:
        """Answer the request: copy its key into ``message``, mark it REPLY, send it.

        Ends the request; a second answer raises
        :class:`~wyre.LocalProtocolError`. Awaitable like
        :meth:`Connection.send <wyre.Connection.send>`; awaiting it is optional.
        """
        return self.connection._answer(self, message, Direction.REPLY, options, callback, flags)

    def error(
        self,
        message: Any = None,
        options: Any = None,
        callback: Callback | None = None,
        **flags: Any,
    ) -> Awaitable[None]:
        """Fail the request: like :meth:`reply`, marked ERROR."""
        return self.connection._answer(self, message, Direction.ERROR, options, callback, flags)

    def partial(
        self,
        message: Any = None,
        options: Any = None,
        callback: Callback | None = None,
        **flags: Any,
    ) -> Awaitable[None]:
        """Send a piece of progress (PARTIAL); the request stays open."""
        return self.connection._answer(self, message, Direction.PARTIAL, options, callback, flags)

    def __repr__(self) -> str:
        return f"<Context {self.direction} type={self.type!r} key={self.key!r}>"
