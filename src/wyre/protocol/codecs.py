"""Codecs: how a message object becomes a frame and back.

A codec is a pair of functions. ``decode`` takes a frame's payload (``str``
for a text frame, ``bytes`` for a binary one) and returns the message object;
``encode`` does the reverse and may return ``str`` or ``bytes`` (UTF-8 JSON
bytes are still sent as a text frame unless the ``binary`` flag is set).

The default is JSON, as in the original. When ``orjson`` is installed (the
``fast`` extra) it is used, because it is several times faster than the
standard library on both sides and produces the same compact JSON.

Both JSON codecs accept and refuse the same things, so code that works
where orjson is installed works where it is not:

* they encode, besides JSON's own types, ``datetime``/``date``/``time``
  (ISO 8601), ``UUID`` (its string), dataclass instances (their fields) and
  ``Enum`` members (their value); dict keys may be ``str``, ``int``,
  ``float``, ``bool`` or ``None`` (written as strings, as JSON requires);
* ``NaN`` and the infinities, which are not JSON, are written as ``null``,
  exactly as JavaScript's ``JSON.stringify`` (the original wyre's encoder)
  and orjson write them, and refused when a frame contains them (as
  literals, or as numbers too large for a float).

Two differences remain, both on reading: integers beyond 64 bits are read
exactly by json and as floats by orjson (JavaScript peers cannot represent
integers beyond 2**53 exactly anyway: send such numbers as strings), and a
lone surrogate escape (``"\\ud800"``) is accepted by json and refused by
orjson.

(Refusing them on the way out instead would cost a scan of every encoded
message, more than orjson's whole encoding of a small one.)
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Codec", "default_codec", "json_codec", "orjson_codec"]


@dataclass(frozen=True, slots=True)
class Codec:
    """A named pair of functions turning frames into messages and back.

    ``fallback``, when given, encodes what ``encode`` raised for: a slow
    path kept off the fast one (orjson's ``dumps`` is called directly, and
    only the values it refuses go through Python).
    """

    decode: Callable[[str | bytes], Any]
    encode: Callable[[Any], str | bytes]
    name: str = "custom"
    fallback: Callable[[Any], str | bytes] | None = None


def _extra(value: Any) -> Any:
    """The JSON form of the non-JSON types both codecs accept (see the module docstring)."""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Compact separators and raw UTF-8: the same bytes JSON.stringify writes.
_encode_strict = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_extra
).encode


def _finite(value: Any) -> Any:
    """``value`` with every NaN and infinity replaced by None (what JSON.stringify writes)."""
    if value.__class__ is float:
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {_finite(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, enum.Enum) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    ):
        return _finite(_extra(value))
    return value


def _encode_json(message: Any) -> bytes:
    try:
        text = _encode_strict(message)
    except ValueError:
        text = _encode_strict(_finite(message))  # a NaN or infinity: null, as in JavaScript
    # Encoded here rather than by the transport, so that a string that is not
    # valid Unicode (a lone surrogate) is a CodecError, not a failed write.
    return text.encode()


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


# One decoder for every frame: json.loads() with options would build one per call.
_decode_text = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float).decode


def _decode_json(data: str | bytes) -> Any:
    return _decode_text(data if data.__class__ is str else data.decode())  # type: ignore[union-attr]


def json_codec() -> Codec:
    """JSON through the standard library."""
    return Codec(decode=_decode_json, encode=_encode_json, name="json")


def orjson_codec() -> Codec:
    """JSON through ``orjson``; raises ``ImportError`` when it is not installed."""
    import orjson

    # What orjson refuses (int keys, integers over 64 bits, a NaN in an Enum)
    # goes through the json codec: both accept and write exactly the same.
    return Codec(decode=orjson.loads, encode=orjson.dumps, name="orjson", fallback=_encode_json)


def default_codec() -> Codec:
    """``orjson`` when installed, else the standard library's JSON."""
    try:
        return orjson_codec()
    except ImportError:
        return json_codec()
