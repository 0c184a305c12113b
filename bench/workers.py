"""Multi-core scaling: ``wyre serve --workers 2`` against ``--workers 1``, same run.

Usage::

    python bench/workers.py [--rounds 3] [--duration 5] [--transport picows] [--tiny]

Each round starts ``wyre serve workers_app:server`` with 1 and then 2 worker
processes sharing one port (``SO_REUSEPORT``), and drives it with the FAN
workload of ``loadgen.py`` (50 connections x 10 requests in flight), which
spreads its connections over the workers through the kernel. It prints
requests/s per round and the median ratio.

On a machine with as many cores as workers, the load generator competes with
the servers for the same cores: the figure is then a lower bound of what a
deployment with the load on other machines gets (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(workers: int, args: argparse.Namespace) -> tuple[float, float]:
    """Requests/s of FAN against ``workers`` serving processes, and the load generator's CPU."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(HERE)])}
    serve = subprocess.Popen(
        [sys.executable, "-m", "wyre", "serve", "workers_app:server", "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(workers), "--transport", args.transport,
         "--log-level", "warn"],
        cwd=HERE, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert serve.stderr is not None
        ready = 0
        deadline = time.monotonic() + 30
        while ready < workers and time.monotonic() < deadline:
            line = serve.stderr.readline()
            if not line:
                raise RuntimeError("wyre serve ended before listening")
            if re.search(r"listening on", line):
                ready += 1
        load = subprocess.run(
            [sys.executable, str(HERE / "loadgen.py"), f"ws://127.0.0.1:{port}",
             "--workloads", "FAN", "--warmup", str(args.warmup),
             "--duration", str(args.duration)],
            cwd=HERE, env=env, capture_output=True, text=True,
            timeout=args.warmup + args.duration + 60, check=True,
        )  # fmt: skip
        result = json.loads(load.stdout.strip().splitlines()[-1])
        return float(result["rate"]), float(result["own_cpu"])
    finally:
        serve.terminate()
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            serve.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--transport", choices=["websockets", "picows"], default="picows")
    parser.add_argument("--tiny", action="store_true", help="one short round (for tests)")
    args = parser.parse_args()
    if args.tiny:
        args.rounds, args.warmup, args.duration = 1, 0.2, 0.5
    rates: dict[int, list[float]] = {1: [], 2: []}
    for rnd in range(1, args.rounds + 1):
        for workers in (1, 2):
            rate, loadgen = measure(workers, args)
            rates[workers].append(rate)
            print(
                f"round {rnd}: --workers {workers}: {rate:,.0f} requests/s "
                f"(load generator at {loadgen:.0%} of a CPU)",
                flush=True,
            )
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"median: 1 worker {one:,.0f}/s, 2 workers {two:,.0f}/s, ratio {two / one:.2f}x")
    print(f"cpus: {os.cpu_count()}, transport: {args.transport}, FAN 50 x 10")
    return 0


if __name__ == "__main__":
    sys.exit(main())
