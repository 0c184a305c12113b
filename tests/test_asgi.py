"""wyre behind a web framework: ``Server.asgi()`` mounted in Starlette and FastAPI, on uvicorn.

Every scenario of the suite also runs through uvicorn as the ``asgi``
transport (see ``tests/asgi_driver.py``); these tests cover what only ASGI
has: mounting beside HTTP routes, the scope as the handshake, the lifespan,
refusals with and without the denial extension, the adapter's own limits,
and the example application. All over real loopback sockets, with a real
wyre client.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute

import wyre
from wyre.transports.asgi import AsgiApp

from .asgi_driver import uvicorn_serving
from .conftest import eventually, seconds
from .proxy import Gated, in_flight, record, stalled_client

ROOT = Path(__file__).resolve().parent.parent
KB = 1024


async def fetch(
    url: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, str]:
    """An HTTP request from a thread (urllib): (status, body)."""
    status, body, _ = await fetch_with_headers(url, method, headers)
    return status, body


async def fetch_with_headers(
    url: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, str, dict[str, str]]:
    def call() -> tuple[int, str, dict[str, str]]:
        request = urllib.request.Request(url, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=seconds(10)) as response:
                return response.status, response.read().decode(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(), dict(exc.headers)

    return await asyncio.to_thread(call)


def make_server(**options: Any) -> wyre.Server:
    server = wyre.Server(close_timeout=seconds(2), **options)

    @server.on("request", "add")
    def add(ctx: wyre.Context) -> dict[str, Any]:
        return {"sum": ctx.message["a"] + ctx.message["b"]}

    @server.on("request", "countdown")
    async def countdown(ctx: wyre.Context) -> dict[str, Any]:
        for n in range(ctx.message["from"], 0, -1):
            await ctx.partial({"n": n})
        return {"text": "liftoff"}

    @server.on("request", "whoami")
    def whoami(ctx: wyre.Context) -> Any:
        return {"identity": ctx.connection.identity}

    return server


def starlette_app(server: wyre.Server, ws: AsgiApp) -> Starlette:
    async def status(request: Request) -> JSONResponse:
        return JSONResponse({"connections": len(server.connections)})

    return Starlette(routes=[Route("/status", status), Mount("/ws", app=ws)], lifespan=ws.lifespan)


def fastapi_app(server: wyre.Server, ws: AsgiApp) -> FastAPI:
    app = FastAPI(lifespan=ws.lifespan)

    @app.get("/status")
    def status() -> dict[str, int]:
        return {"connections": len(server.connections)}

    app.mount("/ws", ws)
    return app


FRAMEWORKS: dict[str, Callable[[wyre.Server, AsgiApp], Any]] = {
    "starlette": starlette_app,
    "fastapi": fastapi_app,
}


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
async def test_mounted_beside_http_routes(framework: str) -> None:
    server = make_server()
    ws = server.asgi()
    app = FRAMEWORKS[framework](server, ws)
    async with uvicorn_serving(app, lifespan="on") as running, wyre.Client() as client:
        client.on("request", "ping", lambda ctx: {"pong": ctx.message["n"]})
        conn = await client.connect(f"{running.url}/ws/")
        assert conn.subprotocol == "wyre.v2"
        reply = await conn.request({"type": "add", "a": 2, "b": 3})
        assert reply.message["sum"] == 5
        request = conn.request({"type": "countdown", "from": 3})
        assert [p.message["n"] async for p in request.partials()] == [3, 2, 1]
        assert (await request).message["text"] == "liftoff"
        await conn.send({"type": "note"}, ack=True)  # acknowledged: wyre.v2 through ASGI
        (peer,) = await eventually(lambda: list(server.connections.values()))
        answer = await peer.request({"type": "ping", "n": 7})  # the server asks the client
        assert answer.message["pong"] == 7
        assert await fetch(f"{running.http}/status") == (200, '{"connections":1}')
        assert not server.listening  # served without listen()
        with pytest.raises(RuntimeError):
            _ = server.port


async def test_an_exact_websocket_route() -> None:
    server = make_server()
    ws = server.asgi()
    app = Starlette(routes=[WebSocketRoute("/live", ws)], lifespan=ws.lifespan)
    async with uvicorn_serving(app, lifespan="on") as running, wyre.Client() as client:
        conn = await client.connect(f"{running.url}/live")
        assert (await conn.request({"type": "add", "a": 1, "b": 1})).message["sum"] == 2


async def test_the_hook_sees_the_scope_mount_prefix_included() -> None:
    seen: list[wyre.Handshake] = []

    def authenticate(handshake: wyre.Handshake) -> str:
        seen.append(handshake)
        if handshake.cookies.get("session") != "s1":
            raise wyre.Reject(401, "log in first")
        return f"{handshake.query['user']} via {handshake.headers['x-app']}"

    server = make_server(authenticate=authenticate)
    ws = server.asgi()
    async with (
        uvicorn_serving(fastapi_app(server, ws), lifespan="on") as running,
        wyre.Client() as client,
    ):
        conn = await client.connect(
            f"{running.url}/ws/rooms/7?user=ada&tag=a&tag=b",
            headers={"Cookie": "theme=dark; session=s1", "X-App": "tests"},
        )
        reply = await conn.request({"type": "whoami"})
        assert reply.message["identity"] == "ada via tests"
        (handshake,) = seen
        assert handshake.path == "/ws/rooms/7"
        assert handshake.query.getall("tag") == ["a", "b"]
        assert handshake.cookies == {"theme": "dark", "session": "s1"}
        assert handshake.remote_address is not None
        assert handshake.remote_address[0] == "127.0.0.1"
        (peer,) = server.connections.values()
        assert peer.identity == "ada via tests" and peer.handshake is handshake
        with pytest.raises(wyre.ConnectError) as caught:
            await client.connect(f"{running.url}/ws/?user=eve", headers={"X-App": "x"})
        assert (caught.value.status, caught.value.reason) == (401, "log in first")


async def test_origins_are_enforced_through_the_mount() -> None:
    server = make_server(origins=["https://app.example"])
    ws = server.asgi()
    async with (
        uvicorn_serving(starlette_app(server, ws), lifespan="on") as running,
        wyre.Client() as client,
    ):
        await client.connect(f"{running.url}/ws/", headers={"Origin": "https://app.example"})
        with pytest.raises(wyre.ConnectError) as caught:
            await client.connect(f"{running.url}/ws/", headers={"Origin": "https://evil.example"})
        assert (caught.value.status, caught.value.reason) == (403, "origin not allowed")


def without_denial_extension(app: Any) -> Any:
    """The app as served by an ASGI server that cannot send a response to a handshake."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            scope = {**scope, "extensions": {}}
        await app(scope, receive, send)

    return wrapped


