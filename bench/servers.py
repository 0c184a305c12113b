"""The server programs measured by the harness, one per process.

Usage: ``python bench/servers.py NAME [--port PORT]`` (port 0, the default, lets
the OS choose). Once listening on 127.0.0.1 the server prints ``READY <port>``;
if its library cannot be imported it prints ``UNAVAILABLE <reason>`` and exits
with code 3. It then serves until killed.

Every server answers the echo request of the wire format with the same object
and ``"direction": "REPLY"``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from common import MSGPACK_SUBPROTOCOL, READY, announce, run_main

HOST = "127.0.0.1"


async def websockets_echo(port: int) -> None:
    """websockets' asyncio server, stdlib json, default settings."""
    from websockets.asyncio.server import ServerConnection, serve

    async def handler(ws: ServerConnection) -> None:
        async for m in ws:
            d = json.loads(m)
            d["direction"] = "REPLY"
            await ws.send(json.dumps(d))

    async with serve(handler, HOST, port) as server:
        announce(READY, server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()


async def picows_echo(
    port: int, *, fast_json: bool, keepalive: bool = False, speaks_msgpack: bool = False
) -> None:
    """picows' server with a callback listener; stdlib json or orjson.

    ``keepalive`` turns on picows' pings every 20 s (wyre's default, and the
    websockets server's), which costs memory per connection: the fair
    baseline for wyre-fast's memory. ``speaks_msgpack`` selects ``wyre.v2.msgpack``
    for a client that offers it and echoes its binary MessagePack frames (the
    server of the msgpack client rows); JSON text frames are echoed as ever.
    """
    from picows import (
        WSFrame,
        WSListener,
        WSMsgType,
        WSTransport,
        WSUpgradeRequest,
        WSUpgradeResponse,
        WSUpgradeResponseWithListener,
        ws_create_server,
    )

    if fast_json:
        import orjson

        def reply(frame: WSFrame) -> bytes:
            d = orjson.loads(frame.get_payload_as_memoryview())
            d["direction"] = "REPLY"
            return orjson.dumps(d)
    else:

        def reply(frame: WSFrame) -> bytes:
            d = json.loads(frame.get_payload_as_utf8_text())
            d["direction"] = "REPLY"
            return json.dumps(d).encode()

    if speaks_msgpack:
        import msgpack

        def reply_packed(frame: WSFrame) -> bytes:
            d = msgpack.unpackb(frame.get_payload_as_memoryview())
            d["direction"] = "REPLY"
            data: bytes = msgpack.packb(d)
            return data

    class Echo(WSListener):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                transport.send(WSMsgType.TEXT, reply(frame))
            elif frame.msg_type == WSMsgType.BINARY and speaks_msgpack:
                transport.send(WSMsgType.BINARY, reply_packed(frame))
            elif frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()

    def listener(request: WSUpgradeRequest) -> Echo | WSUpgradeResponseWithListener:
        offered = request.headers.get("Sec-WebSocket-Protocol", "")
        if speaks_msgpack and MSGPACK_SUBPROTOCOL in (p.strip() for p in offered.split(",")):
            selected = {"Sec-WebSocket-Protocol": MSGPACK_SUBPROTOCOL}
            response = WSUpgradeResponse.create_101_response(extra_headers=selected)
            return WSUpgradeResponseWithListener(response, Echo())
        return Echo()

    pings = {"enable_auto_ping": True, "auto_ping_idle_timeout": 20} if keepalive else {}
    server = await ws_create_server(listener, HOST, port, **pings)
    announce(READY, server.sockets[0].getsockname()[1])
    await asyncio.Event().wait()


async def socketio_echo(port: int) -> None:
    """python-socketio on aiohttp: the request is an ``echo`` event, acked by the return value."""
    import socketio
    from aiohttp import web

    sio = socketio.AsyncServer(async_mode="aiohttp")

    @sio.on("echo")  # type: ignore[untyped-decorator]
    async def echo(_sid: str, d: dict[str, Any]) -> dict[str, Any]:
        d["direction"] = "REPLY"
        return d

    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, port).start()
    announce(READY, runner.addresses[0][1])
    await asyncio.Event().wait()


async def wyre_echo(
    port: int, *, transport: str, stream: bool, codec: str = "orjson", asynchronous: bool = False
) -> None:
    """wyre's server; with ``stream``, also the handlers of the STREAM benchmark.

    ``codec`` is named explicitly so that each row says what it measures;
    ``asynchronous`` makes the echo handler a coroutine function (one task
    per request) instead of a plain function (run inline).
    """
    import wyre

    server = wyre.Server(transport=transport, codec=codec)

    if asynchronous:

        @server.on("request", "echo")
        async def echo_async(ctx: Any) -> Any:
            return ctx.message

    else:

        @server.on("request", "echo")
        def echo(ctx: Any) -> Any:
            return ctx.message

    if stream:

        @server.on("request", "stream")
        async def partials(ctx: Any) -> Any:
            for i in range(ctx.message["n"]):
                ctx.partial({"i": i})
            return {"done": True}

        notes = 0

        @server.on("message", "note")
        def note(ctx: Any) -> None:
            nonlocal notes
            notes += 1

        @server.on("request", "count")
        def count(ctx: Any) -> Any:
            nonlocal notes
            notes += 1
            return {"count": notes}

        @server.on("request", "burst")
        async def messages(ctx: Any) -> Any:
            for i in range(ctx.message["n"]):
                ctx.connection.send({"type": "tick", "i": i})
            return {"done": True}

    await server.listen(port=port, host=HOST)
    announce(READY, server.port)
    await asyncio.Event().wait()


