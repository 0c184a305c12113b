"""use(): protocol fields moved elsewhere in the message, and a custom codec.

Both ends are configured alike before the connection opens; requests,
partials, errors and messages must then work in both directions, with the
protocol fields where the configuration put them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

import wyre

from .conftest import close_pair, eventually, open_pair


@dataclass
class Layout:
    """Where the protocol fields live, and whether frames are wrapped by the codec."""

    key: str = "key"
    direction: str = "direction"
    type: str = "type"
    wrapped: bool = False
    frames: list[str | bytes] = field(default_factory=list)

    def apply(self, endpoint: wyre.Server | wyre.Client) -> None:
        if self.key != "key":
            endpoint.use("key", *accessors(self.key))
        if self.direction != "direction":
            endpoint.use("direction", *accessors(self.direction))
        if self.type != "type":
            endpoint.use("type", accessors(self.type)[0])
        if self.wrapped:
            endpoint.use("codec", self.decode, lambda message: json.dumps({"payload": message}))

    def decode(self, data: str | bytes) -> Any:
        self.frames.append(data)
        return json.loads(data)["payload"]


def accessors(name: str) -> tuple[Any, Any]:
    """A getter and a setter for the top-level field ``name``."""
    return (lambda message: message.get(name), lambda message, value: message.update({name: value}))


def serve(endpoint: wyre.Server | wyre.Client, log: list[wyre.Context]) -> None:
    """Handlers used by every test, on both ends."""

    async def count(ctx: wyre.Context) -> dict[str, Any]:
        for n in range(ctx.message["to"]):
            await ctx.partial({"n": n})
        return {"counted": ctx.message["to"]}

    def refuse(ctx: wyre.Context) -> None:
        raise PermissionError("no entry")

    endpoint.on("request", "greet", lambda ctx: log.append(ctx) or {"hello": ctx.message["name"]})
    endpoint.on("request", "count", count)
    endpoint.on("request", "refuse", refuse)
    endpoint.on("message", "note", log.append)


LAYOUTS = {
    "key": Layout(key="reference"),
    "direction": Layout(direction="dir"),
    "type": Layout(type="kind"),
    "codec": Layout(wrapped=True),
    "all": Layout(key="reference", direction="dir", type="kind", wrapped=True),
}


@dataclass
class Setup:
    layout: Layout
    log: list[wyre.Context]
    sides: list[tuple[wyre.Connection, wyre.Connection]]
    """(sending connection, handling connection), client->server then server->client."""


@pytest.fixture(params=list(LAYOUTS))
async def setup(request: pytest.FixtureRequest, transport: str) -> AsyncIterator[Setup]:
    layout = replace(LAYOUTS[request.param], frames=[])
    log: list[wyre.Context] = []

    def prepare(server: wyre.Server, client: wyre.Client) -> None:
        for endpoint in (server, client):
            layout.apply(endpoint)
            serve(endpoint, log)

    server, client, conn, peer = await open_pair(transport, prepare=prepare)
    yield Setup(layout, log, [(conn, peer), (peer, conn)])
    await close_pair(server, client)


def typed(layout: Layout, type_: str, **fields: Any) -> dict[str, Any]:
    return {layout.type: type_, **fields}


async def test_request_and_reply(setup: Setup) -> None:
    layout = setup.layout
    for conn, peer in setup.sides:
        setup.log.clear()
        request = conn.request(typed(layout, "greet", name="Ada"))
        reply = await request
        assert reply.message == {
            "hello": "Ada",
            layout.key: request.key,
            layout.direction: "REPLY",
        }
        assert reply.key == request.key and reply.direction == wyre.Direction.REPLY
        (ctx,) = setup.log
        assert ctx.connection is peer and ctx.key == request.key and ctx.type == "greet"
        assert ctx.message == typed(
            layout, "greet", name="Ada", **{layout.key: request.key, layout.direction: "REQUEST"}
        )
    if layout.wrapped:  # every frame, both ways, went through the custom codec
        assert len(layout.frames) >= 4
        assert all(list(json.loads(frame)) == ["payload"] for frame in layout.frames)


async def test_partials_and_error_reply(setup: Setup) -> None:
    layout = setup.layout
    for conn, _ in setup.sides:
        request = conn.request(typed(layout, "count", to=3))
        assert [p.message["n"] async for p in request.partials()] == [0, 1, 2]
        assert (await request).message["counted"] == 3
        with pytest.raises(wyre.RequestError) as caught:
            await conn.request(typed(layout, "refuse"))
        error = caught.value.context.message
        assert (error["error"], error["message"], error[layout.direction]) == (
            "PermissionError",
            "no entry",
            "ERROR",
        )


async def test_messages_plain_and_acknowledged(setup: Setup) -> None:
    layout = setup.layout
    for conn, peer in setup.sides:
        setup.log.clear()
        await conn.send(typed(layout, "note", text="plain"))
        await conn.send(typed(layout, "note", text="acked"), ack=True)
        await eventually(lambda: len(setup.log) == 2)
        plain, acked = setup.log
        assert plain.message == typed(layout, "note", text="plain")
        assert plain.connection is peer and plain.type == "note"
        assert acked.message["text"] == "acked"
        assert acked.message[layout.key]  # the acknowledged send was given a key
