"""MessagePack over real sockets: negotiated per connection, binary on the wire.

The frames are checked with bare ``websockets`` peers, which offer or select
subprotocols by hand and decode what they receive with ``msgpack`` itself, so
the tests pin what goes over the wire, not what wyre reads back of its own.
(Everything else, requests, partials, acks, limits, runs on MessagePack too:
the ``pair`` and ``link`` fixtures run on both codecs.)
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as raw_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as raw_serve
from websockets.typing import Subprotocol

import wyre

from .conftest import close_pair, eventually, need_codec, open_pair, seconds

MSGPACK_OFFER = [Subprotocol("wyre"), Subprotocol("wyre.v2.msgpack"), Subprotocol("wyre.v2")]
JSON_OFFER = [Subprotocol("wyre"), Subprotocol("wyre.v2")]


@pytest.fixture(autouse=True)
def _msgpack_installed() -> None:
    need_codec("msgpack")


def pack(message: Any) -> bytes:
    import msgpack

    data: bytes = msgpack.packb(message, use_bin_type=True)
    return data


async def recv_msgpack(ws: ClientConnection | ServerConnection) -> Any:
    """The next frame, which must be binary MessagePack."""
    import msgpack

    data = await asyncio.wait_for(ws.recv(), seconds(5))
    assert isinstance(data, bytes), f"a text frame on a MessagePack connection: {data!r}"
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


async def recv_json(ws: ClientConnection | ServerConnection) -> Any:
    data = await asyncio.wait_for(ws.recv(), seconds(5))
    assert isinstance(data, str), f"a binary frame on a JSON connection: {data!r}"
    return json.loads(data)


def serve(endpoint: wyre.Server | wyre.Client, log: list[Any]) -> None:
    async def count(ctx: wyre.Context) -> dict[str, Any]:
        for i in range(ctx.message["to"]):
            await ctx.partial({"i": i})
        return {"done": True}

    endpoint.on("request", "echo", lambda ctx: {"echo": ctx.message["value"]})
    endpoint.on("request", "count", count)
    endpoint.on("message", lambda ctx: log.append(ctx.message))


@asynccontextmanager
async def listening(transport: str, **options: Any) -> AsyncIterator[tuple[wyre.Server, str]]:
    """A wyre server with the handlers of :func:`serve`, and its URL."""
    server = wyre.Server(transport=transport, **options)
    serve(server, [])
    await server.listen(port=0, host="127.0.0.1")
    try:
        yield server, f"ws://127.0.0.1:{server.port}"
    finally:
        async with asyncio.timeout(seconds(15)):
            await server.close(grace=1)


# -- a raw peer against a wyre server -------------------------------------------------


async def test_a_msgpack_server_speaks_binary_msgpack_to_a_client_that_offers_it(
    transport: str,
) -> None:
    errors: list[Exception] = []
    async with listening(transport, codec="msgpack") as (server, url):
        server.on("error", errors.append)
        async with raw_connect(url, subprotocols=MSGPACK_OFFER) as ws:
            assert ws.subprotocol == "wyre.v2.msgpack"
            (peer,) = await eventually(lambda: list(server.connections.values()))
            assert peer.codec.name == "msgpack" and peer.extensions

            blob = bytes(range(256))
            await ws.send(
                pack({"type": "echo", "value": blob, "key": "k1", "direction": "REQUEST"})
            )
            assert await recv_msgpack(ws) == {"echo": blob, "key": "k1", "direction": "REPLY"}

            await ws.send(pack({"type": "count", "to": 2, "key": "k2", "direction": "REQUEST"}))
            assert [await recv_msgpack(ws) for _ in range(3)] == [
                {"i": 0, "key": "k2", "direction": "PARTIAL"},
                {"i": 1, "key": "k2", "direction": "PARTIAL"},
                {"done": True, "key": "k2", "direction": "REPLY"},
            ]

            await ws.send(pack({"type": "note", "key": "m1"}))  # a keyed message: ACKed
            assert await recv_msgpack(ws) == {"key": "m1", "direction": "ACK"}

            # JSON text on a MessagePack connection cannot be read: reported, not answered
            await ws.send(json.dumps({"type": "echo", "value": 1, "key": "k3"}))
            await eventually(lambda: errors)
            assert isinstance(errors[0], wyre.CodecError)
            await peer.send({"type": "after", "at": datetime.date(2024, 2, 29)})
            assert await recv_msgpack(ws) == {"type": "after", "at": "2024-02-29"}


async def test_a_json_client_of_a_msgpack_server_stays_json(transport: str) -> None:
    async with listening(transport, codec="msgpack") as (server, url):
        async with raw_connect(url, subprotocols=JSON_OFFER) as ws:
            assert ws.subprotocol == "wyre.v2"
            (peer,) = await eventually(lambda: list(server.connections.values()))
            assert peer.codec.name != "msgpack" and peer.extensions
            await ws.send(
                json.dumps({"type": "echo", "value": 5, "key": "k", "direction": "REQUEST"})
            )
            assert await recv_json(ws) == {"echo": 5, "key": "k", "direction": "REPLY"}

        async with wyre.Client(transport=transport) as client:  # wyre's own JSON client
            conn = await client.connect(url)
            assert conn.subprotocol == "wyre.v2" and conn.codec.name != "msgpack"
            reply = await conn.request({"type": "echo", "value": [1, "two"]})
            assert reply.message["echo"] == [1, "two"]


# -- a wyre client against a raw server --------------------------------------------------


def msgpack_if_offered(_: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    return Subprotocol("wyre.v2.msgpack") if "wyre.v2.msgpack" in offered else None


async def test_a_msgpack_client_offers_it_and_writes_binary_msgpack(transport: str) -> None:
    accepted: asyncio.Queue[ServerConnection] = asyncio.Queue()

    async def handle(ws: ServerConnection) -> None:
        await accepted.put(ws)
        await ws.wait_closed()

    async with raw_serve(handle, "127.0.0.1", 0, select_subprotocol=msgpack_if_offered) as raw:
        port = raw.sockets[0].getsockname()[1]
        async with wyre.Client(transport=transport, codec="msgpack") as client:
            conn = await client.connect(f"ws://127.0.0.1:{port}")
            ws = await asyncio.wait_for(accepted.get(), seconds(5))
            offered = ws.request.headers.get_all("Sec-WebSocket-Protocol")
            assert [p.strip() for line in offered for p in line.split(",")] == MSGPACK_OFFER
            assert conn.subprotocol == "wyre.v2.msgpack" and conn.codec.name == "msgpack"

            request = conn.request({"type": "ask", "n": 1, 2: b"\x00"})  # binary=False
            sent = await recv_msgpack(ws)
            assert sent == {"type": "ask", "n": 1, 2: b"\x00", "key": request.key,
                            "direction": "REQUEST"}  # fmt: skip
            await ws.send(pack({"answer": 42, "key": request.key, "direction": "REPLY"}))
            assert (await request).message["answer"] == 42

            delivery = conn.send({"type": "note"}, ack=True)
            note = await recv_msgpack(ws)
            assert note["type"] == "note" and isinstance(note["key"], str)
            await ws.send(pack({"key": note["key"], "direction": "ACK"}))
            await asyncio.wait_for(delivery, seconds(5))


async def test_a_msgpack_client_falls_back_to_json_with_a_json_only_server(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wyre")
    async with (
        listening(transport) as (server, url),  # the default options: JSON only
        wyre.Client(transport=transport, codec="msgpack") as client,
    ):
        conn = await client.connect(url)
        assert conn.subprotocol == "wyre.v2" and conn.extensions
        assert conn.codec.name != "msgpack"
        (peer,) = await eventually(lambda: list(server.connections.values()))
        assert peer.codec.name == conn.codec.name
        reply = await conn.request({"type": "echo", "value": "hi"})
        assert reply.message["echo"] == "hi"
        await conn.send({"type": "note"}, ack=True)
    assert any("did not agree on MessagePack" in r.getMessage() for r in caplog.records)


# -- one server, both codecs --------------------------------------------------------------


async def test_a_broadcast_reaches_json_and_msgpack_members_each_in_its_codec(
    transport: str,
) -> None:
    message = {"type": "news", "at": datetime.date(2024, 2, 29), "id": uuid.UUID(int=7)}
    expected = {"type": "news", "at": "2024-02-29", "id": str(uuid.UUID(int=7))}
    async with listening(transport, codec="msgpack") as (server, url):
        server.on("connection", lambda conn: conn.join("room"))
        inbox: dict[str, list[Any]] = {"json": [], "msgpack": []}
        clients = {name: wyre.Client(transport=transport) for name in inbox}
        clients["msgpack"] = wyre.Client(transport=transport, codec="msgpack")
        for name, client in clients.items():
            client.on("message", lambda ctx, name=name: inbox[name].append(ctx.message))
        try:
            conns = {name: await client.connect(url) for name, client in clients.items()}
            assert conns["msgpack"].codec.name == "msgpack"
            assert conns["json"].codec.name != "msgpack"
            async with (
                raw_connect(url, subprotocols=JSON_OFFER) as raw_json,
                raw_connect(url, subprotocols=MSGPACK_OFFER) as raw_msgpack,
            ):
                await eventually(lambda: len(server.connections) == 4)
                await eventually(lambda: all(c.groups for c in server.connections.values()))
                await server.broadcast(message, group="room")
                assert await recv_json(raw_json) == expected  # a text frame
                assert await recv_msgpack(raw_msgpack) == expected  # a binary frame
                await eventually(lambda: inbox == {"json": [expected], "msgpack": [expected]})
                # requests on both kinds at once, each in its own codec
                replies = await asyncio.gather(
                    *(conn.request({"type": "echo", "value": name}) for name, conn in conns.items())
                )
                assert [r.message["echo"] for r in replies] == list(conns)
        finally:
            for client in clients.values():
                await client.close()


async def test_use_moves_fields_on_both_codecs_and_a_custom_codec_replaces_json_only(
    transport: str,
) -> None:
    """Accessors apply on every connection; ``use("codec")`` on those that did not agree on
    MessagePack (what the handshake agreed on is what both ends speak)."""
    wrapped: list[str | bytes] = []

    def decode(data: str | bytes) -> Any:
        wrapped.append(data)
        return json.loads(data)["payload"]

    def encode(message: Any) -> str:
        return json.dumps({"payload": message})

    def prepare(server: wyre.Server, client: wyre.Client) -> None:
        for endpoint in (server, client):
            endpoint.use("key", lambda m: m.get("ref"), lambda m, v: m.update(ref=v))
            endpoint.use("codec", decode, encode)
            serve(endpoint, [])

    for codec in ("msgpack", "json"):
        server, client, conn, peer = await open_pair(transport, prepare=prepare, codec=codec)
        try:
            wrapped.clear()
            reply = await conn.request(
                {"type": "echo", "value": b"\x01" if codec == "msgpack" else 1}
            )
            assert "ref" in reply.message and "key" not in reply.message
            if codec == "msgpack":
                assert conn.codec.name == peer.codec.name == "msgpack" and wrapped == []
                assert reply.message["echo"] == b"\x01"
            else:
                assert conn.codec.name == "custom" and len(wrapped) == 2
        finally:
            await close_pair(server, client)


# -- options -------------------------------------------------------------------------------


def test_msgpack_needs_the_extensions() -> None:
    with pytest.raises(ValueError, match="extensions"):
        wyre.Server(codec="msgpack", extensions=False)
    with pytest.raises(ValueError, match="msgpack"):
        wyre.Client(codec="protobuf")  # type: ignore[arg-type]


def test_without_msgpack_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "msgpack", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r"pip install 'pywyre\[msgpack\]'"):
        wyre.Client(codec="msgpack")
    assert wyre.Server().msgpack_envelope is None  # nothing needs it unless asked for


# -- the wyre command ------------------------------------------------------------------------


async def test_the_wyre_command_requests_over_msgpack() -> None:
    """``--codec msgpack`` on the command line; the server set up with ``configure()``."""
    from .test_cli import run, served

    async with served(codec="msgpack") as (server, url):
        codecs: list[str] = []
        server.on("connection", lambda conn: codecs.append(conn.codec.name))
        server.on("request", "blob", lambda ctx: {"blob": b"\x00\xff"})
        status, out, err = await run("request", url, '{"type": "blob"}', "--codec", "msgpack")
        assert (status, out) == (0, '{"blob": "00ff"}\n'), err  # bytes printed as hex
        status, out, err = await run("request", url, '{"type": "add", "a": 1, "b": 2}')
        assert (status, out) == (0, '{"sum": 3}\n'), err
        assert codecs == ["msgpack", server.envelope.codec.name]  # the default, JSON
