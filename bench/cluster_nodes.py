"""The cluster nodes measured by ``cluster.py``, one per process, all on one Redis.

Usage: ``python bench/cluster_nodes.py NAME REDIS_URL PREFIX``

Once listening on 127.0.0.1 (a free port) and part of the cluster, a node prints
``READY <port>``; if its library cannot be imported it prints ``UNAVAILABLE
<reason>`` and exits with code 3. It then serves until killed.

Every node puts a connection whose URL asks for it (``?join=room``) in the
group (room) ``room`` before anything else happens on it, and answers control
requests of the load generator (``cluster_load.py``):

* wyre (requests of the wire format, answered with a REPLY):
  ``whoami`` (the connection's id on the server), ``burst`` ``{n, message}``
  (``n`` broadcasts to ``room``, one after another, each awaited),
  ``bench-peer`` ``{target, in_flight, warmup, duration}`` (``server.peer(target)
  .request(echo)`` round trips, timed here: see :func:`bench_peer`),
  ``count`` (connections this cluster lists), ``redis`` (``INFO`` figures) and
  ``bench-joins`` ``{group, distinct, together}`` (every connection opened with
  ``?role=member`` joins, see :func:`bench_joins`).
* python-socketio (events with an ack): ``burst`` ``{n, message}``, ``n``
  ``sio.emit("news", message, room="room")`` one after another, each awaited.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from common import QUESTION, READY, announce, run_main

HOST = "127.0.0.1"
ROOM = "room"
PEER_TIMEOUT = 10.0


def wants_room(query: str) -> bool:
    """Whether a connection's query string asks for the room."""
    return "join=room" in query.split("&")


async def redis_figures(client: Any) -> dict[str, Any]:
    """What the membership benchmark reads from Redis: memory, commands, reads."""
    memory = await client.info("memory")
    stats = await client.info("stats")
    commands = await client.info("commandstats")
    return {
        "used_memory": int(memory["used_memory"]),
        "reads": int(stats["total_reads_processed"]),
        "commands": {
            name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in commands.items()
        },
    }


def delta(before: dict[str, Any], after: dict[str, Any], count: int) -> dict[str, Any]:
    """Per item: bytes of memory, read events (about one per round trip), commands."""
    calls = {
        name: (after["commands"][name] - before["commands"].get(name, 0)) / count
        for name in after["commands"]
        if name != "info"
    }
    return {
        "bytes": (after["used_memory"] - before["used_memory"]) / count,
        "reads": (after["reads"] - before["reads"]) / count,
        "commands": sum(calls.values()),
        "by_command": {name: round(n, 3) for name, n in sorted(calls.items()) if n >= 0.005},
    }


async def bench_peer(
    server: Any, target: str, in_flight: int, warmup: float, duration: float
) -> dict[str, Any]:
    """``in_flight`` tasks each awaiting ``server.peer(target).request(echo)`` in a loop.

    Counts the round trips completed in the measured span (after ``warmup``)
    and their latencies (send to reply, in ms); every reply must carry the
    ``n`` that was sent.
    """
    peer = server.peer(target)
    latencies: list[float] = []
    errors: list[str] = []
    measuring = False
    running = True

    async def worker(n: int) -> None:
        while running:
            sent = time.perf_counter()
            try:
                reply = await peer.request(
                    {"type": "echo", "question": QUESTION, "n": n}, timeout=PEER_TIMEOUT
                )
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return
            if reply.message.get("n") != n:
                errors.append(f"wrong reply {reply.message!r}")
                return
            if measuring:
                latencies.append(time.perf_counter() - sent)
            n += in_flight

    workers = [asyncio.create_task(worker(i)) for i in range(in_flight)]
    await asyncio.sleep(warmup)
    measuring, started = True, time.perf_counter()
    await asyncio.sleep(duration)
    measuring, elapsed = False, time.perf_counter() - started
    running = False
    await asyncio.wait(workers, timeout=PEER_TIMEOUT)
    latencies.sort()
    return {
        "rate": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else None,
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else None,
        "round_trips": len(latencies),
        "errors": errors[:5],
    }


