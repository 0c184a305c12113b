"""STREAM benchmark client: partial replies vs plain messages, through wyre.

Usage: ``python bench/stream.py MODE URL [--transport T] [--n N] [--warmup S] [--duration S]``

The server is ``servers.py wyre-stream`` (or ``wyre-fast-stream``).

* ``partials``: ``conn.request({"type": "stream", "n": N})``, whose handler sends
  N partial replies then a reply, consumed with ``async for p in
  request.partials()``.
* ``messages``: ``conn.request({"type": "burst", "n": N})``, whose handler sends N
  plain messages with ``connection.send`` then a reply; a ``message`` handler
  on the client counts them.

Bursts of N are repeated for ``--warmup`` then ``--duration`` seconds; the items
of the bursts that ran in the measured span are counted. Each burst must
deliver ``i`` = 0..N-1 in order. Prints one JSON line with ``rate`` (items/s)
and CPU use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from common import Window, announce, run_main, wyre_codec, wyre_tool_parser

CONNECT_TIMEOUT = 10.0
BURST_TIMEOUT = 30.0


def body(item: Any) -> Any:
    """The message of a context, or the item itself if it already is one."""
    return getattr(item, "message", item)


def check_done(reply: Any) -> None:
    if body(reply).get("done") is not True:
        raise RuntimeError(f"unexpected final reply {body(reply)!r}")


async def main_async(args: argparse.Namespace) -> int:
    import wyre

    client = wyre.Client(transport=args.transport, codec=wyre_codec(args.transport))
    n = args.n
    ticks: list[int] = []
    all_ticks = asyncio.Event()

    @client.on("message", "tick")
    def tick(ctx: Any) -> None:
        ticks.append(body(ctx)["i"])
        if len(ticks) == n:
            all_ticks.set()

    conn = await asyncio.wait_for(client.connect(args.url), CONNECT_TIMEOUT)

    async def partials() -> list[int]:
        request = conn.request({"type": "stream", "n": n})
        seen = [body(p)["i"] async for p in request.partials()]
        check_done(await request)
        return seen

    async def messages() -> list[int]:
        ticks.clear()
        all_ticks.clear()
        check_done(await conn.request({"type": "burst", "n": n}))
        await all_ticks.wait()
        return list(ticks)

    burst: Callable[[], Awaitable[list[int]]] = partials if args.mode == "partials" else messages
    expected = list(range(n))

    async def one_burst() -> None:
        if await asyncio.wait_for(burst(), BURST_TIMEOUT) != expected:
            raise RuntimeError(f"{args.mode}: items lost or out of order")

    try:
        deadline = time.perf_counter() + args.warmup
        while time.perf_counter() < deadline:
            await one_burst()
        bursts = 0
        span = Window(args.server_pid)
        end = time.perf_counter() + args.duration
        while bursts == 0 or time.perf_counter() < end:
            await one_burst()
            bursts += 1
        measured = span.counted(bursts * n)
    finally:
        await asyncio.wait_for(client.close(), CONNECT_TIMEOUT)
    announce(json.dumps({"mode": args.mode, **measured, "bursts": bursts, "n": n}))
    return 0


def main() -> int:
    parser = wyre_tool_parser(__doc__ or "", ["partials", "messages"])
    parser.add_argument("--n", type=int, default=1000, help="items per request")
    args = parser.parse_args()
    return run_main(main_async(args), use_uvloop=args.transport == "picows")


if __name__ == "__main__":
    sys.exit(main())
