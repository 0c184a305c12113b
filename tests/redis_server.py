"""A private redis-server for the cluster tests, which they may stop and restart.

Started on a free port with nothing kept on disk (``--save "" --appendonly
no``), unless ``WYRE_TEST_REDIS_URL`` points at one to use instead (then
the tests that stop Redis are skipped: they cannot stop a shared server).
Without a ``redis-server`` command the cluster tests skip, or fail when
``WYRE_REQUIRE_REDIS=1`` (set by ``.ci/run``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

REQUIRE_REDIS = os.environ.get("WYRE_REQUIRE_REDIS") == "1" or (
    os.environ.get("WYRE_REQUIRE_ALL") == "1"
)
EXTERNAL_URL = os.environ.get("WYRE_TEST_REDIS_URL")


def missing(what: str) -> None:
    """Skip (on a developer's machine) or fail (in CI) for a missing Redis part."""
    message = f"{what}: install redis-server (apt-get install redis-server) and pip install redis"
    if REQUIRE_REDIS:
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process on 127.0.0.1, on a port that survives restarts."""

    def __init__(self, directory: Path) -> None:
        command = shutil.which("redis-server")
        if command is None:
            missing("no redis-server command")
        assert command is not None
        self.command = command
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.command, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        """Kill it at once, as a crash would (its data is gone: nothing is on disk)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None
