"""Groups, broadcast and peers in one process, without a backplane (the embedded default)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import wyre

from .conftest import close_pair, eventually, open_pair, seconds


async def clients_of(
    server: wyre.Server, count: int, transport: str
) -> tuple[wyre.Client, list[tuple[wyre.Connection, list[Any]]]]:
    """``count`` connections to ``server`` (``?n=`` numbers them), each with its inbox."""
    client = wyre.Client(transport=transport)
    inbox: dict[str, list[Any]] = {}

    @client.on("message")
    def got(ctx: wyre.Context) -> None:
        inbox.setdefault(ctx.connection.id, []).append(ctx.message)

    conns = [await client.connect(f"ws://127.0.0.1:{server.port}/?n={n}") for n in range(count)]
    await eventually(lambda: len(server.connections) >= count)
    return client, [(conn, inbox.setdefault(conn.id, [])) for conn in conns]


def numbered(server: wyre.Server, n: int) -> wyre.Connection:
    """The server's end of the client connection opened with ``?n=n``."""
    for conn in server.connections.values():
        if conn.handshake is not None and conn.handshake.query.get("n") == str(n):
            return conn
    raise LookupError(n)


async def test_join_leave_and_broadcast_to_a_group(transport: str) -> None:
    server = wyre.Server(transport=transport)
    await server.listen(port=0, host="127.0.0.1")
    client, ends = await clients_of(server, 3, transport)
    try:
        a, b, c = (numbered(server, n) for n in range(3))
        await a.join("room")
        await b.join("room")
        await b.join("room")  # idempotent
        assert a.groups == b.groups == frozenset({"room"}) and c.groups == frozenset()
        await server.broadcast({"type": "news", "n": 1}, group="room")
        await server.broadcast({"type": "news", "n": 2})  # everyone
        await server.broadcast({"type": "news", "n": 3}, group="room", exclude=a)
        await server.broadcast({"type": "news", "n": 4}, exclude=[a.id, b])
        await b.leave("room")
        await b.leave("room")  # idempotent
        await server.broadcast({"type": "news", "n": 5}, group="room")
        boxes = [box for _, box in ends]
        await eventually(lambda: [len(box) for box in boxes] == [3, 3, 2])
        got = [[m["n"] for m in box] for box in boxes]
        assert got == [[1, 2, 5], [1, 2, 3], [2, 4]]
        assert await server.presence("room") == {a.id: server.node_id}
        assert await server.nodes() == [server.node_id]
    finally:
        await client.close()
        await server.close()


async def test_membership_ends_with_the_connection(transport: str) -> None:
    server, client, conn, peer = await open_pair(transport)
    try:
        await peer.join("room")
        assert set(await server.presence("room")) == {peer.id}
        await conn.close()
        await eventually(lambda: peer.closed)
        assert await server.presence("room") == {}
        assert peer.groups == frozenset({"room"})  # what it was a member of when it closed
        with pytest.raises(wyre.ConnectionClosed):
            await peer.join("other")
    finally:
        await close_pair(server, client)


async def test_a_peer_of_a_local_connection_sends_requests_and_closes(transport: str) -> None:
    def prepare(server: wyre.Server, client: wyre.Client) -> None:
        @client.on("request", "countdown")
        async def countdown(ctx: wyre.Context) -> dict[str, str]:
            for n in range(ctx.message["from"], 0, -1):
                await ctx.partial({"n": n})
            return {"text": "liftoff"}

    server, client, conn, peer_conn = await open_pair(transport, prepare=prepare)
    try:
        got: list[Any] = []
        client.on("message", lambda ctx: got.append(ctx.message["text"]))
        peer = server.peer(peer_conn.id)
        assert peer.local is peer_conn
        await peer.send({"text": "hi"})
        await peer.send({"text": "acked"}, ack=True)
        request = peer.request({"type": "countdown", "from": 2})
        partials = [p.message["n"] async for p in request.partials()]
        assert partials == [2, 1]
        assert (await request).message["text"] == "liftoff"
        await eventually(lambda: got == ["hi", "acked"])
        await asyncio.wait_for(peer.close(4000, "bye"), seconds(5))
        await eventually(lambda: conn.closed)
        assert conn.close_code == 4000 and conn.close_reason == "bye"
    finally:
        await close_pair(server, client)


async def test_an_unknown_id_raises_no_such_connection_at_once() -> None:
    server = wyre.Server()
    peer = server.peer("no-such-id")
    with pytest.raises(wyre.NoSuchConnection):
        await asyncio.wait_for(peer.request({"type": "x"}), seconds(1))
    with pytest.raises(wyre.NoSuchConnection):
        await peer.send({"type": "x"})
    with pytest.raises(wyre.NoSuchConnection):
        await peer.close()
    with pytest.raises(LookupError):  # NoSuchConnection is also a LookupError
        await peer.send({"type": "x"})


async def test_a_clients_connections_have_no_groups(transport: str) -> None:
    server, client, conn, _ = await open_pair(transport)
    try:
        with pytest.raises(RuntimeError, match="server"):
            await conn.join("room")
    finally:
        await close_pair(server, client)


@pytest.mark.parametrize("name", ["", 5, None, "x" * 300])
async def test_group_names_are_checked(transport: str, name: Any) -> None:
    server, client, _, peer = await open_pair(transport)
    try:
        with pytest.raises((TypeError, ValueError)):
            await peer.join(name)
        with pytest.raises(TypeError):
            await server.broadcast(["not", "a", "dict"])
    finally:
        await close_pair(server, client)
