"""In-process cost of wyre's protocol layer, without sockets.

Usage: ``python bench/micro.py [--n N] [--codec json|orjson|msgpack]``

A Connection over a transport that drops what it is given measures what wyre
itself adds per frame, next to the bare work the same job needs (decode, set
the fields, encode), so that a change to the hot path can be judged in
seconds and without a second process. Prints one line per case: wyre's µs,
the bare µs, and the difference. Best of 5 runs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

import wyre
from wyre.protocol import Codec
from wyre.protocol.pending import new_key

RUNS = 5


class Sink:
    """A transport that keeps the last frame written and nothing else."""

    subprotocol = "wyre.v2"
    handshake = None
    identity = None
    last: Any = None

    def __init__(self, subprotocol: str = "wyre.v2") -> None:
        self.subprotocol = subprotocol

    def write(self, data: str | bytes, binary: bool) -> None:
        self.last = data

    def write_buffer_size(self) -> int:
        return 0


def best(job: Callable[[], None], n: int) -> float:
    """µs per item, best of RUNS."""
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        job()
        times.append(time.perf_counter() - started)
    return min(times) / n * 1e6


def server_dispatch(
    codec_option: str, codec: Codec, n: int, subprotocol: str
) -> tuple[float, float]:
    """A REQUEST frame in, through a typed plain handler, its REPLY encoded."""
    server = wyre.Server(codec=codec_option)
    server.on("request", "echo", lambda ctx: ctx.message)
    conn = server.attach(Sink(subprotocol))
    frames = [
        codec.encode({"question": "how are you doing?", "n": i, "type": "echo",
                      "key": new_key(), "direction": "REQUEST"})
        for i in range(n)
    ]  # fmt: skip

    def wyre_side() -> None:
        for frame in frames:
            conn.receive(frame)

    def bare() -> None:
        for frame in frames:
            message = codec.decode(frame)
            message["direction"] = "REPLY"
            codec.encode(message)

    return best(wyre_side, n), best(bare, n)


async def client_request(
    codec_option: str, codec: Codec, n: int, subprotocol: str
) -> tuple[float, float]:
    """request() out, its REPLY in, the awaitable resolved."""
    client = wyre.Client(codec=codec_option)
    sink = Sink(subprotocol)
    conn = client.attach(sink)
    loop = asyncio.get_running_loop()

    def reply_to_last() -> Any:
        message = codec.decode(sink.last)
        message["direction"] = "REPLY"
        return codec.encode(message)

    async def wyre_side() -> float:
        started = time.perf_counter()
        for i in range(n):
            request = conn.request({"question": "how are you doing?", "n": i})
            conn.receive(reply_to_last())
            await request
        return time.perf_counter() - started

    async def bare() -> float:
        pending: dict[str, asyncio.Future[Any]] = {}
        started = time.perf_counter()
        for i in range(n):
            message = {"question": "how are you doing?", "n": i}
            key = message["key"] = new_key()
            message["direction"] = "REQUEST"
            future = pending[key] = loop.create_future()
            sink.write(codec.encode(message), False)
            reply = codec.decode(reply_to_last())
            pending.pop(reply["key"]).set_result(reply)
            await future
        return time.perf_counter() - started

    ours = min([await wyre_side() for _ in range(RUNS)])
    theirs = min([await bare() for _ in range(RUNS)])
    return ours / n * 1e6, theirs / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--codec", choices=["json", "orjson", "msgpack"], default="json")
    args = parser.parse_args()
    options = wyre.Options(codec=args.codec)
    codec = options.make_msgpack_codec() or options.make_codec()
    subprotocol = "wyre.v2.msgpack" if args.codec == "msgpack" else "wyre.v2"

    async def run() -> None:
        cases = {
            "server: request in, reply out": server_dispatch(
                args.codec, codec, args.n, subprotocol
            ),
            "client: request out, reply in": await client_request(
                args.codec, codec, args.n, subprotocol
            ),
        }
        print(f"codec {codec.name}, {args.n:,} frames, best of {RUNS}")
        for name, (ours, bare) in cases.items():
            line = f"{name:32} wyre {ours:5.2f} µs   bare {bare:5.2f} µs"
            print(f"{line}   wyre adds {ours - bare:5.2f} µs")

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
