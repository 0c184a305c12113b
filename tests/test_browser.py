"""The JavaScript client, ``wyre.js``, against a real ``wyre.Server`` on loopback.

Every scenario of ``tests/js/scenarios.mjs`` runs twice: in headless Chromium
(driven by Playwright, the module imported from the server's own
``client_script`` path) and in Node.js. Chromium comes from the system
(``apt-get install chromium``), Node.js must be 22 or newer (or 20.10+, run
with ``--experimental-websocket``). Without them these tests skip, saying how
to install them; ``.ci/run`` sets ``WYRE_REQUIRE_BROWSER=1`` and
``WYRE_REQUIRE_NODE=1``, so there they fail instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

import wyre
from wyre.transports.upgrade import client_script_response

from .conftest import REQUIRE_ALL, eventually, need_transport, seconds
from .proxy import Proxy

ASYNC = pytest.mark.asyncio(loop_scope="module")
"""Every test shares the module's event loop, where the one Chromium runs."""

SCENARIOS = Path(__file__).resolve().parent / "js" / "scenarios.mjs"
BENCH = Path(__file__).resolve().parent.parent / "bench" / "browser.py"
NODE_RUNNER = Path(__file__).resolve().parent / "js" / "run.mjs"
REQUIRE_BROWSER = os.environ.get("WYRE_REQUIRE_BROWSER") == "1"
REQUIRE_NODE = os.environ.get("WYRE_REQUIRE_NODE") == "1"
CHROMIUM_FLAGS = [
    "--no-sandbox",  # CI runs as root
    # a page may open ws://127.0.0.1 although its origin is another local one
    "--disable-features=LocalNetworkAccessChecks",
]


