"""What delivery acknowledgement costs: acknowledged sends vs requests vs plain sends.

Usage: ``python bench/acks.py MODE URL [--transport T] [--warmup S] [--duration S]``

Against ``servers.py wyre-stream`` (or ``wyre-fast-stream``), whose ``note``
message handler counts what it received:

- ``request``: ``--concurrency`` tasks each awaiting ``conn.request()``, a round
  trip (to the ``count`` handler, which counts it too);
- ``ack``: the same tasks each awaiting ``conn.send(note, ack=True)``, which
  resolves when the server acknowledged receipt;
- ``send``: the same tasks each awaiting a plain ``conn.send(note)``, which
  resolves once the frame is written (fire-and-forget).

The rate counts what the server received: at the end a ``count`` request
(answered after every earlier frame, since frames stay in order) reads the
server's total. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from common import QUESTION, Window, announce, run_main, wyre_codec, wyre_tool_parser

CONNECT_TIMEOUT = 10.0


async def main_async(args: argparse.Namespace) -> int:
    import wyre

    client = wyre.Client(transport=args.transport, codec=wyre_codec(args.transport))
    conn = await asyncio.wait_for(client.connect(args.url), CONNECT_TIMEOUT)
    running = True

    async def worker(n: int) -> None:
        while running:
            if args.mode == "request":
                await conn.request({"type": "count", "question": QUESTION, "n": n})
            else:
                await conn.send({"type": "note", "n": n}, ack=args.mode == "ack")
            n += args.concurrency

    async def received() -> int:
        """Notes the server handled so far (requests are counted as notes too)."""
        reply = await conn.request({"type": "count"})
        return int(reply.message["count"])

    workers = [asyncio.create_task(worker(i)) for i in range(args.concurrency)]
    try:
        await asyncio.sleep(args.warmup)
        before, span = await received(), Window(args.server_pid)
        await asyncio.sleep(args.duration)
        after = await received()  # ordered after every frame sent before it
        measured = span.counted(after - before)
        running = False
        await asyncio.wait_for(asyncio.gather(*workers), CONNECT_TIMEOUT)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.wait_for(client.close(), CONNECT_TIMEOUT)
    announce(json.dumps({"mode": args.mode, **measured}))
    return 0


def main() -> int:
    parser = wyre_tool_parser(__doc__ or "", ["request", "ack", "send"])
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()
    return run_main(main_async(args), use_uvloop=args.transport == "picows")


if __name__ == "__main__":
    sys.exit(main())
