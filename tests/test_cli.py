"""The ``wyre`` command, run as a real subprocess against real servers."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import wyre

from .apps.cli_app import make_server
from .conftest import seconds

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


async def wyre_command(*args: str, stdin: Any = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wyre", *args,
        stdin=stdin, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=ENV, cwd=ROOT,
    )  # fmt: skip


async def run(*args: str, timeout: float = 20) -> tuple[int, str, str]:
    """Run ``wyre *args`` to the end: (exit status, stdout, stderr)."""
    process = await wyre_command(*args)
    out, err = await asyncio.wait_for(process.communicate(), seconds(timeout))
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@asynccontextmanager
async def served(**options: Any) -> AsyncIterator[tuple[wyre.Server, str]]:
    """The test app's server in this process, and its URL."""
    server = make_server()
    if options:
        server.configure(**options)
    await server.listen(port=0, host="127.0.0.1")
    try:
        yield server, f"ws://127.0.0.1:{server.port}"
    finally:
        await server.close(grace=1)


async def readline(stream: asyncio.StreamReader, timeout: float = 10) -> str:
    line = await asyncio.wait_for(stream.readline(), seconds(timeout))
    return line.decode()


# -- request ------------------------------------------------------------------------------


async def test_request_prints_the_reply_and_exits_0() -> None:
    async with served() as (_, url):
        status, out, err = await run("request", url, '{"type": "add", "a": 2, "b": 3}')
    assert (status, out) == (0, '{"sum": 5}\n'), err


async def test_request_prints_each_partial_as_it_arrives() -> None:
    async with served() as (_, url):
        process = await wyre_command(
            "request", url, '{"type": "countdown", "from": 3, "pause": 0.3}'
        )
        assert process.stdout is not None
        first = await readline(process.stdout)
        assert json.loads(first) == {"n": 3}
        assert process.returncode is None  # still waiting for the rest
        rest = [await readline(process.stdout) for _ in range(3)]
        assert [json.loads(line) for line in rest] == [{"n": 2}, {"n": 1}, {"text": "liftoff"}]
        assert await asyncio.wait_for(process.wait(), seconds(10)) == 0


async def test_an_error_reply_is_printed_and_exits_1() -> None:
    async with served() as (_, url):
        status, out, _ = await run("request", url, '{"type": "fail"}')
    assert status == 1
    assert json.loads(out) == {"error": "ValueError", "message": "as asked"}


async def test_no_reply_in_time_exits_4() -> None:
    async with served() as (_, url):
        status, _, err = await run(
            "request", url, '{"type": "slow", "seconds": 30}', "--timeout", "0.3"
        )
    assert status == 4 and "0.3" in err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["request", "ws://127.0.0.1:1", "{not json"], "bad JSON"),
        (["request", "ws://127.0.0.1:1", "[1, 2]"], "JSON object"),
        (["request", "http://127.0.0.1:1", "{}"], "bad URL"),
        (["request", "ws://127.0.0.1:99999", "{}"], "bad URL"),
        (["send", "ws://127.0.0.1:1", "{}", "--header", "no colon"], "bad header"),
        (["request", "ws://127.0.0.1:1", "{}", "--timeout", "-1"], "positive"),
        (["serve", "nowhere:server"], "cannot import"),
        (["serve", "tests.apps.cli_app:not_a_server"], "not a wyre.Server"),
        (["frobnicate"], "invalid choice"),
    ],
)
async def test_usage_errors_exit_2_with_one_clear_line(args: list[str], says: str) -> None:
    status, out, err = await run(*args)
    assert status == 2 and out == ""
    assert says in err


async def test_nothing_listening_exits_3() -> None:
    status, _, err = await run("request", "ws://127.0.0.1:1", "{}")
    assert status == 3 and "cannot connect" in err and err.count("\n") == 1


