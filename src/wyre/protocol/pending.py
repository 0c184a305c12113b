"""What this side waits for: requests awaiting their answer, sends awaiting their ACK.

A :class:`Pending` is the session's record of one of them: its key, what it
waits for and its deadline (a number on the caller's clock). The asyncio
layer subclasses it (:class:`~wyre.Request`, :class:`~wyre.Delivery`) to add
the future an application awaits, so the table holds one object per request.

A request's life, as the session sees it::

    request()  ──>  WAITING ──PARTIAL──> WAITING
                       │
                       ├──REPLY / ERROR──>  settled (forgotten)
                       ├──deadline / abandon()──>  abandoned (key remembered, CANCEL under v2)
                       └──connection closed──>  failed
"""

from __future__ import annotations

from random import getrandbits
from typing import Any

__all__ = ["ABANDONED_MEMORY", "Pending", "new_key"]

ABANDONED_MEMORY = 1024
"""How many keys of abandoned requests are remembered, so that their late
answers are dropped quietly instead of being reported as protocol errors."""

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


class Pending:
    """One outgoing request or acknowledged send, waiting for the peer.

    Attributes:
        key: the key it was sent with (set by the session when it is sent).
        type: the message's type, for error messages.
        timeout: seconds it may wait, or None for no limit.
        deadline: ``timeout`` on the caller's clock, or None.
    """

    __slots__ = ("deadline", "key", "timeout", "type")

    def __init__(self) -> None:
        self.key: Any = None
        self.type: Any = None
        self.timeout: float | None = None
        self.deadline: float | None = None

    def describe(self) -> str:
        """``request 'add' (key)`` for error messages."""
        kind = "request" if self.type is None else f"request {self.type!r}"
        return f"{kind} ({self.key})"
