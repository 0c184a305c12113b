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

MessagePack (:func:`msgpack_codec`, the ``msgpack`` extra) is the binary
alternative, spoken on a connection only when both ends agreed on it in the
handshake (``docs/protocol.md``, "Negotiation"). Its frames are binary. It
treats values so that a message means the same under either codec wherever
JSON can say it:

* the types JSON codecs write in a form of their own are written in the
  same form (``datetime``/``date``/``time`` as ISO 8601 strings, ``UUID`` as
  its string, a dataclass as a map of its fields, an ``Enum`` member as its
  value), so a handler reads the same message whichever codec it came by;
* what MessagePack carries natively it keeps: ``bytes`` (its ``bin`` type,
  read back as ``bytes``; the JSON codecs refuse them), map keys that are
  not strings (an ``int`` key stays an ``int``; JSON writes it as a string),
  and ``NaN`` and the infinities (floats; JSON writes ``null``);
* integers must fit in 64 bits (signed or unsigned); larger ones are refused;
* on reading, extension types (timestamps included) are refused, since no
  wyre peer writes them, and so is anything after the first value. A frame
  that is not a map reaches the session as any non-object does.
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

__all__ = ["Codec", "default_codec", "json_codec", "msgpack_codec", "orjson_codec"]


@dataclass(frozen=True, slots=True)
class Codec:
    """A named pair of functions turning frames into messages and back.

    ``fallback``, when given, encodes what ``encode`` raised for: a slow
    path kept off the fast one (orjson's ``dumps`` is called directly, and
    only the values it refuses go through Python).

    ``binary`` says that every frame is a binary WebSocket frame (MessagePack
    is not text); a text codec's frames are text unless a send asks for
    binary. It is a property of the codec, not of each send, so that a
    connection decides it once rather than per frame.
    """

    decode: Callable[[str | bytes], Any]
    encode: Callable[[Any], str | bytes]
    name: str = "custom"
    fallback: Callable[[Any], str | bytes] | None = None
    binary: bool = False


_NO_FORM: Any = object()


def _plain(value: Any) -> Any:
    """The form every codec writes for a type outside JSON's own, or ``_NO_FORM``."""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return _NO_FORM


def _extra(value: Any) -> Any:
    """The JSON form of the non-JSON types both codecs accept (see the module docstring)."""
    form = _plain(value)
    if form is _NO_FORM:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
    return form


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


def _msgpack_extra(value: Any) -> Any:
    """What MessagePack writes for the types it has no form for: as the JSON codecs do."""
    form = _plain(value)
    if form is not _NO_FORM:
        return form
    if isinstance(value, int):  # only an integer that does not fit in 64 bits gets here
        raise OverflowError("an integer beyond 64 bits cannot be written in MessagePack")
    raise TypeError(f"{type(value).__name__} cannot be written in MessagePack")


def _refuse_extension(code: int, data: bytes) -> Any:
    raise ValueError(f"MessagePack extension type {code} is not accepted")


def msgpack_codec() -> Codec:
    """MessagePack through ``msgpack``, binary frames (see the module docstring).

    Raises:
        ImportError: msgpack is not installed (the message names the extra to install).
    """
    try:
        import msgpack
    except ImportError as exc:
        raise ImportError(
            "codec='msgpack' needs the msgpack package: pip install 'pywyre[msgpack]'",
            name="msgpack",
        ) from exc

    # One packer per codec (an endpoint makes its own): reusing it saves building
    # one per frame. It is left reset when packing raises.
    pack = msgpack.Packer(default=_msgpack_extra, use_bin_type=True, datetime=False).pack
    unpackb = msgpack.unpackb

    def decode(data: str | bytes) -> Any:
        # raw=False: str is str and bin is bytes. strict_map_key=False: int keys.
        # max_ext_len=0 refuses every extension with a payload (timestamps are
        # decoded before ext_hook is asked), ext_hook the empty ones.
        return unpackb(
            data, raw=False, strict_map_key=False, ext_hook=_refuse_extension, max_ext_len=0
        )

    return Codec(decode=decode, encode=pack, name="msgpack", binary=True)


def default_codec() -> Codec:
    """``orjson`` when installed, else the standard library's JSON."""
    try:
        return orjson_codec()
    except ImportError:
        return json_codec()
