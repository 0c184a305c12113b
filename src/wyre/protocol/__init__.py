"""The protocol rules, free of I/O: directions, the envelope, codecs.

Nothing here imports asyncio or a WebSocket library, so these rules are the
same for every transport and can be tested without a socket.
"""

from .codecs import Codec, default_codec, json_codec, msgpack_codec, orjson_codec
from .direction import Direction, parse_direction
from .envelope import Envelope

__all__ = [
    "SUBPROTOCOL",
    "Codec",
    "Direction",
    "Envelope",
    "default_codec",
    "json_codec",
    "msgpack_codec",
    "orjson_codec",
    "parse_direction",
    "route_key",
]

SUBPROTOCOL = "wyre.v2"
"""The WebSocket subprotocol that switches on the ``ACK``/``CANCEL`` extensions."""


def route_key(type_: object) -> object:
    """Normalise a message type for handler lookup.

    The original kept handlers in a JavaScript object, whose keys are strings,
    so ``type: 5`` and ``type: "5"`` reach the same handler; so do they here.
    Integral floats (``5.0``, which JSON may produce) count as integers.
    """
    if type_.__class__ is str or type_ is None:
        return type_
    if isinstance(type_, bool):
        return "true" if type_ else "false"
    if isinstance(type_, float) and type_.is_integer():
        return str(int(type_))
    if isinstance(type_, int | float):
        return str(type_)
    return type_