def chromium_path() -> str | None:
    return (
        os.environ.get("WYRE_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


def missing(message: str, required: bool) -> None:
    if required:
        pytest.fail(message)
    pytest.skip(message)


def node_command() -> list[str]:
    """How to run Node.js with a global WebSocket; skips (or fails) when there is none."""
    node = shutil.which("node")
    hint = "install Node.js 22 or newer (https://nodejs.org) to run the JavaScript client's tests"
    if node is None:
        missing(f"no node: {hint}", REQUIRE_NODE)
    assert node is not None
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout
    found = re.match(r"v(\d+)\.(\d+)", version)
    major, minor = (int(found[1]), int(found[2])) if found else (0, 0)
    if major >= 22:
        return [node]
    if (major, minor) >= (20, 10):
        return [node, "--experimental-websocket", "--no-warnings"]
    missing(f"node {version.strip()} has no WebSocket: {hint}", REQUIRE_NODE)
    raise AssertionError  # not reached


class Chromium:
    """One headless Chromium for the module; a fresh context (and page) per run."""

    def __init__(self) -> None:
        self._playwright: Any = None
        self._browser: Any = None

    async def browser(self) -> Any:
        if self._browser is None:
            try:
                from playwright.async_api import async_playwright
            except ImportError:
                missing("playwright is not installed: pip install playwright", REQUIRE_BROWSER)
            executable = chromium_path()
            if executable is None:
                missing(
                    "no Chromium for the browser tests: apt-get install chromium "
                    "(or set WYRE_CHROMIUM to a Chromium binary)",
                    REQUIRE_BROWSER or REQUIRE_ALL,
                )
            self._playwright = await async_playwright().start()
            self._browser = await self._playwright.chromium.launch(
                executable_path=executable, args=CHROMIUM_FLAGS
            )
        return self._browser

    async def close(self) -> None:
        if self._browser is not None:
            await self._browser.close()
        if self._playwright is not None:
            await self._playwright.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chromium() -> AsyncIterator[Chromium]:
    browser = Chromium()
    yield browser
    await browser.close()


class Runner:
    """Runs a scenario of ``scenarios.mjs`` in one runtime; returns its JSON result."""

    def __init__(self, runtime: str, chromium: Chromium) -> None:
        self.runtime = runtime
        self._chromium = chromium
        self._node: list[str] | None = None
        self._contexts: list[Any] = []

    async def prepare(self) -> None:
        if self.runtime == "node":
            self._node = node_command()
        else:
            await self._chromium.browser()

    async def run(self, name: str, url: str, page: str | None = None, **args: Any) -> Any:
        """Run ``name`` against ``url``; in Chromium, from a page of origin ``page``
        (default: the server at ``url``, which must serve ``/wyre.js``)."""
        args.setdefault("scale", seconds(1))
        async with asyncio.timeout(seconds(30)):
            if self._node is not None:
                return await self._run_node(name, url, args)
            return await self._run_page(name, url, page or url, args)

    async def _run_node(self, name: str, url: str, args: dict[str, Any]) -> Any:
        assert self._node is not None
        proc = await asyncio.create_subprocess_exec(
            *self._node, str(NODE_RUNNER), str(wyre.client_script()), name, url,
            json.dumps(args),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        lines = out.decode().strip().splitlines()
        assert proc.returncode == 0 and lines, err.decode()
        answer = json.loads(lines[-1])
        assert "error" not in answer, answer["error"]
        return answer["result"]

    async def _run_page(self, name: str, url: str, page_url: str, args: dict[str, Any]) -> Any:
        browser = await self._chromium.browser()
        context = await browser.new_context()
        self._contexts.append(context)
        page = await context.new_page()
        origin = page_url.replace("ws://", "http://").rstrip("/")
        await page.goto(f"{origin}/wyre.js")  # a page of that origin (showing the module)
        return await page.evaluate(
            """async ([source, name, url, args]) => {
                const wyre = await import("/wyre.js");
                const blob = new Blob([source], { type: "text/javascript" });
                const scenarios = await import(URL.createObjectURL(blob));
                return await scenarios[name](wyre, url, args);
            }""",
            [SCENARIOS.read_text(), name, url, args],
        )

    async def close(self) -> None:
        for context in self._contexts:
            with contextlib.suppress(Exception):
                await context.close()


@pytest_asyncio.fixture(params=["chromium", "node"], loop_scope="module")
async def js(request: pytest.FixtureRequest, chromium: Chromium) -> AsyncIterator[Runner]:
    runner = Runner(request.param, chromium)
    await runner.prepare()
    yield runner
    await runner.close()


def make_server(**options: Any) -> wyre.Server:
    """A server with the handlers the scenarios call."""
    server = wyre.Server(client_script="/wyre.js", **options)
    server.held: list[wyre.Context] = []  # type: ignore[attr-defined]
    server.cancelled: list[Any] = []  # type: ignore[attr-defined]
    server.chat: list[dict[str, Any]] = []  # type: ignore[attr-defined]

    @server.on("request", "add")
    def add(ctx: wyre.Context) -> dict[str, Any]:
        return {"sum": ctx.message["a"] + ctx.message["b"]}

    @server.on("request", "countdown")
    async def countdown(ctx: wyre.Context) -> dict[str, Any]:
        for n in range(ctx.message["from"], 0, -1):
            await ctx.partial({"n": n})
        return {"text": "liftoff"}

    @server.on("request", "fail")
    def fail(ctx: wyre.Context) -> None:
        raise ValueError(ctx.message["text"])

    @server.on("request", 5)
    def typed(ctx: wyre.Context) -> dict[str, Any]:
        return {"route": "typed"}

    @server.on("request", 6)
    def six(ctx: wyre.Context) -> dict[str, Any]:
        return {"route": "six"}

    @server.on("request", "forever")
    async def forever(ctx: wyre.Context) -> None:
        try:
            await ctx.partial({"started": True})
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            server.cancelled.append(ctx.message.get("n"))  # type: ignore[attr-defined]
            raise

    @server.on("request", "hold")
    def hold(ctx: wyre.Context) -> None:
        server.held.append(ctx)  # type: ignore[attr-defined]  # answered never

    @server.on("message", "chat")
    def chat(ctx: wyre.Context) -> None:
        server.chat.append(ctx.message)  # type: ignore[attr-defined]

    return server


@contextlib.asynccontextmanager
async def serving(port: int = 0, **options: Any) -> AsyncIterator[wyre.Server]:
    server = make_server(**options)
    await server.listen(port=port, host="127.0.0.1")
    try:
        yield server
    finally:
        await server.close(grace=0)


def url_of(server: wyre.Server) -> str:
    return f"ws://127.0.0.1:{server.port}/"


@ASYNC
async def test_request_reply_partials_errors_and_typed_routing(js: Runner) -> None:
    async with serving() as server:
        out = await js.run("requests", url_of(server))
    assert out["extensions"] is True and out["subprotocol"] == "wyre.v2"
    assert out["sum"] == 5
    assert out["partials"] == [3, 2, 1] and out["reply"] == "liftoff"
    assert out["error"] == {
        "isRequestError": True,
        "isWyreError": True,
        "name": "RequestError",
        "body": "ValueError",
        "text": "amount must be positive",
    }
    assert out["noHandler"] == "NoHandler"
    assert out["typed"] == ["typed", "typed", "six"]
    assert out["callback"] == {"partials": [2, 1], "reply": "liftoff"}
    assert out["many"] is True
    assert out["pending"] == 0
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", out["id"]
    )


@ASYNC
async def test_timeout_fails_the_request_and_cancels_the_handler(js: Runner) -> None:
    async with serving() as server:
        out = await js.run("timeout", url_of(server))
        await eventually(lambda: len(server.cancelled) == 2)  # type: ignore[attr-defined]
    assert out == {
        "name": "RequestTimeout",
        "isTimeout": True,
        "isWyreError": True,
        "pending": 0,
        "own": "RequestTimeout",
        "after": 2,
    }


@ASYNC
async def test_cancel_reaches_the_python_coroutine_handler(js: Runner) -> None:
    async with serving() as server:
        out = await js.run("cancel", url_of(server))
        await eventually(lambda: sorted(server.cancelled) == [1, 2])  # type: ignore[attr-defined]
    assert out["first"] == {"name": "RequestCancelled", "isCancelled": True}
    assert out["second"] == "AbortError"  # the signal's reason, as fetch() does
    assert out["third"] == "AbortError"  # already aborted: nothing is sent
    assert out["pending"] == 0
    assert out["after"] == 4


@ASYNC
async def test_sends_plain_acknowledged_and_binary(js: Runner) -> None:
    async with serving() as server:
        out = await js.run("sends", url_of(server))
        chat = server.chat  # type: ignore[attr-defined]
    assert out["callback"] == "ok"
    assert out["refused"] == "TypeError"
    assert out["last"] == 0
    assert [m["text"] for m in chat] == ["plain", "acked", "callback", "binary"]
    assert "key" not in chat[0]  # a plain send carries no key
    assert all(isinstance(m["key"], str) for m in chat[1:])  # acknowledged ones do


@ASYNC
async def test_server_requests_answered_by_javascript_handlers(js: Runner) -> None:
    async with serving() as server:
        task = asyncio.create_task(js.run("handlers", url_of(server)))
        (conn,) = await eventually(lambda: list(server.connections.values()), timeout=20)

        async def ask(message: dict[str, Any]) -> dict[str, Any]:
            return (await conn.request(message)).message  # type: ignore[no-any-return]

        assert (await ask({"type": "add", "a": 2, "b": 3}))["sum"] == 5
        assert (await ask({"type": 5}))["route"] == "typed"
        assert (await ask({"type": "5"}))["route"] == "typed"  # 5 and "5" are one type
        assert (await ask({"type": "other"}))["route"] == "untyped"
        countdown = conn.request({"type": "countdown", "from": 3})
        assert [p.message["n"] async for p in countdown.partials()] == [3, 2, 1]
        assert (await countdown).message["text"] == "liftoff"
        for kind, name, text in [
            ("boom", "TypeError", "bad input"),
            ("async-boom", "RangeError", "out of range"),
            ("silent", "NoReply", None),
        ]:
            with pytest.raises(wyre.RequestError) as caught:
                await ask({"type": kind})
            assert caught.value.context.message["error"] == name
            if text is not None:
                assert caught.value.context.message["message"] == text
        assert (await ask({"type": "later"}))["late"] is True
        await conn.send({"type": "note", "text": "acked"}, ack=True)  # the browser ACKs it

        slow = asyncio.ensure_future(conn.request({"type": "slow"}))
        await asyncio.sleep(seconds(0.2))
        slow.cancel()  # sends CANCEL: the handler's signal aborts
        with contextlib.suppress(asyncio.CancelledError):
            await slow
        await asyncio.sleep(seconds(0.2))
        await conn.send({"type": "done"})
        seen = await task
    assert seen["messages"] == ["acked"]
    assert seen["cancelled"] is True
    assert seen["lateReplySent"] is False  # an answer after CANCEL is dropped
    assert seen["errors"] == ["TypeError", "RangeError"]  # handler failures are reported too


@ASYNC
async def test_close_from_javascript_with_a_code(js: Runner) -> None:
    async with serving() as server:
        closes: list[tuple[int, str]] = []
        server.on("close", lambda code, reason, conn: closes.append((code, reason)))
        out = await js.run("closeHere", url_of(server))
        await eventually(lambda: closes)
    assert closes == [(4000, "bye")]
    assert out == {
        "events": [[4000, "bye", True]],
        "closed": True,
        "closeCode": 4000,
        "after": "ConnectionClosed",
        "connections": 0,
    }


@ASYNC
async def test_close_from_the_server_fails_pending_requests(js: Runner) -> None:
    async with serving() as server:
        task = asyncio.create_task(js.run("closeThere", url_of(server)))
        await eventually(lambda: server.held, timeout=20)  # type: ignore[attr-defined]
        (conn,) = server.connections.values()
        await conn.close(4001, "kicked")
        out = await task
    assert out == {
        "code": 4001,
        "reason": "kicked",
        "closeCode": 4001,
        "closeReason": "kicked",
        "failure": {"name": "ConnectionClosed", "code": 4001, "reason": "kicked"},
        "isClosed": True,
    }


@ASYNC
async def test_a_dropped_socket_fails_every_pending_request(js: Runner) -> None:
    async with serving() as server:
        proxy = await Proxy(server.port).start()  # type: ignore[arg-type]
        try:
            task = asyncio.create_task(js.run("dropped", proxy.url, page=url_of(server)))
            await eventually(lambda: len(server.held) == 3, timeout=20)  # type: ignore[attr-defined]
            proxy.kill()  # no closing handshake
            out = await task
        finally:
            await proxy.close()
    assert out == {"failures": [["ConnectionClosed", 1006]] * 3, "events": [1006], "pending": 0}


@ASYNC
async def test_reconnect_after_the_server_restarts(js: Runner) -> None:
    first = make_server()
    first.on("request", "whoami", lambda ctx: {"server": 1})
    await first.listen(port=0, host="127.0.0.1")
    port = first.port
    assert port is not None
    task = asyncio.create_task(js.run("reconnect", url_of(first)))
    try:
        await eventually(lambda: first.held, timeout=20)  # type: ignore[attr-defined]
        await first.close(grace=0)  # 1001: the JavaScript side tries again
        await asyncio.sleep(seconds(0.2))
        async with serving(port=port) as second:
            second.on("request", "whoami", lambda ctx: {"server": 2})
            out = await task
            await eventually(lambda: second.chat)  # type: ignore[attr-defined]
    finally:
        task.cancel()
    assert out["before"] == 1 and out["after"] == 2
    assert out["held"] == ["ConnectionClosed", 1001]  # pending at the drop: failed, not replayed
    assert out["state"] == "reconnecting"
    assert out["same"] is True and out["open"] == "open"
    events = out["events"]
    assert events[0] == ["reconnecting", 1, True]
    assert events[-2:] == [["reconnected", "open"], ["close", 1000]]  # closed by the scenario
    assert ["close", 1001] not in events  # the drop did not close the connection for good


@ASYNC
async def test_a_server_speaking_the_original_protocol(js: Runner) -> None:
    """No wyre.v2 (the original's ws server echoes the first subprotocol offered);
    a malformed frame reaches the error event and the connection goes on."""
    received: list[Any] = []

    def select(conn: ServerConnection, offered: Any) -> Any:
        return offered[0] if offered else None

    def process_request(conn: ServerConnection, request: Request) -> Response | None:
        return client_script_response(request, "/wyre.js")

    async def original(ws: ServerConnection) -> None:
        await ws.send("this is not json")
        await ws.send(json.dumps({"key": "nobody", "direction": "REPLY"}))
        await ws.send(json.dumps({"key": "k1", "direction": "RESUEST"}))
        await ws.send(
            json.dumps({"type": "add", "a": 1, "b": 2, "key": "k2", "direction": "REQUEST"})
        )
        async for data in ws:
            message = json.loads(data)
            received.append(message)
            if message.get("direction") == "REQUEST":
                await ws.send(json.dumps({**message, "direction": "REPLY"}))

    async with serve(
        original, "127.0.0.1", 0, select_subprotocol=select, process_request=process_request
    ) as raw:
        url = f"ws://127.0.0.1:{raw.sockets[0].getsockname()[1]}/"
        out = await js.run("original", url)
    assert out["extensions"] is False and out["subprotocol"] == "wyre"
    assert out["reply"] == "hi"
    names = [e["name"] for e in out["errors"]]
    assert names == ["ProtocolError"] * 3
    assert "unknown key" in out["errors"][1]["message"]
    by_key = {m.get("key"): m for m in received}
    assert by_key["k1"]["direction"] == "ERROR"  # an unknown direction with a key: ERROR back
    assert by_key["k2"] == {"sum": 3, "key": "k2", "direction": "REPLY"}
    assert not any(m.get("direction") in ("ACK", "CANCEL") for m in received)


@ASYNC
async def test_connect_refused(js: Runner) -> None:
    async with serving() as server:
        closed = make_server()
        await closed.listen(port=0, host="127.0.0.1")
        dead = url_of(closed)
        await closed.close()
        out = await js.run("refused", dead, page=url_of(server))
    assert out == {"name": "ConnectError", "isConnectError": True, "isWyreError": True}


# -- the module served by the server ------------------------------------------


async def http_get(port: int, path: str, headers: dict[str, str] | None = None) -> Response:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    status = int(status_line.split()[1])
    parsed = Headers()
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name] = value.strip()
    return Response(status, "", parsed, body)


@pytest.fixture(params=["websockets", "picows"])
def socket_transport(request: pytest.FixtureRequest) -> str:
    """The drivers that answer plain HTTP requests on the WebSocket port themselves."""
    need_transport(request.param)
    return str(request.param)


@ASYNC
async def test_client_script_is_served_with_an_etag(socket_transport: str) -> None:
    transport = socket_transport
    async with serving(transport=transport) as server:
        assert server.port is not None
        response = await http_get(server.port, "/wyre.js")
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/javascript")
        assert response.body == wyre.client_script().read_bytes()
        etag = response.headers["ETag"]
        again = await http_get(server.port, "/wyre.js?v=2", {"If-None-Match": etag})
        assert again.status_code == 304 and again.body == b""
        changed = await http_get(server.port, "/wyre.js", {"If-None-Match": '"other"'})
        assert changed.status_code == 200
        assert (await http_get(server.port, "/other.js")).status_code == 426
        # the WebSocket endpoint itself still works
        async with wyre.Client(transport=transport) as client:
            conn = await client.connect(url_of(server))
            assert (await conn.request({"type": "add", "a": 1, "b": 2})).message["sum"] == 3


@ASYNC
async def test_client_script_is_off_by_default(socket_transport: str) -> None:
    transport = socket_transport
    server = wyre.Server(transport=transport)
    await server.listen(port=0, host="127.0.0.1")
    try:
        assert server.port is not None
        assert (await http_get(server.port, "/wyre.js")).status_code == 426
    finally:
        await server.close()


def test_client_script_ships_with_its_declarations() -> None:
    path = wyre.client_script()
    assert path.name == "wyre.js" and path.is_file()
    declarations = path.with_name("wyre.d.ts").read_text()
    for name in ("Client", "Connection", "Request", "Context", "RequestError", "ConnectionClosed"):
        assert f"class {name}" in declarations
    with pytest.raises(ValueError):
        wyre.Server(client_script="wyre.js")


@ASYNC
async def test_the_browser_benchmark_runs(chromium: Chromium) -> None:
    """``bench/browser.py`` at tiny sizes (nothing here asserts on speed)."""
    await chromium.browser()  # skips (or fails) without Chromium
    server = wyre.Server()
    server.on("request", "echo", lambda ctx: ctx.message)
    await server.listen(port=0, host="127.0.0.1")
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(BENCH), url_of(server), "--warmup", "0.02", "--duration", "0.05",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), seconds(60))
    finally:
        await server.close()
    assert proc.returncode == 0, err.decode()[-3000:]
    results = [json.loads(line) for line in out.decode().splitlines()]
    assert {(r["client"], r["workload"]) for r in results} == {
        (client, workload) for client in ("wyre.js", "bare") for workload in ("PIPE", "SEQ")
    }
    assert all(r["mismatches"] == 0 for r in results)


