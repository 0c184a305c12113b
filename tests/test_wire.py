"""Wire compatibility, pinned by raw frames exchanged with a bare ``websockets`` peer.

The raw peer offers or selects no subprotocol, like the original wyre, so
wyre must speak the base protocol of ``docs/protocol.md`` to it: JSON objects
with ``key`` and ``direction``, and never an ``ACK`` or ``CANCEL`` frame.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as raw_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as raw_serve
from websockets.typing import Subprotocol

import wyre

from .conftest import eventually, seconds
from .proxy import record

KEY = "34825995-d7ee-434d-a665-1e62ad2e8a0e"
REQUEST_TEXT = (
    '{"question":"how are you doing?","key":"34825995-d7ee-434d-a665-1e62ad2e8a0e",'
    '"direction":"REQUEST"}'
)
REPLY_TEXT = (
    '{"answer":"good, and you?","key":"34825995-d7ee-434d-a665-1e62ad2e8a0e","direction":"REPLY"}'
)
ENDS = ("REPLY", "ERROR")
RawSocket = ClientConnection | ServerConnection


async def recv_text(ws: RawSocket) -> str:
    text = await asyncio.wait_for(ws.recv(), seconds(5))
    assert isinstance(text, str), "wyre sends text frames"
    return text


async def recv_json(ws: RawSocket) -> Any:
    return json.loads(await recv_text(ws))


async def send_json(ws: RawSocket, frame: dict[str, Any]) -> None:
    await ws.send(json.dumps(frame))


async def frames_until(ws: RawSocket, key: str) -> list[dict[str, Any]]:
    """Every frame received up to and including the REPLY or ERROR with ``key``."""
    frames = [await recv_json(ws)]
    while not (frames[-1].get("key") == key and frames[-1].get("direction") in ENDS):
        frames.append(await recv_json(ws))
    return frames


def answer(endpoint: wyre.Server | wyre.Client, log: list[Any]) -> None:
    """The handlers the raw peer talks to."""

    async def count(ctx: wyre.Context) -> dict[str, Any]:
        for i in range(1, ctx.message["to"] + 1):
            await ctx.partial({"i": i})
        return {"done": True}

    def fail(ctx: wyre.Context) -> None:
        raise ValueError("amount must be positive")

    endpoint.on("request", lambda ctx: {"answer": "good, and you?"})
    endpoint.on("request", "count", count)
    endpoint.on("request", "fail", fail)
    endpoint.on("request", "refuse", lambda ctx: ctx.error({"reason": "no"}))
    endpoint.on("message", lambda ctx: log.append(ctx.message))


# -- our server, a raw client ----------------------------------------------------


@pytest.fixture
async def raw_client(
    transport: str,
) -> AsyncIterator[tuple[ClientConnection, wyre.Connection, list[Any]]]:
    """(raw client socket, our server's connection to it, messages our server got)."""
    log: list[Any] = []
    async with wyre.Server(transport=transport) as server:
        answer(server, log)
        await server.listen(port=0, host="127.0.0.1")
        async with raw_connect(f"ws://127.0.0.1:{server.port}") as ws:
            (peer,) = await eventually(lambda: list(server.connections.values()))
            yield ws, peer, log


async def ask(ws: RawSocket, direction: str = "REQUEST", **fields: Any) -> list[dict[str, Any]]:
    """Send a raw request with a fresh key; return the frames up to its answer."""
    key = str(uuid.uuid4())
    await send_json(ws, {**fields, "key": key, "direction": direction})
    return await frames_until(ws, key)


async def no_control_frames(ws: RawSocket, conn: wyre.Connection, log: list[Any]) -> None:
    """What would be ACKed or CANCELled under wyre.v2 must send nothing to an original peer.

    ``conn`` is wyre's end of the raw ``ws``: the raw peer sends a keyed message,
    then wyre times out one request, cancels another and sends a message asking
    for acknowledgement; the raw peer must see only the requests and the message.
    """
    keyed = {"text": "keyed", "key": str(uuid.uuid4())}
    await send_json(ws, keyed)
    await eventually(lambda: log == [keyed])
    with pytest.raises(wyre.RequestTimeout):
        await conn.request({"question": "anyone?"}, timeout=0.05)
    assert conn.request({"question": "never mind"}).cancel()
    await asyncio.wait_for(conn.send({"note": "acked?"}, ack=True), seconds(5))
    frames = await ask(ws, question="?")
    assert [frame.get("direction") for frame in frames] == ["REQUEST", "REQUEST", None, "REPLY"]
    assert frames[2] == {"note": "acked?"}


async def test_server_replies_to_the_original_request(raw_client: Any) -> None:
    ws, peer, _ = raw_client
    assert ws.subprotocol is None
    assert peer.extensions is False and peer.subprotocol is None
    await ws.send(REQUEST_TEXT)
    text = await recv_text(ws)
    assert json.loads(text) == {"answer": "good, and you?", "key": KEY, "direction": "REPLY"}
    assert text == REPLY_TEXT  # compact, as JSON.stringify writes it


async def test_server_reads_direction_without_regard_to_case(raw_client: Any) -> None:
    ws, _, _ = raw_client
    for direction in ("request", "Request"):
        (reply,) = await ask(ws, direction, question="?")
        assert reply["direction"] == "REPLY" and reply["answer"] == "good, and you?"


async def test_server_takes_frames_without_direction_as_messages(raw_client: Any) -> None:
    ws, _, log = raw_client
    messages = [
        {"type": "chat", "text": "hello"},
        {"type": "chat", "text": "explicit", "direction": "MESSAGE"},
        {"type": "chat", "text": "lower", "direction": "message"},
        {"text": "keyed", "key": str(uuid.uuid4())},
    ]
    for message in messages:
        await send_json(ws, message)
    # Nothing comes back for them (no ACK): the next frame answers the next request.
    (reply,) = await ask(ws, question="?")
    assert reply["direction"] == "REPLY"
    assert log == messages


async def test_server_streams_partials_then_replies(raw_client: Any) -> None:
    ws, _, _ = raw_client
    await send_json(ws, {"type": "count", "to": 2, "key": KEY, "direction": "REQUEST"})
    assert [await recv_json(ws) for _ in range(3)] == [
        {"i": 1, "key": KEY, "direction": "PARTIAL"},
        {"i": 2, "key": KEY, "direction": "PARTIAL"},
        {"done": True, "key": KEY, "direction": "REPLY"},
    ]


async def test_server_error_replies(raw_client: Any) -> None:
    ws, _, _ = raw_client
    (raised,) = await ask(ws, type="fail")
    assert raised == {
        "error": "ValueError",
        "message": "amount must be positive",
        "key": raised["key"],
        "direction": "ERROR",
    }
    (refused,) = await ask(ws, type="refuse")
    assert refused == {"reason": "no", "key": refused["key"], "direction": "ERROR"}


async def test_server_sends_no_ack_or_cancel_to_an_original_peer(raw_client: Any) -> None:
    await no_control_frames(*raw_client)


# -- a raw server, our client ----------------------------------------------------


def echo_first(_: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """What the original wyre's ``ws`` server does: select the first subprotocol offered."""
    return offered[0] if offered else None


@pytest.fixture(params=["selects nothing", "echoes the first offer"])
async def raw_server(
    transport: str, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[ServerConnection, wyre.Connection, list[Any]]]:
    """(raw server socket, our client's connection to it, messages our client got).

    The raw server either selects no subprotocol or, like the original wyre on
    ``ws``, echoes the first one offered: either way it speaks the original
    protocol only, and wyre must not switch its extensions on.
    """
    accepted: asyncio.Queue[ServerConnection] = asyncio.Queue()

    async def handle(ws: ServerConnection) -> None:
        await accepted.put(ws)
        await ws.wait_closed()

    select = echo_first if request.param == "echoes the first offer" else None
    log: list[Any] = []
    async with raw_serve(handle, "127.0.0.1", 0, select_subprotocol=select) as server:
        port = server.sockets[0].getsockname()[1]
        async with wyre.Client(transport=transport) as client:
            answer(client, log)
            conn = await client.connect(f"ws://127.0.0.1:{port}")
            ws = await asyncio.wait_for(accepted.get(), seconds(5))
            yield ws, conn, log


async def test_client_offers_wyre_v2_and_falls_back_without_it(raw_server: Any) -> None:
    ws, conn, _ = raw_server
    offered = ws.request.headers.get_all("Sec-WebSocket-Protocol")
    # the placeholder first, so that an original server echoing the first offer
    # does not switch the extensions on (see wyre.protocol.negotiation)
    assert [p.strip() for line in offered for p in line.split(",")] == ["wyre", "wyre.v2"]
    assert ws.subprotocol in (None, "wyre")
    assert conn.extensions is False and conn.subprotocol == ws.subprotocol


async def test_wyre_peers_agree_on_wyre_v2(pair: Any, codec: str) -> None:
    _, _, conn, peer = pair
    expected = "wyre.v2.msgpack" if codec == "msgpack" else "wyre.v2"
    assert conn.subprotocol == peer.subprotocol == expected
    assert conn.extensions is True and peer.extensions is True


async def test_client_request_goes_out_in_the_original_format(raw_server: Any) -> None:
    ws, conn, _ = raw_server
    request = conn.request({"question": "how are you doing?"})
    frame = await recv_json(ws)
    key = frame["key"]
    assert frame == {"question": "how are you doing?", "key": key, "direction": "REQUEST"}
    assert str(uuid.UUID(key, version=4)) == key
    for i in (1, 2):
        await send_json(ws, {"i": i, "key": key, "direction": "PARTIAL"})
    await send_json(ws, {"answer": "good, and you?", "key": key, "direction": "REPLY"})
    assert [partial.message["i"] async for partial in request.partials()] == [1, 2]
    reply = await request
    assert reply.message == {"answer": "good, and you?", "key": key, "direction": "REPLY"}


async def test_client_reads_error_replies_in_any_case(raw_server: Any) -> None:
    ws, conn, _ = raw_server
    request = conn.request({"question": "?"})
    key = (await recv_json(ws))["key"]
    await send_json(ws, {"error": "Nope", "message": "no", "key": key, "direction": "error"})
    with pytest.raises(wyre.RequestError) as caught:
        await request
    assert caught.value.context.message["error"] == "Nope"


async def test_client_answers_requests_from_the_raw_server(raw_server: Any) -> None:
    ws, _, _ = raw_server
    await send_json(ws, {"question": "how are you doing?", "key": KEY, "direction": "REQUEST"})
    assert await recv_json(ws) == {"answer": "good, and you?", "key": KEY, "direction": "REPLY"}
    frames = await ask(ws, type="count", to=2)
    assert [(frame["direction"], frame.get("i")) for frame in frames] == [
        ("PARTIAL", 1),
        ("PARTIAL", 2),
        ("REPLY", None),
    ]


async def test_client_sends_no_ack_or_cancel_to_an_original_server(raw_server: Any) -> None:
    await no_control_frames(*raw_server)


async def test_acked_send_to_an_original_server_completes_on_write(raw_server: Any) -> None:
    ws, conn, _ = raw_server
    done: list[Any] = []
    # Both forms the README promises complete once written, without waiting for an ACK.
    await asyncio.wait_for(conn.send({"text": "hi"}, ack=True), seconds(5))
    conn.send({"text": "cb"}, lambda err: done.append(err))
    await eventually(lambda: done)
    assert done == [None]
    assert [await recv_json(ws), await recv_json(ws)] == [{"text": "hi"}, {"text": "cb"}]


async def test_late_answer_from_an_original_peer_is_dropped_quietly(
    raw_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ws, conn, _ = raw_server
    errors = record(conn.endpoint, "error")
    with caplog.at_level(logging.DEBUG, logger="wyre"):
        with pytest.raises(wyre.RequestTimeout) as caught:
            await conn.request({"type": "slow"}, timeout=seconds(0.1))
        assert "'slow'" in str(caught.value)  # the timeout names the request's type
        key = (await recv_json(ws))["key"]
        await send_json(ws, {"late": True, "key": key, "direction": "REPLY"})
        reply = conn.request({"question": "still there?"})
        fresh = (await recv_json(ws))["key"]
        await send_json(ws, {"answer": "yes", "key": fresh, "direction": "REPLY"})
        assert (await asyncio.wait_for(reply, seconds(5))).message["answer"] == "yes"
    assert errors == []
    assert any(r.levelno == logging.DEBUG and key in r.getMessage() for r in caplog.records)
