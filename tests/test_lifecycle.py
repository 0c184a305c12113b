"""Opening and closing connections: events, ids, failures, listen() arguments."""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import Any

import pytest

import wyre

from .conftest import close_pair, eventually, open_pair, seconds


def record_closes(*endpoints: wyre.Server | wyre.Client) -> dict[str, tuple[Any, ...]]:
    """Record each endpoint's close event (code, reason, connection) under its class name."""
    closes: dict[str, tuple[Any, ...]] = {}

    def recorder(name: str) -> Any:
        return lambda code, reason, conn: closes.__setitem__(name, (code, reason, conn))

    for endpoint in endpoints:
        endpoint.on("close", recorder(type(endpoint).__name__))
    return closes


def free_port() -> int:
    """A loopback port on which nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connect_gives_a_connection_on_each_side(pair: Any) -> None:
    server, client, conn, peer = pair
    assert isinstance(conn, wyre.Connection)
    assert isinstance(peer, wyre.Connection)
    assert uuid.UUID(conn.id).version == 4
    assert uuid.UUID(peer.id).version == 4
    assert conn.id != peer.id
    assert client.connections == {conn.id: conn}
    assert server.connections == {peer.id: peer}
    assert not conn.closed and not peer.closed


async def test_connection_event_fires_with_the_connection(transport: str) -> None:
    opened: dict[str, list[wyre.Connection]] = {"server": [], "client": []}

    def prepare(server: wyre.Server, client: wyre.Client) -> None:
        server.on("connection", opened["server"].append)
        client.on("connection", opened["client"].append)

    server, client, conn, peer = await open_pair(transport, prepare=prepare)
    try:
        await eventually(lambda: opened["server"])
        assert opened["server"] == [peer]
        assert opened["client"] == [conn]
    finally:
        await close_pair(server, client)


async def test_connect_to_nothing_raises_connect_error(transport: str) -> None:
    async with wyre.Client(transport=transport) as client:
        with pytest.raises(wyre.ConnectError) as caught:
            await client.connect(f"ws://127.0.0.1:{free_port()}")
    assert isinstance(caught.value, wyre.WyreError)
    assert client.connections == {}


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((), {}),
        (("8080",), {}),
        ((8080,), {}),
        (({},), {}),
        (({"host": "127.0.0.1"},), {}),
        (({"port": "8080"},), {}),
        (({"port": -1},), {}),
        (({"port": 65536},), {}),
        ((), {"port": 70000}),
        ((), {"port": True}),
        ((), {"port": 1.5}),
    ],
    ids=[
        "no-options",
        "string-options",
        "int-options",
        "no-port",
        "only-host",
        "string-port",
        "negative-port",
        "port-too-big",
        "keyword-port-too-big",
        "bool-port",
        "float-port",
    ],
)
async def test_listen_rejects_bad_arguments(
    transport: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    server = wyre.Server(transport=transport)
    with pytest.raises(ValueError):
        await server.listen(*args, **kwargs)
    assert not server.listening


async def test_listen_accepts_an_options_dict(transport: str) -> None:
    async with wyre.Server(transport=transport) as server:
        await server.listen({"port": 0, "host": "127.0.0.1"})
        assert isinstance(server.port, int) and server.port > 0
        async with wyre.Client(transport=transport) as client:
            conn = await client.connect(f"ws://127.0.0.1:{server.port}")
            assert not conn.closed


async def test_close_reaches_both_sides_with_code_reason_and_own_connection(link: Any) -> None:
    closes = record_closes(link.server, link.client)
    await link.conn.close(1000, "done for today")
    await eventually(lambda: len(closes) == 2)
    client_conn, server_conn = (
        (link.conn, link.peer) if link.sender is link.client else (link.peer, link.conn)
    )
    assert closes["Client"] == (1000, "done for today", client_conn)
    assert closes["Server"] == (1000, "done for today", server_conn)
    assert closes["Client"][2].id == client_conn.id != server_conn.id
    assert link.conn.closed and link.peer.closed
    assert (link.conn.close_code, link.conn.close_reason) == (1000, "done for today")
    assert (link.peer.close_code, link.peer.close_reason) == (1000, "done for today")
    assert link.server.connections == {} and link.client.connections == {}


async def test_close_callback_is_called(link: Any) -> None:
    called: list[tuple[Any, ...]] = []
    await link.conn.close(callback=lambda *args: called.append(args))
    await eventually(lambda: called)
    assert called == [(None,)]
    assert link.conn.close_code == 1000


async def test_server_close_closes_every_connection_with_1001(transport: str) -> None:
    server, client, conn, _ = await open_pair(transport)
    second = await client.connect(f"ws://127.0.0.1:{server.port}")
    await eventually(lambda: len(server.connections) == 2)
    closed: list[tuple[int, wyre.Connection]] = []
    client.on("close", lambda code, _reason, c: closed.append((code, c)))
    await server.close(grace=1)
    await eventually(lambda: len(closed) == 2)
    assert sorted(closed, key=lambda item: item[1] is second) == [(1001, conn), (1001, second)]
    assert server.connections == {} and client.connections == {}
    await client.close()


async def test_pending_request_fails_when_the_connection_closes(link: Any) -> None:
    link.handler.on("request", lambda ctx: None)  # never answers
    request = link.conn.request({"question": "still there?"})
    await link.peer.close(1000, "leaving")
    with pytest.raises(wyre.ConnectionClosed) as caught:
        await request
    assert caught.value.code == 1000


async def test_async_with_closes_everything(transport: str) -> None:
    async with wyre.Server(transport=transport) as server:
        server.on("request", lambda ctx: {"pong": True})
        await server.listen(port=0, host="127.0.0.1")
        async with wyre.Client(transport=transport) as client:
            conn = await client.connect(f"ws://127.0.0.1:{server.port}")
            reply = await conn.request({"ping": True})
            assert reply.message["pong"] is True
        assert conn.closed and client.connections == {}
        await eventually(lambda: not server.connections)
    with pytest.raises(wyre.ConnectError):
        await wyre.Client(transport=transport).connect(f"ws://127.0.0.1:{server.port}")


async def test_serve_forever_until_cancelled_closes_gracefully(transport: str) -> None:
    server = wyre.Server(transport=transport)
    closes = record_closes(server)
    with pytest.raises(RuntimeError):
        await server.serve_forever()  # not listening yet
    await server.listen(port=0, host="127.0.0.1")
    serving = asyncio.create_task(server.serve_forever())
    async with wyre.Client(transport=transport) as client:
        conn = await client.connect(f"ws://127.0.0.1:{server.port}")
        await eventually(lambda: server.connections)
        serving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await serving
        await asyncio.wait_for(server.wait_closed(), seconds(5))
        assert not server.listening
        await eventually(lambda: conn.closed)
    assert conn.close_code == 1001
    assert closes["Server"][0] == 1001


async def test_listen_without_a_host_answers_ipv4_on_the_port_it_reports(transport: str) -> None:
    async with wyre.Server(transport=transport) as server:
        server.on("request", lambda ctx: {"ok": True})
        await server.listen(port=0)
        async with wyre.Client(transport=transport) as client:
            conn = await client.connect(f"ws://127.0.0.1:{server.port}")
            assert (await conn.request({})).message["ok"] is True
