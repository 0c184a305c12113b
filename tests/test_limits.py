"""Limits: message size, pending requests, running handlers, write buffer, slow peers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import wyre

from .conftest import Link, eventually, not_on_asgi, seconds
from .proxy import (
    DIRECTIONS,
    Gated,
    all_closed,
    barrier,
    hold_requests,
    in_flight,
    linked,
    record,
    serving,
    stalled_client,
)

KB = 1024


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_oversized_frame_closes_with_1009(transport: str, direction: str) -> None:
    async with linked(transport, direction, max_message_size=4 * KB) as link:
        received = record(link.handler, "message")
        held = hold_requests(link.handler)
        pending = in_flight(link.conn.request({}))
        await link.conn.send({"blob": "x" * 3 * KB})
        await eventually(lambda: received and held)
        await link.conn.send({"blob": "x" * 5 * KB})
        (error,) = await all_closed([pending])
        assert error.code == 1009
        await eventually(lambda: link.peer.closed)
        assert link.conn.close_code == link.peer.close_code == 1009


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_past_max_pending_requests_nothing_is_sent(transport: str, direction: str) -> None:
    async with linked(transport, direction, max_pending_requests=2) as link:
        held = hold_requests(link.handler)
        first = [in_flight(link.conn.request({"n": n})) for n in range(2)]
        with pytest.raises(wyre.LimitExceeded) as caught:
            await link.conn.request({"n": 2})
        assert isinstance(caught.value, RuntimeError)
        await eventually(lambda: len(held) == 2)
        held[0].reply({})
        await first[0]
        later = in_flight(link.conn.request({"n": 3}))
        await eventually(lambda: len(held) == 3)
        for ctx in held[1:]:
            ctx.reply({})
        await asyncio.gather(first[1], later)
        assert [ctx.message["n"] for ctx in held] == [0, 1, 3]


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_running_handlers_are_capped_by_backpressure(transport: str, direction: str) -> None:
    limit, count = 4, 200
    async with linked(transport, direction, max_running_handlers=limit) as link:
        gated = Gated(link.handler)
        requests = [in_flight(link.conn.request({"n": n})) for n in range(count)]
        await gated.stays_at(limit, link)
        replies = await asyncio.wait_for(asyncio.gather(*requests), seconds(20))
        assert [reply.message["n"] for reply in replies] == list(range(count))
        assert gated.peak == limit


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_async_message_handlers_count_toward_the_limit(
    transport: str, direction: str
) -> None:
    limit, count = 4, 100
    async with linked(transport, direction, max_running_handlers=limit) as link:
        gated = Gated(link.handler, "message")
        for n in range(count):
            link.conn.send({"n": n})
        await gated.stays_at(limit, link)
        await eventually(lambda: gated.finished == count, timeout=20)
        assert gated.peak == limit


def write_buffer(conn: wyre.Connection) -> int:
    """Bytes the connection's socket has queued but not yet written."""
    return conn.buffered_amount


async def watch_write_buffer(conn: wyre.Connection, samples: list[int]) -> None:
    while not conn.closed:
        samples.append(write_buffer(conn))
        await asyncio.sleep(0.001)


async def until_stuck(progress: Callable[[], int]) -> int:
    """Wait until ``progress()`` stops moving for a while; return where it stopped."""
    async with asyncio.timeout(seconds(10)):
        last = -1
        while (now := progress()) != last:
            last = now
            await asyncio.sleep(seconds(0.1))
    return last


@not_on_asgi(
    "the ASGI server's write buffer is out of sight: buffered_amount counts only what waits "
    "for send(), so the bound checked here does not hold (test_asgi.py checks the backpressure)"
)
async def test_sends_wait_while_the_peer_reads_nothing(transport: str) -> None:
    limit, blob = 16 * KB, "x" * 8 * KB
    options = {"write_limit": limit, "write_timeout": seconds(30)}
    async with serving(transport, **options) as (server, url), stalled_client(url) as ws:
        (conn,) = await eventually(lambda: list(server.connections.values()))
        sent = 0

        async def flood() -> None:
            nonlocal sent
            while True:
                await conn.send({"blob": blob})
                sent += 1

        flooding = asyncio.create_task(flood())
        stuck_at = await until_stuck(lambda: sent)
        assert limit < write_buffer(conn) <= limit + len(blob) + 2 * KB
        ws.transport.resume_reading()
        draining = asyncio.create_task(drain(ws))
        await eventually(lambda: sent > stuck_at + 100)
        for task in (flooding, draining):
            task.cancel()
        await asyncio.gather(flooding, draining, return_exceptions=True)
        assert not conn.closed


async def drain(ws: Any) -> None:
    async for _ in ws:
        pass


