"""The cluster benchmark: wyre nodes on a private Redis, and python-socketio on the same.

Usage: ``python bench/cluster.py [--mode full|quick|tiny] [--only wyre,wyre-fast,socketio]``

Starts its own ``redis-server`` on a free loopback port (nothing kept on
disk), node processes (``cluster_nodes.py``) pinned to the first CPU and the
load generator (``cluster_load.py``) with Redis on the second, and prints one
JSON line per measurement (``run.py`` makes the tables):

* ``peer``: ``peer.request`` round trips from node A to a connection on node
  B (A -> Redis -> B -> client -> B -> Redis -> A), beside the same through
  ``peer()`` to a connection on A itself; 1 and 100 in flight.
* ``broadcast``: a room of ``members`` connections spread over 3 node
  processes, and node 0 broadcasting to it; the same for wyre and for
  python-socketio with ``AsyncRedisManager`` (``sio.emit(..., room=...)``).
* ``membership``: what opening a connection and joining a group cost in
  Redis: memory, commands and read events (about one per round trip) each.

A line ``{"row": ..., "failed": ...}`` or ``{"row": ..., "unavailable": ...}``
says why a row has no figures. Exits 3 when Redis itself is unavailable
(no ``redis-server`` command, or no redis-py).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import EXIT_UNAVAILABLE, READY, UNAVAILABLE, announce

HERE = Path(__file__).resolve().parent
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
SLACK = 60.0
SYSTEMS = ["wyre", "wyre-fast", "socketio"]
NODES = 3


@dataclass(frozen=True)
class Sizes:
    peer_warmup: float
    peer_duration: float
    in_flight: tuple[int, ...]
    members: int
    messages: int  # broadcasts per burst
    bursts: int  # measured bursts per set-up
    setups: int  # set-ups per system, interleaved
    joins: int


SIZES = {
    "full": Sizes(1.0, 3.0, (1, 100), 1000, 100, 3, 2, 5000),
    "quick": Sizes(0.3, 1.0, (1, 100), 1000, 50, 2, 1, 1000),
    "tiny": Sizes(0.02, 0.1, (1, 10), 30, 5, 1, 1, 20),
}


def cpus() -> tuple[int, int]:
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[0], allowed[1] if len(allowed) > 1 else allowed[0]


NODE_CPU, LOAD_CPU = cpus()


def pinned(cpu: int) -> Any:
    """Before exec: pin the child to ``cpu`` and have it killed if this process dies."""
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        prctl = None

    def setup() -> None:
        os.sched_setaffinity(0, {cpu})
        if prctl is not None:
            prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG

    return setup


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)
    if proc.stdout is not None:
        proc.stdout.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Unavailable(Exception):
    pass


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """A private redis-server on a free port, pinned with the load generator."""
    command = shutil.which("redis-server")
    if command is None:
        raise Unavailable("no redis-server command (apt-get install redis-server)")
    try:
        import redis  # noqa: F401  (the nodes need it; checked here once)
    except ImportError as exc:
        raise Unavailable(f"redis-py is not installed: {exc}") from None
    port = free_port()
    proc = subprocess.Popen(
        [command, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=pinned(LOAD_CPU),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {port}")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(proc)


def subscribers(redis_url: str, channel: str) -> int:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.pubsub_numsub(channel)[0][1])
    finally:
        client.close()


@dataclass
class Nodes:
    urls: list[str]
    pids: list[int]


@contextmanager
def nodes(name: str, count: int, redis_url: str, logs: Path) -> Iterator[Nodes]:
    """``count`` node processes of system ``name`` on one fresh prefix."""
    prefix = f"b{uuid.uuid4().hex[:10]}"
    procs: list[subprocess.Popen[bytes]] = []
    log = logs / f"node-{name}.log"
    try:
        urls = []
        for _ in range(count):
            with log.open("ab") as err:
                proc = subprocess.Popen(
                    [sys.executable, str(HERE / "cluster_nodes.py"), name, redis_url, prefix],
                    stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                    preexec_fn=pinned(NODE_CPU),
                )  # fmt: skip
            procs.append(proc)
            line = first_line(proc, START_TIMEOUT)
            if line.startswith(UNAVAILABLE) or proc.poll() == EXIT_UNAVAILABLE:
                raise Unavailable(line.removeprefix(UNAVAILABLE).strip())
            if not line.startswith(READY):
                raise RuntimeError(f"a {name} node did not start: {tail(log)}")
            urls.append(f"ws://127.0.0.1:{line.split()[1]}")
        # Every node must hear the others' broadcasts before anything is measured.
        channel = prefix if name == "socketio" else f"{prefix}:all"
        deadline = time.monotonic() + START_TIMEOUT
        while subscribers(redis_url, channel) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {name} nodes did not all subscribe")
            time.sleep(0.02)
        yield Nodes(urls, [proc.pid for proc in procs])
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"a {name} node died: {tail(log)}")
    finally:
        for proc in procs:
            stop(proc)


def first_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The first line a child prints ("" if it exits or says nothing in time)."""
    assert proc.stdout is not None
    fd, data, deadline = proc.stdout.fileno(), b"", time.monotonic() + timeout
    while b"\n" not in data and (left := deadline - time.monotonic()) > 0:
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
    return data.partition(b"\n")[0].decode().strip()


