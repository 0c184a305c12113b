"""Load generator of the cluster benchmark: picows clients on uvloop, orjson.

Usage::

    python bench/cluster_load.py peer URL_A URL_B --in-flight 1,100 [--warmup S] [--duration S]
    python bench/cluster_load.py broadcast URL... --protocol raw|socketio --members M
                                 --messages N [--bursts R]
    python bench/cluster_load.py membership URL --n N

Every connection is a bare picows client speaking the wire format itself
(``raw``: wyre's JSON messages) or Engine.IO 4 / Socket.IO 5 text packets
(``socketio``), so that the same client code receives for both systems and
the servers do all the work that differs. Prints one JSON line per
measurement.

* ``peer``: a member connection on node A and one on node B answer ``echo``
  requests; node A times ``server.peer(id).request(echo)`` to each, with 1 and
  with 100 requests in flight (``bench-peer``): local, then across Redis.
* ``broadcast``: M member connections spread over the nodes, each in the room
  (``?join=room``); one control connection asks node 0 for a burst of N
  broadcasts to the room (``burst``). From asking to the last delivery, the
  deliveries per second; every member must get all N, once each.
* ``membership``: Redis' figures (``redis``) before and after N member
  connections open on node A; then every member joins a group, one after
  another and all at once, and one group each (``bench-joins``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from common import announce, cpu_seconds, new_key, raise_nofile, run
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

CONNECT_TIMEOUT = 10.0
CONNECT_BATCH = 50
CONTROL_TIMEOUT = 120.0
QUIET = 2.0  # no delivery for this long: the rest of a burst is lost


@dataclass
class Deliveries:
    """Broadcast messages received, by connection."""

    expected: int = 0
    total: int = 0
    last: float = 0.0
    by_connection: Counter[int] = field(default_factory=Counter)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def reset(self, expected: int) -> None:
        self.expected, self.total, self.last = expected, 0, 0.0
        self.by_connection.clear()
        self.done.clear()

    def count(self, connection: int) -> None:
        self.total += 1
        self.last = time.perf_counter()
        self.by_connection[connection] += 1
        if self.total >= self.expected:
            self.done.set()


class Raw(WSListener):
    """A connection speaking wyre's wire format: requests out, echo answered, messages counted."""

    ids = itertools.count()

    def __init__(self, deliveries: Deliveries) -> None:
        self.number = next(self.ids)
        self.deliveries = deliveries
        self.transport: WSTransport | None = None
        self.pending: dict[str, asyncio.Future[Any]] = {}
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.ready.set_result(None)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
            return
        if frame.msg_type != WSMsgType.TEXT:
            return
        d = orjson.loads(frame.get_payload_as_memoryview())
        direction = d.get("direction")
        if direction is None or direction == "MESSAGE":
            self.deliveries.count(self.number)
        elif direction == "REQUEST":  # an echo request from the server (peer.request)
            d["direction"] = "REPLY"
            transport.send(WSMsgType.TEXT, orjson.dumps(d))
        else:
            future = self.pending.pop(d.get("key"), None)
            if future is not None and not future.done():
                if direction == "REPLY":
                    future.set_result(d)
                else:
                    future.set_exception(RuntimeError(f"{direction}: {d}"))

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionError("disconnected"))

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self.transport is not None
        key = new_key()
        future = self.pending[key] = asyncio.get_running_loop().create_future()
        frame = {**message, "key": key, "direction": "REQUEST"}
        self.transport.send(WSMsgType.TEXT, orjson.dumps(frame))
        reply: dict[str, Any] = await asyncio.wait_for(future, CONTROL_TIMEOUT)
        return reply

    async def close(self) -> None:
        if self.transport is not None and not self.transport.is_disconnected:
            self.transport.send_close(WSCloseCode.OK)
            self.transport.disconnect()
            await asyncio.wait_for(self.transport.wait_disconnected(), CONNECT_TIMEOUT)


