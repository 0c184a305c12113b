"""Handlers and what they send back: answers that fail, forgotten answers, bad messages.

Each scenario runs on every transport and in both directions (the ``link``
fixture), over real sockets.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

import wyre

from .conftest import Link, eventually, seconds
from .proxy import barrier, in_flight, record


async def error_of(request: Any) -> dict[str, Any]:
    """Await a request that must fail with an ERROR reply; return the error's body."""
    with pytest.raises(wyre.RequestError) as caught:
        await asyncio.wait_for(request, seconds(5))
    body: dict[str, Any] = caught.value.context.message
    return body


# -- answers that cannot be sent ---------------------------------------------------


async def test_an_answer_that_cannot_be_encoded_becomes_an_error_reply(link: Link) -> None:
    async def unencodable(ctx: wyre.Context) -> None:
        await ctx.reply({"value": {1, 2}})  # a set is not JSON

    link.handler.on("request", "set", unencodable)
    body = await error_of(link.conn.request({"type": "set"}))
    assert body["error"] == "CodecError"


async def test_a_handler_can_fall_back_after_a_failed_answer(link: Link) -> None:
    async def careful(ctx: wyre.Context) -> None:
        try:
            await ctx.reply({"value": {1, 2}})
        except wyre.CodecError:
            await ctx.error({"error": "Unsendable", "message": "try again"})

    link.handler.on("request", careful)
    body = await error_of(link.conn.request({}))
    assert body["error"] == "Unsendable"


async def test_a_handler_returning_a_list_gets_a_clear_error(link: Link) -> None:
    link.handler.on("request", lambda ctx: [1, 2])
    body = await error_of(link.conn.request({}))
    assert body["error"] == "TypeError"
    assert "dict" in body["message"]


# -- answers that never come ---------------------------------------------------------


async def test_a_coroutine_handler_that_forgets_to_answer_sends_no_reply_at_once(
    link: Link,
) -> None:
    async def forgetful(ctx: wyre.Context) -> None:
        ctx.message.get("n")  # ...and no return

    link.handler.on("request", forgetful)
    body = await error_of(link.conn.request({}, timeout=seconds(30)))
    assert body["error"] == "NoReply"


async def test_a_plain_handler_may_keep_ctx_and_answer_later(link: Link) -> None:
    kept: list[wyre.Context] = []
    link.handler.on("request", kept.append)  # the original's style: returns None
    request = in_flight(link.conn.request({"n": 1}))
    await eventually(lambda: kept)
    await barrier(link)  # the handler returned long ago: nothing was sent for it
    assert not request.done()
    await kept[0].reply({"later": True})
    assert (await asyncio.wait_for(request, seconds(5))).message["later"] is True


# -- messages that are not objects -------------------------------------------------------


@pytest.mark.parametrize("message", [[1, 2], "hi", None, 5])
async def test_messages_that_are_not_objects_are_refused_before_sending(
    link: Link, message: Any
) -> None:
    errors = record(link.handler, "error")
    with pytest.raises(TypeError, match="dict"):
        link.conn.send(message)
    with pytest.raises(TypeError, match="dict"):
        link.conn.send(message, ack=True)
    with pytest.raises(TypeError, match="dict"):
        link.conn.request(message)
    assert link.conn.pending_requests == 0
    await link.conn.send({"still": "fine"}, ack=True)
    assert errors == []


# -- the caller's message ---------------------------------------------------------------


async def test_one_dict_can_be_reused_for_many_requests(link: Link) -> None:
    link.handler.on("request", lambda ctx: {"n": ctx.message["n"]})
    template: dict[str, Any] = {"type": "t"}
    replies = []
    for n in range(5):
        template["n"] = n
        replies.append(link.conn.request(template))
    assert template == {"type": "t", "n": 4}  # no key, no direction written into it
    assert [(await r).message["n"] for r in replies] == [0, 1, 2, 3, 4]


async def test_one_dict_can_be_sent_acked_concurrently(link: Link) -> None:
    got: list[Any] = []
    link.handler.on("message", lambda ctx: got.append(ctx.message["text"]))
    note = {"text": "hi"}
    await asyncio.wait_for(
        asyncio.gather(*(link.conn.send(note, ack=True) for _ in range(10))), seconds(5)
    )
    assert note == {"text": "hi"}
    assert got == ["hi"] * 10


# -- requests as tasks; failures nobody awaits ---------------------------------------------


async def test_a_request_can_be_run_as_a_task(link: Link) -> None:
    link.handler.on("request", lambda ctx: {"ok": True})
    task = asyncio.create_task(link.conn.request({}))
    assert (await asyncio.wait_for(task, seconds(5))).message["ok"] is True
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(link.conn.request({})) for _ in range(3)]
    assert all(t.result().message["ok"] for t in tasks)


async def test_an_unawaited_failed_request_is_not_reported_as_unretrieved(link: Link) -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        link.handler.on("request", lambda ctx: ctx.error({"error": "No"}))
        request = link.conn.request({})  # fire and forget
        await eventually(request.done)
        del request
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert reported == []


