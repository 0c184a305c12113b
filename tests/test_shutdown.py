"""Server shutdown: stop accepting, let handlers finish within the grace, close, clean up."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import wyre

from .conftest import eventually, open_pair, seconds
from .proxy import Gated, all_closed, in_flight, linked, pending_both_ways, proxied, record

# Clients here answer the closing handshake: a close must not wait this out.
CLOSE_TIMEOUT = seconds(3)


async def shut_down(server: wyre.Server, *args: Any, grace: float | None = 0) -> None:
    """``server.close(*args, grace=grace)``, failing if it waits out the close timeout."""
    closing = asyncio.ensure_future(server.close(*args, grace=grace))
    allowed = server.options.shutdown_grace if grace is None else grace
    await asyncio.wait({closing}, timeout=allowed + seconds(2))
    assert closing.done(), "server.close() waited out close_timeout"
    closing.result()


@pytest.mark.parametrize(
    ("args", "expected"), [((), (1001, "")), ((4004, "maintenance"), (4004, "maintenance"))]
)
async def test_close_reaches_clients_with_the_code(
    transport: str, args: tuple[Any, ...], expected: tuple[int, str]
) -> None:
    async with linked(transport, "client->server", close_timeout=CLOSE_TIMEOUT) as link:
        closes = record(link.client, "close")
        handler = Gated(link.server)
        request = in_flight(link.conn.request({}))
        await eventually(handler.started.is_set)
        await shut_down(link.server, *args)
        (error,) = await all_closed([request])
        assert (error.code, error.reason) == expected
        (code, reason, conn) = (await eventually(lambda: closes))[0]
        assert (code, reason, conn) == (*expected, link.conn)


async def test_running_handlers_finish_within_the_grace(transport: str) -> None:
    async with linked(transport, "client->server", close_timeout=CLOSE_TIMEOUT) as link:
        handler = Gated(link.server)
        request = in_flight(link.conn.request({}))
        await eventually(handler.started.is_set)
        url = f"ws://127.0.0.1:{link.server.port}"
        closing = asyncio.create_task(link.server.close(grace=seconds(10)))
        with pytest.raises(wyre.ConnectError):  # returns once the server stopped accepting
            await wyre.Client(transport=transport).connect(url)
        assert not closing.done()
        handler.release()
        reply = await asyncio.wait_for(request, seconds(5))
        assert reply.message["finished"]
        await asyncio.wait_for(closing, seconds(5))
        assert link.conn.close_code == 1001
        assert handler.cancelled_contexts == []


@pytest.mark.parametrize(
    ("options", "kwargs"),
    [({}, {"grace": 0.2}), ({"shutdown_grace": 0.2}, {"grace": None})],
    ids=["argument", "option"],
)
async def test_handlers_still_running_after_the_grace_are_cancelled(
    transport: str, options: dict[str, Any], kwargs: dict[str, Any]
) -> None:
    async with linked(transport, "client->server", close_timeout=CLOSE_TIMEOUT, **options) as link:
        handler = Gated(link.server)
        request = in_flight(link.conn.request({}))
        await eventually(handler.started.is_set)
        await shut_down(link.server, **kwargs)
        assert handler.cancelled_contexts == handler.contexts
        (error,) = await all_closed([request])
        assert error.code == 1001


async def test_close_is_bounded_when_a_client_never_answers(transport: str) -> None:
    async with proxied(transport, close_timeout=seconds(0.3), request_timeout=60) as net:
        requests = await pending_both_ways(net.conn, net.peer)
        net.proxy.blackhole()
        async with asyncio.timeout(seconds(5)):
            await net.server.close(grace=0)
        assert net.peer.closed and not net.server.connections
        net.proxy.kill()
        await all_closed(requests)


async def test_nothing_keeps_running_after_closing(transport: str) -> None:
    options = {"shutdown_grace": seconds(0.2), "close_timeout": seconds(1)}
    server, client, conn, peer = await open_pair(transport, options, options)
    handler, messages = Gated(server), Gated(server, "message")
    client.on("request", handler)
    client.on("message", messages)
    for endpoint in (server, client):
        endpoint.on("close", lambda *args: asyncio.sleep(0))
    requests = [in_flight(c.request({})) for c in (conn, peer)]
    for c in (conn, peer):
        c.send({})
        c.send({}, ack=True)
    await eventually(lambda: len(handler.contexts) == 2 and len(messages.contexts) == 4)
    async with asyncio.timeout(seconds(0.2 + 1 + 1 + 5)):  # grace, handshake, tasks
        await server.close()
        await client.close()
    await all_closed(requests)
    assert asyncio.all_tasks() - {asyncio.current_task()} == set()
