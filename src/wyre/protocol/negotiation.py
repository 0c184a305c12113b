"""Which protocol a connection speaks: the subprotocols offered and selected.

``wyre.v2`` (ACK and CANCEL, see ``docs/protocol.md``) is on only when the
server *selected* it. An echoed subprotocol alone proves little: the original
wyre's ``ws`` server selects the first subprotocol a client offers, whatever
it is. So a client offers the placeholder :data:`BASE_SUBPROTOCOL` before
``wyre.v2``: an original server echoes the placeholder (base protocol, no
extensions), while a wyre server, which knows both, selects ``wyre.v2``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["BASE_SUBPROTOCOL", "SUBPROTOCOL", "extensions_agreed", "offer", "select"]

SUBPROTOCOL = "wyre.v2"
"""The WebSocket subprotocol that switches on the ``ACK``/``CANCEL`` extensions."""

BASE_SUBPROTOCOL = "wyre"
"""The original protocol, offered first so that a server that echoes the first
offer cannot switch the extensions on by accident."""


def offer(application: Iterable[str], extensions: bool) -> list[str]:
    """What a client offers: the application's subprotocols, then wyre's own.

    Without extensions nothing of wyre's is offered, so the handshake is the
    original's byte for byte.
    """
    offered = [p for p in application if p not in (BASE_SUBPROTOCOL, SUBPROTOCOL)]
    if extensions:
        offered += [BASE_SUBPROTOCOL, SUBPROTOCOL]
    return offered


def select(offered: Sequence[str], accepted: Iterable[str], extensions: bool) -> str | None:
    """What a server selects: an application subprotocol it accepts, else wyre's best.

    ``wyre.v2`` when offered and ``extensions`` is on; else the placeholder
    when offered (a browser fails a handshake that selects none of its
    offers); else nothing.
    """
    for name in accepted:
        if name in offered:
            return name
    if extensions and SUBPROTOCOL in offered:
        return SUBPROTOCOL
    if BASE_SUBPROTOCOL in offered:
        return BASE_SUBPROTOCOL
    return None


def extensions_agreed(selected: str | None) -> bool:
    """Whether a connection whose handshake selected ``selected`` speaks ``wyre.v2``."""
    return selected == SUBPROTOCOL