async def test_a_refused_handshake_exits_3_with_its_status() -> None:
    def authenticate(handshake: wyre.Handshake) -> str:
        if handshake.headers.get("authorization") != "Bearer good":
            raise wyre.Reject(401, "who are you?")
        return "someone"

    async with served(authenticate=authenticate) as (_, url):
        status, _, err = await run("request", url, '{"type": "pid"}')
        assert status == 3 and "401" in err and "who are you?" in err
        header = ["--header", "Authorization: Bearer good"]
        status, out, _ = await run("request", url, '{"type": "pid"}', *header)
        assert status == 0 and "pid" in json.loads(out)


async def test_help_shows_examples() -> None:
    for command in ("request", "send", "listen", "connect", "serve"):
        status, out, _ = await run(command, "--help")
        assert status == 0 and "example" in out


# -- send and listen --------------------------------------------------------------------------


async def test_send_exits_0_once_written_or_acknowledged() -> None:
    async with served() as (server, url):
        got: list[Any] = []
        server.on("message", "note", lambda ctx: got.append(ctx.message["n"]))
        assert (await run("send", url, '{"type": "note", "n": 1}'))[0] == 0
        assert (await run("send", url, '{"type": "note", "n": 2}', "--ack"))[0] == 0
        assert 2 in got  # acknowledged: it had arrived


async def test_listen_prints_frames_and_refuses_requests() -> None:
    async with served() as (server, url):
        process = await wyre_command("listen", url)
        assert process.stdout is not None
        for _ in range(200):
            if server.connections:
                break
            await asyncio.sleep(0.02)
        (conn,) = server.connections.values()
        await conn.send({"type": "news", "n": 1})
        assert json.loads(await readline(process.stdout)) == {"type": "news", "n": 1}
        with pytest.raises(wyre.RequestError) as refused:
            await asyncio.wait_for(conn.request({"type": "question"}), seconds(5))
        assert "listener cannot answer" in refused.value.context.message["message"]
        assert json.loads(await readline(process.stdout))["type"] == "question"
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), seconds(10)) == 0


async def test_listen_exits_3_when_the_server_closes() -> None:
    async with served() as (server, url):
        process = await wyre_command("listen", url)
        for _ in range(200):
            if server.connections:
                break
            await asyncio.sleep(0.02)
        await server.close(4000, "bye")
        assert await asyncio.wait_for(process.wait(), seconds(10)) == 3


# -- connect, through a pseudo-terminal --------------------------------------------------------


async def test_connect_sends_lines_shows_answers_and_keeps_the_typed_line() -> None:
    async with served() as (server, url):
        leader, follower = pty.openpty()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "wyre", "connect", url,
            stdin=follower, stdout=follower, stderr=follower, env=ENV, cwd=ROOT,
        )  # fmt: skip
        os.close(follower)
        seen = bytearray()

        async def expect(pattern: bytes, timeout: float = 10, since: int = 0) -> None:
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(seconds(timeout)):
                    while not re.search(pattern, seen[since:]):
                        chunk = await loop.run_in_executor(None, os.read, leader, 4096)
                        seen.extend(chunk)
            except TimeoutError:
                raise AssertionError(f"{pattern!r} never appeared in {bytes(seen)!r}") from None

        def typed(text: str) -> None:
            os.write(leader, text.encode())

        try:
            await expect(rb"> ")
            typed('?{"type": "add", "a": 1, "b": 2}\n')
            await expect(rb'< reply \{"sum": 3\}')
            typed('{"type": "hello", "name": "ada"}\n')
            await expect(rb'< \{"type": "welcome", "to": "ada"')
            await expect(rb"< request .*question")
            typed('{"type": "no')  # half a line, then something arrives
            (conn,) = server.connections.values()
            await conn.send({"type": "news"})
            await expect(rb'\x1b\[2K< \{"type": "news"\}\r?\n> \{"type": "no')
            start = len(seen)
            typed('te"}\n')
            await expect(rb"\n> ", since=start)  # read, and the next prompt is up
            typed("\x04")  # Ctrl-D
            assert await asyncio.wait_for(process.wait(), seconds(10)) == 0
        finally:
            if process.returncode is None:
                process.kill()
            os.close(leader)