async def serve_asgi(app: Any, port: int) -> None:
    """Serve an ASGI application with uvicorn (its defaults) on the running loop."""
    import socket

    import uvicorn

    sock = socket.create_server((HOST, port))
    config = uvicorn.Config(app, loop="none", lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started:  # uvicorn has no callback for "listening"
        if serving.done():
            serving.result()
            return
        await asyncio.sleep(0.01)
    announce(READY, sock.getsockname()[1])
    await serving


async def uvicorn_echo(port: int) -> None:
    """A bare ASGI WebSocket application on uvicorn, stdlib json: the echo by hand."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            d = json.loads(message.get("text") or message["bytes"])
            d["direction"] = "REPLY"
            await send({"type": "websocket.send", "text": json.dumps(d)})

    await serve_asgi(app, port)


async def wyre_uvicorn(port: int) -> None:
    """wyre's ASGI application (``Server.asgi()``) on uvicorn, stdlib json."""
    import wyre

    server = wyre.Server(codec="json")

    @server.on("request", "echo")
    def echo(ctx: Any) -> Any:
        return ctx.message

    await serve_asgi(server.asgi(), port)


@dataclass(frozen=True)
class Spec:
    """How a named server runs: its coroutine and its event loop."""

    main: Callable[[int], Coroutine[Any, Any, None]]
    uvloop: bool
    about: str


SERVERS: dict[str, Spec] = {
    "websockets": Spec(websockets_echo, False, "websockets asyncio server, asyncio loop, json"),
    "picows": Spec(
        lambda p: picows_echo(p, fast_json=False), True, "picows listener, uvloop, json"
    ),
    "picows-orjson": Spec(
        lambda p: picows_echo(p, fast_json=True, speaks_msgpack=True),
        True,
        "picows listener, uvloop, orjson (and msgpack with clients that offer wyre.v2.msgpack)",
    ),
    "picows-keepalive": Spec(
        lambda p: picows_echo(p, fast_json=True, keepalive=True),
        True,
        "as picows-orjson, with keepalive pings every 20 s as wyre and websockets have",
    ),
    "socketio": Spec(
        socketio_echo,
        False,
        "python-socketio on aiohttp, asyncio loop, json; the load generator speaks Engine.IO 4 / "
        'Socket.IO 5 text packets to it: `42<id>["echo",{request}]`, acked by `43<id>[{reply}]`',
    ),
    "wyre": Spec(
        lambda p: wyre_echo(p, transport="websockets", stream=False, codec="json"),
        False,
        "wyre.Server(transport='websockets', codec='json'), asyncio loop: "
        "the default transport, same stack as the bare websockets row",
    ),
    "wyre-orjson": Spec(
        lambda p: wyre_echo(p, transport="websockets", stream=False),
        False,
        "wyre.Server(transport='websockets', codec='orjson'), asyncio loop: "
        "the default configuration once the fast extra is installed",
    ),
    "wyre-async": Spec(
        lambda p: wyre_echo(
            p, transport="websockets", stream=False, codec="json", asynchronous=True
        ),
        False,
        "as wyre, with a coroutine handler (a task per request)",
    ),
    "wyre-fast": Spec(
        lambda p: wyre_echo(p, transport="picows", stream=False),
        True,
        "wyre.Server(transport='picows'), uvloop, orjson",
    ),
    "wyre-msgpack": Spec(
        lambda p: wyre_echo(p, transport="websockets", stream=False, codec="msgpack"),
        False,
        "wyre.Server(transport='websockets', codec='msgpack'), asyncio loop; the load "
        "generator offers wyre.v2.msgpack and speaks binary MessagePack frames to it",
    ),
    "wyre-fast-msgpack": Spec(
        lambda p: wyre_echo(p, transport="picows", stream=False, codec="msgpack"),
        True,
        "wyre.Server(transport='picows', codec='msgpack'), uvloop; MessagePack as for wyre-msgpack",
    ),
    "uvicorn": Spec(
        uvicorn_echo,
        True,
        "a bare ASGI WebSocket application on uvicorn (its defaults: uvloop, websockets-sansio, "
        "h11), json",
    ),
    "wyre-uvicorn": Spec(
        wyre_uvicorn,
        True,
        "wyre.Server(codec='json').asgi() on uvicorn, as the uvicorn row: the same stack, "
        "wyre's protocol through the ASGI interface",
    ),
    "wyre-stream": Spec(
        lambda p: wyre_echo(p, transport="websockets", stream=True, codec="json"),
        False,
        "as wyre, plus the stream and burst handlers",
    ),
    "wyre-fast-stream": Spec(
        lambda p: wyre_echo(p, transport="picows", stream=True),
        True,
        "as wyre-fast, plus the stream and burst handlers",
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(SERVERS))
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    spec = SERVERS[args.name]
    return run_main(spec.main(args.port), use_uvloop=spec.uvloop)


if __name__ == "__main__":
    sys.exit(main())
