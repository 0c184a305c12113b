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
* they refuse ``NaN`` and the infinities both ways: they are not JSON, and a
  JavaScript peer cannot parse them.
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
    """A named pair of functions turning frames into messages and back."""

    decode: Callable[[str | bytes], Any]
    encode: Callable[[Any], str | bytes]
    name: str = "custom"


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
_encode_json = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_extra
).encode


def _decode_json(data: str | bytes) -> Any:
    return json.loads(data, parse_constant=_refuse_constant)


def json_codec() -> Codec:
    """JSON through the standard library."""
    return Codec(decode=_decode_json, encode=_encode_json, name="json")


def _has_non_finite(value: Any) -> bool:
    """Whether a float NaN or infinity hides in ``value`` (orjson writes those as null)."""
    if value.__class__ is float:
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_non_finite(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(_has_non_finite(getattr(value, f.name)) for f in dataclasses.fields(value))
    return False


def orjson_codec() -> Codec:
    """JSON through ``orjson``; raises ``ImportError`` when it is not installed."""
    import orjson

    dumps = orjson.dumps
    non_str_keys = orjson.OPT_NON_STR_KEYS

    def encode(message: Any) -> bytes:
        try:
            data = dumps(message)
        except TypeError:
            # What orjson alone refuses but the json codec accepts (int keys,
            # integers over 64 bits): the same result the slow way.
            try:
                data = dumps(message, option=non_str_keys)
            except TypeError:
                return _encode_json(message).encode()
        if b"null" in data and _has_non_finite(message):
            raise ValueError("NaN and infinities are not JSON")
        return data

    return Codec(decode=orjson.loads, encode=encode, name="orjson")


def default_codec() -> Codec:
    """``orjson`` when installed, else the standard library's JSON."""
    try:
        return orjson_codec()
    except ImportError:
        return json_codec()
