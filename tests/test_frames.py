"""The frame rules of ``wyre.transports.frames``: building, checking, reassembling.

Every frame built here is parsed back with ``websockets``' own parser, which
proves it valid independently of the code that wrote it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator
from typing import Any

import pytest
from websockets.frames import Close, Frame, Opcode
from websockets.streams import StreamReader

from wyre.transport import MAX_FRAGMENTS
from wyre.transports.frames import (
    BINARY,
    CONTINUATION,
    MASK_POOL,
    PING,
    TEXT,
    Assembler,
    FrameError,
    FrameWriter,
    parse_close,
)

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 70_000]
"""Every boundary of the three length encodings (7, 16 and 64 bits)."""


def parse_all(data: bytes | bytearray, *, mask: bool) -> list[Frame]:
    """Every frame in ``data``, parsed by websockets; ``data`` must hold whole frames only."""
    reader = StreamReader()
    reader.feed_data(bytes(data))
    reader.feed_eof()
    parsed: list[Frame] = []
    while True:
        parsed.append(run(Frame.parse(reader.read_exact, mask=mask, max_size=None)))
        if run(reader.at_eof()):
            return parsed


def run(parser: Generator[None, None, Any]) -> Any:
    """The result of a websockets parser given all its data: it never waits for more."""
    with pytest.raises(StopIteration) as done:
        next(parser)
    return done.value.value


def parse_one(data: bytes | bytearray, *, mask: bool) -> Frame:
    (frame,) = parse_all(data, mask=mask)
    return frame


def length_field(data: bytes | bytearray) -> tuple[int, int]:
    """(the 7-bit length field, the header's size without a masking key)."""
    field = data[1] & 0x7F
    return field, {126: 4, 127: 10}.get(field, 2)


# -- building frames ------------------------------------------------------------------


@pytest.mark.parametrize("mask", [False, True], ids=["server", "client"])
@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
@pytest.mark.parametrize("size", SIZES)
def test_data_frames_round_trip_through_websockets_parser(
    size: int, binary: bool, mask: bool
) -> None:
    payload = bytes(i % 251 for i in range(size))
    out = bytearray()
    FrameWriter(mask=mask).data(out, payload, binary)
    frame = parse_one(out, mask=mask)
    assert frame.opcode is (Opcode.BINARY if binary else Opcode.TEXT)
    assert frame.fin and not (frame.rsv1 or frame.rsv2 or frame.rsv3)
    assert frame.data == payload


@pytest.mark.parametrize("mask", [False, True], ids=["server", "client"])
@pytest.mark.parametrize("size", SIZES)
def test_the_shortest_length_encoding_is_used(size: int, mask: bool) -> None:
    out = bytearray()
    FrameWriter(mask=mask).data(out, b"x" * size, binary=True)
    field, header = length_field(out)
    if size < 126:
        assert (field, header) == (size, 2)
    elif size < 65536:
        assert (field, header) == (126, 4)
    else:
        assert (field, header) == (127, 10)
    assert len(out) == header + (4 if mask else 0) + size
    assert bool(out[1] & 0x80) is mask


def test_str_is_sent_as_utf8_text() -> None:
    out = bytearray()
    FrameWriter(mask=False).data(out, "héllo ☃", binary=False)
    assert out == bytes((0x81, len("héllo ☃".encode()))) + "héllo ☃".encode()
    frame = parse_one(out, mask=False)
    assert frame.opcode is Opcode.TEXT and bytes(frame.data).decode() == "héllo ☃"


def test_frames_are_appended_to_what_is_already_buffered() -> None:
    out = bytearray()
    writer = FrameWriter(mask=True)
    for n in range(5):
        writer.data(out, f"message {n}", binary=False)
    writer.frame(out, PING, b"are you there")
    parsed = parse_all(out, mask=True)
    assert [f.data for f in parsed[:5]] == [f"message {n}".encode() for n in range(5)]
    assert parsed[5].opcode is Opcode.PING and parsed[5].data == b"are you there"


def test_a_client_masks_each_frame_with_a_fresh_key() -> None:
    writer = FrameWriter(mask=True)
    payload = bytes(range(64))
    keys, bodies = set(), set()
    for _ in range(16):
        out = bytearray()
        writer.data(out, payload, binary=True)
        assert out[1] & 0x80, "the mask bit is set"
        keys.add(bytes(out[2:6]))
        bodies.add(bytes(out[6:]))
        assert parse_one(out, mask=True).data == payload
    assert len(keys) == 16
    assert payload not in bodies  # the payload never goes out in the clear


def test_a_server_frame_is_header_then_payload_unmasked() -> None:
    out = bytearray()
    FrameWriter(mask=False).data(out, b"abc", binary=True)
    assert out == b"\x82\x03abc"


def test_the_mask_pool_is_refilled_from_urandom(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    urandom = os.urandom

    def counting(n: int) -> bytes:
        calls.append(n)
        return urandom(n)

    monkeypatch.setattr(os, "urandom", counting)
    writer = FrameWriter(mask=True)
    per_pool = MASK_POOL // 4
    out = bytearray()
    for n in range(per_pool + 1):
        writer.data(out, str(n), binary=False)
    assert calls == [MASK_POOL, MASK_POOL]  # one at the start, one after per_pool frames
    assert [f.data for f in parse_all(out, mask=True)] == [
        str(n).encode() for n in range(per_pool + 1)
    ]


def test_a_server_writer_draws_no_randomness(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "urandom", lambda n: pytest.fail("urandom called"))
    out = bytearray()
    FrameWriter(mask=False).data(out, b"x", binary=True)


@pytest.mark.parametrize("mask", [False, True], ids=["server", "client"])
def test_fragments_and_control_frames(mask: bool) -> None:
    writer = FrameWriter(mask=mask)
    out = bytearray()
    writer.frame(out, TEXT, b"he", fin=False)
    writer.frame(out, PING, b"")
    writer.frame(out, CONTINUATION, b"llo", fin=True)
    first, ping, last = parse_all(out, mask=mask)
    assert (first.opcode, first.fin, first.data) == (Opcode.TEXT, False, b"he")
    assert (ping.opcode, ping.fin, ping.data) == (Opcode.PING, True, b"")
    assert (last.opcode, last.fin, last.data) == (Opcode.CONT, True, b"llo")


@pytest.mark.parametrize("mask", [False, True], ids=["server", "client"])
@pytest.mark.parametrize(
    ("code", "reason"),
    [(1000, ""), (1001, "going away"), (1011, "keepalive ping timeout"), (3000, "x"),
     (4000, "bye"), (4999, "déjà vu")],
)  # fmt: skip
def test_close_frames_carry_any_code_an_application_may_send(
    code: int, reason: str, mask: bool
) -> None:
    out = bytearray()
    FrameWriter(mask=mask).close(out, code, reason)
    frame = parse_one(out, mask=mask)
    assert frame.opcode is Opcode.CLOSE and frame.fin
    assert Close.parse(frame.data) == Close(code, reason)
    assert parse_close(bytes(frame.data)) == (code, reason)


def test_a_long_close_reason_is_cut_at_a_character_boundary() -> None:
    out = bytearray()
    FrameWriter(mask=True).close(out, 4000, "é" * 100)  # 200 bytes
    frame = parse_one(out, mask=True)  # websockets refuses control frames over 125 bytes
    code, reason = parse_close(bytes(frame.data))
    assert code == 4000 and reason == "é" * 61 and len(frame.data) == 124


# -- checking a received close frame ----------------------------------------------------


@pytest.mark.parametrize(
    "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999]
)
def test_close_codes_a_peer_may_send(code: int) -> None:
    assert parse_close(code.to_bytes(2, "big") + b"why") == (code, "why")


@pytest.mark.parametrize(
    "code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535]
)  # reserved, local-only (1005, 1006, 1015), unassigned, or out of range
def test_close_codes_a_peer_may_not_send_are_1002(code: int) -> None:
    with pytest.raises(FrameError) as refused:
        parse_close(code.to_bytes(2, "big"))
    assert refused.value.code == 1002


def test_an_empty_close_frame_is_1005_and_one_byte_is_1002() -> None:
    assert parse_close(b"") == (1005, "")
    with pytest.raises(FrameError) as refused:
        parse_close(b"\x03")
    assert refused.value.code == 1002


def test_a_close_reason_that_is_not_utf8_is_1007() -> None:
    with pytest.raises(FrameError) as refused:
        parse_close(b"\x03\xe8\xff")
    assert refused.value.code == 1007


# -- reassembling fragments -------------------------------------------------------------


def test_whole_messages_come_out_at_once() -> None:
    assembler = Assembler(max_size=None)
    assert assembler.feed(TEXT, True, b'{"a": 1}') == '{"a": 1}'
    assert assembler.feed(BINARY, True, b"\x00\xff") == b"\x00\xff"
    assert not assembler.in_message


def test_fragments_are_joined_in_order() -> None:
    assembler = Assembler(max_size=None)
    assert assembler.feed(BINARY, False, b"ab") is None
    assert assembler.in_message
    assert assembler.feed(CONTINUATION, False, b"") is None
    assert assembler.feed(CONTINUATION, True, b"cd") == b"abcd"
    assert not assembler.in_message


def test_a_character_split_across_fragments_is_fine() -> None:
    snowman = "☃".encode()
    assembler = Assembler(max_size=None)
    assert assembler.feed(TEXT, False, snowman[:1]) is None
    assert assembler.feed(CONTINUATION, True, snowman[1:]) == "☃"


def feed_all(assembler: Assembler, sequence: list[tuple[int, bool, bytes]]) -> list[Any]:
    return [assembler.feed(*frame) for frame in sequence]


@pytest.mark.parametrize(
    ("sequence", "code"),
    [
        ([(CONTINUATION, True, b"x")], 1002),  # a lone final continuation
        ([(CONTINUATION, False, b"x")], 1002),
        ([(TEXT, False, b"a"), (TEXT, True, b"b")], 1002),  # a new message inside one
        ([(TEXT, False, b"a"), (BINARY, False, b"b")], 1002),
        ([(TEXT, True, b"\xff")], 1007),
        ([(TEXT, False, b"ok"), (CONTINUATION, True, b"\xc3")], 1007),  # cut character
        ([(TEXT, True, b"x" * 11)], 1009),
        ([(BINARY, False, b"x" * 6), (CONTINUATION, True, b"x" * 6)], 1009),
    ],
    ids=[
        "lone-final-continuation",
        "lone-continuation",
        "text-inside-text",
        "binary-inside-text",
        "invalid-utf8",
        "truncated-utf8",
        "one-frame-too-big",
        "fragments-too-big",
    ],
)
def test_refusals_carry_their_close_code(
    sequence: list[tuple[int, bool, bytes]], code: int
) -> None:
    assembler = Assembler(max_size=10)
    with pytest.raises(FrameError) as refused:
        feed_all(assembler, sequence)
    assert refused.value.code == code
    # reset: the next message is read from scratch
    assert not assembler.in_message
    assert assembler.feed(TEXT, True, b"fine") == "fine"


def test_invalid_utf8_in_a_binary_message_is_fine() -> None:
    assert Assembler(max_size=None).feed(BINARY, True, b"\xff") == b"\xff"


def test_exactly_max_size_is_allowed() -> None:
    assembler = Assembler(max_size=10)
    assert assembler.feed(TEXT, True, b"x" * 10) == "x" * 10
    assert assembler.feed(TEXT, False, b"x" * 5) is None
    assert assembler.feed(CONTINUATION, True, b"x" * 5) == "x" * 10


def test_the_fragment_cap_counts_empty_continuations() -> None:
    assembler = Assembler(max_size=None)
    sequence = [(TEXT, False, b"")] + [(CONTINUATION, False, b"")] * (MAX_FRAGMENTS - 2)
    assert set(feed_all(assembler, sequence)) == {None}
    assert assembler.feed(CONTINUATION, True, b"") == ""  # MAX_FRAGMENTS frames: fine

    assembler = Assembler(max_size=None)
    feed_all(assembler, [(BINARY, False, b"")] + [(CONTINUATION, False, b"")] * (MAX_FRAGMENTS - 1))
    with pytest.raises(FrameError) as refused:
        assembler.feed(CONTINUATION, False, b"")  # one more than MAX_FRAGMENTS
    assert refused.value.code == 1009
    assert not assembler.in_message  # nothing of it is kept


def test_a_smaller_fragment_cap() -> None:
    assembler = Assembler(max_size=None, max_fragments=3)
    assert feed_all(assembler, [(TEXT, False, b"a"), (CONTINUATION, False, b"b")]) == [None, None]
    assert assembler.feed(CONTINUATION, True, b"c") == "abc"
    feed_all(assembler, [(TEXT, False, b"a"), (CONTINUATION, False, b"b")])
    with pytest.raises(FrameError):
        feed_all(assembler, [(CONTINUATION, False, b"c"), (CONTINUATION, True, b"d")])


def best_of(runs: int, job: Callable[[], None]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        job()
        times.append(time.perf_counter() - started)
    return min(times)


def test_reassembly_is_linear_in_the_number_of_fragments() -> None:
    """4x the fragments costs about 4x, not 16x (as joining one by one would).

    A ratio of two sizes measured back to back, never an absolute time:
    the machine's speed cancels out.
    """
    fragment = b"x" * 256

    def reassemble(count: int) -> Callable[[], None]:
        def job() -> None:
            assembler = Assembler(max_size=None, max_fragments=count)
            assembler.feed(BINARY, False, fragment)
            for _ in range(count - 2):
                assembler.feed(CONTINUATION, False, fragment)
            assert assembler.feed(CONTINUATION, True, fragment) is not None

        return job

    small, large = 2000, 8000
    ratio = best_of(5, reassemble(large)) / best_of(5, reassemble(small))
    assert ratio < 8, f"{large // small}x the fragments took {ratio:.1f}x as long"
