"""The envelope: where the protocol fields live inside a message.

By default the three fields sit at the top level of a JSON object under the
names ``key``, ``direction`` and ``type``. ``use("key", get, set)`` and friends
replace an accessor, as in the original; both ends must agree on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .codecs import Codec, default_codec

__all__ = ["Envelope", "Getter", "Setter"]

Getter = Callable[[Any], Any]
Setter = Callable[[Any, Any], None]


# The default accessors. (The session reads a default envelope's fields with
# plain dict look-ups inline: these serve the code that is not per frame.)
def _get_key(message: Any) -> Any:
    return message.get("key")


def _get_direction(message: Any) -> Any:
    return message.get("direction")


def _get_type(message: Any) -> Any:
    return message.get("type")


def _set_key(message: Any, key: Any) -> None:
    message["key"] = key


def _set_direction(message: Any, direction: str) -> None:
    message["direction"] = direction


@dataclass(frozen=True, slots=True)
class Envelope:
    """Accessors for the protocol fields, and the codec for whole frames.

    Getters receive the decoded message and return the field (or ``None``);
    setters receive the message and the value to store. The default accessors
    expect a dict; a frame that decodes to anything else is a protocol error.
    """

    get_key: Getter = _get_key
    set_key: Setter = _set_key
    get_direction: Getter = _get_direction
    set_direction: Setter = _set_direction
    get_type: Getter = _get_type
    codec: Codec = field(default_factory=default_codec)
    requires_dict: bool = True

    def using(
        self, kind: str, getter: Callable[..., Any], setter: Callable[..., Any] | None
    ) -> Envelope:
        """Return a copy with one accessor (or the codec) replaced.

        ``kind`` is ``"key"``, ``"direction"``, ``"type"`` or ``"codec"``; for
        the codec, ``getter`` decodes and ``setter`` encodes.

        Raises:
            ValueError: for an unknown kind, or a kind that needs a setter
                (key, direction, codec) given without one.
        """
        if not callable(getter) or (setter is not None and not callable(setter)):
            raise TypeError("use() takes functions")
        if kind == "type":
            return replace(self, get_type=getter, requires_dict=False)
        if setter is None:
            raise ValueError(f"use({kind!r}) needs a getter and a setter")
        if kind == "key":
            return replace(self, get_key=getter, set_key=setter, requires_dict=False)
        if kind == "direction":
            return replace(self, get_direction=getter, set_direction=setter, requires_dict=False)
        if kind == "codec":
            return replace(self, codec=Codec(decode=getter, encode=setter))
        raise ValueError(f"unknown use() kind {kind!r}: expected key, direction, type or codec")
