"""The ``direction`` field: what a frame is to the request it belongs to.

The original protocol knows five directions. ``wyre.v2`` (negotiated as a
WebSocket subprotocol, see ``docs/protocol.md``) adds two control frames,
``ACK`` and ``CANCEL``, that are only ever sent to a peer that offered it.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["SPELLINGS", "Direction", "parse_direction"]


class Direction(StrEnum):
    """A frame's direction, written upper-case on the wire."""

    MESSAGE = "MESSAGE"
    """A one-way message (also what an absent direction means)."""
    REQUEST = "REQUEST"
    """Asks for exactly one REPLY or ERROR, with any PARTIALs before it."""
    REPLY = "REPLY"
    """The successful end of a request."""
    ERROR = "ERROR"
    """The failed end of a request."""
    PARTIAL = "PARTIAL"
    """A piece of progress of a request; does not end it."""
    ACK = "ACK"
    """``wyre.v2``: the peer decoded the keyed MESSAGE with this key."""
    CANCEL = "CANCEL"
    """``wyre.v2``: the requester gave up on the request with this key."""


SPELLINGS: dict[object, Direction] = {d.value: d for d in Direction}
"""The exact upper-case spellings: what well-behaved peers send, so looked up first
(a dict hit is cheaper than upper-casing each frame's field)."""


def parse_direction(value: object) -> Direction | None:
    """Read a direction field, without regard to case; absent means MESSAGE.

    Returns ``None`` for anything that is not a known direction (a number, an
    unknown word), which the caller reports as a protocol error.
    """
    if value is None:
        return Direction.MESSAGE
    if value.__class__ is str:
        found = SPELLINGS.get(value)
        if found is None:
            found = SPELLINGS.get(value.upper())
        return found
    return None
