"""WebSocket frame rules that wyre applies itself, free of I/O (RFC 6455).

:class:`Assembler` turns data frames into messages for every driver, with
the same limits and close codes everywhere: a broken fragment sequence is
1002, invalid UTF-8 in a text message 1007, a message too large or in too
many fragments 1009. Each refusal is a :class:`FrameError` carrying the code
the driver closes with.
"""

from __future__ import annotations

from ..transport import MAX_FRAGMENTS

__all__ = ["BINARY", "CONTINUATION", "TEXT", "Assembler", "FrameError"]

CONTINUATION = 0x0
TEXT = 0x1
BINARY = 0x2


class FrameError(Exception):
    """A frame broke the rules; the connection must close with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"


class Assembler:
    """Joins the fragments of one message at a time; decodes text messages.

    ::

        assembler = Assembler(max_size=1 << 20)
        message = assembler.feed(TEXT, fin=True, payload=b"{}")   # "{}"

    ``feed`` returns the complete message (``str`` for text, ``bytes`` for
    binary) or ``None`` while fragments are missing. The cost is linear in
    the message size, however it is fragmented.
    """

    __slots__ = ("_fragments", "_max_fragments", "_max_size", "_opcode", "_size")

    def __init__(self, max_size: int | None, max_fragments: int = MAX_FRAGMENTS) -> None:
        self._max_size = max_size
        self._max_fragments = max_fragments
        self._fragments: list[bytes] | None = None
        self._opcode = TEXT
        self._size = 0

    def feed(self, opcode: int, fin: bool, payload: bytes) -> str | bytes | None:
        """Take one data frame (TEXT, BINARY or CONTINUATION).

        Raises:
            FrameError: 1002 for a continuation without a message or a new
                message inside a fragmented one, 1007 for invalid UTF-8 in a
                text message, 1009 for a message over ``max_size`` bytes or
                ``max_fragments`` frames. The assembler is then reset.
        """
        fragments = self._fragments
        if opcode != CONTINUATION:
            if fragments is not None:
                self._fragments = None
                raise FrameError(1002, "expected a continuation frame")
            if fin:  # the common case: a whole message in one frame
                if self._max_size is not None and len(payload) > self._max_size:
                    raise FrameError(1009, "message too big")
                return _decode(payload) if opcode == TEXT else bytes(payload)
            self._opcode = opcode
            self._size = 0
            fragments = self._fragments = []
        elif fragments is None:
            raise FrameError(1002, "unexpected continuation frame")
        fragments.append(payload)
        self._size += len(payload)
        if self._max_size is not None and self._size > self._max_size:
            self._fragments = None
            raise FrameError(1009, "message too big")
        if len(fragments) > self._max_fragments:
            self._fragments = None
            raise FrameError(1009, f"message in more than {self._max_fragments} fragments")
        if not fin:
            return None
        self._fragments = None
        data = b"".join(fragments)
        return _decode(data) if self._opcode == TEXT else data

    @property
    def in_message(self) -> bool:
        """Whether a fragmented message is under way (a CLOSE now is 1002)."""
        return self._fragments is not None


def _decode(data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise FrameError(1007, f"invalid UTF-8 at position {exc.start}") from None