async def test_without_the_denial_extension_a_refusal_is_403() -> None:
    def authenticate(handshake: wyre.Handshake) -> None:
        raise wyre.Reject(401, "log in first")

    server = make_server(authenticate=authenticate)
    async with (
        uvicorn_serving(without_denial_extension(server.asgi())) as running,
        wyre.Client() as client,
    ):
        with pytest.raises(wyre.ConnectError) as caught:
            await client.connect(running.url)
        assert caught.value.status == 403  # all the server can say: closed before the accept
    await server.close()


async def test_close_codes_and_reasons_pass_both_ways() -> None:
    server = make_server()
    closes = record(server, "close")
    async with uvicorn_serving(server.asgi()) as running, wyre.Client() as client:
        client_closes = record(client, "close")
        conn = await client.connect(running.url)
        await conn.close(4001, "client bye")
        (code, reason, _) = (await eventually(lambda: closes))[0]
        assert (code, reason) == (4001, "client bye")
        conn = await client.connect(running.url)
        (peer,) = await eventually(lambda: list(server.connections.values()))
        await peer.close(4002, "server bye")
        await eventually(lambda: len(client_closes) == 2)
        assert client_closes[1][:2] == (4002, "server bye")
        assert conn.close_code == 4002
    await server.close()


async def test_server_close_closes_mounted_connections_with_1001() -> None:
    server = make_server()
    ws = server.asgi()
    async with (
        uvicorn_serving(fastapi_app(server, ws), lifespan="on") as running,
        wyre.Client() as client,
    ):
        conn = await client.connect(f"{running.url}/ws/")
        await eventually(lambda: server.connections)
        await asyncio.wait_for(server.close(), seconds(5))
        await eventually(lambda: conn.closed)
        assert conn.close_code == 1001
        assert not server.connections


