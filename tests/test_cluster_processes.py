"""A cluster of node processes under traffic: one killed with -9, then Redis restarted.

Each node is ``tests/cluster_node.py`` in a process of its own, on a real
Redis. This process holds every client: **members**, connected to the nodes,
answer ``echo`` and keep what they receive; a **driver** connection on a node
makes it call a member on another node (``relay``: ``server.peer(id).request``
there), so that each request goes driver -> node A -> Redis -> node B ->
member and back. Every request is counted by how it ended: a reply, or the
class name of the error node A's ``peer.request`` raised.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import signal
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wyre

from .conftest import eventually, seconds

NODE = Path(__file__).with_name("cluster_node.py")
HEARTBEAT = 0.2
NODE_TTL = 1.0
DETECTION = NODE_TTL + 3 * HEARTBEAT
"""A dead node is reaped within this of its death (its key expires, then a beat)."""
PROMPT = 2.0
"""A look-up or a refusal, not a wait for something to expire."""
ECHO_DELAY = 0.01
"""How long a member takes to answer: keeps several requests in flight."""
RELAY_TIMEOUT = 30.0
"""The requests' own timeout: far beyond the test, so that a timeout shows as a failure."""


_PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it


def _die_with_parent() -> None:
    """Run in the child before exec: SIGKILL it if this process dies (no orphaned nodes)."""
    _PRCTL(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


@dataclass
class NodeProcess:
    process: asyncio.subprocess.Process
    node_id: str
    url: str
    log: Path

    async def kill(self) -> None:
        """SIGKILL: no goodbye to Redis, its sockets just close."""
        self.process.kill()
        await asyncio.wait_for(self.process.wait(), seconds(10))


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM (the node leaves the cluster), SIGKILL if it lingers."""
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), seconds(5))
        except TimeoutError:
            process.kill()
            await process.wait()


@asynccontextmanager
async def node_processes(
    redis_url: str, count: int, logs: Path
) -> AsyncIterator[list[NodeProcess]]:
    """``count`` node processes on one Redis (a fresh prefix); all stopped on exit."""
    prefix = f"p{uuid.uuid4().hex[:10]}"
    settings = ["--heartbeat", str(seconds(HEARTBEAT)), "--node-ttl", str(seconds(NODE_TTL))]
    started: list[tuple[asyncio.subprocess.Process, Path]] = []
    try:
        for n in range(count):
            log = logs / f"node-{n}.log"
            with log.open("wb") as err:
                process = await asyncio.create_subprocess_exec(
                    *[sys.executable, str(NODE), redis_url, prefix, *settings],
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=err,
                    env=os.environ.copy(),
                    preexec_fn=_die_with_parent,
                )
            started.append((process, log))
        nodes = []
        for process, log in started:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), seconds(20))
            assert line, f"a node did not start: {log.read_text()[-2000:]}"
            ready = json.loads(line)
            url = f"ws://127.0.0.1:{ready['port']}"
            nodes.append(NodeProcess(process, ready["node_id"], url, log))
        yield nodes
    finally:
        await asyncio.gather(*(_stop(process) for process, _ in started))


@dataclass
class Member:
    id: str  # the connection's id on its node: what presence lists and peer() takes
    node: NodeProcess
    conn: wyre.Connection
    inbox: list[Any] = field(default_factory=list)


@dataclass
class Outcome:
    target: str
    started: float
    ended: float
    result: str  # "reply", or the class name of the error the relaying node got

    @property
    def took(self) -> float:
        return self.ended - self.started


class Clients:
    """The members and drivers: connections from this process to the nodes."""

    def __init__(self) -> None:
        self.client = wyre.Client()
        self.members: dict[wyre.Connection, Member] = {}
        self.client.on("request", "echo", self._echo)
        self.client.on("message", self._message)

    @staticmethod
    async def _echo(ctx: wyre.Context) -> dict[str, Any]:
        await asyncio.sleep(ECHO_DELAY)
        return {"echo": ctx.message["n"]}

    def _message(self, ctx: wyre.Context) -> None:
        self.members[ctx.connection].inbox.append(ctx.message)

    async def member(self, node: NodeProcess, group: str | None = None) -> Member:
        conn = await self.client.connect(node.url)
        me = await conn.request({"type": "whoami"}, timeout=seconds(5))
        member = self.members[conn] = Member(me.message["id"], node, conn)
        if group is not None:
            await conn.request({"type": "join", "group": group}, timeout=seconds(5))
        return member

    async def driver(self, node: NodeProcess) -> wyre.Connection:
        return await self.client.connect(node.url)

    async def close(self) -> None:
        async with asyncio.timeout(seconds(15)):
            await self.client.close()


@asynccontextmanager
async def clients() -> AsyncIterator[Clients]:
    made = Clients()
    try:
        yield made
    finally:
        await made.close()


async def ask(driver: wyre.Connection, message: dict[str, Any]) -> Any:
    """A control request to the driver's node, e.g. ``{"type": "nodes"}``."""
    reply = await driver.request(message, timeout=seconds(10))
    return reply.message


async def announced(driver: wyre.Connection, ids: list[str]) -> None:
    """Wait until the cluster lists every connection of ``ids`` (openings are announced)."""
    async with asyncio.timeout(seconds(5)):
        while not set(ids) <= set((await ask(driver, {"type": "presence"}))["presence"]):
            await asyncio.sleep(0.01)


async def relay(driver: wyre.Connection, target: str, n: int) -> str:
    """One request from the driver's node to member ``target``; how it ended."""
    message = {"type": "echo", "n": n}
    try:
        reply = await driver.request(
            {"type": "relay", "to": target, "message": message, "timeout": RELAY_TIMEOUT},
            timeout=RELAY_TIMEOUT + 10,
        )
    except wyre.RequestError as exc:
        return str(exc.context.message.get("error"))
    except wyre.RequestTimeout:
        return "hung"  # the relaying node never ended the request
    return "reply" if reply.message.get("echo") == n else f"wrong reply {reply.message}"


@dataclass
class Traffic:
    """Request streams from drivers to members, each with one request in flight."""

    outcomes: list[Outcome] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self, driver: wyre.Connection, targets: list[str], streams: int) -> None:
        for first in range(streams):
            self.tasks.append(asyncio.create_task(self._stream(driver, targets, first)))

    async def _stream(self, driver: wyre.Connection, targets: list[str], n: int) -> None:
        loop = asyncio.get_running_loop()
        while not self.stopping.is_set():
            target = targets[n % len(targets)]
            started = loop.time()
            result = await relay(driver, target, n)
            self.outcomes.append(Outcome(target, started, loop.time(), result))
            if result != "reply":
                await asyncio.sleep(0.01)  # failures are quick: do not spin on them
            n += 1

    async def stop(self) -> None:
        """Stop sending; every request still in flight must end (none may hang)."""
        self.stopping.set()
        done, hung = await asyncio.wait(self.tasks, timeout=seconds(10))
        for task in hung:
            task.cancel()
        assert not hung, f"{len(hung)} request streams never ended"
        for task in done:
            task.result()

    def count(self, keep: Callable[[Outcome], bool] = lambda _: True) -> Counter[str]:
        return Counter(o.result for o in self.outcomes if keep(o))


