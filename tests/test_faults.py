"""Faults: a connection that closes or dies fails everything pending on it, at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import wyre

from .conftest import Link, eventually, seconds
from .proxy import Gated, all_closed, in_flight, pending_both_ways, proxied

# Far longer than any test waits: a request that fails did not time out.
PATIENT = {"request_timeout": 60}


async def test_killed_tcp_connection_fails_requests_both_ways(transport: str) -> None:
    async with proxied(transport, **PATIENT) as net:
        requests = await pending_both_ways(net.conn, net.peer)
        net.proxy.kill()
        errors = await all_closed(requests)
        assert {error.code for error in errors} == {1006}
        assert net.conn.closed and net.peer.closed


async def test_keepalive_detects_a_silent_dead_peer(transport: str) -> None:
    keepalive = {"ping_interval": seconds(0.2), "ping_timeout": seconds(0.2)}
    async with proxied(transport, close_timeout=seconds(0.5), **keepalive, **PATIENT) as net:
        await asyncio.sleep(seconds(0.6))  # several pings answered: the link is healthy
        assert not net.conn.closed and not net.peer.closed
        requests = await pending_both_ways(net.conn, net.peer)
        net.proxy.blackhole()
        await all_closed(requests, timeout=10)
        assert net.conn.closed and net.peer.closed


async def test_ping_timeout_may_exceed_ping_interval(transport: str) -> None:
    keepalive = {"ping_interval": seconds(0.1), "ping_timeout": seconds(0.3)}
    async with proxied(transport, **keepalive) as net:
        await asyncio.sleep(seconds(0.5))
        assert not net.conn.closed and not net.peer.closed


async def test_close_is_bounded_by_close_timeout(transport: str) -> None:
    async with proxied(transport, close_timeout=seconds(0.3), **PATIENT) as net:
        requests = await pending_both_ways(net.conn, net.peer)
        net.proxy.blackhole()  # the server will never answer the closing handshake
        async with asyncio.timeout(seconds(5)):
            await net.conn.close()
        assert net.conn.closed
        mine, theirs = requests[:3], requests[3:]
        # no closing handshake completed: the connection was lost
        assert {error.code for error in await all_closed(mine)} == {1006}
        net.proxy.kill()
        await all_closed(theirs)


async def test_closing_either_end_fails_pending_requests_on_both(link: Link) -> None:
    requests = await pending_both_ways(link.conn, link.peer)
    await link.conn.close(4000, "bye")
    errors = await all_closed(requests)
    assert {(error.code, error.reason) for error in errors} == {(4000, "bye")}
    assert all(error.connection in (link.conn, link.peer) for error in errors)


async def test_closing_cancels_the_peers_running_handlers(link: Link) -> None:
    forever = Gated(link.handler)
    request = in_flight(link.conn.request({}))
    await asyncio.wait_for(forever.started.wait(), seconds(5))
    await link.conn.close()
    await asyncio.wait_for(forever.cancelled.wait(), seconds(5))
    with pytest.raises(wyre.ConnectionClosed):
        await request


@pytest.mark.parametrize("side", ["closer", "other end"])
async def test_a_closed_connection_refuses_sends_and_requests(link: Link, side: str) -> None:
    await link.conn.close(4001, "done")
    conn = link.conn if side == "closer" else link.peer
    await eventually(lambda: conn.closed)
    attempts: list[Any] = [
        conn.send({}),
        conn.send({}, ack=True),
        conn.request({}),
        conn.request({}, timeout=None),
    ]
    for attempt in attempts:
        with pytest.raises(wyre.ConnectionClosed) as caught:
            await attempt
        assert (caught.value.code, caught.value.reason) == (4001, "done")
    assert conn.pending_requests == 0


async def test_close_is_idempotent(link: Link) -> None:
    first = link.conn.close(4002, "first")
    second = link.conn.close(4003, "second")
    await asyncio.gather(first, second)
    await link.conn.close()
    await eventually(lambda: link.peer.closed)
    assert link.conn.close_code == link.peer.close_code == 4002
    assert link.peer.close_reason == "first"
