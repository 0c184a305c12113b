"""Benchmark driver: runs every server, client, stream and memory benchmark; prints markdown.

Usage: ``python bench/run.py [--quick | --tiny] [--out FILE] [--only | --skip NAMES] [--strict]``

``--only cluster`` runs just the cluster section (``cluster.py``: nodes on a
private Redis, broadcast against python-socketio's Redis manager).

Each server runs in its own process pinned to the first CPU, the load generator
(or benchmark client) in another pinned to the second. Systems are interleaved
over rounds (round 1: A B C ..., round 2: A B C ...) and the median of the
rounds is reported. A system whose library cannot be imported is skipped
("unavailable"); a system that fails (no start, a crash, a wrong or lost reply,
a timeout) is reported and makes the exit code 1. ``--strict`` also fails on
unavailable systems. Progress goes to stderr, the markdown to stdout.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from cluster_nodes import NODES as CLUSTER_NODES
from common import EXIT_UNAVAILABLE, READY, UNAVAILABLE, raise_nofile, rss_kib
from servers import SERVERS

HERE = Path(__file__).resolve().parent
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
SLACK = 30.0  # added to every tool's expected running time to bound it
NOISE_LIMIT = 0.15  # CPUs' worth of other processes that disturb a measurement

THROUGHPUT_SYSTEMS = [
    "websockets",
    "picows",
    "picows-orjson",
    "socketio",
    "wyre",
    "wyre-orjson",
    "wyre-async",
    "wyre-fast",
    "wyre-msgpack",
    "wyre-fast-msgpack",
    "uvicorn",
    "wyre-uvicorn",
]
ASGI_PAIRS = {"wyre-uvicorn": "uvicorn"}
"""wyre through an ASGI server -> the bare application on the same server, same run."""
CLIENT_SERVER = "picows-orjson"
CLIENT_SYSTEMS = ["websockets", "picows", "wyre", "wyre-fast", "wyre-msgpack", "wyre-fast-msgpack"]
STREAM_SYSTEMS = {
    "wyre": ("wyre-stream", "websockets"),
    "wyre-fast": ("wyre-fast-stream", "picows"),
}
MEMORY_SYSTEMS = ["websockets", "picows", "picows-keepalive", "wyre", "wyre-fast"]
BROWSER_SERVER = "wyre-fast"
BROWSER_CLIENTS = ["wyre.js", "bare"]
BROWSER_WORKLOADS = ["PIPE", "SEQ"]
WORKLOADS = ["PIPE", "FAN", "SEQ"]
PACKAGES = [
    "pywyre", "websockets", "picows", "python-socketio", "aiohttp", "uvicorn", "uvloop", "orjson",
    "msgpack", "redis",
]  # fmt: skip
CLUSTER = "cluster"  # the --only name of the cluster section
CLUSTER_SYSTEMS = ["wyre", "wyre-fast", "socketio"]
CLUSTER_TIMEOUT = {"full": 600.0, "quick": 300.0, "tiny": 120.0}
CLUSTER_ABOUT = {name: node.about for name, node in CLUSTER_NODES.items()}
CLIENT_ABOUT = {
    "websockets": "websockets asyncio client, asyncio loop, json, own key matching",
    "picows": "picows listener, uvloop, orjson, own key matching",
    "wyre": "wyre.Client(transport='websockets'), asyncio loop, default codec",
    "wyre-fast": "wyre.Client(transport='picows'), uvloop, orjson",
    "wyre-msgpack": "wyre.Client(transport='websockets', codec='msgpack'), asyncio loop: "
    "binary MessagePack frames (the server echoes them with msgpack)",
    "wyre-fast-msgpack": "wyre.Client(transport='picows', codec='msgpack'), uvloop",
}


@dataclass(frozen=True)
class Mode:
    rounds: int
    warmup: float
    duration: float
    stream_n: int
    memory_sizes: tuple[int, ...]
    settle: float  # pause before reading a server's RSS
    retries: int  # more tries of a measurement disturbed by other processes
    browser: bool  # run the browser phase (it needs Chromium: not in --tiny)
    name: str  # cluster.py sizes its measurements by it


MODES = {
    "full": Mode(3, 1.0, 5.0, 100_000, (1000, 5000), 1.0, 2, True, "full"),
    "quick": Mode(1, 0.25, 1.0, 20_000, (1000,), 0.3, 2, True, "quick"),
    "tiny": Mode(1, 0.02, 0.05, 10, (10,), 0.0, 0, False, "tiny"),
}


class Unavailable(Exception):
    """The system's library is not installed (or not importable)."""


# -- processes -------------------------------------------------------------


