"""Client-side benchmark: one client library against a fast echo server, PIPE workload.

Usage: ``python bench/clients.py CLIENT URL [--warmup S] [--duration S]``

``--concurrency`` (100) worker tasks each loop on ``await request(message)``,
so every client pays for one awaited future per request, as an application
would. The bare clients (picows, websockets) add the key and direction and
match replies to futures by key themselves; wyre's ``Connection.request`` does
that for its rows. Every reply must echo the worker's ``n``. Prints one JSON
line with ``rate`` (requests/s) and CPU use; exits 1 on a mismatch.

Clients: ``picows`` (uvloop, orjson), ``websockets`` (asyncio loop, json),
``wyre`` (transport websockets, asyncio loop, json), ``wyre-fast`` (transport
picows, uvloop, orjson), ``wyre-msgpack`` and ``wyre-fast-msgpack`` (the same
two with ``codec="msgpack"``: the server must agree on ``wyre.v2.msgpack``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from common import QUESTION, Window, announce, new_key, run_main

CONNECT_TIMEOUT = 10.0
DRAIN_TIMEOUT = 10.0

Request = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
Opened = AsyncIterator[tuple[Request, "KeyMatcher | None"]]


class KeyMatcher:
    """Futures of the requests in flight, by key; what a bare client must do itself."""

    def __init__(self) -> None:
        self.futures: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.mismatches = 0

    def expect(self, message: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        key = message["key"] = new_key()
        message["direction"] = "REQUEST"
        future = self.futures[key] = asyncio.get_running_loop().create_future()
        return future

    def resolve(self, reply: Any) -> None:
        key = reply.get("key") if isinstance(reply, dict) else None
        future = self.futures.pop(key, None) if isinstance(key, str) else None
        if future is None or reply.get("direction") != "REPLY":
            self.mismatches += 1
        elif not future.done():
            future.set_result(reply)

    def fail_all(self, exc: BaseException) -> None:
        for future in self.futures.values():
            if not future.done():
                future.set_exception(exc)
        self.futures.clear()


@asynccontextmanager
async def picows_client(url: str) -> Opened:
    import orjson
    from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    matcher = KeyMatcher()

    class Listener(WSListener):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                matcher.resolve(orjson.loads(frame.get_payload_as_memoryview()))

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            matcher.fail_all(ConnectionError("disconnected"))

    transport, _ = await asyncio.wait_for(ws_connect(Listener, url), CONNECT_TIMEOUT)

    async def request(message: dict[str, Any]) -> dict[str, Any]:
        future = matcher.expect(message)
        transport.send(WSMsgType.TEXT, orjson.dumps(message))
        return await future

    try:
        yield request, matcher
    finally:
        transport.send_close(WSCloseCode.OK)
        transport.disconnect()


@asynccontextmanager
async def websockets_client(url: str) -> Opened:
    from websockets.asyncio.client import connect

    matcher = KeyMatcher()
    ws = await asyncio.wait_for(connect(url), CONNECT_TIMEOUT)

    async def read() -> None:
        try:
            async for m in ws:
                matcher.resolve(json.loads(m))
        finally:
            matcher.fail_all(ConnectionError("disconnected"))

    async def request(message: dict[str, Any]) -> dict[str, Any]:
        future = matcher.expect(message)
        await ws.send(json.dumps(message))
        return await future

    reader = asyncio.create_task(read())
    try:
        yield request, matcher
    finally:
        await asyncio.wait_for(ws.close(), DRAIN_TIMEOUT)
        await asyncio.wait_for(reader, DRAIN_TIMEOUT)


@asynccontextmanager
async def wyre_client(url: str, transport: str, codec: str) -> Opened:
    import wyre

    client = wyre.Client(transport=transport, codec=codec)
    conn = await asyncio.wait_for(client.connect(url), CONNECT_TIMEOUT)
    if codec == "msgpack" and conn.codec.name != "msgpack":  # measure what the row says
        await client.close()
        raise RuntimeError(f"the server did not agree on MessagePack ({conn.subprotocol})")

    async def request(message: dict[str, Any]) -> dict[str, Any]:
        reply = await conn.request(message)
        body: dict[str, Any] = reply.message
        return body

    try:
        yield request, None
    finally:
        await asyncio.wait_for(client.close(), DRAIN_TIMEOUT)


Open = Callable[[str], AbstractAsyncContextManager[tuple[Request, KeyMatcher | None]]]

# name -> (how to open it, whether it runs on uvloop)
CLIENTS: dict[str, tuple[Open, bool]] = {
    "picows": (picows_client, True),
    "websockets": (websockets_client, False),
    "wyre": (lambda url: wyre_client(url, "websockets", "json"), False),
    "wyre-fast": (lambda url: wyre_client(url, "picows", "orjson"), True),
    "wyre-msgpack": (lambda url: wyre_client(url, "websockets", "msgpack"), False),
    "wyre-fast-msgpack": (lambda url: wyre_client(url, "picows", "msgpack"), True),
}


async def pipe(
    request: Request, concurrency: int, warmup: float, duration: float, server_pid: int | None
) -> dict[str, Any]:
    """``concurrency`` workers awaiting one request after another; replies per second."""
    completed = mismatches = 0
    running = True

    async def worker(n: int) -> None:
        nonlocal completed, mismatches
        while running:
            reply = await request({"question": QUESTION, "n": n, "type": "echo"})
            if reply.get("n") == n and reply.get("question") == QUESTION:
                completed += 1
            else:
                mismatches += 1
            n += concurrency

    workers = [asyncio.create_task(worker(i)) for i in range(concurrency)]
    try:
        await asyncio.sleep(warmup)
        count, span = completed, Window(server_pid)
        await asyncio.sleep(duration)
        measured = span.counted(completed - count)
        running = False
        await asyncio.wait_for(asyncio.gather(*workers), DRAIN_TIMEOUT)
    finally:
        for w in workers:
            w.cancel()
    return {**measured, "requests": completed, "mismatches": mismatches}


async def main_async(args: argparse.Namespace) -> int:
    open_client, _ = CLIENTS[args.client]
    async with open_client(args.url) as (request, matcher):
        result = await pipe(request, args.concurrency, args.warmup, args.duration, args.server_pid)
    if matcher is not None:
        result["mismatches"] += matcher.mismatches
    announce(json.dumps({"client": args.client, **result}))
    return 1 if result["mismatches"] else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("client", choices=sorted(CLIENTS))
    parser.add_argument("url")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--server-pid", type=int, help="also measure this process's CPU time")
    args = parser.parse_args()
    return run_main(main_async(args), use_uvloop=CLIENTS[args.client][1])


if __name__ == "__main__":
    sys.exit(main())