async def bench_joins(
    members: list[Any], inspector: Any, group: str, distinct: bool, together: bool
) -> dict[str, Any]:
    """Every member connection joins ``group`` (or ``group:<i>``, one group each), then leaves.

    One after another (each join awaited: one round trip each) or all at once
    (they share round trips). Per join: microseconds, and from ``INFO``: bytes
    of Redis memory, read events (about one per round trip) and commands; and
    the bytes still used once every member left again.
    """
    targets = [c for c in members if not c.closed]
    names = [f"{group}:{i}" if distinct else group for i in range(len(targets))]
    before = await redis_figures(inspector)
    started = time.perf_counter()
    if together:
        await asyncio.gather(*(c.join(name) for c, name in zip(targets, names, strict=True)))
    else:
        for c, name in zip(targets, names, strict=True):
            await c.join(name)
    took = time.perf_counter() - started
    after = await redis_figures(inspector)
    await asyncio.gather(*(c.leave(name) for c, name in zip(targets, names, strict=True)))
    left = await redis_figures(inspector)
    return {
        "us": 1e6 * took / len(targets),
        **delta(before, after, len(targets)),
        "bytes_after_leaving": (left["used_memory"] - before["used_memory"]) / len(targets),
    }


async def wyre_node(redis_url: str, prefix: str, *, transport: str) -> None:
    import redis.asyncio as redis

    import wyre

    server = wyre.Server(
        transport=transport, backplane=wyre.RedisBackplane(redis_url, prefix=prefix)
    )
    inspector = redis.Redis.from_url(redis_url)  # INFO, for the membership benchmark
    members: list[Any] = []

    @server.on("connection")
    async def opened(conn: Any) -> None:
        query = conn.handshake.query if conn.handshake is not None else {}
        if query.get("join") == ROOM:
            await conn.join(ROOM)
        elif query.get("role") == "member":
            members.append(conn)

    @server.on("request", "whoami")
    def whoami(ctx: Any) -> dict[str, str]:
        return {"id": ctx.connection.id}

    @server.on("request", "burst")
    async def burst(ctx: Any) -> dict[str, int]:
        message = ctx.message["message"]
        for n in range(ctx.message["n"]):
            await server.broadcast({**message, "n": n}, group=ROOM)
        return {"sent": ctx.message["n"]}

    @server.on("request", "bench-peer")
    async def peer(ctx: Any) -> dict[str, Any]:
        m = ctx.message
        return await bench_peer(server, m["target"], m["in_flight"], m["warmup"], m["duration"])

    @server.on("request", "count")
    async def count(ctx: Any) -> dict[str, int]:
        return {"count": len(await server.presence())}

    @server.on("request", "redis")
    async def figures(ctx: Any) -> dict[str, Any]:
        return await redis_figures(inspector)

    @server.on("request", "bench-joins")
    async def joins(ctx: Any) -> dict[str, Any]:
        m = ctx.message
        return await bench_joins(members, inspector, m["group"], m["distinct"], m["together"])

    await server.listen(port=0, host=HOST)
    announce(READY, server.port)
    await asyncio.Event().wait()


async def socketio_node(redis_url: str, prefix: str) -> None:
    """python-socketio on aiohttp with ``socketio.AsyncRedisManager`` on the same Redis."""
    import socketio
    from aiohttp import web

    manager = socketio.AsyncRedisManager(redis_url, channel=prefix)
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager)

    @sio.event  # type: ignore[untyped-decorator]
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if wants_room(environ.get("QUERY_STRING", "")):
            await sio.enter_room(sid, ROOM)

    @sio.on("burst")  # type: ignore[untyped-decorator]
    async def burst(_sid: str, d: dict[str, Any]) -> dict[str, int]:
        message = d["message"]
        for n in range(d["n"]):
            await sio.emit("news", {**message, "n": n}, room=ROOM)
        return {"sent": d["n"]}

    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, 0).start()
    # Subscribe now rather than on the first connection (cluster.py waits for it).
    sio.manager_initialized = True
    manager.initialize()
    announce(READY, runner.addresses[0][1])
    await asyncio.Event().wait()


@dataclass(frozen=True)
class Node:
    main: Callable[[str, str], Coroutine[Any, Any, None]]
    uvloop: bool
    about: str


NODES: dict[str, Node] = {
    "wyre": Node(
        lambda url, prefix: wyre_node(url, prefix, transport="websockets"),
        False,
        "wyre.Server(backplane=wyre.RedisBackplane(...)): the default transport (websockets), "
        "orjson, asyncio loop",
    ),
    "wyre-fast": Node(
        lambda url, prefix: wyre_node(url, prefix, transport="picows"),
        True,
        "as wyre, with transport='picows' on uvloop",
    ),
    "socketio": Node(
        socketio_node,
        False,
        "python-socketio AsyncServer on aiohttp with socketio.AsyncRedisManager, asyncio loop",
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(NODES))
    parser.add_argument("redis_url")
    parser.add_argument("prefix")
    args = parser.parse_args()
    node = NODES[args.name]
    return run_main(node.main(args.redis_url, args.prefix), use_uvloop=node.uvloop)


if __name__ == "__main__":
    sys.exit(main())
