"""Cancellation: a requester that gives up tells a ``wyre.v2`` peer, whose handler stops."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import wyre

from .conftest import Link, eventually, seconds
from .proxy import DIRECTIONS, Gated, linked, raw_client, record, serving

Started = Callable[[], Awaitable[Any]]


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
    gated = Gated(link.handler)
    await give_up(link.conn, lambda: eventually(gated.started.is_set))
    await eventually(gated.cancelled.is_set)
    assert gated.cancelled_contexts == gated.contexts
    assert link.conn.pending_requests == 0


async def test_a_cancelled_handler_answers_nothing(transport: str) -> None:
    async with serving(transport) as (server, url), raw_client(url) as raw:
        stubborn = Gated(server, stubborn=True)  # answers every way once cancelled
        server.on("request", "quick", lambda ctx: {"quick": True})
        await raw.send({"key": "doomed", "direction": "REQUEST"})
        await eventually(stubborn.started.is_set)
        await raw.send({"key": "doomed", "direction": "CANCEL"})
        await eventually(stubborn.cancelled.is_set)
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
        slow = Gated(link.handler)
        link.handler.on("request", "ping", lambda ctx: {"pong": True})
        with pytest.raises(wyre.RequestTimeout):
            await link.conn.request({}, timeout=seconds(0.3))
        slow.release()
        await eventually(lambda: slow.finished)
        await link.conn.request({"type": "ping"})  # the late reply arrives before the pong
        assert errors == []