def readme_browser_example() -> tuple[str, str]:
    """The README's server (Python) and page (HTML) of its "In the browser" section."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = text.split("## In the browser", 1)[1].split("\n## ", 1)[0]
    (python,) = re.findall(r"```python\n(.*?)```", section, re.S)
    (html,) = re.findall(r"```html\n(.*?)```", section, re.S)
    return python, html


@ASYNC
async def test_readme_browser_example_runs(chromium: Chromium) -> None:
    browser = await chromium.browser()
    python, html = readme_browser_example()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = python.replace("8765", str(port))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
    context = await browser.new_context()
    try:

        async def listening() -> bool:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return False
            writer.close()
            return True

        async with asyncio.timeout(seconds(20)):
            while not await listening():
                await asyncio.sleep(0.05)
        page = await context.new_page()
        page_html = html.replace("8765", str(port))
        # the page's own origin, as `python -m http.server 8000` would serve it
        await page.route(
            "http://localhost:8000/",
            lambda route: route.fulfill(body=page_html, content_type="text/html"),
        )
        await page.goto("http://localhost:8000/")
        out = page.locator("#out")
        await out.filter(has_text="error:").wait_for(timeout=seconds(20) * 1000)
        lines = (await out.text_content() or "").strip().splitlines()
    finally:
        await context.close()
        proc.terminate()
        await proc.wait()
    assert lines == [
        "sum: 5",
        "partial: 3",
        "partial: 2",
        "partial: 1",
        "reply: liftoff",
        "error: NoHandler",
    ]


@ASYNC
async def test_sends_wait_while_the_socket_is_full(js: Runner) -> None:
    release = asyncio.Event()
    count = 0

    async def slow_reader(ws: ServerConnection) -> None:
        nonlocal count
        await release.wait()  # read nothing at first: TCP pushes back
        async for _ in ws:
            count += 1

    def process_request(conn: ServerConnection, request: Request) -> Response | None:
        return client_script_response(request, "/wyre.js")

    async with serve(
        slow_reader,
        "127.0.0.1",
        0,
        process_request=process_request,
        select_subprotocol=lambda conn, offered: offered[0] if offered else None,
        max_size=None,
        max_queue=1,
    ) as raw:
        url = f"ws://127.0.0.1:{raw.sockets[0].getsockname()[1]}/"
        task = asyncio.create_task(js.run("backpressure", url))
        await asyncio.sleep(seconds(3))  # the scenario sees the buffer full meanwhile
        release.set()
        out = await task
        await eventually(lambda: count == 400)
    assert out["stalled"]["buffered"] > out["writeLimit"]
    assert out["stalled"]["resolved"] < 400  # the sends past the limit waited
    assert out["resolved"] == 400


@ASYNC
async def test_reconnect_gives_up_after_max_attempts(js: Runner) -> None:
    async with serving() as page_server:
        server = make_server()
        await server.listen(port=0, host="127.0.0.1")
        task = asyncio.create_task(js.run("giveUp", url_of(server), page=url_of(page_server)))
        await eventually(lambda: server.connections, timeout=20)
        await server.close()  # and it never comes back
        out = await task
    assert out == {
        "events": [["reconnecting", 1], ["reconnecting", 2], ["close", 1001]],
        "closed": True,
        "after": "ConnectionClosed",
        "connections": 0,
    }