async def test_the_adapter_enforces_max_message_size_below_the_servers_limit() -> None:
    server = make_server(max_message_size=KB)
    closes = record(server, "close")
    # uvicorn's own limit (16 MiB by default) lets the message through to wyre
    async with uvicorn_serving(server.asgi()) as running, wyre.Client() as client:
        conn = await client.connect(running.url)
        assert (await conn.request({"type": "add", "a": 1, "b": 2})).message["sum"] == 3
        pending = in_flight(conn.request({"type": "add", "pad": "é" * KB}))
        with pytest.raises(wyre.ConnectionClosed) as caught:
            await asyncio.wait_for(pending, seconds(5))
        assert caught.value.code == 1009
        (code, _, _) = (await eventually(lambda: closes))[0]
        assert code == 1009
    await server.close()


async def test_sends_wait_for_a_peer_that_reads_nothing() -> None:
    """Backpressure through send(): the queue stops growing near write_limit, then drains.

    uvicorn buffers some of it itself, out of wyre's sight: ``buffered_amount``
    counts what waits for ``send()`` only.
    """
    limit, blob = 16 * KB, "x" * 8 * KB
    server = make_server(write_limit=limit, write_timeout=seconds(30))
    async with uvicorn_serving(server.asgi()) as running, stalled_client(running.url) as peer:
        (conn,) = await eventually(lambda: list(server.connections.values()))
        sent = 0
        most = 0

        async def flood() -> None:
            nonlocal sent, most
            while True:
                await conn.send({"blob": blob})
                sent += 1
                most = max(most, conn.buffered_amount)

        flooding = asyncio.create_task(flood())
        stuck_at = await until_stuck(lambda: sent)
        assert most <= limit + len(blob) + 2 * KB
        assert conn.buffered_amount > 0  # waiting for send(): the peer reads nothing
        peer.transport.resume_reading()
        draining = asyncio.create_task(drain(peer))
        await eventually(lambda: sent > stuck_at + 100)
        for task in (flooding, draining):
            task.cancel()
        await asyncio.gather(flooding, draining, return_exceptions=True)
        assert not conn.closed
    await server.close()


async def until_stuck(progress: Callable[[], int]) -> int:
    async with asyncio.timeout(seconds(10)):
        last = -1
        while (now := progress()) != last:
            last = now
            await asyncio.sleep(seconds(0.1))
    return last


async def drain(ws: Any) -> None:
    async for _ in ws:
        pass


async def test_plain_http_gets_426() -> None:
    server = make_server()
    ws = server.asgi()
    async with uvicorn_serving(starlette_app(server, ws), lifespan="on") as running:
        status, body = await fetch(f"{running.http}/ws/")
        assert status == 426
        assert "WebSocket" in body


async def test_groups_and_broadcast_reach_connections_through_the_mount() -> None:
    server = make_server()

    @server.on("request", "join")
    async def join(ctx: wyre.Context) -> dict[str, bool]:
        await ctx.connection.join(ctx.message["room"])
        return {"joined": True}

    ws = server.asgi()
    async with (
        uvicorn_serving(fastapi_app(server, ws), lifespan="on") as running,
        wyre.Client() as client,
    ):
        heard = record(client, "message")
        inside, outside = [await client.connect(f"{running.url}/ws/") for _ in range(2)]
        await inside.request({"type": "join", "room": "lobby"})
        await server.broadcast({"text": "hi"}, group="lobby")
        (ctx,) = await eventually(lambda: heard)
        assert ctx.message["text"] == "hi" and ctx.connection is inside
        assert await server.presence("lobby") == {
            peer.id: server.node_id for peer in server.connections.values() if peer.groups
        }
        assert not outside.closed


