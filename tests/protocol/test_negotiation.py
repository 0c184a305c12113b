"""What a client offers and a server selects, the codec included, without a socket."""

from __future__ import annotations

import pytest

from wyre.protocol.negotiation import (
    MSGPACK_SUBPROTOCOL,
    extensions_agreed,
    msgpack_agreed,
    offer,
    select,
)


def test_a_msgpack_client_offers_it_between_the_placeholder_and_wyre_v2() -> None:
    assert offer(["chat"], extensions=True, msgpack=True) == [
        "chat", "wyre", "wyre.v2.msgpack", "wyre.v2",
    ]  # fmt: skip
    assert offer(["chat"], extensions=True) == ["chat", "wyre", "wyre.v2"]
    assert offer([], extensions=False, msgpack=True) == []  # the original's handshake
    # wyre's own names given as application subprotocols are not offered twice
    assert offer(["wyre.v2.msgpack", "wyre"], extensions=True, msgpack=True) == [
        "wyre", "wyre.v2.msgpack", "wyre.v2",
    ]  # fmt: skip


MSGPACK_OFFER = ["wyre", "wyre.v2.msgpack", "wyre.v2"]


@pytest.mark.parametrize(
    ("offered", "msgpack", "extensions", "selected"),
    [
        (MSGPACK_OFFER, True, True, "wyre.v2.msgpack"),
        (MSGPACK_OFFER, False, True, "wyre.v2"),  # a JSON-only server: the client falls back
        (MSGPACK_OFFER, True, False, "wyre"),  # no extensions: the base protocol, in JSON
        (["wyre", "wyre.v2"], True, True, "wyre.v2"),  # a JSON client of a msgpack server
        (["wyre.v2.msgpack"], False, True, None),
        (["wyre"], True, True, "wyre"),
        ([], True, True, None),
    ],
)
def test_a_server_selects_msgpack_only_when_both_ends_speak_it(
    offered: list[str], msgpack: bool, extensions: bool, selected: str | None
) -> None:
    assert select(offered, (), extensions, msgpack) == selected


def test_an_application_subprotocol_still_wins() -> None:
    assert select(["chat", *MSGPACK_OFFER], ["chat"], True, True) == "chat"


def test_what_each_agreement_means() -> None:
    assert extensions_agreed(MSGPACK_SUBPROTOCOL) and msgpack_agreed(MSGPACK_SUBPROTOCOL)
    assert extensions_agreed("wyre.v2") and not msgpack_agreed("wyre.v2")
    for other in ("wyre", "chat", None):
        assert not extensions_agreed(other) and not msgpack_agreed(other)
