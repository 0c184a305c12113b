"""Codecs: how a message object becomes a frame and back.

A codec is a pair of functions. ``decode`` takes a frame's payload (``str``
for a text frame, ``bytes`` for a binary one) and returns the message object;
``encode`` does the reverse and may return ``str`` or ``bytes`` (UTF-8 JSON
bytes are still sent as a text frame unless the ``binary`` flag is set).

The default is JSON, as in the original. When ``orjson`` is installed (the
``fast`` extra) it is used, because it is several times faster than the
standard library on both sides and produces the same compact JSON.
"""

from __future__ import annotations

import json
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


# Compact separators and raw UTF-8: the same bytes JSON.stringify writes.
_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def json_codec() -> Codec:
    """JSON through the standard library."""
    return Codec(decode=json.loads, encode=_encode_json, name="json")


def orjson_codec() -> Codec:
    """JSON through ``orjson``; raises ``ImportError`` when it is not installed."""
    import orjson

    return Codec(decode=orjson.loads, encode=orjson.dumps, name="orjson")


def default_codec() -> Codec:
    """``orjson`` when installed, else the standard library's JSON."""
    try:
        return orjson_codec()
    except ImportError:
        return json_codec()
