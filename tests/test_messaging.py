"""One-way messages: routing by type, handler styles, send styles, acknowledgement."""

from __future__ import annotations

import asyncio
from typing import Any

import wyre

from .conftest import eventually, seconds

Log = list[tuple[str, Any]]


def recorder(log: Log, label: str) -> Any:
    """A plain message handler that logs ``(label, message)``."""
    return lambda ctx: log.append((label, ctx.message))


async def received(log: Log, count: int) -> Log:
    """Wait until ``count`` messages were handled; return the log."""
    await eventually(lambda: len(log) >= count)
    return log


def callback_result() -> tuple[asyncio.Future[tuple[Any, ...]], Any]:
    """A node-style callback and a future of the arguments of its first call."""
    future: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()

    def callback(*args: Any) -> None:
        if not future.done():
            future.set_result(args)

    return future, callback


async def test_untyped_message_reaches_the_message_handler(link: Any) -> None:
    contexts: list[wyre.Context] = []
    link.handler.on("message", contexts.append)
    await link.conn.send({"text": "hello"})
    (ctx,) = await eventually(lambda: contexts)
    assert ctx.message == {"text": "hello"}
    assert ctx.type is None and ctx.key is None
    assert ctx.direction == wyre.Direction.MESSAGE
    assert ctx.connection is link.peer


async def test_typed_by_string(link: Any) -> None:
    log: Log = []
    link.handler.on("message", "chat", recorder(log, "chat"))
    await link.conn.send({"type": "chat", "text": "hi"})
    assert await received(log, 1) == [("chat", {"type": "chat", "text": "hi"})]


async def test_typed_by_number_matches_number_and_string(link: Any) -> None:
    types: list[Any] = []
    link.handler.on("message", 5, lambda ctx: types.append(ctx.type))
    link.handler.on("message", lambda ctx: types.append(("untyped", ctx.type)))
    await link.conn.send({"type": 5})
    await link.conn.send({"type": "5"})
    await eventually(lambda: len(types) == 2)
    assert types == [5, "5"]


async def test_typed_handler_wins_and_untyped_gets_the_rest(link: Any) -> None:
    log: Log = []
    link.handler.on("message", recorder(log, "untyped"))
    link.handler.on("message", "a", recorder(log, "a"))
    for message in ({"type": "a"}, {"type": "b"}, {"n": 1}, {"type": "a", "n": 2}):
        await link.conn.send(message)
    assert await received(log, 4) == [
        ("a", {"type": "a"}),
        ("untyped", {"type": "b"}),
        ("untyped", {"n": 1}),
        ("a", {"type": "a", "n": 2}),
    ]


async def test_registering_again_replaces_the_handler(link: Any) -> None:
    log: Log = []
    link.handler.on("message", "x", recorder(log, "first typed"))
    link.handler.on("message", "x", recorder(log, "second typed"))
    link.handler.on("message", recorder(log, "first untyped"))
    link.handler.on("message", recorder(log, "second untyped"))
    await link.conn.send({"type": "x"})
    await link.conn.send({"type": "y"})
    assert await received(log, 2) == [
        ("second typed", {"type": "x"}),
        ("second untyped", {"type": "y"}),
    ]


async def test_decorator_registration(link: Any) -> None:
    log: Log = []

    @link.handler.on("message", "deco")
    def handle(ctx: wyre.Context) -> None:
        log.append(("deco", ctx.message))

    await link.conn.send({"type": "deco"})
    assert await received(log, 1) == [("deco", {"type": "deco"})]


async def test_async_handler(link: Any) -> None:
    log: Log = []

    async def handle(ctx: wyre.Context) -> None:
        await asyncio.sleep(0.01)
        log.append(("async", ctx.message))

    link.handler.on("message", "slow", handle)
    await link.conn.send({"type": "slow", "n": 1})
    assert await received(log, 1) == [("async", {"type": "slow", "n": 1})]


async def test_send_with_callback_in_options_position(link: Any) -> None:
    log: Log = []
    link.handler.on("message", recorder(log, "got"))
    future, callback = callback_result()
    link.conn.send({"text": "cb"}, callback)
    assert await asyncio.wait_for(future, seconds(5)) == (None,)
    (entry,) = await received(log, 1)
    assert entry[1]["text"] == "cb"


async def test_send_with_callback_keyword(link: Any) -> None:
    log: Log = []
    link.handler.on("message", recorder(log, "got"))
    future, callback = callback_result()
    link.conn.send({"text": "kw"}, callback=callback)
    assert await asyncio.wait_for(future, seconds(5)) == (None,)
    (entry,) = await received(log, 1)
    assert entry[1]["text"] == "kw"


async def test_send_is_awaitable_and_messages_keep_their_order(link: Any) -> None:
    log: Log = []
    link.handler.on("message", recorder(log, "got"))
    for n in range(20):
        assert await link.conn.send({"n": n}) is None
    assert [message["n"] for _, message in await received(log, 20)] == list(range(20))


async def test_acknowledged_send_resolves_after_the_peer_got_it(link: Any) -> None:
    log: Log = []
    link.handler.on("message", "acked", recorder(log, "got"))
    assert link.conn.extensions and link.peer.extensions
    delivery = link.conn.send({"type": "acked", "text": "sure?"}, ack=True)
    assert isinstance(delivery, wyre.Delivery)
    assert await delivery is None
    assert delivery.done()
    # The peer acknowledges once it decoded the frame, right before its
    # (plain) handler runs, so the message is already handled here.
    ((_, message),) = log
    assert message["text"] == "sure?"
    assert message["key"] == delivery.key


async def test_a_loop_of_sends_lets_the_event_loop_run(link: Any) -> None:
    """A send with room in the buffer needs no wait, yet a loop of them must not starve the loop."""
    ran: list[int] = []
    asyncio.get_running_loop().call_soon(ran.append, 1)
    for n in range(1000):
        await link.conn.send({"n": n})
        if ran:
            break
    assert ran, "1000 sends in a row never let the event loop run"
