"""Bad input: every frame that cannot be handled is reported and the connection goes on."""

from __future__ import annotations

import asyncio
import json
from itertools import cycle
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wyre
from wyre.transport import memory_pair

from .conftest import eventually
from .proxy import DIRECTIONS, RawPeer, against_raw, linked, record

SIDES = ["server", "client"]
DEEP = 10_000  # far deeper than any JSON decoder recurses

# (frame, the error reported, the key of the ERROR reply sent back or None for no reply)
BAD_FRAMES: dict[str, tuple[str | bytes, type[wyre.WyreError], Any]] = {
    "invalid JSON": ('{"key":"k1","direction":"REQUEST"', wyre.CodecError, None),
    "long garbage": ("garbage " * 2000, wyre.CodecError, None),
    "binary garbage": (b"\xff\x00\xfe\x80" * 50, wyre.CodecError, None),
    "deeply nested": ("[" * DEEP + "]" * DEEP, wyre.CodecError, None),
    "deeply nested request": (
        '{"key":"k1","direction":"REQUEST","a":' + '{"a":' * DEEP + "1" + "}" * DEEP + "}",
        wyre.CodecError,
        None,
    ),
    "array": ('["REQUEST","k1"]', wyre.RemoteProtocolError, None),
    "string": ('"REQUEST"', wyre.RemoteProtocolError, None),
    "null": ("null", wyre.RemoteProtocolError, None),
    "unknown direction": ('{"key":"k1","direction":"RESUEST"}', wyre.RemoteProtocolError, "k1"),
    "direction not a string": ('{"key":"k1","direction":5}', wyre.RemoteProtocolError, "k1"),
    "number key": ('{"key":5,"direction":"REQUEST"}', wyre.RemoteProtocolError, 5),
    "request without key": ('{"direction":"REQUEST"}', wyre.RemoteProtocolError, None),
    "REPLY for unknown key": ('{"key":"k1","direction":"REPLY"}', wyre.RemoteProtocolError, None),
    "ERROR for unknown key": ('{"key":"k1","direction":"ERROR"}', wyre.RemoteProtocolError, None),
    "PARTIAL for unknown key": (
        '{"key":"k1","direction":"PARTIAL"}',
        wyre.RemoteProtocolError,
        None,
    ),
}


def echo_n(ctx: wyre.Context) -> dict[str, Any]:
    return {"n": ctx.message["n"]}


async def still_answers(raw: RawPeer, key: str = "after") -> None:
    """Check the connection goes on: a valid request sent now gets its reply."""
    await raw.send({"key": key, "direction": "REQUEST", "type": "echo", "n": 7})
    assert (await raw.frame(key=key, direction="REPLY"))["n"] == 7


def error_replies(raw: RawPeer) -> list[dict[str, Any]]:
    return [f for f in raw.received if isinstance(f, dict) and f.get("direction") == "ERROR"]


def check_reported(error: BaseException, conn: wyre.Connection) -> None:
    """A frame error names its connection and carries a short preview of the frame."""
    assert isinstance(error, wyre.ProtocolError)
    assert error.connection is conn
    assert 0 < len(error.preview) <= 160


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(("frame", "error_type", "reply_key"), BAD_FRAMES.values(), ids=BAD_FRAMES)
async def test_bad_frame_is_reported_and_the_connection_goes_on(
    transport: str, side: str, frame: str | bytes, error_type: type, reply_key: Any
) -> None:
    async with against_raw(transport, side) as (conn, raw):
        errors = record(conn.endpoint, "error")
        conn.endpoint.on("request", "echo", echo_n)
        await raw.send(frame)
        await still_answers(raw)
        (error,) = errors
        assert type(error) is error_type
        check_reported(error, conn)
        expected = [] if reply_key is None else [(error_type.__name__, str(error), reply_key)]
        assert [(f["error"], f["message"], f["key"]) for f in error_replies(raw)] == expected
        assert not conn.closed


@pytest.mark.parametrize("side", SIDES)
async def test_a_codec_that_raises_is_reported(transport: str, side: str) -> None:
    def decode(data: str | bytes) -> Any:
        if b"boom" in (data if isinstance(data, bytes) else data.encode()):
            raise RuntimeError("the codec blew up")
        return json.loads(data)

    def prepare(endpoint: Any) -> None:
        endpoint.use("codec", decode, json.dumps)

    async with against_raw(transport, side, prepare=prepare) as (conn, raw):
        errors = record(conn.endpoint, "error")
        conn.endpoint.on("request", "echo", echo_n)
        await raw.send({"key": "k1", "direction": "REQUEST", "boom": True})
        await still_answers(raw)
        (error,) = errors
        assert isinstance(error, wyre.CodecError)
        check_reported(error, conn)
        assert error_replies(raw) == []


async def raises(ctx: wyre.Context) -> None:
    raise ValueError("amount must be positive")


