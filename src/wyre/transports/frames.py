"""WebSocket frame rules that wyre applies itself, free of I/O (RFC 6455).

:class:`Assembler` turns data frames into messages for every driver, with
the same limits and close codes everywhere: a broken fragment sequence is
1002, invalid UTF-8 in a text message 1007, a message too large or in too
many fragments 1009. Each refusal is a :class:`FrameError` carrying the code
the driver closes with.

:class:`FrameWriter` serialises outgoing frames for a driver whose library
does not (or not fast enough): data frames, unmasked from a server and
masked from a client, control frames, and close frames with any code an
application may send (4000-4999 included). :func:`parse_close` checks the
payload of a close frame received from the peer.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

from ..transport import MAX_FRAGMENTS

try:  # websockets' C helper; websockets is wyre's hard dependency anyway
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its C extension
    from websockets.utils import apply_mask

__all__ = [
    "BINARY",
    "CLOSE",
    "CONTINUATION",
    "MASK_POOL",
    "PING",
    "PONG",
    "TEXT",
    "Assembler",
    "FrameError",
    "FrameWriter",
    "data_frame",
    "parse_close",
]

CONTINUATION = 0x0
TEXT = 0x1
BINARY = 0x2
CLOSE = 0x8
PING = 0x9
PONG = 0xA

MASK_POOL = 4096
"""Bytes of masking keys drawn from ``os.urandom`` at a time: 1024 frames' worth."""

_EXTERNAL_CLOSE_CODES = frozenset((1000, 1001, 1002, 1003, *range(1007, 1015)))
"""Codes below 3000 that a close frame may carry (RFC 6455 7.4.1, IANA registry).

1004 is reserved; 1005, 1006 and 1015 only report what happened locally and
must never be sent."""

_TEXT_HEADERS = [bytes((0x80 | TEXT, n)) for n in range(126)]
_BINARY_HEADERS = [bytes((0x80 | BINARY, n)) for n in range(126)]
_pack_8 = struct.Struct("!BB").pack
_pack_16 = struct.Struct("!BBH").pack
_pack_64 = struct.Struct("!BBQ").pack
_pack_code = struct.Struct("!H").pack


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
        """Whether a fragmented message is under way (its next frame must be a continuation)."""
        return self._fragments is not None


def _decode(data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise FrameError(1007, f"invalid UTF-8 at position {exc.start}") from None


class FrameWriter:
    """Serialises frames for one end of a connection, appending them to a bytearray.

    ::

        writer = FrameWriter(mask=True)           # a client masks every frame
        out = bytearray()
        writer.data(out, '{"a": 1}', binary=False)
        writer.close(out, 4000, "bye")
        sock.write(out)

    A server's frames are unmasked; a client's are masked with a fresh
    4-byte key each (RFC 6455 5.3), taken from a pool that ``os.urandom``
    refills every 1024 frames.
    """

    __slots__ = ("_mask_at", "_masks", "mask")

    def __init__(self, mask: bool) -> None:
        self.mask = mask
        self._masks = os.urandom(MASK_POOL) if mask else b""
        self._mask_at = 0

    def data(self, out: bytearray, payload: str | bytes, binary: bool) -> None:
        """Append one whole data frame: text unless ``binary`` (str is encoded as UTF-8)."""
        if not self.mask:
            data_frame(out, payload, binary)
            return
        if payload.__class__ is str:
            payload = payload.encode()
        size = len(payload)
        first = 0x82 if binary else 0x81
        if size < 126:
            out += _pack_8(first, 0x80 | size)
        elif size < 65536:
            out += _pack_16(first, 0xFE, size)
        else:
            out += _pack_64(first, 0xFF, size)
        key = self._key()
        out += key
        out += apply_mask(payload, key)  # type: ignore[arg-type]

    def data_writer(self) -> Callable[[bytearray, str | bytes, bool], None]:
        """The fastest callable doing what :meth:`data` does, for a hot path to keep."""
        return self.data if self.mask else data_frame

    def frame(self, out: bytearray, opcode: int, payload: bytes, *, fin: bool = True) -> None:
        """Append any frame, e.g. a ping or one fragment of a message."""
        size = len(payload)
        first = (0x80 if fin else 0) | opcode
        mask_bit = 0x80 if self.mask else 0
        if size < 126:
            out += _pack_8(first, mask_bit | size)
        elif size < 65536:
            out += _pack_16(first, mask_bit | 126, size)
        else:
            out += _pack_64(first, mask_bit | 127, size)
        if self.mask:
            key = self._key()
            out += key
            out += apply_mask(payload, key)
        else:
            out += payload

    def close(self, out: bytearray, code: int, reason: str = "") -> None:
        """Append a close frame with ``code`` and ``reason``.

        The reason is cut at a character boundary to fit the 125 bytes a
        control frame may carry.
        """
        encoded = reason.encode()
        if len(encoded) > 123:
            encoded = encoded[:123].decode(errors="ignore").encode()
        self.frame(out, CLOSE, _pack_code(code) + encoded)

    def _key(self) -> bytes:
        """Four bytes from the pool; a strong source at one system call per 1024 frames."""
        at = self._mask_at
        if at >= MASK_POOL:
            self._masks = os.urandom(MASK_POOL)
            at = 0
        self._mask_at = at + 4
        return self._masks[at : at + 4]


def data_frame(out: bytearray, payload: str | bytes, binary: bool) -> None:
    """Append one whole unmasked data frame (a server's): text unless ``binary``."""
    if payload.__class__ is str:
        payload = payload.encode()
    size = len(payload)
    if size < 126:  # the common case: a precomputed two-byte header
        out += (_BINARY_HEADERS if binary else _TEXT_HEADERS)[size]
    else:
        first = 0x82 if binary else 0x81
        out += _pack_16(first, 126, size) if size < 65536 else _pack_64(first, 127, size)
    out += payload  # type: ignore[arg-type]


def parse_close(payload: bytes) -> tuple[int, str]:
    """The (code, reason) of a received close frame's payload; (1005, "") for an empty one.

    Raises:
        FrameError: 1002 for a one-byte payload or a code a close frame may
            not carry (RFC 6455 7.4: 1000-1003, 1007-1014 and 3000-4999 are
            allowed), 1007 for a reason that is not UTF-8.
    """
    if not payload:
        return 1005, ""
    if len(payload) < 2:
        raise FrameError(1002, "close frame too short")
    code = (payload[0] << 8) | payload[1]
    if not (code in _EXTERNAL_CLOSE_CODES or 3000 <= code < 5000):
        raise FrameError(1002, f"invalid close code {code}")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError as exc:
        raise FrameError(1007, f"invalid UTF-8 in close reason at position {exc.start}") from None
    return code, reason
