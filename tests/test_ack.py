"""Acknowledged sends: under ``wyre.v2`` a send can wait until the peer decoded it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import wyre

from .conftest import Link, eventually, seconds
from .proxy import DIRECTIONS, against_raw, linked

SIDES = ["client", "server"]


def callback_outcome() -> tuple[asyncio.Future[tuple[Any, ...]], Any]:
    """A node-style callback and a future of the arguments of its first call."""
    outcome: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()
    return outcome, lambda *args: outcome.done() or outcome.set_result(args)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("style", ["ack", "callback"])
async def test_send_resolves_when_the_peer_acknowledges(
    transport: str, side: str, style: str
) -> None:
    async with against_raw(transport, side) as (conn, raw):
        assert conn.extensions
        outcome, callback = callback_outcome()
        if style == "ack":
            delivery = asyncio.ensure_future(conn.send({"type": "chat"}, ack=True))
            delivery.add_done_callback(lambda _: outcome.set_result(()))
        else:
            conn.send({"type": "chat"}, callback)
        sent = await raw.frame(type="chat")
        assert not outcome.done()  # written, read, but not acknowledged yet
        await raw.send({"key": sent["key"], "direction": "ACK"})
        assert await asyncio.wait_for(outcome, seconds(5)) in [(), (None,)]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("source", ["argument", "option"])
async def test_unacknowledged_send_times_out(transport: str, side: str, source: str) -> None:
    timeout = seconds(0.2)
    options = {"request_timeout": timeout} if source == "option" else {}
    kwargs = {"timeout": timeout} if source == "argument" else {}
    async with against_raw(transport, side, **options) as (conn, _):
        with pytest.raises(wyre.RequestTimeout):
            await conn.send({"type": "chat"}, ack=True, **kwargs)
        outcome, callback = callback_outcome()
        conn.send({"type": "chat"}, callback, **kwargs)
        (error,) = await asyncio.wait_for(outcome, seconds(5))
        assert isinstance(error, wyre.RequestTimeout)
        assert not conn.closed


async def test_acknowledged_send_between_wyre_peers(link: Link) -> None:
    received: list[wyre.Context] = []
    link.handler.on("message", received.append)
    await asyncio.wait_for(link.conn.send({"n": 1}, ack=True), seconds(5))
    await asyncio.wait_for(link.conn.send({"n": 2, "key": "mine"}, ack=True), seconds(5))
    await eventually(lambda: len(received) == 2)
    assert isinstance(received[0].message["key"], str)
    assert received[1].message["key"] == "mine"


@pytest.mark.parametrize("side", SIDES)
async def test_keyed_message_is_acknowledged_before_its_handler_runs(
    transport: str, side: str
) -> None:
    async with against_raw(transport, side) as (conn, raw):

        def broken(ctx: wyre.Context) -> None:
            raise RuntimeError("handler failed after the ACK")

        conn.endpoint.on("message", "broken", broken)
        conn.endpoint.on("error", lambda exc: None)
        await raw.send({"key": "m1", "type": "broken"})
        await raw.send({"key": "m2", "type": "nobody handles this"})
        assert await raw.frame(key="m1") == {"key": "m1", "direction": "ACK"}
        assert await raw.frame(key="m2") == {"key": "m2", "direction": "ACK"}


@pytest.mark.parametrize("side", SIDES)
async def test_base_protocol_peer_never_gets_control_frames(transport: str, side: str) -> None:
    async with against_raw(transport, side, v2=False) as (conn, raw):
        assert not conn.extensions
        conn.endpoint.on("request", lambda ctx: {"ok": True})
        await asyncio.wait_for(conn.send({"type": "chat"}, ack=True), seconds(5))
        outcome, callback = callback_outcome()
        conn.send({"type": "chat"}, callback)
        assert await asyncio.wait_for(outcome, seconds(5)) == (None,)
        with pytest.raises(wyre.RequestTimeout):
            await conn.request({"type": "unanswered"}, timeout=seconds(0.2))
        await raw.send({"key": "m1", "type": "chat"})
        await raw.send({"key": "r1", "direction": "REQUEST"})
        await raw.frame(key="r1", direction="REPLY")
        assert raw.directions() == {None, "REQUEST", "REPLY"}
        assert all("key" not in f for f in raw.received if f.get("type") == "chat")


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_client_without_extensions_gets_sends_resolved_on_write(
    transport: str, direction: str
) -> None:
    async with linked(transport, direction, {"extensions": False}) as link:
        assert not link.conn.extensions
        received: list[wyre.Context] = []
        link.handler.on("message", received.append)
        await asyncio.wait_for(link.conn.send({"n": 1}, ack=True), seconds(5))
        (ctx,) = await eventually(lambda: received)
        assert "key" not in ctx.message