class SocketIO(Raw):
    """The same over Engine.IO 4 / Socket.IO 5 text packets: ``news`` events are counted."""

    def __init__(self, deliveries: Deliveries) -> None:
        super().__init__(deliveries)
        self.acks: dict[int, asyncio.Future[Any]] = {}
        self.ack_ids = itertools.count(1)

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport  # ready once the namespace is joined

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
            return
        packet = frame.get_payload_as_bytes()
        if packet.startswith(b'42["news"'):
            self.deliveries.count(self.number)
        elif packet == b"2":  # engine.io ping
            transport.send(WSMsgType.TEXT, b"3")
        elif packet.startswith(b"43"):  # an ack: 43<id>[...]
            start = packet.index(b"[")
            future = self.acks.pop(int(packet[2:start]), None)
            if future is not None and not future.done():
                future.set_result(orjson.loads(packet[start:]))
        elif packet.startswith(b"40"):
            if not self.ready.done():
                self.ready.set_result(None)
        elif packet.startswith(b"0"):  # engine.io open: join the default namespace
            transport.send(WSMsgType.TEXT, b"40")
        elif packet.startswith(b"44") and not self.ready.done():
            self.ready.set_exception(ConnectionError(f"socket.io refused: {packet[:200]!r}"))

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        for future in self.acks.values():
            if not future.done():
                future.set_exception(ConnectionError("disconnected"))

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """The event ``message["type"]`` with the message as its argument, and its ack."""
        assert self.transport is not None
        ack = next(self.ack_ids)
        future = self.acks[ack] = asyncio.get_running_loop().create_future()
        packet = orjson.dumps([message["type"], message])
        self.transport.send(WSMsgType.TEXT, b"42%d" % ack + packet)
        reply: list[dict[str, Any]] = await asyncio.wait_for(future, CONTROL_TIMEOUT)
        return reply[0]


async def open_connections(
    urls: list[str], count: int, protocol: str, query: str, deliveries: Deliveries
) -> list[Raw]:
    """``count`` connections spread over ``urls`` in turn, ``CONNECT_BATCH`` at a time."""
    kind = SocketIO if protocol == "socketio" else Raw

    async def one(url: str) -> Raw:
        if protocol == "socketio":
            url = f"{url}/socket.io/?EIO=4&transport=websocket&{query}"
        else:
            url = f"{url}/?{query}"
        _, conn = await ws_connect(lambda: kind(deliveries), url)
        assert isinstance(conn, Raw)
        await conn.ready
        return conn

    opened: list[Raw] = []
    for first in range(0, count, CONNECT_BATCH):
        batch = [one(urls[i % len(urls)]) for i in range(first, min(count, first + CONNECT_BATCH))]
        opened += await asyncio.wait_for(asyncio.gather(*batch), CONNECT_TIMEOUT)
    return opened


async def close_all(conns: list[Raw]) -> None:
    await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)


async def peer(args: argparse.Namespace) -> None:
    deliveries = Deliveries()
    url_a, url_b = args.urls
    conns = [
        *await open_connections([url_a], 1, "raw", "role=target", deliveries),
        *await open_connections([url_b], 1, "raw", "role=target", deliveries),
        *await open_connections([url_a], 1, "raw", "role=control", deliveries),
    ]
    local, remote, control = conns
    try:
        targets = {
            "local": (await local.request({"type": "whoami"}))["id"],
            "cross-node": (await remote.request({"type": "whoami"}))["id"],
        }
        for in_flight in (int(n) for n in args.in_flight.split(",")):
            for path, target in targets.items():
                result = await control.request(
                    {"type": "bench-peer", "target": target, "in_flight": in_flight,
                     "warmup": args.warmup, "duration": args.duration}
                )  # fmt: skip
                for field_ in ("key", "direction"):
                    result.pop(field_, None)
                announce(json.dumps({"path": path, "in_flight": in_flight, **result}))
    finally:
        await close_all(conns)