@pytest.mark.parametrize("debug_errors", [False, True], ids=["safe", "debug"])
@pytest.mark.parametrize("handler", [raises, lambda ctx: 1 / 0], ids=["async", "plain"])
@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_raising_handler_gives_an_error_reply(
    transport: str, direction: str, handler: Any, debug_errors: bool
) -> None:
    async with linked(transport, direction, debug_errors=debug_errors) as link:
        link.handler.on("request", handler)
        link.handler.on("error", lambda exc: None)
        with pytest.raises(wyre.RequestError) as caught:
            await link.conn.request({"type": "pay"})
        body = caught.value.context.message
        expected = (
            ("ValueError", "amount must be positive")
            if handler is raises
            else ("ZeroDivisionError", "division by zero")
        )
        assert (body["error"], body["message"]) == expected
        if debug_errors:
            assert body["traceback"].startswith("Traceback") and expected[0] in body["traceback"]
        else:
            assert set(body) == {"error", "message", "key", "direction"}
        assert not link.conn.closed


async def test_garbage_interleaved_with_a_thousand_requests(transport: str) -> None:
    count = 1000
    garbage = cycle(frame for frame, _, _ in BAD_FRAMES.values())
    # No bad-frame budget here: this is about every request surviving the garbage
    # around it (the budget has its own test below).
    async with against_raw(transport, "server", max_bad_frames=None) as (conn, raw):
        errors = record(conn.endpoint, "error")
        conn.endpoint.on("request", echo_n)
        for n in range(count):
            await raw.send(next(garbage))
            await raw.send({"key": f"v{n}", "direction": "REQUEST", "n": n})

        def replies() -> dict[str, int]:
            return {f["key"]: f["n"] for f in raw.received if f.get("direction") == "REPLY"}

        await eventually(lambda: len(replies()) == count, timeout=30)
        assert replies() == {f"v{n}": n for n in range(count)}
        await eventually(lambda: len(errors) == count)
        for error in errors:
            check_reported(error, conn)
        assert not conn.closed


async def test_a_flood_of_bad_frames_is_cut_off_with_1008(transport: str) -> None:
    limit = 20
    async with against_raw(transport, "server", max_bad_frames=limit) as (conn, raw):
        errors = record(conn.endpoint, "error")
        for _ in range(limit):
            await raw.send("not json")
        await eventually(lambda: len(errors) == limit)
        assert not conn.closed  # up to the budget, bad frames are only reported
        for _ in range(limit):
            await raw.send("not json")
        await eventually(lambda: conn.closed)
        assert conn.close_code == 1008


# -- any frame at all, through Connection.receive -----------------------------------

JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
ENVELOPES = st.fixed_dictionaries(
    {},
    optional={
        "direction": st.sampled_from([*wyre.Direction, "request", "Reply", "RESUEST", ""])
        | JSONISH,
        "key": st.sampled_from(["k1", "k2", ""]) | JSONISH,
        "type": st.sampled_from(["echo", "slow", 5, "5"]) | JSONISH,
    },
)
FRAMES = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=40),
    JSONISH.map(json.dumps),
    ENVELOPES.map(json.dumps),
    ENVELOPES.map(lambda message: json.dumps(message).encode()),
)


async def feed(frames: list[str | bytes]) -> None:
    """Hand ``frames`` to one end of an in-memory pair; check what comes out."""
    ends = wyre.Server(), wyre.Client()
    errors: list[BaseException] = []
    for endpoint in ends:
        endpoint.on("error", errors.append)
        endpoint.on("request", "echo", lambda ctx: {"echo": ctx.message})
        endpoint.on("request", "slow", lambda ctx: asyncio.sleep(0, {"slow": True}))
        endpoint.on("message", lambda ctx: None)
    conn, other = memory_pair(*ends)
    for frame in frames:
        conn.receive(frame)
    for _ in range(5):
        await asyncio.sleep(0)
    assert not conn.closed and not other.closed
    for error in errors:
        assert isinstance(error, wyre.ProtocolError), repr(error)
        assert error.connection in (conn, other)
        assert len(error.preview) <= 160


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(FRAMES, max_size=8))
def test_receive_survives_any_frame(frames: list[str | bytes]) -> None:
    asyncio.run(feed(frames))


async def test_huge_fields_are_not_echoed_whole(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    huge = "t" * 500_000
    async with against_raw(transport, "server") as (conn, raw):
        errors = record(conn.endpoint, "error")
        await raw.send({"key": "k1", "direction": "REQUEST", "type": huge})
        await raw.send({"key": "k2", "direction": huge})
        first = await raw.frame(key="k1")
        second = await raw.frame(key="k2")
        await eventually(lambda: len(errors) == 1)
    assert first["error"] == "NoHandler" and len(first["message"]) < 200
    assert second["error"] == "RemoteProtocolError" and len(second["message"]) < 400
    assert all(len(r.getMessage()) < 1000 for r in caplog.records)


async def test_coroutine_error_handlers_are_capped(transport: str) -> None:
    from wyre.reporting import MAX_ERROR_TASKS

    release = asyncio.Event()
    running = peak = 0

    async def slow_error_handler(error: Exception) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await release.wait()
        finally:
            running -= 1

    def prepare(server: wyre.Server) -> None:
        server.on("error", slow_error_handler)

    count = MAX_ERROR_TASKS * 3
    async with against_raw(transport, "server", prepare=prepare, max_bad_frames=None) as (
        conn,
        raw,
    ):
        for _ in range(count):
            await raw.send("not json")
        await raw.send({"key": "k", "direction": "REQUEST"})
        await raw.frame(key="k")  # every bad frame before it was handled
        assert peak == MAX_ERROR_TASKS
        release.set()
        await eventually(lambda: running == 0)
        assert not conn.closed