async def test_the_lifespan_joins_the_cluster(redis_url: str) -> None:
    """With a backplane, the lifespan's start is what listen() does for a socket."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    mounted = make_server(backplane=wyre.RedisBackplane(redis_url, prefix=prefix))
    mounted.on("connection", lambda conn: conn.join("lobby"))
    listening = wyre.Server(backplane=wyre.RedisBackplane(redis_url, prefix=prefix))
    ws = mounted.asgi()
    await listening.listen(port=0, host="127.0.0.1")
    try:
        async with (
            uvicorn_serving(fastapi_app(mounted, ws), lifespan="on") as running,
            wyre.Client() as client,
        ):
            heard = record(client, "message")
            client.on("request", "echo", lambda ctx: {"echo": ctx.message["text"]})
            await client.connect(f"{running.url}/ws/")
            (peer_id,) = await eventually(lambda: list(mounted.connections))
            await eventually(lambda: mounted.hub.started)
            assert len(await listening.nodes()) == 2
            async with asyncio.timeout(seconds(5)):
                while peer_id not in await listening.presence("lobby"):
                    await asyncio.sleep(0.02)
            await listening.broadcast({"text": "from the other node"}, group="lobby")
            (ctx,) = await eventually(lambda: heard)
            assert ctx.message["text"] == "from the other node"
            reply = await listening.peer(peer_id).request({"type": "echo", "text": "hop"})
            assert reply.message["echo"] == "hop"
    finally:
        await listening.close()


async def test_the_javascript_client_is_served_below_the_mount() -> None:
    server = make_server(client_script="/wyre.js")
    ws = server.asgi()
    async with uvicorn_serving(fastapi_app(server, ws), lifespan="on") as running:
        status, body, headers = await fetch_with_headers(f"{running.http}/ws/wyre.js")
        assert status == 200
        assert body == wyre.client_script().read_text()
        assert headers["content-type"].startswith("text/javascript")
        again = {"If-None-Match": headers["etag"]}
        status, body, _ = await fetch_with_headers(f"{running.http}/ws/wyre.js", headers=again)
        assert (status, body) == (304, "")
        assert (await fetch(f"{running.http}/ws/other.js"))[0] == 426


# -- the lifespan --------------------------------------------------------------------


async def test_the_server_closes_with_the_application() -> None:
    """FastAPI(lifespan=ws.lifespan): uvicorn's shutdown ends the wyre server too.

    uvicorn closes its WebSockets (1012) before the lifespan ends; the
    lifespan then closes the server: nothing left running, nothing admitted.
    """
    server = make_server(shutdown_grace=seconds(0.2))
    ws = server.asgi()
    closes = record(server, "close")
    async with uvicorn_serving(fastapi_app(server, ws), lifespan="on") as running:
        assert ws.accepting
        async with wyre.Client() as client:
            conn = await client.connect(f"{running.url}/ws/")
            await eventually(lambda: server.connections)
            await asyncio.wait_for(running.stop(), seconds(10))
            await eventually(lambda: conn.closed)
            assert conn.close_code == 1012  # uvicorn's: "service restart"
        assert not ws.accepting
        assert not server.connections
        assert [code for code, _, _ in closes] == [1012]


async def test_the_app_alone_runs_its_own_lifespan() -> None:
    server = make_server()
    ws = server.asgi()
    ws.stop_accepting()  # the lifespan's startup opens it
    async with uvicorn_serving(ws, lifespan="on") as running, wyre.Client() as client:
        assert ws.accepting
        conn = await client.connect(running.url)
        assert (await conn.request({"type": "add", "a": 1, "b": 1})).message["sum"] == 2
        await running.stop()
        assert not ws.accepting
        assert not server.connections


class GracefulUvicorn(uvicorn.Server):
    """uvicorn that closes the wyre server before its own shutdown (docs/asgi.md)."""

    ws: AsgiApp

    async def shutdown(self, sockets: Any = None) -> None:
        await self.ws.shutdown()  # 1001, and running handlers get shutdown_grace
        await super().shutdown(sockets)


async def test_a_graceful_shutdown_closes_wyre_first() -> None:
    server = make_server(shutdown_grace=seconds(10))
    ws = server.asgi()
    GracefulUvicorn.ws = ws
    handler = Gated(server, "request", "slow")
    async with (
        uvicorn_serving(
            fastapi_app(server, ws), server_class=GracefulUvicorn, lifespan="on"
        ) as running,
        wyre.Client() as client,
    ):
        conn = await client.connect(f"{running.url}/ws/")
        request = in_flight(conn.request({"type": "slow"}))
        await eventually(handler.started.is_set)
        stopping = asyncio.ensure_future(running.stop())
        await eventually(lambda: not ws.accepting)
        with pytest.raises(wyre.ConnectError):  # refused: 503, or the port already closed
            await wyre.Client().connect(f"{running.url}/ws/")
        handler.release()
        reply = await asyncio.wait_for(request, seconds(5))  # it had its grace
        assert reply.message["finished"]
        await asyncio.wait_for(stopping, seconds(10))
        assert conn.close_code == 1001
        assert handler.cancelled_contexts == []


# -- another ASGI server -------------------------------------------------------------


async def test_hypercorn_serves_it_too() -> None:
    import socket

    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    def authenticate(handshake: wyre.Handshake) -> str:
        if "token" not in handshake.query:
            raise wyre.Reject(401, "token?")
        return handshake.query["token"]

    server = make_server(authenticate=authenticate)
    ws = server.asgi()
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]  # hypercorn's to close from now on
    config.accesslog = config.errorlog = None
    stop = asyncio.Event()
    serving = asyncio.create_task(
        serve(starlette_app(server, ws), config, shutdown_trigger=stop.wait)
    )
    try:
        async with wyre.Client() as client:
            url = f"ws://127.0.0.1:{port}/ws/"
            conn = await eventually_connected(client, f"{url}?token=t1")
            assert (await conn.request({"type": "whoami"})).message["identity"] == "t1"
            with pytest.raises(wyre.ConnectError) as caught:
                await client.connect(url)
            assert (caught.value.status, caught.value.reason) == (401, "token?")
            await ws.shutdown()  # wyre first, as with uvicorn
            assert conn.close_code == 1001
    finally:
        stop.set()
        await asyncio.wait_for(serving, seconds(10))


async def eventually_connected(client: wyre.Client, url: str) -> wyre.Connection:
    """Connect once the server listens (hypercorn starts in its own time)."""
    async with asyncio.timeout(seconds(10)):
        while True:
            try:
                return await client.connect(url)
            except wyre.ConnectError as exc:
                if exc.status is not None:
                    raise
                await asyncio.sleep(0.05)


# -- the example application ---------------------------------------------------------


class Process:
    """A server process; ``port`` is read from what uvicorn logs once it listens."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.output: list[str] = []

    async def port(self) -> int:
        assert self.proc.stdout is not None
        async with asyncio.timeout(seconds(20)):
            while True:
                line = await asyncio.to_thread(self.proc.stdout.readline)
                if not line:
                    raise AssertionError("the server exited:\n" + "".join(self.output))
                self.output.append(line)
                found = re.search(r"running on http://127\.0\.0\.1:(\d+)", line, re.I)
                if found:
                    return int(found.group(1))

    async def terminate(self) -> None:
        """SIGTERM; the server must shut down cleanly (uvicorn then re-raises the signal)."""
        assert self.proc.stdout is not None
        self.proc.send_signal(signal.SIGTERM)
        rest = await asyncio.to_thread(self.proc.communicate, timeout=seconds(20))
        output = "".join(self.output) + rest[0]
        assert self.proc.returncode in (0, -signal.SIGTERM), output
        assert "Finished server process" in output, output
        assert "Traceback" not in output, output

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


