"""The handler registry: which function gets an event, by event and type.

A handler registered with a type wins over the untyped handler of the same
event for that type; the untyped one gets every other message. Registering
again for the same event and type replaces the handler, as in the original.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from .protocol import route_key

__all__ = ["EVENTS", "Handler", "Router"]

Handler = Callable[..., Any]
"""A plain or coroutine function; its arguments depend on the event."""

EVENTS: Final = frozenset(
    {"connection", "message", "request", "close", "error", "reconnecting", "reconnected"}
)


class Router:
    """Handlers by event, then by normalised type (see :func:`~wyre.protocol.route_key`).

    ``typed[event]`` and ``untyped`` are plain dicts so the dispatch path can
    look a handler up with one or two dict hits and no allocation.
    """

    __slots__ = ("find_message", "find_request", "typed", "untyped")

    def __init__(self) -> None:
        self.typed: dict[str, dict[object, Handler]] = {event: {} for event in EVENTS}
        self.untyped: dict[str, Handler] = {}
        self.find_request = self._finder("request")
        """``find_request(type)``: the request handler for a message type, or None."""
        self.find_message = self._finder("message")
        """``find_message(type)``: the message handler for a message type, or None."""

    def _finder(self, event: str) -> Callable[[object], Handler | None]:
        """A lookup for one event, bound to its tables: the per-frame path."""
        typed = self.typed[event]
        untyped = self.untyped

        def find(type_: object) -> Handler | None:
            if type_ is not None:
                try:
                    handler = typed.get(type_ if type_.__class__ is str else route_key(type_))
                except TypeError:  # an unhashable type (a list...) has no typed handler
                    handler = None
                if handler is not None:
                    return handler
            return untyped.get(event)

        return find

    def add(self, event: str, type_: object, handler: Handler) -> None:
        """Register ``handler`` for ``event`` (and ``type_``, unless it is None).

        Raises:
            ValueError: for an unknown event, or a type on an event without types.
            TypeError: if ``handler`` is not callable.
        """
        self.check(event, type_)
        if not callable(handler):
            raise TypeError(f"handler for {event!r} is not callable: {handler!r}")
        if type_ is None:
            self.untyped[event] = handler
        else:
            self.typed[event][route_key(type_)] = handler

    def remove(self, event: str, type_: object = None) -> None:
        """Unregister the handler for ``event`` (and ``type_``), if any.

        Raises:
            ValueError: as for :meth:`check`.
        """
        self.check(event, type_)
        if type_ is None:
            self.untyped.pop(event, None)
        else:
            self.typed[event].pop(route_key(type_), None)

    @staticmethod
    def check(event: str, type_: object = None) -> None:
        """Raise ValueError unless ``event`` (with ``type_``) can have a handler."""
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}: expected one of {sorted(EVENTS)}")
        if type_ is not None and event not in ("message", "request"):
            raise ValueError(f"the {event!r} event has no types")
