"""Request timeouts: per request, from the ``request_timeout`` option, none; late replies."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import wyre

from .conftest import Link, eventually, seconds
from .proxy import DIRECTIONS, hold_requests, in_flight, linked, record


async def test_request_fails_with_request_timeout_and_forgets_the_key(link: Link) -> None:
    hold_requests(link.handler)
    errors = record(link.sender, "error")
    with pytest.raises(wyre.RequestTimeout) as caught:
        await link.conn.request({"type": "slow"}, timeout=seconds(0.2))
    assert isinstance(caught.value, TimeoutError)
    assert link.conn.pending_requests == 0
    assert errors == []


async def test_timeout_reaches_the_callback(link: Link) -> None:
    hold_requests(link.handler)
    outcome: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()
    link.conn.request({}, lambda *args: outcome.set_result(args), timeout=seconds(0.2))
    (error,) = await asyncio.wait_for(outcome, seconds(5))
    assert isinstance(error, wyre.RequestTimeout)


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_default_timeout_is_the_request_timeout_option(
    transport: str, direction: str
) -> None:
    async with linked(transport, direction, request_timeout=seconds(0.2)) as link:
        hold_requests(link.handler)
        async with asyncio.timeout(seconds(5)):  # not the 30 s default
            with pytest.raises(wyre.RequestTimeout):
                await link.conn.request({})


@pytest.mark.parametrize(
    ("options", "kwargs"),
    [({"request_timeout": None}, {}), ({"request_timeout": 0.1}, {"timeout": None})],
    ids=["option-none", "argument-none"],
)
async def test_no_timeout_waits_for_the_reply(
    transport: str, options: dict[str, Any], kwargs: dict[str, Any]
) -> None:
    async with linked(transport, "client->server", **options) as link:
        held = hold_requests(link.handler)
        request = in_flight(link.conn.request({}, **kwargs))
        await asyncio.sleep(seconds(0.4))
        assert not request.done()
        held[0].reply({"late": "but welcome"})
        reply = await asyncio.wait_for(request, seconds(5))
        assert reply.message["late"] == "but welcome"


async def test_late_reply_is_dropped_quietly(link: Link) -> None:
    held = hold_requests(link.handler)
    errors = record(link.sender, "error")
    expired = link.conn.request({"n": 1}, timeout=seconds(0.2))
    with pytest.raises(wyre.RequestTimeout):
        await expired
    later = in_flight(link.conn.request({"n": 2}))
    await eventually(lambda: len(held) == 2)
    # The timeout sent a CANCEL: the responder knows, and drops the late answer
    # itself (a peer speaking the original protocol would send it; the
    # requester then drops it, see test_wire.py).
    assert held[0].answered
    await held[0].reply({"answer": "late"})
    held[1].reply({"answer": "fresh"})
    reply = await asyncio.wait_for(later, seconds(5))
    assert reply.message["answer"] == "fresh"
    assert errors == []