async def test_slow_consumer_is_cut_off_and_the_others_are_served(transport: str) -> None:
    limit, blob = 32 * KB, "x" * 16 * KB
    options = {"write_limit": limit, "write_timeout": seconds(1)}
    async with serving(transport, **options) as (server, url):
        server.on("request", lambda ctx: {"blob": blob} if ctx.message.get("big") else ctx.message)
        closes = record(server, "close")
        clients = [wyre.Client(transport=transport) for _ in range(20)]
        async with stalled_client(url) as slow:
            (slow_conn,) = await eventually(lambda: list(server.connections.values()))
            samples: list[int] = []
            watching = asyncio.create_task(watch_write_buffer(slow_conn, samples))
            for n in range(1000):
                await slow.send(json.dumps({"key": f"s{n}", "direction": "REQUEST", "big": 1}))
            conns = [await client.connect(url) for client in clients]

            async def chat(conn: wyre.Connection) -> None:
                for n in range(20):
                    reply = await conn.request({"n": n})
                    assert reply.message["n"] == n

            await asyncio.wait_for(asyncio.gather(*(chat(c) for c in conns)), seconds(20))
            (code, _, closed) = (await eventually(lambda: closes))[0]
            await watching
        assert closed is slow_conn and code == 1006
        assert max(samples) > limit  # the peer did get congested
        assert max(samples) <= limit + 2 * len(blob) + 4 * KB
        assert not any(c.closed for c in conns)
        for client in clients:
            await client.close()


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_handlers_at_the_limit_can_still_await_requests_back(
    transport: str, direction: str
) -> None:
    """Reading goes on at the handler limit: the replies handlers wait for get through."""
    limit, count = 4, 12
    async with linked(transport, direction, max_running_handlers=limit) as link:

        async def ask_back(ctx: wyre.Context) -> dict[str, Any]:
            reply = await ctx.connection.request({"type": "double", "n": ctx.message["n"]})
            return {"n": reply.message["n"]}

        link.handler.on("request", "ask", ask_back)
        link.sender.on("request", "double", lambda ctx: {"n": ctx.message["n"] * 2})
        replies = await asyncio.wait_for(
            asyncio.gather(
                *(
                    link.conn.request({"type": "ask", "n": n}, timeout=seconds(30))
                    for n in range(count)
                )
            ),
            seconds(10),
        )
        assert [r.message["n"] for r in replies] == [n * 2 for n in range(count)]


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_keepalive_survives_busy_handlers(transport: str, direction: str) -> None:
    """Pongs are read while every handler slot is taken, so a busy peer is not dropped."""
    ping = seconds(0.1)
    async with linked(
        transport, direction, max_running_handlers=2, ping_interval=ping, ping_timeout=ping
    ) as link:
        await stuck_through_pings(link, count=40, running=2, ping=ping)


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_unread_partials_are_bounded(transport: str, direction: str) -> None:
    limit, count = 50, 2000
    async with linked(transport, direction, max_buffered_partials=limit) as link:
        link.handler.on("request", streaming(count))
        request = link.conn.request({})
        reply = await asyncio.wait_for(request, seconds(20))  # partials never read meanwhile
        assert reply.message["done"] is True
        assert request.dropped_partials == count - limit
        kept = [partial.message["n"] async for partial in request.partials()]
        assert kept == list(range(count - limit, count))  # the newest are kept


async def test_one_send_giving_up_does_not_cancel_the_others_waiting(transport: str) -> None:
    limit, blob = 16 * KB, "x" * 8 * KB
    options = {"write_limit": limit, "write_timeout": seconds(1)}
    async with serving(transport, **options) as (server, url), stalled_client(url):
        (conn,) = await eventually(lambda: list(server.connections.values()))
        while conn.buffered_amount <= limit:  # fill the buffer: the peer reads nothing
            conn.send({"blob": blob})
            await asyncio.sleep(0)
        patient = in_flight(conn.send({"blob": blob}))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(conn.send({"blob": blob}), seconds(0.05))
        for _ in range(5):  # a few loop steps: time for a cancellation to spread
            await asyncio.sleep(0)
        assert not patient.cancelled()  # still waiting, until the peer is dropped
        with pytest.raises(wyre.ConnectionClosed):
            await asyncio.wait_for(patient, seconds(10))


@not_on_asgi("uvicorn's pong deadline runs on while the application is not receiving")
async def test_keepalive_waits_while_a_full_queue_pauses_reading(transport: str) -> None:
    """Past max_queued_handlers the server stops reading; its pong deadline waits meanwhile.

    (Its peer, reading normally, only pings when asked to: a peer whose pings
    go unread for longer than its ping_timeout would drop the paused side, as
    any WebSocket peer does.)
    """
    ping = seconds(0.1)
    async with linked(
        transport,
        "client->server",
        client_options={"ping_interval": None},
        max_running_handlers=1,
        max_queued_handlers=2,
        ping_interval=ping,
        ping_timeout=ping,
    ) as link:
        await stuck_through_pings(link, count=30, running=1, ping=ping)


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_a_slow_reader_of_partials_loses_none(transport: str, direction: str) -> None:
    """While partials are iterated, a full buffer holds the peer back instead of dropping."""
    limit, count = 10, 2000
    async with linked(transport, direction, max_buffered_partials=limit) as link:
        link.handler.on("request", streaming(count))
        request = link.conn.request({}, timeout=seconds(30))
        seen = []
        async for partial in request.partials():
            seen.append(partial.message["n"])
            if len(seen) % 100 == 0:
                await asyncio.sleep(seconds(0.01))  # fall behind now and then
        assert seen == list(range(count))
        assert request.dropped_partials == 0
        assert (await request).message["done"] is True
        await barrier(link)  # reading resumed: the connection still serves


async def stuck_through_pings(link: Link, *, count: int, running: int, ping: float) -> None:
    """Send ``count`` requests to gated handlers, keep ``running`` of them stuck for
    several ping rounds, and check that both ends stayed up and every reply came."""
    gated = Gated(link.handler)
    requests = [in_flight(link.conn.request({"n": n})) for n in range(count)]
    await eventually(lambda: gated.running == running)
    await asyncio.sleep(ping * 8)  # several ping rounds while the handlers are stuck
    assert not link.conn.closed and not link.peer.closed
    gated.release()
    replies = await asyncio.wait_for(asyncio.gather(*requests), seconds(10))
    assert [r.message["n"] for r in replies] == list(range(count))


def streaming(count: int) -> Callable[[wyre.Context], Awaitable[dict[str, Any]]]:
    """A request handler that sends ``count`` partials, then replies."""

    async def stream(ctx: wyre.Context) -> dict[str, Any]:
        for n in range(count):
            await ctx.partial({"n": n})
        return {"done": True}

    return stream