def cpus() -> tuple[int, int]:
    """The CPU for servers and the CPU for load generators (the same on one CPU)."""
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[0], allowed[1] if len(allowed) > 1 else allowed[0]


SERVER_CPU, LOAD_CPU = cpus()
LOAD_AT_START = os.getloadavg()[0]


def _prctl() -> Callable[..., int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


PRCTL = _prctl()
PR_SET_PDEATHSIG = 1


def pinned(cpu: int) -> Callable[[], None]:
    """What a child runs before exec: pin it to ``cpu``; have it killed if the driver dies."""

    def setup() -> None:
        os.sched_setaffinity(0, {cpu})
        if PRCTL is not None:
            PRCTL(PR_SET_PDEATHSIG, int(signal.SIGKILL))

    return setup


def script(name: str, *args: object) -> list[str]:
    return [sys.executable, str(HERE / name), *map(str, args)]


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End a child process: terminate, then kill if it lingers; close its pipes."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None and not pipe.closed:
            pipe.close()


class Lines:
    """Reads a child's stdout line by line, each read bounded by a timeout."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        self.buffer = b""

    def next(self, timeout: float) -> str:
        """The next line; "" at end of output. Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no output within {timeout:.0f} s")
            if select.select([self.fd], [], [], left)[0]:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    line, self.buffer = self.buffer, b""
                    return line.decode().strip()
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode().strip()


def tail(path: Path) -> str:
    """The last line a child wrote to its log (for a traceback: the exception)."""
    text = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
    return text[-1].strip() if text else "(no output)"


def trouble(results: list[dict[str, Any]]) -> str:
    """What went wrong in a load generator's results, in a few words."""
    said = []
    for r in results:
        if r.get("mismatches") or r.get("lost") or r.get("errors"):
            errors = "; ".join(r.get("errors", []))
            said.append(
                f"{r.get('workload')}: {r['mismatches']} mismatched, {r['lost']} lost"
                + (f" ({errors})" if errors else "")
            )
    return ", ".join(said)


@dataclass(frozen=True)
class Server:
    name: str
    pid: int
    port: int

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"


@contextmanager
def server(name: str, logs: Path) -> Iterator[Server]:
    """Start ``servers.py NAME`` pinned to the server CPU; stop it on exit, whatever happens."""
    log = logs / f"server-{name}.log"
    with log.open("ab") as err:
        proc = subprocess.Popen(
            script("servers.py", name),
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            preexec_fn=pinned(SERVER_CPU),
        )
    try:
        line = Lines(proc).next(START_TIMEOUT)
        if line.startswith(READY):
            yield Server(name, proc.pid, int(line.split()[1]))
            if proc.poll() is not None:
                raise RuntimeError(f"server {name} died: {tail(log)}")
            return
        if line.startswith(UNAVAILABLE) or proc.wait(STOP_TIMEOUT) == EXIT_UNAVAILABLE:
            raise Unavailable(line.removeprefix(UNAVAILABLE).strip() or tail(log))
        raise RuntimeError(f"server {name} did not start: {tail(log)}")
    finally:
        stop(proc)


def run_tool(args: list[str], timeout: float, logs: Path) -> list[dict[str, Any]]:
    """Run a benchmark process pinned to the load CPU; its JSON output lines."""
    log = logs / f"{Path(args[1]).stem}.log"
    with log.open("ab") as err:
        try:
            done = subprocess.run(
                args,
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                preexec_fn=pinned(LOAD_CPU),
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{Path(args[1]).name} timed out after {timeout:.0f} s") from None
    out = done.stdout.decode().splitlines()
    if done.returncode == EXIT_UNAVAILABLE:
        raise Unavailable(" ".join(out).removeprefix(UNAVAILABLE).strip())
    results = [json.loads(line) for line in out if line.startswith("{")]
    if done.returncode != 0:
        why = trouble(results) or tail(log)
        raise RuntimeError(f"{Path(args[1]).name} exited {done.returncode}: {why}")
    return results


# -- benchmarks ------------------------------------------------------------


class Report:
    """Measurements and problems, by table and row."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.problems: dict[str, str] = {}  # row -> "unavailable: ..." or "FAILED: ..."
        self.failures: list[str] = []
        self.unavailable: list[str] = []
        self.disturbed: list[str] = []
        self.texts: dict[str, str] = {}  # row -> a note that is no number

    def skip(self, row: str) -> bool:
        return row in self.problems

    @contextmanager
    def attempt(self, row: str) -> Iterator[None]:
        """Run one measurement of ``row``; record why it could not be done."""
        try:
            yield
        except Unavailable as exc:
            self.problems[row] = f"unavailable: {exc}"
            self.unavailable.append(row)
            log(f"  {row}: unavailable: {exc}")
        except Exception as exc:
            self.problems[row] = f"FAILED: {exc}"
            self.failures.append(f"{row}: {exc}")
            log(f"  {row}: FAILED: {exc}")

    def median(self, row: str, column: str) -> float | None:
        samples = self.values[row].get(column)
        return statistics.median(samples) if samples else None


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def quietly(
    args: list[str], timeout: float, logs: Path, report: Report, what: str, retries: int
) -> list[dict[str, Any]]:
    """Run a benchmark tool; again, up to ``retries`` times, while other processes disturb it."""
    for attempt in range(retries + 1):
        results = run_tool(args, timeout, logs)
        noise = max((r.get("others_cpu") or 0.0) for r in results)
        if noise <= NOISE_LIMIT:
            break
        log(f"  {what}: other processes used {noise:.0%} of a CPU meanwhile")
        if attempt == retries:
            report.disturbed.append(f"{what} (other processes used {noise:.0%} of a CPU)")
    return results


def protocol_of(name: str) -> str:
    """How the load generator speaks to server ``name``: raw JSON, Socket.IO or MessagePack."""
    if name == "socketio":
        return "socketio"
    return "msgpack" if name.endswith("-msgpack") else "raw"


def throughput(mode: Mode, only: set[str], report: Report, logs: Path) -> None:
    timeout = len(WORKLOADS) * (mode.warmup + mode.duration + 10) + SLACK
    for rnd in range(1, mode.rounds + 1):
        log(f"servers, round {rnd}/{mode.rounds}")
        for name in THROUGHPUT_SYSTEMS:
            row = f"server:{name}"
            if name not in only or report.skip(row):
                continue
            with report.attempt(row), server(name, logs) as srv:
                protocol = protocol_of(name)
                args = script(
                    "loadgen.py", srv.url, "--protocol", protocol, "--server-pid", srv.pid,
                    "--warmup", mode.warmup, "--duration", mode.duration,
                )  # fmt: skip
                values = report.values[row]
                for result in quietly(args, timeout, logs, report, row, mode.retries):
                    workload = result["workload"]
                    values[workload].append(result["rate"])
                    values[f"{workload} us"].append(result["server_us_per_item"])
                    values[f"{workload} cpu"].append(result["server_cpu"])
                    values[f"{workload} loadgen"].append(result["own_cpu"])
                log(f"  {name}: " + ", ".join(f"{w} {values[w][-1]:,.0f}" for w in WORKLOADS))


def clients(mode: Mode, only: set[str], report: Report, logs: Path) -> None:
    timeout = mode.warmup + mode.duration + SLACK
    for rnd in range(1, mode.rounds + 1):
        log(f"clients, round {rnd}/{mode.rounds} (server: {CLIENT_SERVER})")
        try:
            with server(CLIENT_SERVER, logs) as srv:
                for name in CLIENT_SYSTEMS:
                    row = f"client:{name}"
                    if name not in only or report.skip(row):
                        continue
                    with report.attempt(row):
                        args = script(
                            "clients.py", name, srv.url, "--server-pid", srv.pid,
                            "--warmup", mode.warmup, "--duration", mode.duration,
                        )  # fmt: skip
                        (result,) = quietly(args, timeout, logs, report, row, mode.retries)
                        report.values[row]["PIPE"].append(result["rate"])
                        log(f"  {name}: PIPE {result['rate']:,.0f}")
        except Exception as exc:  # the common server itself failed
            report.failures.append(f"client benchmark server: {exc}")
            for name in CLIENT_SYSTEMS:
                report.problems.setdefault(f"client:{name}", f"FAILED: {CLIENT_SERVER}: {exc}")
            log(f"  FAILED: {exc}")
            return


def kinds_of(
    tool: str, kinds: tuple[str, ...], extra: Callable[[Mode], list[object]]
) -> Callable[[Mode, set[str], Report, Path], None]:
    """A phase that runs ``tool`` once per kind against each wyre stream server."""
    section = tool.removesuffix(".py")

    def phase(mode: Mode, only: set[str], report: Report, logs: Path) -> None:
        timeout = mode.warmup + mode.duration + 60 + SLACK
        for rnd in range(1, mode.rounds + 1):
            log(f"{section}, round {rnd}/{mode.rounds}")
            for name, (server_name, transport) in STREAM_SYSTEMS.items():
                row = f"{section}:{name}"
                if name not in only or report.skip(row):
                    continue
                with report.attempt(row), server(server_name, logs) as srv:
                    for kind in kinds:
                        args = script(
                            tool, kind, srv.url, "--transport", transport, *extra(mode),
                            "--server-pid", srv.pid,
                            "--warmup", mode.warmup, "--duration", mode.duration,
                        )  # fmt: skip
                        what = f"{row} {kind}"
                        (result,) = quietly(args, timeout, logs, report, what, mode.retries)
                        report.values[row][kind].append(result["rate"])
                        log(f"  {name}: {kind} {result['rate']:,.0f}/s")

    phase.__name__ = section
    return phase


stream = kinds_of("stream.py", ("partials", "messages"), lambda mode: ["--n", mode.stream_n])
acks = kinds_of("acks.py", ("send", "ack", "request"), lambda mode: [])


def idle_rss(srv: Server, count: int, mode: Mode, logs: Path) -> tuple[int, int]:
    """RSS of the server (KiB) after one warm-up connection, and with ``count`` idle ones."""
    timeout = count / 50 + SLACK
    with (logs / "loadgen-idle.log").open("ab") as err:
        proc = subprocess.Popen(
            script("loadgen.py", srv.url, "--idle", count, "--hold", timeout),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            preexec_fn=pinned(LOAD_CPU),
        )
    assert proc.stdin is not None
    try:
        lines = Lines(proc)
        if lines.next(timeout) != "WARM":
            raise RuntimeError(f"idle load generator failed: {tail(logs / 'loadgen-idle.log')}")
        time.sleep(mode.settle)
        baseline = rss_kib(srv.pid)
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        if lines.next(timeout) != f"OPEN {count}":
            raise RuntimeError(
                f"could not open {count} connections: {tail(logs / 'loadgen-idle.log')}"
            )
        time.sleep(mode.settle)
        loaded = rss_kib(srv.pid)
        proc.stdin.close()
        proc.wait(timeout)
    finally:
        stop(proc)
    return baseline, loaded


def memory(mode: Mode, only: set[str], report: Report, logs: Path) -> None:
    raise_nofile(max(mode.memory_sizes) + 1000)
    log("memory")
    for name in MEMORY_SYSTEMS:
        row = f"memory:{name}"
        for count in mode.memory_sizes:
            if name not in only or report.skip(row):
                continue
            with report.attempt(row), server(name, logs) as srv:
                baseline, loaded = idle_rss(srv, count, mode, logs)
                report.values[row]["baseline"].append(baseline)
                report.values[row][f"rss@{count}"].append(loaded)
                report.values[row][f"per@{count}"].append((loaded - baseline) / count)
                log(f"  {name}: {count} connections, {(loaded - baseline) / count:.1f} KiB each")


def browser(mode: Mode, only: set[str], report: Report, logs: Path) -> None:
    """wyre.js and a bare WebSocket in one Chromium page, against the same wyre server."""
    if not mode.browser or "browser" not in only:
        return
    timeout = len(BROWSER_CLIENTS) * len(BROWSER_WORKLOADS) * (mode.warmup + mode.duration)
    for rnd in range(1, mode.rounds + 1):
        log(f"browser, round {rnd}/{mode.rounds} (server: {BROWSER_SERVER})")
        with report.attempt("browser:wyre.js"), server(BROWSER_SERVER, logs) as srv:
            args = script(
                "browser.py", srv.url, "--warmup", mode.warmup, "--duration", mode.duration
            )
            for result in run_tool(args, timeout + SLACK, logs):
                row = f"browser:{result['client']}"
                report.values[row][result["workload"]].append(result["rate"])
                log(f"  {result['client']}: {result['workload']} {result['rate']:,.0f}")


def cluster(mode: Mode, only: set[str], report: Report, logs: Path) -> None:
    """The cluster section: ``cluster.py`` runs it all (Redis, nodes, load) and says how."""
    if CLUSTER not in only:
        return
    log(
        f"cluster (a private redis-server; nodes on CPU {SERVER_CPU}, load and Redis on {LOAD_CPU})"
    )
    with report.attempt(CLUSTER):
        # Not pinned as a whole: cluster.py pins each of its processes itself.
        results = run_tool(
            script("cluster.py", "--mode", mode.name), CLUSTER_TIMEOUT[mode.name], logs
        )
        for r in results:
            if "row" in r:
                row = f"cluster-{r['row']}"
                if "unavailable" in r:
                    report.problems[row] = f"unavailable: {r['unavailable']}"
                    report.unavailable.append(row)
                else:
                    report.problems[row] = f"FAILED: {r['failed']}"
                    report.failures.append(f"{row}: {r['failed']}")
                log(f"  {row}: {report.problems[row]}")
                continue
            measure = r.get("measure")
            if measure == "peer":
                values = report.values[f"cluster-peer:{r['path']}:{r['in_flight']}"]
                for column in ("rate", "p50_ms", "p99_ms"):
                    values[column].append(r[column])
                log(f"  peer.request, {r['path']}, {r['in_flight']} in flight: {r['rate']:,.0f}/s")
            elif measure == "broadcast":
                values = report.values[f"cluster-broadcast:{r['system']}"]
                for column in ("rate", "nodes_us_per_delivery", "nodes_cpu", "own_cpu", "lost"):
                    values[column].append(r[column])
                report.texts["cluster-broadcast"] = f"{r['members']:,}, {r['messages']}"
                log(f"  broadcast, {r['system']}: {r['rate']:,.0f} deliveries/s")
            elif measure == "membership":
                row = f"cluster-membership:{r['operation']}"
                for column in ("us", "bytes", "reads", "commands", "bytes_after_leaving"):
                    if column in r:
                        report.values[row][column].append(r[column])
                calls = r["by_command"]
                said = ", ".join(f"{name} {n:g}" for name, n in calls.items())
                report.texts[row] = said.replace("|", " ")  # script|load: no table cell break
                log(f"  {r['operation']}: {r['bytes']:,.0f} bytes, {r['commands']:.2f} commands")


# -- markdown --------------------------------------------------------------


def number(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def ratio(value: float | None, base: float | None) -> str:
    return "n/a" if value is None or not base else f"{value / base:.2f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return ["_not run_"]
    align = ["---"] + ["---:"] * (len(header) - 1)
    return [f"| {' | '.join(r)} |" for r in [header, align, *rows]]


def problem_row(report: Report, row: str, name: str, width: int) -> list[str] | None:
    """The row saying why ``row`` has no numbers, if it has none."""
    if row in report.problems and not report.values[row]:
        return [name, report.problems[row].replace("|", "\\|")] + [""] * (width - 2)
    return None


def ran(report: Report, row: str) -> bool:
    """Whether ``row`` was attempted (and so belongs in its table)."""
    return row in report.problems or bool(report.values[row])


def machine() -> list[str]:
    model = "unknown CPU"
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} (not installed)")
    return [
        f"- machine: {model}, {os.cpu_count()} CPUs, Linux {platform.release()}",
        f"- Python {platform.python_version()} ({platform.python_implementation()})",
        f"- packages: {', '.join(versions)}",
    ]


def cluster_markdown(report: Report) -> list[str]:
    """The cluster section's tables."""
    out = [
        "",
        "## Cluster: nodes on Redis",
        "",
        f"A private `redis-server` (no persistence) started by `cluster.py`; node processes "
        f"pinned to CPU {SERVER_CPU}, the load generator (picows clients on uvloop, the same "
        f"for every system) and Redis to CPU {LOAD_CPU}.",
        "",
    ]
    if (bad := problem_row(report, CLUSTER, "cluster", 2)) is not None:
        return [*out, *table(["section", "problem"], [bad])]
    out += [
        "### `peer.request` across nodes",
        "",
        "Node A times `server.peer(id).request(echo)` round trips to a connection on node B "
        "(A → Redis → B → client → B → Redis → A), beside the same through `peer()` to a "
        "connection on A itself (no Redis). Both nodes share one CPU; the clients answer "
        "with bare picows.",
        "",
    ]
    header = ["path", "in flight", "round trips/s", "p50 ms", "p99 ms", "÷ local"]
    rows = []
    in_flights = sorted(
        {int(row.rsplit(":", 1)[1]) for row in report.values if row.startswith("cluster-peer:")}
    )
    for in_flight in in_flights:
        local = report.median(f"cluster-peer:local:{in_flight}", "rate")
        for path in ("local", "cross-node"):
            row = f"cluster-peer:{path}:{in_flight}"
            rate = report.median(row, "rate")
            rows.append(
                [path, str(in_flight), number(rate), number(report.median(row, "p50_ms"), 2),
                 number(report.median(row, "p99_ms"), 2), ratio(rate, local)]
            )  # fmt: skip
    if (bad := problem_row(report, "cluster-peer", "peer", len(header))) is not None:
        rows.append(bad)
    out += table(header, rows)
    size = report.texts.get("cluster-broadcast", "")
    members, _, messages = size.partition(", ")
    out += [
        "",
        f"### Broadcast to a room of {members or 'N'} connections on 3 nodes",
        "",
        f"The members are spread over 3 node processes; one control connection asks node 0 "
        f"for {messages or 'N'} broadcasts to the room, one after another, and the rate counts "
        "deliveries from that request to the last one (every member must get every message, "
        "once). wyre: `server.broadcast(msg, group=...)` with a `RedisBackplane`; socketio: "
        "`sio.emit(event, msg, room=...)` with `socketio.AsyncRedisManager` on the same Redis, "
        "its members speaking Engine.IO 4 / Socket.IO 5 packets. CPU per delivery sums the 3 "
        "nodes' CPU time over the burst (10 ms clock ticks: rough for short bursts). A load "
        "generator near 100% means the rate is a lower bound.",
        "",
    ]
    header = ["system", "deliveries/s", "÷ socketio", "nodes' CPU µs/delivery",
              "÷ socketio", "nodes' CPU", "load generator CPU", "lost"]  # fmt: skip
    rows = []
    base = report.median("cluster-broadcast:socketio", "rate")
    base_us = report.median("cluster-broadcast:socketio", "nodes_us_per_delivery")
    for name in CLUSTER_SYSTEMS:
        row = f"cluster-broadcast:{name}"
        if not ran(report, row):
            continue
        if (bad := problem_row(report, row, name, len(header))) is not None:
            rows.append(bad)
            continue
        rate, us = report.median(row, "rate"), report.median(row, "nodes_us_per_delivery")
        cpu, own = report.median(row, "nodes_cpu"), report.median(row, "own_cpu")
        lost = sum(report.values[row]["lost"])
        rows.append(
            [name, number(rate), ratio(rate, base), number(us, 1),
             ratio(base_us, us), f"{number(cpu and cpu * 100)}%", f"{number(own and own * 100)}%",
             number(lost)]
        )  # fmt: skip
    out += table(header, rows)
    out += ["", *(f"- `{name}`: {CLUSTER_ABOUT[name]}" for name in CLUSTER_SYSTEMS)]
    out += [
        "",
        "### Presence and membership in Redis",
        "",
        "One wyre node on an empty prefix. `open`: N connections open (each is recorded in "
        "the cluster's connection table). Then every one joins a group: one after another "
        "(each `await conn.join()` is a round trip), all at once (the joins share round "
        "trips), and one group each. From `INFO` before and after: bytes of `used_memory`, "
        "read events (`total_reads_processed`: about one per round trip, heartbeats "
        "included) and commands (`commandstats`) per operation; then the bytes still used "
        "once every member left its group again.",
        "",
    ]
    header = ["operation", "µs each", "round trips each", "commands each", "bytes each",
              "bytes left after leaving", "commands"]  # fmt: skip
    rows = []
    for row in report.values:
        if not row.startswith("cluster-membership:"):
            continue
        us, left = report.median(row, "us"), report.median(row, "bytes_after_leaving")
        rows.append(
            [row.split(":", 1)[1], number(us, 1) if us is not None else "",
             number(report.median(row, "reads"), 2), number(report.median(row, "commands"), 2),
             number(report.median(row, "bytes")), f"{round(left):,}" if left is not None else "",
             report.texts.get(row, "")]
        )  # fmt: skip
    if (bad := problem_row(report, "cluster-membership", "membership", len(header))) is not None:
        rows.append(bad)
    out += table(header, rows)
    return out


def markdown(mode_name: str, mode: Mode, only: set[str], report: Report, elapsed: float) -> str:
    out = [
        "# wyre benchmark",
        "",
        f"- run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, mode {mode_name}: {mode.rounds} round(s), "
        f"{mode.duration:g} s measured after {mode.warmup:g} s warm-up, median of rounds; "
        f"took {elapsed:.0f} s",
        *machine(),
        f"- servers pinned to CPU {SERVER_CPU}, load generator and clients to CPU {LOAD_CPU}; "
        f"load average at the start {LOAD_AT_START:.2f}; a measurement during which other "
        f"processes (or the hypervisor) took over {NOISE_LIMIT:.0%} of a CPU is taken again, "
        f"up to {mode.retries} more times",
        "- load generator: picows client on uvloop; requests encoded by a template "
        "(the JSON orjson would write), replies decoded with orjson; the same for every server "
        "but the `-msgpack` ones, to which it offers `wyre.v2.msgpack` and sends the same "
        "request as a binary MessagePack frame (also from a template), decoding replies "
        "with msgpack",
        "",
        "## Servers: requests/s",
        "",
        "PIPE: 1 connection, 100 requests in flight. FAN: 50 connections, 10 in flight each. "
        "SEQ: 1 connection, 1 in flight. Ratios are to the bare `websockets` and bare `picows` "
        "rows of the same run.",
        "",
    ]
    header = ["system"]
    for w in WORKLOADS:
        header += [f"{w} req/s", "÷ websockets", "÷ picows"]
    rows = []
    for name in THROUGHPUT_SYSTEMS:
        row = f"server:{name}"
        if not ran(report, row):
            continue
        if (bad := problem_row(report, row, name, len(header))) is not None:
            rows.append(bad)
            continue
        cells = [name]
        for w in WORKLOADS:
            value = report.median(row, w)
            cells += [
                number(value),
                ratio(value, report.median("server:websockets", w)),
                ratio(value, report.median("server:picows", w)),
            ]
        rows.append(cells)
    out += table(header, rows)
    out += ["", *(f"- `{n}`: {SERVERS[n].about}" for n in THROUGHPUT_SYSTEMS if n in only)]
    out += [
        "",
        "Server CPU time per request in µs (lower is better), and in brackets the share of its "
        "CPU the server used. A server well below 100% was not the bottleneck: its rate above "
        "is bounded by the load generator, and this table is the fairer comparison. (Softirq "
        "time, where the kernel handles loopback traffic, is counted for neither side.)",
        "",
    ]
    header = ["system"] + [f"{w} µs/req (CPU)" for w in WORKLOADS] + ["load generator CPU"]
    rows = []
    for name in THROUGHPUT_SYSTEMS:
        row = f"server:{name}"
        if not report.values[row]:
            continue
        cells = [name]
        for w in WORKLOADS:
            us, cpu = report.median(row, f"{w} us"), report.median(row, f"{w} cpu")
            cells.append(f"{number(us, 1)} ({number(cpu and cpu * 100)}%)")
        loads = [report.median(row, f"{w} loadgen") or 0 for w in WORKLOADS]
        cells.append(" / ".join(f"{load:.0%}" for load in loads))
        rows.append(cells)
    out += table(header, rows)
    header = ["system"]
    for w in WORKLOADS:
        header += [f"{w} req/s", "÷ bare", f"{w} µs/req"]
    rows = []
    for name, bare in ASGI_PAIRS.items():
        row = f"server:{name}"
        if not report.values[row] or not report.values[f"server:{bare}"]:
            continue
        cells = [f"{name} ÷ {bare}"]
        for w in WORKLOADS:
            value = report.median(row, w)
            us = report.median(row, f"{w} us")
            cells += [
                number(value),
                ratio(value, report.median(f"server:{bare}", w)),
                number(us, 1),
            ]
        rows.append(cells)
    if rows:
        out += [
            "",
            "## Through an ASGI server",
            "",
            "wyre's ASGI application (`Server.asgi()`) against a bare ASGI WebSocket echo on the "
            "same ASGI server, in the same run: the cost of wyre's protocol through the ASGI "
            "interface.",
            "",
            *table(header, rows),
        ]
    out += [
        "",
        "## Clients: requests/s",
        "",
        f"PIPE through each client library: 100 tasks each awaiting one request at a time, "
        f"against the `{CLIENT_SERVER}` server.",
        "",
    ]
    header = ["client", "PIPE req/s", "÷ websockets", "÷ picows"]
    rows = []
    for name in CLIENT_SYSTEMS:
        row = f"client:{name}"
        if not ran(report, row):
            continue
        if (bad := problem_row(report, row, name, len(header))) is not None:
            rows.append(bad)
            continue
        value = report.median(row, "PIPE")
        rows.append(
            [
                name,
                number(value),
                ratio(value, report.median("client:websockets", "PIPE")),
                ratio(value, report.median("client:picows", "PIPE")),
            ]
        )
    out += table(header, rows)
    out += ["", *(f"- `{n}`: {CLIENT_ABOUT[n]}" for n in CLIENT_SYSTEMS if n in only)]
    out += [
        "",
        "## Stream: partial replies vs plain messages",
        "",
        f"Streams of {mode.stream_n:,}: a request answered by {mode.stream_n} partials and a reply "
        f"(`async for p in conn.request(msg).partials()`), vs a request whose handler sends "
        f"{mode.stream_n} messages with `connection.send` before replying (a client `message` "
        "handler counts them).",
        "",
    ]
    header = ["system", "partials/s", "messages/s", "partials ÷ messages"]
    rows = []
    for name in STREAM_SYSTEMS:
        row = f"stream:{name}"
        if not ran(report, row):
            continue
        if (bad := problem_row(report, row, name, len(header))) is not None:
            rows.append(bad)
            continue
        p, m = report.median(row, "partials"), report.median(row, "messages")
        rows.append([name, number(p), number(m), ratio(p, m)])
    out += table(header, rows)
    out += [
        "",
        "## Acknowledged sends",
        "",
        "100 tasks each awaiting, one after another: a plain `send` (resolves once written), "
        "`send(..., ack=True)` (resolves when the server acknowledged receipt), and `request` "
        "(a round trip). Rates count what the server received (read back at the end with a "
        "request, which frames before it cannot overtake).",
        "",
    ]
    header = ["system", "send/s", "ack send/s", "request/s", "ack ÷ send", "ack ÷ request"]
    rows = []
    for name in STREAM_SYSTEMS:
        row = f"acks:{name}"
        if not ran(report, row):
            continue
        if (bad := problem_row(report, row, name, len(header))) is not None:
            rows.append(bad)
            continue
        plain, ack, req = (report.median(row, kind) for kind in ("send", "ack", "request"))
        rows.append(
            [name, number(plain), number(ack), number(req), ratio(ack, plain), ratio(ack, req)]
        )
    out += table(header, rows)
    if ran(report, "browser:wyre.js"):
        out += [
            "",
            "## Browser: wyre.js vs a bare WebSocket",
            "",
            f"Requests/s from one headless Chromium page to the `{BROWSER_SERVER}` server: "
            "`conn.request()` of wyre.js, and the page's own `WebSocket` with a hand-written "
            "client (key, direction, replies matched to promises by key). PIPE: 100 in "
            "flight, SEQ: 1.",
            "",
        ]
        header = ["client"]
        for w in BROWSER_WORKLOADS:
            header += [f"{w} req/s", "÷ bare"]
        rows = []
        for name in BROWSER_CLIENTS:
            row = f"browser:{name}"
            if (bad := problem_row(report, row, name, len(header))) is not None:
                rows.append(bad)
                continue
            cells = [name]
            for w in BROWSER_WORKLOADS:
                value = report.median(row, w)
                cells += [number(value), ratio(value, report.median("browser:bare", w))]
            rows.append(cells)
        out += table(header, rows)
    out += [
        "",
        "## Memory: server RSS with idle connections",
        "",
        "VmRSS of the server process after one warm-up connection (baseline), then with N open "
        "connections that each made one echo round trip and then stay idle.",
        "",
    ]
    header = ["system", "baseline MiB"]
    for n in mode.memory_sizes:
        header += [f"MiB @ {n}", f"KiB/conn @ {n}"]
    rows = []
    for name in MEMORY_SYSTEMS:
        row = f"memory:{name}"
        if not ran(report, row):
            continue
        if (bad := problem_row(report, row, name, len(header))) is not None:
            rows.append(bad)
            continue
        base = report.values[row].get("baseline")
        cells = [name, number(statistics.median(base) / 1024, 1) if base else "n/a"]
        for n in mode.memory_sizes:
            rss = report.median(row, f"rss@{n}")
            cells += [number(rss and rss / 1024, 1), number(report.median(row, f"per@{n}"), 1)]
        rows.append(cells)
    out += table(header, rows)
    if CLUSTER in only:
        out += cluster_markdown(report)
    notes = [f"{row}: {why}" for row, why in report.problems.items() if report.values[row]]
    notes += [f"disturbed, even when measured again: {what}" for what in report.disturbed]
    if notes:
        out += ["", "## Notes", "", *(f"- {note}" for note in dict.fromkeys(notes))]
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="about a minute, one round")
    size.add_argument("--tiny", action="store_true", help="every code path once, a few seconds")
    parser.add_argument("--out", type=Path, help="also write the markdown to this file")
    parser.add_argument("--only", help="comma-separated system names to run (default: all)")
    parser.add_argument("--skip", help="comma-separated system names not to run")
    parser.add_argument("--strict", action="store_true", help="unavailable systems fail the run")
    args = parser.parse_args()
    mode_name = "tiny" if args.tiny else "quick" if args.quick else "full"
    mode = MODES[mode_name]
    everything = (
        set(THROUGHPUT_SYSTEMS)
        | set(CLIENT_SYSTEMS)
        | set(STREAM_SYSTEMS)
        | set(MEMORY_SYSTEMS)
        | {"browser", CLUSTER}
    )
    only = set(args.only.split(",")) if args.only else everything
    skip = set(args.skip.split(",")) if args.skip else set()
    if unknown := (only | skip) - everything:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    only -= skip

    # Stop cleanly on SIGTERM too: the finally blocks stop every child process.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    report = Report()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wyre-bench-") as tmp:
        logs = Path(tmp)
        for phase in (throughput, clients, stream, acks, browser, memory, cluster):
            try:
                phase(mode, only, report, logs)
            except Exception as exc:  # a bug in the harness itself: report, go on
                report.failures.append(f"{phase.__name__}: {exc!r}")
                log(f"{phase.__name__} FAILED: {exc!r}")
    text = markdown(mode_name, mode, only, report, time.monotonic() - started)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    failed = report.failures + (report.unavailable if args.strict else [])
    for failure in failed:
        log(f"failure: {failure}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
