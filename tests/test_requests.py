"""Requests: replies, error replies, partial replies, keys, concurrency, callbacks."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import pytest

import wyre

from .conftest import seconds
from .proxy import Gated


async def fails(request: wyre.Request) -> wyre.Context:
    """Await a request that must fail with an ERROR reply; return the error's context."""
    with pytest.raises(wyre.RequestError) as caught:
        await request
    assert caught.value.context.direction == wyre.Direction.ERROR
    return caught.value.context


def callback_log() -> tuple[list[tuple[Any, ...]], asyncio.Event, Any]:
    """A node-style callback logging every call; the event is set by the final one."""
    calls: list[tuple[Any, ...]] = []
    ended = asyncio.Event()

    def callback(*args: Any) -> None:
        calls.append(args)
        if len(args) < 3:
            ended.set()

    return calls, ended, callback


async def count_up(ctx: wyre.Context) -> None:
    """Send partials 0..to-1."""
    for n in range(ctx.message["to"]):
        await ctx.partial({"n": n})


async def counting(ctx: wyre.Context) -> None:
    """Send partials 0..to-1, then reply."""
    await count_up(ctx)
    await ctx.reply({"done": True})


async def test_untyped_request_gets_the_reply(link: Any) -> None:
    seen: list[wyre.Context] = []

    def answer(ctx: wyre.Context) -> dict[str, Any]:
        seen.append(ctx)
        return {"sum": ctx.message["a"] + ctx.message["b"]}

    link.handler.on("request", answer)
    request = link.conn.request({"a": 2, "b": 3})
    assert isinstance(request, wyre.Request)
    reply = await request
    assert reply.message == {"sum": 5, "key": request.key, "direction": "REPLY"}
    assert reply.direction == wyre.Direction.REPLY
    assert reply.key == request.key and uuid.UUID(request.key).version == 4
    assert reply.connection is link.conn
    (ctx,) = seen
    assert ctx.direction == wyre.Direction.REQUEST
    assert ctx.key == request.key and ctx.type is None
    assert ctx.connection is link.peer


async def test_typed_request_routing(link: Any) -> None:
    link.handler.on("request", lambda ctx: {"by": "untyped"})
    link.handler.on("request", "greet", lambda ctx: {"by": "greet"})
    link.handler.on("request", 7, lambda ctx: {"by": 7})
    cases = [({"type": "greet"}, "greet"), ({"type": 7}, 7), ({"type": "7"}, 7), ({}, "untyped")]
    for message, by in cases:
        reply = await link.conn.request(message)
        assert reply.message["by"] == by


async def test_request_without_any_handler_gets_no_handler_error(link: Any) -> None:
    error = await fails(link.conn.request({"type": "nobody"}))
    assert error.message["error"] == "NoHandler"


async def test_reply_with_ctx_reply(link: Any) -> None:
    link.handler.on("request", "echo", lambda ctx: ctx.reply({"echo": ctx.message["text"]}))
    reply = await link.conn.request({"type": "echo", "text": "hi"})
    assert reply.message["echo"] == "hi"


async def test_reply_from_async_handler(link: Any) -> None:
    async def slow(ctx: wyre.Context) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"slow": True}

    async def awaits_reply(ctx: wyre.Context) -> None:
        await asyncio.sleep(0.01)
        await ctx.reply({"awaited": True})

    link.handler.on("request", "slow", slow)
    link.handler.on("request", "awaits", awaits_reply)
    assert (await link.conn.request({"type": "slow"})).message["slow"] is True
    assert (await link.conn.request({"type": "awaits"})).message["awaited"] is True


async def test_error_reply_with_ctx_error(link: Any) -> None:
    link.handler.on("request", lambda ctx: ctx.error({"reason": "not today"}))
    request = link.conn.request({"ask": "please"})
    error = await fails(request)
    assert error.message == {"reason": "not today", "key": request.key, "direction": "ERROR"}


