"""A wyre server and client in one process: send, request, partials, errors.

Run it with ``make demo`` (or ``python examples/demo.py`` once installed).
"""

from __future__ import annotations

import asyncio

import wyre


def make_server() -> wyre.Server:
    # A handler that raises is logged with its traceback at ERROR level;
    # "none" keeps this demo's output to what the peers see.
    server = wyre.Server(log_level="none")

    @server.on("connection")
    def connected(conn: wyre.Connection) -> None:
        print(f"server: connection {conn.id[:8]} opened")

    @server.on("message", "chat")
    def chat(ctx: wyre.Context) -> None:
        print(f"server: chat message {ctx.message['text']!r}")

    @server.on("request", "add")
    def add(ctx: wyre.Context) -> dict[str, int]:
        return {"sum": ctx.message["a"] + ctx.message["b"]}

    @server.on("request", "countdown")
    async def countdown(ctx: wyre.Context) -> dict[str, str]:
        for n in range(ctx.message["from"], 0, -1):
            await ctx.partial({"n": n})
            await asyncio.sleep(0.05)
        return {"text": "liftoff"}

    @server.on("request", "divide")
    def divide(ctx: wyre.Context) -> dict[str, float]:
        return {"result": ctx.message["a"] / ctx.message["b"]}

    @server.on("close")
    def closed(code: int, reason: str, conn: wyre.Connection) -> None:
        print(f"server: connection {conn.id[:8]} closed ({code} {reason})")

    return server


async def main() -> None:
    async with make_server() as server:
        await server.listen(port=0, host="127.0.0.1")
        print(f"server: listening on port {server.port}")
        async with wyre.Client() as client:
            conn = await client.connect(f"ws://127.0.0.1:{server.port}")

            await conn.send({"type": "chat", "text": "hello"}, ack=True)
            print("client: the server acknowledged the chat message")

            reply = await conn.request({"type": "add", "a": 2, "b": 3})
            print(f"client: 2 + 3 = {reply.message['sum']}")

            request = conn.request({"type": "countdown", "from": 3})
            async for partial in request.partials():
                print(f"client: partial reply {partial.message['n']}")
            print(f"client: final reply {(await request).message['text']!r}")

            try:
                await conn.request({"type": "divide", "a": 1, "b": 0})
            except wyre.RequestError as exc:
                body = exc.context.message
                print(f"client: error reply {body['error']}: {body['message']}")

            await conn.close(1000, "demo over")
            await asyncio.sleep(0.05)  # let the server's close event print


if __name__ == "__main__":
    asyncio.run(main())
