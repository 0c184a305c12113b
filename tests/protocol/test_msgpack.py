"""The MessagePack codec, without I/O: what it writes, what it reads, what it refuses.

Where JSON can say a value, MessagePack must say the same (a handler reads the
same message whichever codec it came by); the differences are the values
MessagePack carries natively, listed in :data:`NATIVE`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from wyre.exceptions import CodecError, RemoteProtocolError
from wyre.protocol.codecs import Codec, json_codec, msgpack_codec
from wyre.protocol.direction import Direction
from wyre.protocol.envelope import Envelope
from wyre.protocol.events import AckReceived, FrameRejected, IncomingMessage, IncomingRequest
from wyre.protocol.pending import Pending

from ..conftest import need_codec
from .helpers import make
from .test_session import CODEC_VALUES, _round_trip


@pytest.fixture(autouse=True)
def _msgpack_installed() -> None:
    need_codec("msgpack")


def pack(value: Any) -> bytes:
    """Bytes as any MessagePack writer would write them (independent of the codec)."""
    import msgpack

    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


def unpack(data: str | bytes) -> Any:
    import msgpack

    assert isinstance(data, bytes), "MessagePack frames are bytes"
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def session_frames(wire: Any) -> Iterator[tuple[Any, bool]]:
    """What a session wrote: (decoded message, binary flag)."""
    for data, binary in wire.frames:
        yield unpack(data), binary


# -- what it writes and reads back ---------------------------------------------------

NAN = float("nan")

NATIVE: dict[str, Any] = {
    # value id -> what MessagePack reads back where JSON reads something else
    "int-keys": {1: "a", 2: "b"},
    "float-bool-none-keys": {1.5: "a", True: "b", None: "c"},
    "nan": NAN,
    "inf": {"x": math.inf},
    "-inf-nested": {"x": [[-math.inf]]},
    "nan-in-dataclass": {"r": {"value": NAN}},
    "nan-enum-value": {"c": NAN},
    "nan-key": {NAN: 1},
    "inf-key": {math.inf: 1},
    "bytes": {"b": b"x"},
    # keys are written as any value is; JSON allows only scalar keys
    "date-key": {"2024-01-01": 1},
    "uuid-key": {"00000000-0000-0000-0000-000000000001": 1},
    "enum-key": {"red": 1},
}
"""The documented differences from JSON: values MessagePack carries as they are."""

REFUSED_BY_BOTH = {"set", "frozenset", "complex", "lone-surrogate"}


def same(a: Any, b: Any) -> bool:
    """Equality in which NaN equals NaN, keys and values alike, and types count."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        if len(a) != len(b):
            return False
        return all(
            same(ka, kb) and same(va, vb)
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.mark.parametrize("value", CODEC_VALUES)
def test_msgpack_reads_back_what_json_reads_back_but_for_its_native_values(
    value: Any, request: pytest.FixtureRequest
) -> None:
    name = request.node.callspec.id
    codec = msgpack_codec()
    by_json = _round_trip(json_codec(), value)
    if name in REFUSED_BY_BOTH:
        assert by_json is None
        with pytest.raises((TypeError, ValueError)):
            codec.encode(value)
        return
    if name == "tuple-key":  # written as an array, which no Python end can use as a key
        with pytest.raises(TypeError, match="unhashable"):
            codec.decode(codec.encode(value))
        return
    data = codec.encode(value)
    assert isinstance(data, bytes)
    decoded = codec.decode(data)
    if name in NATIVE:
        assert same(decoded, NATIVE[name]), decoded
    else:
        assert by_json is not None
        assert same(decoded, by_json[1]), (decoded, by_json[1])


def test_frames_are_binary_and_read_by_any_msgpack_reader() -> None:
    codec = msgpack_codec()
    assert codec.name == "msgpack" and codec.binary is True and codec.fallback is None
    message = {"type": "t", "blob": b"\x00\xff", "n": [1, 2.5, None, True], 7: "seven"}
    data = codec.encode(message)
    assert unpack(data) == message
    assert codec.decode(pack(message)) == message


@pytest.mark.parametrize(
    "value", [2**64, -(2**63) - 1, {"n": [10**30]}], ids=["2**64", "-2**63-1", "nested"]
)
def test_integers_beyond_64_bits_are_refused(value: Any) -> None:
    with pytest.raises(OverflowError, match="64 bits"):
        msgpack_codec().encode(value)


def test_the_packer_is_clean_after_a_refusal() -> None:
    codec = msgpack_codec()
    with pytest.raises(TypeError):
        codec.encode({"a": "start of a frame", "b": {1, 2}})
    with pytest.raises(UnicodeEncodeError):
        codec.encode({"s": "\ud800"})
    assert codec.encode({"ok": 1}) == pack({"ok": 1})


def test_a_datetime_is_its_iso_string_not_a_msgpack_timestamp() -> None:
    import datetime

    moment = datetime.datetime(2024, 2, 29, 12, 0, tzinfo=datetime.UTC)
    assert unpack(msgpack_codec().encode({"at": moment})) == {"at": "2024-02-29T12:00:00+00:00"}


# -- what it refuses to read -----------------------------------------------------------

BAD_FRAMES = {
    "extension": b"\x81\xa1x\xd4\x05\x01",  # {"x": ExtType(5, b"\x01")}
    "empty extension": b"\x81\xa1x\xc7\x00\x05",  # ext 8 of length 0
    "timestamp": b"\x81\xa1t\xd6\xff\x00\x00\x00\x01",  # {"t": Timestamp(1)}
    "trailing data": b"\x80\x80",  # two maps in one frame
    "truncated": b"\x82\xa1a\x01",  # a map of two with one entry
    "invalid UTF-8": b"\x81\xa1s\xa1\xff",
    "reserved byte": b"\xc1",
    "text frame": '{"key":"k","direction":"REQUEST"}',  # JSON on a MessagePack connection
    "empty": b"",
}


@pytest.mark.parametrize("data", list(BAD_FRAMES.values()), ids=list(BAD_FRAMES))
def test_undecodable_frames_are_codec_errors_without_an_answer(data: str | bytes) -> None:
    session, wire = make(codec=msgpack_codec())
    event = session.receive(data)
    assert isinstance(event, FrameRejected)
    assert isinstance(event.error, CodecError)
    assert event.replied is False and len(wire) == 0


@pytest.mark.parametrize(
    "value",
    [[1, 2], [{"key": "k", "direction": "REQUEST"}], 42, 1.5, "REQUEST", None, b"{}"],
    ids=["array", "array-of-map", "int", "float", "str", "nil", "bin"],
)
def test_a_frame_that_is_not_a_map_is_rejected_as_a_json_non_object_is(value: Any) -> None:
    session, wire = make(codec=msgpack_codec())
    event = session.receive(pack(value))
    assert isinstance(event, FrameRejected)
    assert isinstance(event.error, RemoteProtocolError)
    assert "not an object" in str(event.error)
    assert event.replied is False and len(wire) == 0


def test_a_bad_request_gets_its_error_back_in_msgpack() -> None:
    session, wire = make(codec=msgpack_codec())
    event = session.receive(pack({"key": "k1", "direction": "RESUEST"}))
    assert isinstance(event, FrameRejected) and event.replied
    ((error, binary),) = session_frames(wire)
    assert binary is True
    assert error["key"] == "k1" and error["direction"] == "ERROR"
    assert error["error"] == "RemoteProtocolError"


# -- a session on it ----------------------------------------------------------------


def test_every_frame_a_msgpack_session_writes_is_binary() -> None:
    session, wire = make(codec=msgpack_codec(), extensions=True)
    session.send({"type": "plain"})  # binary=False, the default
    session.request({"type": "ask"}, Pending())
    session.send_acked({"type": "acked"}, Pending())
    asked = session.receive(pack({"key": "r1", "direction": "REQUEST", "type": "q"}))
    assert isinstance(asked, IncomingRequest)
    session.answer(asked, Direction.PARTIAL, {"i": 1})
    session.answer(asked, Direction.REPLY, {"done": True})
    told = session.receive(pack({"key": "m1", "type": "note"}))  # a keyed message: ACKed
    assert isinstance(told, IncomingMessage)
    pending = Pending()
    session.request({"type": "given up"}, pending)
    session.abandon(pending)  # CANCEL
    written = list(session_frames(wire))
    directions = [message.get("direction") for message, _ in written]
    assert directions == [
        None, "REQUEST", None, "PARTIAL", "REPLY", "ACK", "REQUEST", "CANCEL",
    ]  # fmt: skip
    assert all(binary for _, binary in written)


def test_a_msgpack_session_reads_acks_and_answers() -> None:
    session, wire = make(codec=msgpack_codec(), extensions=True)
    acked = Pending()
    session.send_acked({"type": "note"}, acked)
    (sent, _), *_ = session_frames(wire)
    event = session.receive(pack({"key": sent["key"], "direction": "ACK"}))
    assert isinstance(event, AckReceived) and event.pending is acked


def test_a_custom_envelope_on_msgpack_moves_the_fields() -> None:
    envelope = Envelope(codec=msgpack_codec()).using(
        "key", lambda m: m.get("ref"), lambda m, v: m.update(ref=v)
    )
    session, wire = make(envelope=envelope)
    session.request({"type": "t"}, Pending())
    ((message, binary),) = session_frames(wire)
    assert binary and "ref" in message and "key" not in message


# -- without msgpack ----------------------------------------------------------------


def test_without_msgpack_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "msgpack", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r"pip install 'pywyre\[msgpack\]'") as caught:
        msgpack_codec()
    assert caught.value.name == "msgpack"


def test_a_codec_is_text_unless_it_says_binary() -> None:
    assert json_codec().binary is False
    assert Codec(decode=lambda d: d, encode=lambda m: m).binary is False