# -- serve ------------------------------------------------------------------------------------


async def lines_until(stream: asyncio.StreamReader, pattern: str, timeout: float = 20) -> str:
    """Read stderr lines until one matches; returns it."""
    async with asyncio.timeout(seconds(timeout)):
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise EOFError(f"the process ended before printing {pattern!r}")
            if re.search(pattern, line):
                return line


async def test_serve_runs_the_app_and_drains_requests_on_sigterm() -> None:
    process = await wyre_command("serve", "tests.apps.cli_app:make_server", "--port", "0",
                                 "--host", "127.0.0.1")  # fmt: skip
    assert process.stderr is not None
    try:
        line = await lines_until(process.stderr, r"listening on ws://127.0.0.1:(\d+)")
        port = re.search(r":(\d+) ", line).group(1)  # type: ignore[union-attr]
        url = f"ws://127.0.0.1:{port}"
        status, out, _ = await run("request", url, '{"type": "pid"}')
        assert status == 0 and json.loads(out)["pid"] == process.pid
        slow = asyncio.ensure_future(run("request", url, '{"type": "slow", "seconds": 1}'))
        await asyncio.sleep(seconds(0.4))
        process.send_signal(signal.SIGTERM)
        status, out, _ = await slow
        assert status == 0 and json.loads(out)["slept"] == 1  # finished during the grace
        assert await asyncio.wait_for(process.wait(), seconds(15)) == 0
    finally:
        if process.returncode is None:
            process.kill()


async def test_serve_with_two_workers_shares_one_port_and_replaces_a_dead_worker() -> None:
    process = await wyre_command("serve", "tests.apps.cli_app:server", "--port", "0",
                                 "--host", "127.0.0.1", "--workers", "2")  # fmt: skip
    assert process.stderr is not None
    try:
        line = await lines_until(process.stderr, r"supervising 2 workers on port (\d+)")
        port = re.search(r"port (\d+)", line).group(1)  # type: ignore[union-attr]
        url = f"ws://127.0.0.1:{port}"
        await lines_until(process.stderr, r"needs? a backplane|no backplane")
        pids: set[int] = set()
        for _ in range(2):
            await lines_until(process.stderr, r"listening on")
        for _ in range(60):  # the kernel spreads connections over both
            status, out, _ = await run("request", url, '{"type": "pid"}')
            assert status == 0
            pids.add(json.loads(out)["pid"])
            if len(pids) == 2:
                break
        assert len(pids) == 2 and process.pid not in pids
        status, out, _ = await run("request", url, '{"type": "broadcast"}')
        assert status == 1 and "backplane" in json.loads(out)["message"]
        victim = pids.pop()
        os.kill(victim, signal.SIGKILL)
        await lines_until(process.stderr, rf"pid {victim}\) exited")
        await lines_until(process.stderr, r"listening on")  # its replacement
        answered: set[int] = set()
        for _ in range(60):
            status, out, _ = await run("request", url, '{"type": "pid"}')
            assert status == 0
            answered.add(json.loads(out)["pid"])
            if len(answered) == 2:
                break
        assert victim not in answered and len(answered) == 2
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), seconds(30)) == 0
    finally:
        if process.returncode is None:
            process.kill()


async def test_the_wyre_command_is_installed_with_the_package() -> None:
    command = Path(sys.executable).parent / "wyre"
    assert command.exists(), "reinstall the package: pip install -e ."
    process = await asyncio.create_subprocess_exec(
        str(command), "--version", stdout=asyncio.subprocess.PIPE, env=ENV
    )
    out, _ = await asyncio.wait_for(process.communicate(), seconds(20))
    assert process.returncode == 0 and out.decode().startswith("wyre ")