async def broadcast(args: argparse.Namespace) -> int:
    deliveries = Deliveries()
    members = await open_connections(
        args.urls, args.members, args.protocol, "join=room", deliveries
    )
    (control,) = await open_connections(args.urls[:1], 1, args.protocol, "role=control", deliveries)
    pids = [int(pid) for pid in args.pids.split(",")] if args.pids else []
    failed = False
    try:
        if args.protocol == "raw":  # answered once the connection's handler joined the room
            await asyncio.gather(*(m.request({"type": "whoami"}) for m in members))
        numbers = {m.number for m in members}
        message = {"type": "news", "text": "the same news for everyone in the room"}
        for burst in range(args.bursts + 1):  # the first one warms up
            n = max(1, args.messages // 10) if burst == 0 else args.messages
            deliveries.reset(n * len(members))
            nodes_cpu = sum(cpu_seconds(pid) for pid in pids)
            own_cpu = time.process_time()
            started = time.perf_counter()
            await control.request({"type": "burst", "n": n, "message": message})
            last = -1
            while not deliveries.done.is_set() and deliveries.total != last:
                last = deliveries.total  # stop waiting once nothing arrives for QUIET s
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(deliveries.done.wait(), QUIET)
            got = deliveries.by_connection
            lost = sum(max(0, n - got[i]) for i in numbers)
            extra = sum(max(0, got[i] - n) for i in numbers) + sum(
                v for i, v in got.items() if i not in numbers
            )
            failed |= bool(lost or extra)
            if burst == 0:
                continue
            elapsed = (deliveries.last or time.perf_counter()) - started
            waited = time.perf_counter() - started  # CPU is sampled now, after the last one
            nodes_cpu = sum(cpu_seconds(pid) for pid in pids) - nodes_cpu
            own_cpu = time.process_time() - own_cpu
            result = {
                "members": len(members),
                "messages": n,
                "delivered": deliveries.total,
                "rate": deliveries.total / elapsed,
                "elapsed": elapsed,
                "lost": lost,
                "extra": extra,
                "nodes_us_per_delivery": 1e6 * nodes_cpu / max(1, deliveries.total),
                "nodes_cpu": nodes_cpu / waited,
                "own_cpu": own_cpu / waited,
            }
            announce(json.dumps(result))
    finally:
        await close_all([*members, control])
    return 1 if failed else 0


async def membership(args: argparse.Namespace) -> None:
    from cluster_nodes import delta

    deliveries = Deliveries()
    (url,) = args.urls
    (control,) = await open_connections([url], 1, "raw", "role=control", deliveries)
    members: list[Raw] = []
    try:
        before = await control.request({"type": "redis"})
        members = await open_connections([url], args.n, "raw", "role=member", deliveries)
        await asyncio.gather(*(m.request({"type": "whoami"}) for m in members))
        async with asyncio.timeout(CONNECT_TIMEOUT):  # every opening announced
            while (await control.request({"type": "count"}))["count"] < args.n + 1:  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # (the node is polled: nothing here to wait on)
        after = await control.request({"type": "redis"})
        announce(json.dumps({"operation": "open", **delta(before, after, args.n)}))
        for operation, group, distinct, together in (
            ("join one group, one after another", "room", False, False),
            ("join one group, all at once", "room", False, True),
            ("join a group each, all at once", "user", True, True),
        ):
            result = await control.request(
                {"type": "bench-joins", "group": group, "distinct": distinct, "together": together}
            )
            for field_ in ("key", "direction"):
                result.pop(field_, None)
            announce(json.dumps({"operation": operation, **result}))
    finally:
        await close_all([control, *members])


async def main_async(args: argparse.Namespace) -> int:
    if args.what == "peer":
        await peer(args)
    elif args.what == "broadcast":
        return await broadcast(args)
    else:
        await membership(args)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["peer", "broadcast", "membership"])
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--protocol", choices=["raw", "socketio"], default="raw")
    parser.add_argument("--in-flight", default="1,100")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--bursts", type=int, default=3)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--pids", help="broadcast: the nodes' process ids, to measure their CPU")
    args = parser.parse_args()
    raise_nofile(max(args.members, args.n) + 1000)
    result: int = run(main_async(args), use_uvloop=True)
    return result


if __name__ == "__main__":
    sys.exit(main())
