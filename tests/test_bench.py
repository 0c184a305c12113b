"""The benchmark harness still runs: every path once, at tiny sizes.

This is not a performance test (nothing here asserts on speed); it keeps
``bench/`` from rotting as the library changes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import seconds
from .redis_server import REQUIRE_REDIS

BENCH = Path(__file__).resolve().parent.parent / "bench" / "run.py"


@pytest.mark.timeout(300)  # some thirty processes, started one after another
def test_tiny_benchmark_runs_every_system() -> None:
    # The cluster section starts a redis-server of its own: on a machine without one, where
    # none is required (CI requires one), the rest still runs.
    cluster = REQUIRE_REDIS or shutil.which("redis-server") is not None
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--tiny",
            "--strict",
            *([] if cluster else ["--skip", "cluster"]),
        ],
        capture_output=True,
        text=True,
        timeout=seconds(280),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = result.stdout
    systems = ("websockets", "picows", "picows-keepalive", "socketio", "wyre", "wyre-fast")
    for system in (*systems, "wyre-msgpack", "wyre-fast-msgpack", "uvicorn", "wyre-uvicorn"):
        assert f"| {system} |" in report, report
    if cluster:  # its own Redis, nodes and load generator
        section = report.split("## Cluster")[1]
        for row in ("| cross-node | 1 |", "| socketio |", "| wyre-fast |", "| join one group, all"):
            assert row in section, section
    assert "unavailable" not in report
    assert "FAILED" not in report
    assert "| wyre-uvicorn ÷ uvicorn |" in report


@pytest.mark.timeout(120)
def test_the_multi_core_benchmark_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH.parent / "workers.py"), "--tiny"],
        capture_output=True,
        text=True,
        timeout=seconds(110),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--workers 2:" in result.stdout and "ratio" in result.stdout
