"""Load generator: picows client on uvloop, orjson, speaking the wire format directly.

Usage::

    python bench/loadgen.py URL --workloads PIPE,FAN,SEQ [--warmup S] [--duration S]
    python bench/loadgen.py URL --idle N        # memory benchmark, see below

Workloads (connections x requests in flight, the window kept full):
PIPE 1 x 100, FAN 50 x 10, SEQ 1 x 1. After ``--warmup`` seconds the
completed replies are counted for ``--duration`` seconds; then no new request
is sent and those in flight are awaited. Each workload prints one JSON line
with ``rate`` (requests/s), the load generator's CPU use and, given
``--server-pid``, the server's and everyone else's (see ``common.Window``).
Every reply must carry the key of a request this connection has in flight,
the same ``n`` and ``"direction": "REPLY"``; anything else is a mismatch, and
a mismatch or a lost reply makes the exit code 1.

``--protocol socketio`` speaks Engine.IO 4 / Socket.IO 5 over the same picows
connection: the request object is the argument of an ``echo`` event sent with
an ack id (``42<id>["echo",{...}]``) and the reply is the ack
(``43<id>[{...}]``), checked against the request of that id by key and n.

``--protocol msgpack`` offers ``wyre.v2.msgpack`` (the server must select it)
and sends the same request as a binary MessagePack frame, built from pieces
like the JSON one; replies are decoded with msgpack.

``--idle N``: open one connection, do one echo, close it and print ``WARM``;
wait for a line on stdin; open N connections, each doing one echo round trip,
print ``OPEN N``; then hold them until stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass, field
from typing import Any

import orjson
from common import (
    MSGPACK_SUBPROTOCOL,
    REQUEST_TEMPLATE,
    Window,
    announce,
    msgpack_request_template,
    new_key,
    raise_nofile,
    run_main,
)
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

WORKLOADS: dict[str, tuple[int, int]] = {"PIPE": (1, 100), "FAN": (50, 10), "SEQ": (1, 1)}
CONNECT_TIMEOUT = 10.0
DRAIN_TIMEOUT = 5.0
CONNECT_BATCH = 50  # below the listen backlog of every server


@dataclass
class Stats:
    """Counters shared by the sessions of one run."""

    completed: int = 0
    mismatches: int = 0
    errors: list[str] = field(default_factory=list)


class Session(WSListener):
    """One connection that keeps ``window`` requests in flight until told to stop."""

    msg_type = WSMsgType.TEXT  # of the requests

    def __init__(self, stats: Stats, window: int) -> None:
        self.stats = stats
        self.window = window
        self.transport: WSTransport | None = None
        self.pending: dict[str, int] = {}
        self.n = 0
        self.budget: int | None = None  # requests still allowed; None is unlimited
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()

    # Requests and replies, in the plain wire format.

    def encode(self, n: int, key: str) -> str | bytes:
        return REQUEST_TEMPLATE % (n, key)

    def on_text(self, payload: memoryview) -> None:
        reply = orjson.loads(payload)
        self.complete(reply.get("key") if isinstance(reply, dict) else None, reply)

    def on_binary(self, payload: memoryview) -> None:
        self.stats.errors.append("a binary frame from a JSON server")
        self.stop()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.ready.set_result(None)

    # Shared by both protocols.

    def start(self, total: int | None = None) -> None:
        """Start sending; stop after ``total`` requests, or when ``stop`` is called."""
        self.budget = total
        for _ in range(self.window):
            self.send_one()

    def stop(self) -> None:
        self.budget = 0
        self.check_done()

    def send_one(self) -> None:
        if self.budget is not None:
            if self.budget <= 0:
                return
            self.budget -= 1
        self.n += 1
        key = new_key()
        self.pending[key] = self.n
        assert self.transport is not None
        self.transport.send(self.msg_type, self.encode(self.n, key))

    def complete(self, key: Any, reply: Any) -> None:
        n = self.pending.pop(key, None) if isinstance(key, str) else None
        if (
            n is not None
            and isinstance(reply, dict)
            and reply.get("key") == key
            and reply.get("n") == n
            and reply.get("direction") == "REPLY"
        ):
            self.stats.completed += 1
        else:
            self.stats.mismatches += 1
        if n is not None:
            self.send_one()
        self.check_done()

    def check_done(self) -> None:
        if self.budget == 0 and not self.pending and not self.done.done():
            self.done.set_result(None)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT and frame.fin:
            self.on_text(frame.get_payload_as_memoryview())
        elif frame.msg_type == WSMsgType.BINARY and frame.fin:
            self.on_binary(frame.get_payload_as_memoryview())
        elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
            self.stats.errors.append("fragmented message: not expected of an echo")
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.done.done():
            self.stats.errors.append(f"disconnected with {len(self.pending)} in flight")
            self.done.set_result(None)

    async def close(self) -> None:
        if self.transport is not None and not self.transport.is_disconnected:
            self.transport.send_close(WSCloseCode.OK)
            self.transport.disconnect()
            await asyncio.wait_for(self.transport.wait_disconnected(), DRAIN_TIMEOUT)


class MsgpackSession(Session):
    """The same session in MessagePack: binary frames, on ``wyre.v2.msgpack``."""

    msg_type = WSMsgType.BINARY

    def __init__(self, stats: Stats, window: int) -> None:
        super().__init__(stats, window)
        import msgpack

        self.packb = msgpack.packb
        self.unpackb = msgpack.unpackb
        self.head, self.middle, self.tail = msgpack_request_template()

    def on_ws_connected(self, transport: WSTransport) -> None:
        selected = transport.response.headers.get("Sec-WebSocket-Protocol")
        if selected != MSGPACK_SUBPROTOCOL:
            error = ConnectionError(f"the server selected {selected!r}, not {MSGPACK_SUBPROTOCOL}")
            self.ready.set_exception(error)
            return
        super().on_ws_connected(transport)

    def encode(self, n: int, key: str) -> bytes:
        packb = self.packb
        return self.head + packb(n) + self.middle + packb(key) + self.tail

    def on_text(self, payload: memoryview) -> None:
        self.stats.errors.append("a text frame on a MessagePack connection")
        self.stop()

    def on_binary(self, payload: memoryview) -> None:
        reply = self.unpackb(payload)
        self.complete(reply.get("key") if isinstance(reply, dict) else None, reply)


class SocketIOSession(Session):
    """The same session over Engine.IO 4 / Socket.IO 5 text packets."""

    def __init__(self, stats: Stats, window: int) -> None:
        super().__init__(stats, window)
        self.acks: dict[int, str] = {}
        self.ack_id = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport  # ready once the namespace is joined

    def encode(self, n: int, key: str) -> str:
        self.ack_id += 1
        self.acks[self.ack_id] = key
        return f'42{self.ack_id}["echo",{REQUEST_TEMPLATE % (n, key)}]'

    def on_text(self, payload: memoryview) -> None:
        packet = bytes(payload)
        assert self.transport is not None
        if packet.startswith(b"43"):  # ack: 43<id>[reply]
            start = packet.index(b"[")
            key = self.acks.pop(int(packet[2:start]), None)
            args = orjson.loads(packet[start:])
            self.complete(key, args[0] if args else None)
        elif packet == b"2":  # engine.io ping
            self.transport.send(WSMsgType.TEXT, b"3")
        elif packet.startswith(b"0"):  # engine.io open: join the default namespace
            self.transport.send(WSMsgType.TEXT, b"40")
        elif packet.startswith(b"40"):
            if not self.ready.done():
                self.ready.set_result(None)
        elif packet.startswith(b"44") and not self.ready.done():  # connect error
            self.ready.set_exception(ConnectionError(f"socket.io refused: {packet[:200]!r}"))
        else:
            self.stats.errors.append(f"unexpected packet {packet[:60]!r}")


async def open_sessions(
    url: str, protocol: str, count: int, window: int, stats: Stats
) -> list[Session]:
    """Open ``count`` sessions, ``CONNECT_BATCH`` at a time, each ready to send."""
    kind = {"socketio": SocketIOSession, "msgpack": MsgpackSession}.get(protocol, Session)
    if protocol == "socketio":
        url = url.rstrip("/") + "/socket.io/?EIO=4&transport=websocket"
    offer = {"Sec-WebSocket-Protocol": f"wyre, {MSGPACK_SUBPROTOCOL}"}
    headers = offer if protocol == "msgpack" else None

    async def one() -> Session:
        _, session = await ws_connect(lambda: kind(stats, window), url, extra_headers=headers)
        assert isinstance(session, Session)
        await session.ready
        return session

    sessions: list[Session] = []
    for first in range(0, count, CONNECT_BATCH):
        batch = [one() for _ in range(min(CONNECT_BATCH, count - first))]
        sessions += await asyncio.wait_for(asyncio.gather(*batch), CONNECT_TIMEOUT)
    return sessions


async def close_all(sessions: list[Session]) -> None:
    await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)


async def settle(sessions: list[Session], stats: Stats) -> int:
    """Wait (bounded) for every session to finish; return how many replies never came."""
    try:
        await asyncio.wait_for(asyncio.gather(*(s.done for s in sessions)), DRAIN_TIMEOUT)
    except TimeoutError:
        stats.errors.append("timed out waiting for replies")
    return sum(len(s.pending) for s in sessions)


async def measure(
    url: str, protocol: str, workload: str, warmup: float, duration: float, pid: int | None
) -> dict[str, Any]:
    connections, window = WORKLOADS[workload]
    stats = Stats()
    sessions = await open_sessions(url, protocol, connections, window, stats)
    try:
        for s in sessions:
            s.start()
        await asyncio.sleep(warmup)
        count, span = stats.completed, Window(pid)
        await asyncio.sleep(duration)
        measured = span.counted(stats.completed - count)
        for s in sessions:
            s.stop()
        lost = await settle(sessions, stats)
    finally:
        await close_all(sessions)
    return {
        "workload": workload,
        **measured,
        "requests": stats.completed,
        "mismatches": stats.mismatches,
        "lost": lost,
        "errors": stats.errors[:5],
    }


async def round_trip(sessions: list[Session], stats: Stats) -> None:
    """One request on each session, awaited."""
    for s in sessions:
        s.start(total=1)
    if await settle(sessions, stats) or stats.mismatches or stats.errors:
        raise RuntimeError(f"echo failed: {stats}")


async def idle(url: str, protocol: str, count: int, hold: float) -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    stats = Stats()
    warm = await open_sessions(url, protocol, 1, 1, stats)
    await round_trip(warm, stats)
    await close_all(warm)
    announce("WARM")
    await asyncio.wait_for(stdin.readline(), hold)

    sessions = await open_sessions(url, protocol, count, 1, stats)
    try:
        await round_trip(sessions, stats)
        announce("OPEN", len(sessions))
        await asyncio.wait_for(stdin.read(), hold)
    finally:
        await close_all(sessions)


async def main_async(args: argparse.Namespace) -> int:
    if args.idle is not None:
        await idle(args.url, args.protocol, args.idle, args.hold)
        return 0
    failed = False
    for workload in args.workloads.split(","):
        result = await measure(
            args.url, args.protocol, workload, args.warmup, args.duration, args.server_pid
        )
        announce(json.dumps(result))
        failed |= bool(result["mismatches"] or result["lost"] or result["errors"])
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--protocol", choices=["raw", "socketio", "msgpack"], default="raw")
    parser.add_argument("--workloads", default="PIPE,FAN,SEQ")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--server-pid", type=int, help="also measure this process's CPU time")
    parser.add_argument("--idle", type=int, metavar="N", help="memory mode: hold N connections")
    parser.add_argument("--hold", type=float, default=60.0, help="longest wait on stdin")
    args = parser.parse_args()
    for workload in args.workloads.split(","):
        if workload not in WORKLOADS:
            parser.error(f"unknown workload {workload!r}")
    if args.idle is not None:
        raise_nofile(args.idle + 1000)
    return run_main(main_async(args), use_uvloop=True)  # no msgpack: unavailable


if __name__ == "__main__":
    sys.exit(main())