@pytest.mark.parametrize("style", ["plain", "async"])
async def test_raising_handler_gives_error_reply(link: Any, style: str) -> None:
    def plain(ctx: wyre.Context) -> None:
        raise ValueError("amount must be positive")

    async def coroutine(ctx: wyre.Context) -> None:
        await asyncio.sleep(0)
        plain(ctx)

    errors: list[BaseException] = []
    link.handler.on("error", errors.append)
    link.handler.on("request", plain if style == "plain" else coroutine)
    error = await fails(link.conn.request({"amount": -1}))
    assert error.message["error"] == "ValueError"
    assert error.message["message"] == "amount must be positive"
    assert "traceback" not in error.message
    assert [type(exc) for exc in errors] == [ValueError]


async def test_partials_stream_in_order_before_the_reply(link: Any) -> None:
    gated = Gated(
        link.handler, "request", "count", before=count_up, reply=lambda ctx: {"done": True}
    )
    request = link.conn.request({"type": "count", "to": 3})
    got = []
    async for partial in request.partials():
        assert partial.direction == wyre.Direction.PARTIAL
        assert partial.key == request.key
        got.append(partial.message["n"])
        if len(got) == 3:
            assert not request.done()  # the handler has not replied yet
            gated.release()
    assert got == [0, 1, 2]
    assert (await request).message["done"] is True


async def test_partials_with_callback(link: Any) -> None:
    link.handler.on("request", "count", counting)
    calls, ended, callback = callback_log()
    link.conn.request({"type": "count", "to": 3}, callback)
    await asyncio.wait_for(ended.wait(), seconds(5))
    *partials, (err, reply) = calls
    assert [(args[:2], args[2].message["n"]) for args in partials] == [
        ((None, None), n) for n in range(3)
    ]
    assert err is None and reply.message["done"] is True


async def test_callback_request_gets_reply_or_error(link: Any) -> None:
    link.handler.on("request", "ok", lambda ctx: {"fine": True})
    link.handler.on("request", "bad", lambda ctx: ctx.error({"fine": False}))
    replies, replied, on_reply = callback_log()
    errors, failed, on_error = callback_log()
    link.conn.request({"type": "ok"}, callback=on_reply)
    link.conn.request({"type": "bad"}, None, on_error)
    await asyncio.wait_for(asyncio.gather(replied.wait(), failed.wait()), seconds(5))
    ((err, reply),) = replies
    assert err is None and reply.message["fine"] is True
    ((exc,),) = errors
    assert isinstance(exc, wyre.RequestError) and exc.context.message["fine"] is False


async def test_caller_set_key_is_kept(link: Any) -> None:
    keys: list[str] = []
    link.handler.on("request", lambda ctx: keys.append(ctx.message["key"]) or {"ok": True})
    key = "my-own-key-" + str(uuid.uuid4())
    message = {"key": key}
    request = link.conn.request(message)
    reply = await request
    assert request.key == reply.key == key
    assert keys == [key]
    assert message == {"key": key}  # the caller's dict is not modified


async def test_many_concurrent_requests_get_their_own_replies(link: Any) -> None:
    async def shuffled(ctx: wyre.Context) -> dict[str, Any]:
        await asyncio.sleep(random.random() / 100)
        return {"n": ctx.message["n"]}

    link.handler.on("request", shuffled)
    requests = [link.conn.request({"n": n}) for n in range(200)]
    replies = await asyncio.wait_for(asyncio.gather(*requests), seconds(30))
    assert [reply.message["n"] for reply in replies] == list(range(200))
    assert [reply.key for reply in replies] == [request.key for request in requests]
    assert len({request.key for request in requests}) == 200
    assert link.conn.pending_requests == 0


async def test_requests_leave_no_garbage_cycles() -> None:
    """A settled request is freed by reference counting alone, not by the cyclic collector."""
    import gc

    from wyre.transport import memory_pair

    server, client = wyre.Server(), wyre.Client()
    server.on("request", lambda ctx: {"n": ctx.message["n"]})
    conn, _ = memory_pair(client, server)
    await conn.request({"n": -1})  # warm up
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        for n in range(500):
            assert (await conn.request({"n": n})).message["n"] == n
        grown = len(gc.get_objects()) - before
    finally:
        gc.enable()
    assert grown < 100, f"{grown} objects left for the cyclic collector by 500 requests"
