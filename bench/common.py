"""Pieces shared by the benchmark processes: the wire format, the event loop, process helpers.

Every process of the harness (servers, load generator, clients, driver) is a
script in this folder; they import this module as a sibling.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any

QUESTION = "how are you doing?"

# Lines a server prints on stdout so that the driver knows how it started.
READY = "READY"
UNAVAILABLE = "UNAVAILABLE"
# Exit code of a server whose library could not be imported: skipped, not failed.
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
