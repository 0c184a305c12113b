"""The README's examples and the demo run, and print what they promise."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import wyre

from .conftest import close_pair, eventually, open_pair, seconds

ROOT = Path(__file__).resolve().parent.parent


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


def run_script(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=seconds(30)
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_readme_example_runs() -> None:
    output = run_script(python_blocks(ROOT / "README.md")[0])
    assert output.splitlines() == [
        "sum: 5",
        "partial: 3",
        "partial: 2",
        "partial: 1",
        "reply: liftoff",
        "chat: hi",
        "error: NoHandler",
    ]


async def test_readme_callback_example(transport: str) -> None:
    def prepare(server: wyre.Server, client: wyre.Client) -> None:
        @server.on("request", "countdown")
        async def countdown(ctx: wyre.Context) -> dict[str, str]:
            for n in range(ctx.message["from"], 0, -1):
                await ctx.partial({"n": n})
            return {"text": "liftoff"}

    server, client, conn, _ = await open_pair(transport, prepare=prepare)
    printed: list[str] = []
    namespace = {"conn": conn, "print": lambda *args: printed.append(" ".join(map(str, args)))}
    try:
        exec(python_blocks(ROOT / "README.md")[1], namespace)
        await eventually(lambda: any(line.startswith("reply:") for line in printed))
    finally:
        await close_pair(server, client)
    assert printed[0].startswith("partial: {'n': 2")
    assert printed[1].startswith("partial: {'n': 1")
    assert printed[2].startswith("reply: {'text': 'liftoff'")


def readme_block(marker: str) -> str:
    """The README's Python example that contains ``marker``."""
    (block,) = [b for b in python_blocks(ROOT / "README.md") if marker in b]
    return block


def test_readme_authentication_example_runs() -> None:
    output = run_script(readme_block("authenticate=authenticate"))
    assert output.splitlines() == ["whoami: ada", "refused: 401 unknown token"]


def test_readme_tls_example_runs() -> None:
    assert run_script(readme_block("ssl=server_context")).splitlines() == ["over TLS: True"]


def test_readme_cluster_example_runs(redis_url: str) -> None:
    code = readme_block("backplane=REDIS")
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=seconds(30),
        env={**os.environ, "REDIS_URL": redis_url},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "bob got: hello, lobby",
        "bob confirmed: True",
        "nodes: 2 in the lobby: 1",
    ]


async def test_readme_asgi_example_serves_http_and_wyre_side_by_side() -> None:
    from .asgi_driver import uvicorn_serving

    (code,) = [block for block in python_blocks(ROOT / "README.md") if "server.asgi()" in block]
    namespace: dict[str, Any] = {"__name__": "readme_asgi"}
    exec(code, namespace)
    async with (
        uvicorn_serving(namespace["app"], lifespan="on") as running,
        wyre.Client() as client,
    ):
        conn = await client.connect(f"{running.url}/ws/")
        assert (await conn.request({"type": "add", "a": 2, "b": 3})).message["sum"] == 5

        def status() -> bytes:
            with urllib.request.urlopen(f"{running.http}/status", timeout=seconds(10)) as r:
                return bytes(r.read())

        assert json.loads(await asyncio.to_thread(status)) == {"connections": 1}


def test_demo_shows_every_feature() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=seconds(30),
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in (
        "server: chat message 'hello'",
        "client: the server acknowledged the chat message",
        "client: 2 + 3 = 5",
        "client: partial reply 3",
        "client: final reply 'liftoff'",
        "client: error reply ZeroDivisionError: division by zero",
        "closed (1000 demo over)",
    ):
        assert expected in out, out


def test_exports_are_complete() -> None:
    public = {name for name in dir(wyre) if not name.startswith("_")}
    public -= {"annotations"}
    modules = {name for name in public if type(getattr(wyre, name)).__name__ == "module"}
    assert sorted(wyre.__all__) == sorted(public - modules | {"__version__"})
    assert issubclass(wyre.RequestTimeout, TimeoutError)
    for name in wyre.__all__:
        obj = getattr(wyre, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, wyre.WyreError), name
