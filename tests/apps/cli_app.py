"""A server for the ``wyre serve`` tests: ``tests.apps.cli_app:server`` or ``:make_server``."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import wyre


def make_server() -> wyre.Server:
    server = wyre.Server(shutdown_grace=5)

    @server.on("request", "add")
    def add(ctx: wyre.Context) -> dict[str, Any]:
        return {"sum": ctx.message["a"] + ctx.message["b"]}

    @server.on("request", "countdown")
    async def countdown(ctx: wyre.Context) -> dict[str, Any]:
        for n in range(ctx.message["from"], 0, -1):
            await ctx.partial({"n": n})
            await asyncio.sleep(ctx.message.get("pause", 0))
        return {"text": "liftoff"}

    @server.on("request", "fail")
    def fail(ctx: wyre.Context) -> None:
        raise ValueError("as asked")

    @server.on("request", "slow")
    async def slow(ctx: wyre.Context) -> dict[str, Any]:
        await asyncio.sleep(ctx.message["seconds"])
        return {"slept": ctx.message["seconds"], "pid": os.getpid()}

    @server.on("request", "pid")
    def pid(ctx: wyre.Context) -> dict[str, Any]:
        return {"pid": os.getpid()}

    @server.on("request", "broadcast")
    async def broadcast(ctx: wyre.Context) -> dict[str, Any]:
        await server.broadcast({"type": "news"})
        return {"done": True}

    @server.on("message", "hello")
    async def hello(ctx: wyre.Context) -> None:
        await ctx.connection.send({"type": "welcome", "to": ctx.message.get("name")})
        await ctx.connection.request({"type": "question"})

    return server


server = make_server()
not_a_server = 42