async def test_a_node_killed_with_sigkill_under_traffic(redis_url: str, tmp_path: Path) -> None:
    async with node_processes(redis_url, 3, tmp_path) as (a, b, c), clients() as made:
        victims = [(await made.member(b)).id for _ in range(3)]
        survivor = (await made.member(c)).id
        local = (await made.member(a)).id
        driver = await made.driver(a)
        await announced(driver, [*victims, survivor, local])
        assert set((await ask(driver, {"type": "nodes"}))["nodes"]) == {
            a.node_id, b.node_id, c.node_id
        }  # fmt: skip
        traffic = Traffic()
        traffic.start(driver, victims, streams=8)
        traffic.start(driver, [survivor], streams=2)
        await eventually(lambda: traffic.count(lambda o: o.target in victims)["reply"] >= 50)

        loop = asyncio.get_running_loop()
        killed_at = loop.time()
        await b.kill()
        # Sent before it is reaped: its records still point at it, but nobody listens.
        probe = await relay(driver, victims[0], 0)
        probe_took = loop.time() - killed_at

        # The dead node leaves nodes() and its connections presence(), within the bound.
        async def gone() -> float:
            while True:
                nodes = (await ask(driver, {"type": "nodes"}))["nodes"]
                presence = (await ask(driver, {"type": "presence"}))["presence"]
                if b.node_id not in nodes and not set(victims) & set(presence):
                    assert sorted(nodes) == sorted([a.node_id, c.node_id])
                    assert {survivor: c.node_id, local: a.node_id}.items() <= presence.items()
                    return loop.time()
                await asyncio.sleep(0.02)

        left_at = await asyncio.wait_for(gone(), seconds(10))
        assert left_at - killed_at < seconds(2 * DETECTION)
        # The streams to the dead node now meet NoSuchConnection (its records are gone).
        await eventually(
            lambda: all(
                any(o.result == "NoSuchConnection" and o.started > left_at for o in s)
                for s in [[o for o in traffic.outcomes if o.target == v] for v in victims]
            )
        )
        await traffic.stop()

        to_victims = [o for o in traffic.outcomes if o.target in victims]
        to_survivor = [o for o in traffic.outcomes if o.target == survivor]
        summary = {
            "victims, all": traffic.count(lambda o: o.target in victims),
            "victims, in flight at the kill": traffic.count(
                lambda o: o.target in victims and o.started < killed_at < o.ended
            ),
            "victims, after it left nodes()": traffic.count(
                lambda o: o.target in victims and o.started > left_at
            ),
            "survivor": traffic.count(lambda o: o.target == survivor),
            "seconds from the kill to leaving nodes()": round(left_at - killed_at, 3),
            "sent right after the kill": (probe, round(probe_took, 3)),
            "seconds from the kill to the last ConnectionClosed": round(
                max(o.ended for o in to_victims if o.result == "ConnectionClosed") - killed_at, 3
            ),
        }
        print(f"\nkill -9 under traffic: {summary}")
        # Every request ended, in a reply or in one of the errors a dead node explains.
        allowed = {"reply", "ConnectionClosed", "BackplaneError", "NoSuchConnection"}
        assert set(summary["victims, all"]) <= allowed, summary
        # Those the dead node held fail with ConnectionClosed once it is reaped: not with
        # RequestTimeout (they had 30 s), and no later than a few heartbeats after its key
        # expired. Those sent to its channel after it died fail at once: nobody listens.
        in_flight = [o for o in to_victims if o.started < killed_at < o.ended]
        assert summary["victims, in flight at the kill"]["ConnectionClosed"] >= 1, summary
        for outcome in in_flight:
            assert outcome.result in {"reply", "ConnectionClosed", "BackplaneError"}, outcome
            if outcome.result == "ConnectionClosed":
                assert outcome.ended - killed_at < seconds(2 * DETECTION), outcome
        for outcome in to_victims:
            if outcome.result in {"BackplaneError", "NoSuchConnection"}:
                assert outcome.took < seconds(PROMPT), outcome
            if outcome.started > left_at:
                assert outcome.result == "NoSuchConnection", outcome
            if outcome.started > killed_at:
                assert outcome.result != "reply", outcome
        # One sent after the kill, before the reaping, ends at once (nobody listens on the
        # dead node's channel), or at the latest with those in flight.
        assert probe in {"BackplaneError", "ConnectionClosed"}, summary
        assert probe_took < seconds(PROMPT if probe == "BackplaneError" else 2 * DETECTION)
        # New requests to its connection ids: NoSuchConnection, promptly.
        for victim in victims:
            asked_at = loop.time()
            assert await relay(driver, victim, 0) == "NoSuchConnection"
            assert loop.time() - asked_at < seconds(PROMPT)
        # Traffic to the other nodes went on throughout.
        assert {o.result for o in to_survivor} == {"reply"}, summary
        assert any(o.started > killed_at for o in to_survivor)
        assert await relay(driver, survivor, 1) == "reply"
        assert await relay(driver, local, 2) == "reply"


