"""Which protocol a connection speaks: the subprotocols offered and selected.

``wyre.v2`` (ACK and CANCEL, see ``docs/protocol.md``) is on only when the
server *selected* it. An echoed subprotocol alone proves little: the original
wyre's ``ws`` server selects the first subprotocol a client offers, whatever
it is. So a client offers the placeholder :data:`BASE_SUBPROTOCOL` before
``wyre.v2``: an original server echoes the placeholder (base protocol, no
extensions), while a wyre server, which knows both, selects ``wyre.v2``.

The codec is negotiated the same way, per connection: :data:`MSGPACK_SUBPROTOCOL`
is ``wyre.v2`` spoken in MessagePack. A client that wants it offers it just
before ``wyre.v2``; a server that speaks it selects it, any other selects
``wyre.v2`` (or less), and the connection speaks JSON. So one server serves
JSON and MessagePack clients at once, and a client that asked for MessagePack
still connects to a server that knows only JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = [
    "BASE_SUBPROTOCOL",
    "MSGPACK_SUBPROTOCOL",
    "SUBPROTOCOL",
    "extensions_agreed",
    "msgpack_agreed",
    "offer",
    "select",
]

SUBPROTOCOL = "wyre.v2"
"""The WebSocket subprotocol that switches on the ``ACK``/``CANCEL`` extensions."""

MSGPACK_SUBPROTOCOL = "wyre.v2.msgpack"
"""``wyre.v2`` with every frame a binary MessagePack map instead of JSON text."""

BASE_SUBPROTOCOL = "wyre"
"""The original protocol, offered first so that a server that echoes the first
offer cannot switch the extensions on by accident."""

_OWN = (BASE_SUBPROTOCOL, MSGPACK_SUBPROTOCOL, SUBPROTOCOL)


def offer(application: Iterable[str], extensions: bool, msgpack: bool = False) -> list[str]:
    """What a client offers: the application's subprotocols, then wyre's own.

    ``wyre``, then ``wyre.v2.msgpack`` when ``msgpack`` is asked for, then
    ``wyre.v2``: best first after the placeholder, which must stay first for
    servers that echo the first offer. Without extensions nothing of wyre's
    is offered (MessagePack included: it is a form of ``wyre.v2``), so the
    handshake is the original's byte for byte.
    """
    offered = [p for p in application if p not in _OWN]
    if extensions:
        offered.append(BASE_SUBPROTOCOL)
        if msgpack:
            offered.append(MSGPACK_SUBPROTOCOL)
        offered.append(SUBPROTOCOL)
    return offered


def select(
    offered: Sequence[str], accepted: Iterable[str], extensions: bool, msgpack: bool = False
) -> str | None:
    """What a server selects: an application subprotocol it accepts, else wyre's best.

    ``wyre.v2.msgpack`` when offered and both ``extensions`` and ``msgpack``
    are on; else ``wyre.v2`` when offered and ``extensions`` is on; else the
    placeholder when offered (a browser fails a handshake that selects none
    of its offers); else nothing.
    """
    for name in accepted:
        if name in offered:
            return name
    if extensions:
        if msgpack and MSGPACK_SUBPROTOCOL in offered:
            return MSGPACK_SUBPROTOCOL
        if SUBPROTOCOL in offered:
            return SUBPROTOCOL
    if BASE_SUBPROTOCOL in offered:
        return BASE_SUBPROTOCOL
    return None


def extensions_agreed(selected: str | None) -> bool:
    """Whether a connection whose handshake selected ``selected`` speaks ``wyre.v2``."""
    return selected in (SUBPROTOCOL, MSGPACK_SUBPROTOCOL)


def msgpack_agreed(selected: str | None) -> bool:
    """Whether a connection whose handshake selected ``selected`` speaks MessagePack."""
    return selected == MSGPACK_SUBPROTOCOL