async def exercise_example(client: wyre.Client, port: int) -> wyre.Connection:
    """Both sides of examples/fastapi_app.py: its HTTP routes and its wyre endpoint."""
    base = f"http://127.0.0.1:{port}"
    heard = record(client, "message")
    conn = await client.connect(f"ws://127.0.0.1:{port}/ws/?name=ada")
    reply = await conn.request({"type": "greet"})
    assert reply.message["text"] == "hello ada"
    status, body = await fetch(f"{base}/status")
    assert status == 200 and json.loads(body) == {"connections": 1}
    status, body = await fetch(f"{base}/broadcast?text=hi", method="POST")
    assert status == 200 and json.loads(body) == {"sent": 1}
    (ctx,) = await eventually(lambda: heard)
    assert ctx.message == {"type": "news", "text": "hi"}
    return conn


async def test_the_fastapi_example_under_uvicorn() -> None:
    server = Process("-m", "uvicorn", "examples.fastapi_app:app", "--port", "0")
    try:
        client = wyre.Client()
        conn = await exercise_example(client, await server.port())
        await server.terminate()
        await eventually(lambda: conn.closed)
        assert conn.close_code == 1012  # uvicorn's shutdown, before the lifespan's end
        await client.close()
    finally:
        server.kill()


async def test_the_fastapi_example_shuts_down_gracefully() -> None:
    server = Process("examples/fastapi_app.py", "--port", "0")
    try:
        client = wyre.Client()
        conn = await exercise_example(client, await server.port())
        request = in_flight(conn.request({"type": "slow", "seconds": 0.5}))
        await asyncio.sleep(seconds(0.1))  # the handler is running
        await server.terminate()
        assert (await asyncio.wait_for(request, seconds(5))).message["slept"] == 0.5
        await eventually(lambda: conn.closed)
        assert conn.close_code == 1001
        await client.close()
    finally:
        server.kill()
