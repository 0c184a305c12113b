"""The backplane envelope, without I/O: what one node writes, another reads."""

from __future__ import annotations

import pytest

import wyre
from wyre.backplane.envelope import Envelope, EnvelopeError, Kind, decode, encode


@pytest.mark.parametrize("kind", list(Kind))
def test_every_kind_reads_back_as_written(kind: Kind) -> None:
    envelope = Envelope(
        kind, "node-a", "conn-1", "call-9", {"timeout": 2.5, "x": [1]}, b'{"a":1}\n'
    )
    assert decode(encode(envelope, 1 << 20)) == envelope


def test_a_payload_may_hold_anything() -> None:
    payload = bytes(range(256)) * 4
    envelope = Envelope(Kind.BROADCAST, "n", payload=payload, extras={"group": "a b\nc"})
    assert decode(encode(envelope, 1 << 20)).payload == payload


def test_an_envelope_over_the_limit_fails_where_it_is_made() -> None:
    envelope = Envelope(Kind.SEND, "n", "c", payload=b"x" * 2000)
    with pytest.raises(wyre.LimitExceeded, match="2"):
        encode(envelope, 1024)


@pytest.mark.parametrize("word", ["", "a b", "a\nb"])
def test_routing_fields_cannot_break_the_header(word: str) -> None:
    with pytest.raises(ValueError):
        encode(Envelope(Kind.SEND, word), 1024)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"wyre2 send n c k\n{}\n",  # another version
        b"wyre1 nonsense n c k\n{}\n",  # an unknown kind
        b"wyre1 send n c\n{}\n",  # a field missing
        b"wyre1 send n c k\n{not json\n",
        b"wyre1 send n c k\n[1, 2]\n",  # extras must be an object
        b"wyre1 send n c k {}",  # no line breaks
        b"wyre1 send \xff c k\n{}\n",  # not UTF-8
    ],
)
def test_unreadable_bytes_are_an_envelope_error(data: bytes) -> None:
    with pytest.raises(EnvelopeError):
        decode(data)
