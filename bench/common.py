"""Pieces shared by the benchmark processes: the wire format, the event loop, process helpers.

Every process of the harness (servers, load generator, clients, driver) is a
script in this folder; they import this module as a sibling.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Coroutine
from typing import Any

QUESTION = "how are you doing?"

# Lines a server prints on stdout so that the driver knows how it started.
READY = "READY"
UNAVAILABLE = "UNAVAILABLE"
# Exit code of a benchmark process whose library cannot be imported: skipped, not failed.
EXIT_UNAVAILABLE = 3


def new_key() -> str:
    """A random uuid4 in its canonical text form; twice as fast as ``str(uuid.uuid4())``."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# A request of the wire format as a template (compact JSON, as orjson writes it):
# the load generator spends its time on the server's replies, not on encoding.
# Fill with ``REQUEST_TEMPLATE % (n, key)``.
REQUEST_TEMPLATE = (
    f'{{"question":"{QUESTION}","n":%d,"type":"echo","key":"%s","direction":"REQUEST"}}'
)


MSGPACK_SUBPROTOCOL = "wyre.v2.msgpack"
"""What a client offers (and a server selects) to speak MessagePack: binary frames."""


def msgpack_request_template() -> tuple[bytes, bytes, bytes]:
    """The request of :data:`REQUEST_TEMPLATE` in MessagePack, in three pieces.

    A request is ``head + packb(n) + middle + packb(key) + tail``: the same map,
    in the same order, as a MessagePack writer makes it.
    """
    from msgpack import packb

    head = b"\x85" + packb("question") + packb(QUESTION) + packb("n")
    middle = packb("type") + packb("echo") + packb("key")
    tail = packb("direction") + packb("REQUEST")
    return head, middle, tail


def run(main: Coroutine[Any, Any, Any], *, use_uvloop: bool) -> Any:
    """Run ``main`` on uvloop or on the stdlib event loop."""
    if use_uvloop:
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


def run_main(main: Coroutine[Any, Any, int | None], *, use_uvloop: bool) -> int:
    """Run a process's main coroutine; a missing library makes it unavailable, not failed.

    Returns the exit code: the coroutine's result, or 3 when an import failed.
    """
    try:
        result: int = run(main, use_uvloop=use_uvloop) or 0
    except ImportError as exc:
        main.close()
        announce(UNAVAILABLE, f"{type(exc).__name__}: {exc}")
        return EXIT_UNAVAILABLE
    return result


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc/PID/status (VmRSS, in KiB)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        text = stat.read()
    fields = text[text.rindex(")") + 2 :].split()  # fields[0] is the state, field 3
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU time spent in user and system mode by all processes, plus hypervisor steal.

    From /proc/stat. Interrupt and softirq time are left out: on loopback, much
    of it is the benchmark's own network traffic.
    """
    with open("/proc/stat", encoding="ascii") as stat:
        # cpu user nice system idle iowait irq softirq steal ...
        _, user, nice, system, _, _, _, _, steal, *_ = stat.readline().split()
    return (int(user) + int(nice) + int(system) + int(steal)) / os.sysconf("SC_CLK_TCK")


class Window:
    """A measured span: wall time, and CPU time of this process, the server and the rest.

    ``counted()`` gives, for ``count`` items done in the span, the rate and
    how busy each side was (in CPUs); ``others_cpu``, the CPU taken by every
    other process and by the hypervisor, well above 0 means the measurement
    was disturbed.
    """

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float, float]:
        server = cpu_seconds(self.server_pid) if self.server_pid else 0.0
        return time.perf_counter(), time.process_time(), server, machine_cpu_seconds()

    def counted(self, count: int) -> dict[str, float | None]:
        end = self._sample()
        wall, own, server, machine = (b - a for a, b in zip(self.start, end, strict=True))
        measured = self.server_pid is not None
        return {
            "rate": count / wall,
            "own_cpu": own / wall,
            "server_cpu": server / wall if measured else None,
            "server_us_per_item": server / max(count, 1) * 1e6 if measured else None,
            "others_cpu": max(0.0, machine - server - own) / wall if measured else None,
        }


def raise_nofile(wanted: int) -> int:
    """Raise the soft open-files limit to ``wanted`` (bounded by the hard limit)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def announce(*words: object) -> None:
    """Print one status line for the driver and flush it at once."""
    print(*words, flush=True)


def wyre_tool_parser(doc: str, modes: list[str]) -> argparse.ArgumentParser:
    """The command line shared by the wyre client tools (stream.py, acks.py)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("mode", choices=modes)
    parser.add_argument("url")
    parser.add_argument("--transport", choices=["websockets", "picows"], default="websockets")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--server-pid", type=int, help="also measure this process's CPU time")
    return parser


def wyre_codec(transport: str) -> str:
    """The codec the wyre servers use with each transport: json on websockets, orjson on picows."""
    return "json" if transport == "websockets" else "orjson"
