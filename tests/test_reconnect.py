"""A client that reconnects: the same Connection object across sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

import wyre

from .conftest import eventually, seconds

FAST = {"initial_delay": 0.02, "max_delay": 0.1}


class Restartable:
    """A server on a fixed port that can go away and come back (a deploy, a crash)."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.port = 0
        self.server: wyre.Server | None = None
        self.calls: list[int] = []
        self.release = asyncio.Event()

    async def start(self) -> None:
        server = wyre.Server(transport=self.transport)

        @server.on("request", "echo")
        def echo(ctx: wyre.Context) -> dict[str, Any]:
            self.calls.append(ctx.message["n"])
            return {"n": ctx.message["n"]}

        @server.on("request", "hold")
        async def hold(ctx: wyre.Context) -> dict[str, Any]:
            self.calls.append(ctx.message["n"])
            await self.release.wait()
            return {"n": ctx.message["n"]}

        server.on("message", "note", lambda ctx: self.calls.append(ctx.message["n"]))
        await server.listen(port=self.port, host="127.0.0.1")
        self.port, self.server = server.port, server

    async def stop(self, code: int = 1001) -> None:
        assert self.server is not None
        await self.server.close(code, grace=0)
        self.server = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


@asynccontextmanager
async def restartable(transport: str) -> AsyncIterator[Restartable]:
    service = Restartable(transport)
    await service.start()
    try:
        yield service
    finally:
        if service.server is not None:
            await service.stop()


def recorder(client: wyre.Client) -> dict[str, list[Any]]:
    events: dict[str, list[Any]] = {"reconnecting": [], "reconnected": [], "close": []}
    client.on("reconnecting", lambda *args: events["reconnecting"].append(args))
    client.on("reconnected", lambda conn: events["reconnected"].append(conn))
    client.on("close", lambda code, reason, conn: events["close"].append(code))
    return events


async def test_the_same_connection_goes_on_after_the_server_restarts(transport: str) -> None:
    async with restartable(transport) as service:
        client = wyre.Client(transport=transport, reconnect=FAST)
        events = recorder(client)
        conn = await client.connect(service.url)
        assert (await conn.request({"type": "echo", "n": 1})).message["n"] == 1
        held = conn.request({"type": "hold", "n": 2}, timeout=seconds(10))
        await eventually(lambda: 2 in service.calls)
        await service.stop()
        with pytest.raises(wyre.ConnectionClosed):  # pending at the drop: failed, not replayed
            await asyncio.wait_for(held, seconds(5))
        assert conn.reconnecting and conn.closed
        waiting = conn.request({"type": "echo", "n": 3}, timeout=seconds(10))
        noted = conn.send({"type": "note", "n": 4}, ack=True, timeout=seconds(10))
        await asyncio.sleep(0.1)
        await service.start()
        assert (await asyncio.wait_for(waiting, seconds(10))).message["n"] == 3
        await asyncio.wait_for(noted, seconds(10))
        assert events["reconnected"] == [conn] and not conn.reconnecting and not conn.closed
        attempt, delay, same = events["reconnecting"][0]
        assert attempt == 1 and 0 <= delay <= FAST["initial_delay"] and same is conn
        assert (await conn.request({"type": "echo", "n": 5})).message["n"] == 5
        assert service.calls.count(2) == 1  # the held request was not sent again
        assert events["close"] == [] and list(client.connections.values()) == [conn]
        await client.close()
        assert events["close"] == [1000]


async def test_waiting_for_a_socket_is_bounded_by_the_timeout(transport: str) -> None:
    async with restartable(transport) as service:
        client = wyre.Client(transport=transport, reconnect=FAST)
        conn = await client.connect(service.url)
        await service.stop()
        await eventually(lambda: conn.reconnecting)
        with pytest.raises(wyre.RequestTimeout):
            await conn.request({"type": "echo", "n": 1}, timeout=0.2)
        with pytest.raises(wyre.RequestTimeout):
            await conn.send({"type": "note", "n": 2}, timeout=0.2)
        await client.close()


async def test_it_gives_up_after_max_attempts(transport: str) -> None:
    async with restartable(transport) as service:
        client = wyre.Client(transport=transport, reconnect={**FAST, "max_attempts": 3})
        events = recorder(client)
        conn = await client.connect(service.url)
        await service.stop()
        waiting = conn.request({"type": "echo", "n": 1}, timeout=seconds(30))
        with pytest.raises(wyre.ConnectionClosed):
            await asyncio.wait_for(waiting, seconds(10))
        assert [args[0] for args in events["reconnecting"]] == [1, 2, 3]
        assert events["close"] == [1001] and conn.closed and not conn.reconnecting
        assert client.connections == {}
        await client.close()


@pytest.mark.parametrize("code", [1000, 1008])
async def test_a_deliberate_close_by_the_server_is_not_undone(transport: str, code: int) -> None:
    async with restartable(transport) as service:
        client = wyre.Client(transport=transport, reconnect=FAST)
        events = recorder(client)
        conn = await client.connect(service.url)
        await service.stop(code)
        await eventually(lambda: events["close"] == [code])
        assert events["reconnecting"] == [] and not conn.reconnecting
        await client.close()


async def test_closing_a_reconnecting_connection_stops_it(transport: str) -> None:
    async with restartable(transport) as service:
        client = wyre.Client(transport=transport, reconnect={"initial_delay": 0.2})
        events = recorder(client)
        conn = await client.connect(service.url)
        await service.stop()
        await eventually(lambda: conn.reconnecting)
        waiting = conn.request({"type": "echo", "n": 1})
        await asyncio.wait_for(conn.close(4000, "enough"), seconds(5))
        with pytest.raises(wyre.ConnectionClosed):
            await asyncio.wait_for(waiting, seconds(5))
        assert events["close"] == [4000] and conn.close_code == 4000
        attempts = len(events["reconnecting"])
        await service.start()
        await asyncio.sleep(0.5)
        assert len(events["reconnecting"]) == attempts and events["reconnected"] == []
        await client.close()


async def test_reconnect_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown reconnect setting"):
        wyre.Client(reconnect={"initial_dalay": 1})
    with pytest.raises(ValueError):
        wyre.Client(reconnect={"max_attempts": 0})
    with pytest.raises(TypeError):
        wyre.Client(reconnect="yes")