async def test_redis_restarted_under_traffic(redis_server: Any, tmp_path: Path) -> None:
    async with node_processes(redis_server.url, 2, tmp_path) as (a, b), clients() as made:
        on_a = [await made.member(a, group="room") for _ in range(2)]
        on_b = [await made.member(b, group="room") for _ in range(2)]
        members = on_a + on_b
        driver_a, driver_b = await made.driver(a), await made.driver(b)

        async def complete(driver: wyre.Connection) -> bool:
            """Whether this node sees both nodes and every member of the room."""
            try:
                nodes = await ask(driver, {"type": "nodes"})
                room = await ask(driver, {"type": "presence", "group": "room"})
            except wyre.RequestError as exc:
                assert exc.context.message["error"] == "BackplaneError"
                return False
            expected = {m.id: m.node.node_id for m in members}
            return sorted(nodes["nodes"]) == sorted([a.node_id, b.node_id]) and (
                room["presence"] == expected
            )

        await announced(driver_a, [m.id for m in members])
        assert await complete(driver_a) and await complete(driver_b)
        traffic = Traffic()
        traffic.start(driver_a, [m.id for m in on_b], streams=4)  # A -> Redis -> B
        traffic.start(driver_b, [m.id for m in on_a], streams=4)  # B -> Redis -> A
        await eventually(lambda: traffic.count()["reply"] >= 100)

        loop = asyncio.get_running_loop()
        stopped_at = loop.time()
        redis_server.stop()
        await asyncio.sleep(seconds(1))  # the outage, under traffic
        restarted_at = loop.time()
        redis_server.start()  # empty: the nodes must announce everything again

        async def recovered() -> float:
            while not (await complete(driver_a) and await complete(driver_b)):
                await asyncio.sleep(0.02)
            return loop.time()

        recovered_at = await asyncio.wait_for(recovered(), seconds(10))
        # A few heartbeats: the reconnection's backoff is capped at two of them.
        assert recovered_at - restarted_at < seconds(10 * HEARTBEAT)
        await eventually(lambda: traffic.count(lambda o: o.started > recovered_at)["reply"] >= 100)
        await traffic.stop()

        summary = {
            "before": traffic.count(lambda o: o.ended < stopped_at),
            "during the outage": traffic.count(
                lambda o: stopped_at < o.started and o.ended < restarted_at
            ),
            "around the restart": traffic.count(
                lambda o: o.started < recovered_at and o.ended > restarted_at
            ),
            "after recovery": traffic.count(lambda o: o.started > recovered_at),
            "seconds from the restart to complete presence": round(recovered_at - restarted_at, 3),
        }
        print(f"\nRedis restarted under traffic: {summary}")
        # Every request ended: a reply, or at once with BackplaneError while Redis was gone
        # (or NoSuchConnection while the other node had not announced itself again yet).
        allowed = {"reply", "BackplaneError", "NoSuchConnection"}
        assert set(traffic.count()) <= allowed, summary
        assert summary["during the outage"]["BackplaneError"] >= 1, summary
        assert summary["during the outage"]["reply"] == 0, summary
        for outcome in traffic.outcomes:
            if outcome.result != "reply":
                assert outcome.took < seconds(PROMPT), outcome
        # Once both nodes were back, cross-node requests succeeded again, every one.
        assert set(summary["after recovery"]) == {"reply"}, summary
        # Broadcasts after the recovery reach every member of the room, on both nodes.
        for member in members:
            member.inbox.clear()
        await ask(driver_a, {"type": "broadcast", "group": "room", "message": {"n": 1}})
        await ask(driver_b, {"type": "broadcast", "group": "room", "message": {"n": 2}})
        await eventually(lambda: all(len(m.inbox) == 2 for m in members))
        await asyncio.sleep(seconds(0.1))  # and nothing more arrives
        delivered: dict[str, list[int]] = defaultdict(list)
        for member in members:
            delivered[member.id] = sorted(message["n"] for message in member.inbox)
        assert all(got == [1, 2] for got in delivered.values()), delivered
