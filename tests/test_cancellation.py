"""Cancellation: a requester that gives up tells a ``wyre.v2`` peer, whose handler stops."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import wyre

from .conftest import Link, eventually, seconds
from .proxy import DIRECTIONS, linked, raw_client, record, serving

Started = Callable[[], Awaitable[Any]]


class Watched:
    """An async request handler that never answers and records being cancelled."""

    def __init__(self, endpoint: wyre.Server | wyre.Client) -> None:
        self.started: list[wyre.Context] = []
        self.cancelled: list[wyre.Context] = []
        endpoint.on("request", self)

    async def __call__(self, ctx: wyre.Context) -> Any:
        self.started.append(ctx)
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            self.cancelled.append(ctx)
            return await self.answer_anyway(ctx)

    async def answer_anyway(self, ctx: wyre.Context) -> Any:
        raise asyncio.CancelledError


class Stubborn(Watched):
    """Tries every way to answer after being cancelled."""

    async def answer_anyway(self, ctx: wyre.Context) -> Any:
        await ctx.partial({"late": "partial"})
        await ctx.reply({"late": "reply"})
        return {"late": "return"}


async def cancel_the_awaiting_task(conn: wyre.Connection, started: Started) -> None:
    task = asyncio.ensure_future(conn.request({}))
    await started()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def call_cancel(conn: wyre.Connection, started: Started) -> None:
    request = conn.request({})
    await started()
    assert request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request


async def let_it_time_out(conn: wyre.Connection, started: Started) -> None:
    with pytest.raises(wyre.RequestTimeout):
        await conn.request({}, timeout=seconds(0.3))


async def asyncio_timeout(conn: wyre.Connection, started: Started) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(seconds(0.3)):
            await conn.request({})


@pytest.mark.parametrize(
    "give_up", [cancel_the_awaiting_task, call_cancel, let_it_time_out, asyncio_timeout]
)
async def test_giving_up_cancels_the_peer_handler(link: Link, give_up: Any) -> None:
    assert link.conn.extensions and link.peer.extensions
    watched = Watched(link.handler)
    await give_up(link.conn, lambda: eventually(lambda: watched.started))
    await eventually(lambda: watched.cancelled)
    assert watched.cancelled == watched.started
    assert link.conn.pending_requests == 0


async def test_a_cancelled_handler_answers_nothing(transport: str) -> None:
    async with serving(transport) as (server, url), raw_client(url) as raw:
        stubborn = Stubborn(server)
        server.on("request", "quick", lambda ctx: {"quick": True})
        await raw.send({"key": "doomed", "direction": "REQUEST"})
        await eventually(lambda: stubborn.started)
        await raw.send({"key": "doomed", "direction": "CANCEL"})
        await eventually(lambda: stubborn.cancelled)
        await raw.send({"key": "after", "direction": "REQUEST", "type": "quick"})
        await raw.frame(key="after", direction="REPLY")
        assert raw.find(key="doomed") is None


async def test_cancel_for_an_unknown_key_is_ignored(transport: str) -> None:
    async with serving(transport) as (server, url), raw_client(url) as raw:
        errors = record(server, "error")
        server.on("request", lambda ctx: {"ok": True})
        await raw.send({"key": "nobody", "direction": "CANCEL"})
        await raw.send({"key": "k", "direction": "REQUEST"})
        await raw.frame(key="k", direction="REPLY")
        assert errors == []
        assert raw.find(key="nobody") is None


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_without_extensions_the_peer_handler_runs_on(transport: str, direction: str) -> None:
    async with linked(transport, direction, {"extensions": False}) as link:
        assert not link.conn.extensions and not link.peer.extensions
        errors = record(link.sender, "error")
        finish = asyncio.Event()
        finished: list[wyre.Context] = []

        async def slow(ctx: wyre.Context) -> dict[str, Any]:
            await finish.wait()
            finished.append(ctx)
            return {"late": True}

        link.handler.on("request", slow)
        link.handler.on("request", "ping", lambda ctx: {"pong": True})
        with pytest.raises(wyre.RequestTimeout):
            await link.conn.request({}, timeout=seconds(0.3))
        finish.set()
        await eventually(lambda: finished)
        await link.conn.request({"type": "ping"})  # the late reply arrives before the pong
        assert errors == []