def tail(path: Path) -> str:
    lines = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
    return lines[-1].strip() if lines else "(no output)"


def load(args: list[str], timeout: float, logs: Path) -> list[dict[str, Any]]:
    """Run the load generator pinned to the load CPU; its JSON lines."""
    log = logs / f"load-{args[0]}.log"
    with log.open("ab") as err:
        try:
            done = subprocess.run(
                [sys.executable, str(HERE / "cluster_load.py"), *args],
                stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                timeout=timeout, preexec_fn=pinned(LOAD_CPU),
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"the {args[0]} load generator timed out") from None
    results = [json.loads(line) for line in done.stdout.decode().splitlines() if line[:1] == "{"]
    if done.returncode != 0:
        problems = [r for r in results if r.get("lost") or r.get("extra")]
        why = f"lost or extra deliveries: {problems[:2]}" if problems else tail(log)
        raise RuntimeError(f"the {args[0]} load generator exited {done.returncode}: {why}")
    return results


@contextmanager
def row(name: str) -> Iterator[None]:
    """Report why ``name`` has no figures, and go on with the next."""
    try:
        yield
    except Unavailable as exc:
        announce(json.dumps({"row": name, "unavailable": str(exc)}))
    except Exception as exc:
        announce(json.dumps({"row": name, "failed": str(exc)}))


def measure_peer(sizes: Sizes, redis_url: str, logs: Path) -> None:
    with row("peer"), nodes("wyre", 2, redis_url, logs) as started:
        in_flight = ",".join(map(str, sizes.in_flight))
        timeout = len(sizes.in_flight) * 2 * (sizes.peer_warmup + sizes.peer_duration + 10)
        args = ["peer", *started.urls, "--in-flight", in_flight, "--warmup", str(sizes.peer_warmup),
                "--duration", str(sizes.peer_duration)]  # fmt: skip
        for result in load(args, timeout + SLACK, logs):
            announce(json.dumps({"measure": "peer", **result}))


def measure_broadcast(sizes: Sizes, systems: list[str], redis_url: str, logs: Path) -> None:
    failed: set[str] = set()
    for _ in range(sizes.setups):
        for name in systems:
            if name in failed:
                continue
            with row(f"broadcast:{name}"), nodes(name, NODES, redis_url, logs) as started:
                try:
                    protocol = "socketio" if name == "socketio" else "raw"
                    pids = ",".join(map(str, started.pids))
                    args = ["broadcast", *started.urls, "--protocol", protocol, "--pids", pids,
                            "--members", str(sizes.members), "--messages", str(sizes.messages),
                            "--bursts", str(sizes.bursts)]  # fmt: skip
                    timeout = sizes.members / 20 + sizes.bursts * sizes.messages + SLACK
                    for result in load(args, timeout, logs):
                        announce(json.dumps({"measure": "broadcast", "system": name, **result}))
                except Exception:
                    failed.add(name)
                    raise


def measure_membership(sizes: Sizes, redis_url: str, logs: Path) -> None:
    with row("membership"), nodes("wyre", 1, redis_url, logs) as started:
        args = ["membership", *started.urls, "--n", str(sizes.joins)]
        for result in load(args, sizes.joins / 50 + SLACK, logs):
            announce(json.dumps({"measure": "membership", **result}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=sorted(SIZES), default="full")
    parser.add_argument("--only", help=f"broadcast systems to run (default: {','.join(SYSTEMS)})")
    args = parser.parse_args()
    sizes = SIZES[args.mode]
    systems = args.only.split(",") if args.only else SYSTEMS
    if unknown := set(systems) - set(SYSTEMS):
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    with tempfile.TemporaryDirectory(prefix="wyre-cluster-") as tmp:
        logs = Path(tmp)
        try:
            with redis_server(logs) as redis_url:
                measure_peer(sizes, redis_url, logs)
                measure_broadcast(sizes, systems, redis_url, logs)
                measure_membership(sizes, redis_url, logs)
        except Unavailable as exc:
            announce(UNAVAILABLE, exc)
            return EXIT_UNAVAILABLE
    return 0


if __name__ == "__main__":
    sys.exit(main())