# -- the connection handler ------------------------------------------------------------


async def test_frames_wait_for_an_async_connection_handler(transport: str) -> None:
    server = wyre.Server(transport=transport)

    @server.on("connection")
    async def load_user(conn: wyre.Connection) -> None:
        await asyncio.sleep(seconds(0.2))  # e.g. a database look-up
        conn.state["user"] = "ada"

    server.on("request", lambda ctx: {"user": ctx.connection.state.get("user")})
    async with server, wyre.Client(transport=transport) as client:
        await server.listen(port=0, host="127.0.0.1")
        conn = await client.connect(f"ws://127.0.0.1:{server.port}")
        replies = await asyncio.wait_for(
            asyncio.gather(*(conn.request({}) for _ in range(3))), seconds(5)
        )
    assert [r.message["user"] for r in replies] == ["ada"] * 3


async def test_a_failing_connection_handler_closes_with_1011(transport: str) -> None:
    server = wyre.Server(transport=transport)
    errors = record(server, "error")

    @server.on("connection")
    async def refuse(conn: wyre.Connection) -> None:
        raise RuntimeError("no such user")

    async with server, wyre.Client(transport=transport) as client:
        await server.listen(port=0, host="127.0.0.1")
        conn = await client.connect(f"ws://127.0.0.1:{server.port}")
        with pytest.raises(wyre.ConnectionClosed) as caught:
            await asyncio.wait_for(conn.request({}), seconds(5))
    assert caught.value.code == 1011
    assert [type(e) for e in errors] == [RuntimeError]


async def test_a_connection_handler_may_await_its_peer(transport: str) -> None:
    server = wyre.Server(transport=transport)

    @server.on("connection")
    async def ask_who(conn: wyre.Connection) -> None:
        reply = await conn.request({"type": "who"}, timeout=seconds(5))
        conn.state["name"] = reply.message["name"]

    server.on("request", lambda ctx: {"name": ctx.connection.state.get("name")})
    async with server, wyre.Client(transport=transport) as client:
        client.on("request", "who", lambda ctx: {"name": "ada"})
        await server.listen(port=0, host="127.0.0.1")
        conn = await client.connect(f"ws://127.0.0.1:{server.port}")
        reply = await asyncio.wait_for(conn.request({}), seconds(5))
    assert reply.message["name"] == "ada"


async def test_work_held_for_a_connection_handler_that_closes_is_dropped(transport: str) -> None:
    server = wyre.Server(transport=transport)
    handled: list[Any] = []

    @server.on("connection")
    async def refuse(conn: wyre.Connection) -> None:
        await conn.request({"type": "ready?"})  # answered after the client's requests
        conn.close(4001, "who are you?")  # not awaited: awaiting is optional

    server.on("request", lambda ctx: handled.append(ctx.message) or {})
    sent = asyncio.Event()

    async def ready(ctx: wyre.Context) -> dict[str, Any]:
        await sent.wait()
        return {}

    async with server, wyre.Client(transport=transport) as client:
        client.on("request", "ready?", ready)
        await server.listen(port=0, host="127.0.0.1")
        conn = await client.connect(f"ws://127.0.0.1:{server.port}")
        requests = [in_flight(conn.request({"n": n})) for n in range(3)]
        sent.set()  # the reply to "ready?" goes out after the three requests
        for request in requests:
            with pytest.raises(wyre.ConnectionClosed) as caught:
                await asyncio.wait_for(request, seconds(5))
            assert caught.value.code == 4001
    assert handled == []


async def test_a_closed_upstream_is_an_error_reply_not_silence(transport: str) -> None:
    server = wyre.Server(transport=transport)
    opened: list[wyre.Connection] = []
    server.on("connection", opened.append)

    async def relay(ctx: wyre.Context) -> Any:
        upstream = opened[1]  # another client's connection, closed by then
        return await upstream.request({}, timeout=seconds(5))

    server.on("request", "relay", relay)
    async with server, wyre.Client(transport=transport) as client:
        await server.listen(port=0, host="127.0.0.1")
        url = f"ws://127.0.0.1:{server.port}"
        conn = await client.connect(url)
        other = await client.connect(url)
        await eventually(lambda: len(opened) == 2)
        await other.close()
        await eventually(lambda: opened[1].closed)
        body = await error_of(conn.request({"type": "relay"}))
    assert body["error"] == "ConnectionClosed"


def test_close_codes_that_may_not_be_sent_are_refused() -> None:
    from wyre.transport import MemoryTransport

    server = wyre.Server()

    async def run() -> None:
        conn = server.attach(MemoryTransport(None))
        for code in (999, 1004, 1005, 1006, 1015, 2999, 5000):
            with pytest.raises(ValueError):
                conn.close(code)
        with pytest.raises(ValueError):
            conn.close(1000, "x" * 124)
        await conn.close(4000, "fine")
        assert conn.close_code == 4000

    asyncio.run(run())
