"""A cluster on a real Redis: servers in one process, clients spread over them."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

import wyre
from wyre.backplane.envelope import Envelope, Kind, encode

from .conftest import eventually, need_codec, seconds
from .proxy import Proxy

HEARTBEAT = 0.1


@dataclass
class Node:
    server: wyre.Server
    client: wyre.Client
    conns: list[wyre.Connection] = field(default_factory=list)  # the clients' ends
    inbox: list[Any] = field(default_factory=list)  # messages the clients got

    def remote(self, index: int = 0) -> wyre.Connection:
        """The server's end of this node's ``index``-th client connection."""
        for conn in self.server.connections.values():
            if conn.handshake is not None and conn.handshake.query.get("n") == str(index):
                return conn
        raise LookupError(index)


def backplane(url: str, prefix: str, **options: Any) -> wyre.RedisBackplane:
    settings = {"heartbeat": seconds(HEARTBEAT), "node_ttl": seconds(HEARTBEAT * 8)}
    return wyre.RedisBackplane(url, prefix=prefix, **{**settings, **options})


@asynccontextmanager
async def cluster(
    redis_url: str | list[str],
    nodes: int = 2,
    clients: int = 1,
    *,
    codec: Any = None,
    **options: Any,
) -> AsyncIterator[list[Node]]:
    """``nodes`` servers on one Redis (a fresh prefix), each with ``clients`` connections.

    ``redis_url`` may be a list: each node's way to the same Redis (e.g. through a proxy).
    ``codec`` is the servers' option (their clients keep the default, JSON).
    """
    prefix = f"t{uuid.uuid4().hex[:10]}"
    urls = [redis_url] * nodes if isinstance(redis_url, str) else redis_url
    made: list[Node] = []
    try:
        for url in urls:
            server = wyre.Server(backplane=backplane(url, prefix, **options), codec=codec)
            client = wyre.Client()
            node = Node(server, client)
            client.on("message", lambda ctx, node=node: node.inbox.append(ctx.message))
            client.on("request", "echo", lambda ctx: {"echo": ctx.message["text"]})
            made.append(node)
            await server.listen(port=0, host="127.0.0.1")
            for n in range(clients):
                url = f"ws://127.0.0.1:{server.port}/?n={n}"
                node.conns.append(await client.connect(url))
        await eventually(lambda: all(len(n.server.connections) == clients for n in made))
        async with asyncio.timeout(seconds(5)):  # every node announced its connections
            while len(await made[0].server.presence()) < len(made) * clients:
                await asyncio.sleep(0.005)
        yield made
    finally:
        for node in made:
            async with asyncio.timeout(seconds(15)):
                await node.client.close()
                await node.server.close(grace=1)


async def test_nodes_and_presence_span_the_cluster(redis_url: str) -> None:
    async with cluster(redis_url, nodes=3, clients=2) as (a, b, c):
        ids = {n.server.node_id for n in (a, b, c)}
        assert len(ids) == 3
        assert set(await a.server.nodes()) == ids
        presence = await b.server.presence()
        assert len(presence) == 6
        for node in (a, b, c):
            for conn in node.server.connections.values():
                assert presence[conn.id] == node.server.node_id
        await a.remote(0).join("room")
        await c.remote(1).join("room")
        room = await b.server.presence("room")
        assert room == {a.remote(0).id: a.server.node_id, c.remote(1).id: c.server.node_id}
        await c.remote(1).leave("room")
        assert set(await b.server.presence("room")) == {a.remote(0).id}
        await a.conns[0].close()
        await eventually(lambda: len(a.server.connections) == 1)
        assert await b.server.presence("room") == {}
        assert len(await c.server.presence()) == 5


async def test_broadcast_reaches_group_members_on_every_node(redis_url: str) -> None:
    async with cluster(redis_url, nodes=3, clients=2) as nodes:
        a, b, c = nodes
        for node in nodes:
            await node.remote(0).join("room")
        await b.server.broadcast({"type": "news", "n": 1}, group="room")
        await b.server.broadcast({"type": "news", "n": 2})
        await b.server.broadcast({"type": "news", "n": 3}, group="room", exclude=c.remote(0).id)
        await a.server.broadcast({"type": "news", "n": 4}, exclude=[a.remote(0), b.remote(1).id])
        expected = {
            "a": [1, 2, 3, 2, 4],  # 0 is in the room, 1 is not
            "b": [1, 2, 3, 4, 2],
            "c": [1, 2, 4, 2, 4],
        }
        for name, node in zip("abc", nodes, strict=True):
            await eventually(lambda node=node, name=name: len(node.inbox) == len(expected[name]))
        await asyncio.sleep(seconds(0.1))  # nothing more arrives
        for name, node in zip("abc", nodes, strict=True):
            assert sorted(m["n"] for m in node.inbox) == sorted(expected[name]), name


async def test_send_and_acked_send_to_a_connection_on_another_node(redis_url: str) -> None:
    async with cluster(redis_url) as (a, b):
        peer = a.server.peer(b.remote(0).id)
        assert peer.local is None
        await peer.send({"type": "note", "text": "plain"})
        await asyncio.wait_for(peer.send({"type": "note", "text": "acked"}, ack=True), seconds(5))
        assert "acked" in [m["text"] for m in b.inbox]  # acknowledged: already received
        await eventually(lambda: [m["text"] for m in b.inbox] == ["plain", "acked"])


async def test_request_with_partials_across_nodes(redis_url: str) -> None:
    async with cluster(redis_url) as (a, b):

        @b.client.on("request", "countdown")
        async def countdown(ctx: wyre.Context) -> dict[str, str]:
            for n in range(ctx.message["from"], 0, -1):
                await ctx.partial({"n": n})
            return {"text": "liftoff"}

        peer = a.server.peer(b.remote(0).id)
        request = peer.request({"type": "countdown", "from": 3}, timeout=seconds(5))
        partials = [p.message["n"] async for p in request.partials()]
        reply = await request
        assert partials == [3, 2, 1]
        assert reply.message["text"] == "liftoff"
        assert reply.connection == peer  # the answer came from another node
        echo = await peer.request({"type": "echo", "text": "hi"}, timeout=seconds(5))
        assert echo.message["echo"] == "hi"


async def test_json_and_msgpack_clients_on_msgpack_nodes(redis_url: str) -> None:
    """What crosses Redis is JSON; each node re-encodes it for its MessagePack members."""
    need_codec("msgpack")
    async with cluster(redis_url, codec="msgpack") as (a, b):
        packed = wyre.Client(codec="msgpack")
        inbox: list[Any] = []
        packed.on("message", lambda ctx: inbox.append(ctx.message))
        packed.on("request", "echo", lambda ctx: {"echo": ctx.message["text"], "raw": b"\x00"})
        try:
            conn = await packed.connect(f"ws://127.0.0.1:{b.server.port}")
            assert conn.codec.name == "msgpack" and b.conns[0].codec.name != "msgpack"
            (remote,) = await eventually(
                lambda: [c for c in b.server.connections.values() if c.codec.name == "msgpack"]
            )
            async with asyncio.timeout(seconds(5)):  # until the cluster knows of it
                while remote.id not in await a.server.presence():
                    await asyncio.sleep(0.01)
            news = {"type": "news", "at": datetime.date(2024, 2, 29)}
            await a.server.broadcast(news)
            await eventually(lambda: b.inbox and inbox)
            assert b.inbox == inbox == [{"type": "news", "at": "2024-02-29"}]
            peer = a.server.peer(remote.id)
            await peer.send({"type": "note", "text": "plain"})
            await asyncio.wait_for(
                peer.send({"type": "note", "text": "acked"}, ack=True), seconds(5)
            )
            await eventually(lambda: [m.get("text") for m in inbox[1:]] == ["plain", "acked"])
            # bytes do not cross Redis as JSON: the remote call says so, it does not hang
            with pytest.raises(wyre.WyreError, match="cannot encode"):
                await asyncio.wait_for(peer.request({"type": "echo", "text": "hi"}), seconds(5))
        finally:
            await packed.close()


async def test_a_long_stream_of_partials_arrives_whole_and_in_order(redis_url: str) -> None:
    async with cluster(redis_url) as (a, b):

        @b.client.on("request", "many")
        def many(ctx: wyre.Context) -> None:
            for n in range(ctx.message["count"]):
                ctx.partial({"n": n})  # not awaited: they leave as fast as they can
            ctx.reply({"done": True})

        peer = a.server.peer(b.remote(0).id)
        for _ in range(3):
            request = peer.request({"type": "many", "count": 500}, timeout=seconds(10))
            seen = [p.message["n"] async for p in request.partials()]
            assert (await request).message["done"] is True
            assert seen == list(range(500))


async def test_a_burst_of_requests_across_nodes_waits_for_redis_instead_of_failing(
    redis_url: str,
) -> None:
    async with cluster(redis_url) as (a, b):
        peer = a.server.peer(b.remote(0).id)
        requests = [
            peer.request({"type": "echo", "text": str(n)}, timeout=seconds(10)) for n in range(300)
        ]
        replies = await asyncio.gather(*requests)
        assert [r.message["echo"] for r in replies] == [str(n) for n in range(300)]
        assert a.server.hub.backplane.available and b.server.hub.backplane.available


async def test_an_error_reply_and_a_timeout_across_nodes(redis_url: str) -> None:
    async with cluster(redis_url) as (a, b):

        @b.client.on("request", "fail")
        def fail(ctx: wyre.Context) -> None:
            raise ValueError("no such thing")

        @b.client.on("request", "slow")
        async def slow(ctx: wyre.Context) -> None:
            await asyncio.sleep(3600)

        peer = a.server.peer(b.remote(0).id)
        with pytest.raises(wyre.RequestError) as failed:
            await asyncio.wait_for(peer.request({"type": "fail"}), seconds(5))
        assert failed.value.context.message["error"] == "ValueError"
        with pytest.raises(wyre.RequestTimeout):
            await asyncio.wait_for(peer.request({"type": "slow"}, timeout=0.2), seconds(5))


async def test_cancelling_a_request_reaches_the_remote_handler(redis_url: str) -> None:
    async with cluster(redis_url) as (a, b):
        started, cancelled = asyncio.Event(), asyncio.Event()

        @b.client.on("request", "wait")
        async def wait(ctx: wyre.Context) -> None:
            started.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        task = asyncio.ensure_future(a.server.peer(b.remote(0).id).request({"type": "wait"}))
        await asyncio.wait_for(started.wait(), seconds(5))
        task.cancel()
        await asyncio.wait_for(cancelled.wait(), seconds(5))
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_connection_that_closes_during_a_request_fails_it(redis_url: str) -> None:
    async with cluster(redis_url) as (a, b):
        started = asyncio.Event()

        @b.client.on("request", "wait")
        async def wait(ctx: wyre.Context) -> None:
            started.set()
            await asyncio.sleep(3600)

        request = a.server.peer(b.remote(0).id).request({"type": "wait"}, timeout=seconds(30))
        await asyncio.wait_for(started.wait(), seconds(5))
        await b.conns[0].close(4001, "going")
        with pytest.raises(wyre.ConnectionClosed) as closed:
            await asyncio.wait_for(request, seconds(5))
        assert closed.value.code == 4001


async def test_close_and_no_such_connection_across_nodes(redis_url: str) -> None:
    async with cluster(redis_url) as (a, b):
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(wyre.NoSuchConnection):
            await a.server.peer(str(uuid.uuid4())).request({"type": "echo", "text": "?"})
        with pytest.raises(wyre.NoSuchConnection):
            await a.server.peer(str(uuid.uuid4())).send({"type": "x"})
        assert loop.time() - started < seconds(2)  # a look-up, not a timeout
        await asyncio.wait_for(a.server.peer(b.remote(0).id).close(4002, "kicked"), seconds(5))
        assert b.conns[0].close_code == 4002 and b.conns[0].close_reason == "kicked"


async def test_a_server_that_closes_leaves_the_cluster_at_once(redis_url: str) -> None:
    async with cluster(redis_url, nodes=3) as (a, b, c):
        gone = c.server.node_id
        await c.server.close()
        assert sorted(await a.server.nodes()) == sorted([a.server.node_id, b.server.node_id])
        assert gone not in (await b.server.presence()).values()


async def test_a_message_too_big_for_the_backplane_fails_where_it_is_sent(
    redis_url: str,
) -> None:
    async with cluster(redis_url, max_envelope_size=4096) as (a, b):
        with pytest.raises(wyre.LimitExceeded):
            await a.server.broadcast({"type": "big", "blob": "x" * 10_000})
        with pytest.raises(wyre.LimitExceeded):
            await a.server.peer(b.remote(0).id).request({"type": "echo", "text": "x" * 10_000})
        b.client.on("request", "big", lambda ctx: {"blob": "x" * 10_000})
        with pytest.raises(wyre.LimitExceeded):  # an answer too big fails as fast
            await asyncio.wait_for(
                a.server.peer(b.remote(0).id).request({"type": "big"}), seconds(5)
            )
        echo = await a.server.peer(b.remote(0).id).request({"type": "echo", "text": "small"})
        assert echo.message["echo"] == "small"


async def test_unreadable_envelopes_are_reported_and_ignored(redis_url: str) -> None:
    import redis.asyncio as redis

    async with cluster(redis_url) as (a, b):
        errors: list[BaseException] = []
        b.server.on("error", errors.append)
        backplane = b.server.hub.backplane
        assert isinstance(backplane, wyre.RedisBackplane)
        channel = f"{backplane.prefix}:ch:{b.server.node_id}"
        other = redis.Redis.from_url(redis_url)
        try:
            await other.publish(channel, b"garbage")
            await other.publish(channel, b"wyre9 req x y z\n{}\n")
            bad_json = encode(Envelope(Kind.REQUEST, "n", b.remote(0).id, "c"), 1 << 16)
            await other.publish(channel, bad_json.replace(b"{}", b"{oops"))
        finally:
            await other.aclose()
        await eventually(lambda: len(errors) == 3)
        echo = await a.server.peer(b.remote(0).id).request({"type": "echo", "text": "still"})
        assert echo.message["echo"] == "still"


async def test_a_redis_outage_fails_fast_and_the_cluster_recovers(redis_server: Any) -> None:
    async with cluster(redis_server.url) as (a, b):
        await b.remote(0).join("room")
        redis_server.stop()
        # Every node notices within a few heartbeats; cluster operations then fail fast.
        for node in (a, b):
            await eventually(lambda node=node: not node.server.hub.backplane.available)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(wyre.BackplaneError):
            await a.server.peer(b.remote(0).id).request({"type": "echo", "text": "?"})
        with pytest.raises(wyre.BackplaneError):
            await a.server.presence()
        with pytest.raises(wyre.BackplaneError):
            await a.server.broadcast({"type": "news"})
        assert loop.time() - started < seconds(2)
        # Local traffic goes on, through a peer handle too.
        local = await a.server.peer(a.remote(0).id).request({"type": "echo", "text": "local"})
        assert local.message["echo"] == "local"
        await a.remote(0).join("room")  # joins during the outage are announced later
        # Redis comes back empty: both nodes resubscribe and announce everything again.
        redis_server.start()
        for node in (a, b):
            await eventually(lambda node=node: node.server.hub.backplane.available, timeout=10)

        async def recovered() -> bool:
            try:
                room = await a.server.presence("room")
                nodes = await b.server.nodes()
            except wyre.BackplaneError:
                return False
            return len(room) == 2 and len(nodes) == 2

        async with asyncio.timeout(seconds(10)):
            while not await recovered():
                await asyncio.sleep(0.05)
        echo = await a.server.peer(b.remote(0).id).request({"type": "echo", "text": "back"})
        assert echo.message["echo"] == "back"
        await a.server.broadcast({"type": "news", "n": 9}, group="room")
        await eventually(lambda: any(m.get("n") == 9 for m in b.inbox))


async def test_calls_to_a_node_that_loses_redis_alone_end_soon(redis_url: str) -> None:
    """Only node B's link to Redis breaks: A's calls to B end at once, not at their timeout."""
    import redis.asyncio as redis

    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    proxy = await Proxy(port).start()  # B reaches Redis through it, A directly
    b_url = proxy.url.replace("ws://", "redis://") + "/0"
    observer = redis.Redis.from_url(redis_url)
    try:
        async with cluster([redis_url, b_url]) as (a, b):
            started, cancelled = asyncio.Event(), asyncio.Event()

            @b.client.on("request", "wait")
            async def wait(ctx: wyre.Context) -> None:
                started.set()
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    cancelled.set()
                    raise

            peer = a.server.peer(b.remote(0).id)
            loop = asyncio.get_running_loop()
            # 1. A request B runs when its link drops: B cancels it, and tells A once back.
            request = peer.request({"type": "wait"}, timeout=seconds(30))
            await asyncio.wait_for(started.wait(), seconds(5))
            dropped_at = loop.time()
            proxy.kill()
            await asyncio.wait_for(cancelled.wait(), seconds(5))
            with pytest.raises(wyre.BackplaneError):
                await asyncio.wait_for(request, seconds(30))
            assert loop.time() - dropped_at < seconds(3)
            await eventually(lambda: b.server.hub.backplane.available)
            echo = await peer.request({"type": "echo", "text": "again"}, timeout=seconds(5))
            assert echo.message["echo"] == "again"
            # 2. A request while nobody listens on B's channel fails at once.
            proxy.blackhole()  # B's reconnections hang while this lasts
            proxy.kill()
            channel = f"{b.server.hub.backplane.prefix}:ch:{b.server.node_id}"

            async def unsubscribed() -> None:
                while (await observer.pubsub_numsub(channel))[0][1]:
                    await asyncio.sleep(0.01)

            await asyncio.wait_for(unsubscribed(), seconds(5))
            asked_at = loop.time()
            with pytest.raises(wyre.BackplaneError):
                await peer.request({"type": "echo", "text": "?"}, timeout=seconds(30))
            assert loop.time() - asked_at < seconds(2)
            await eventually(lambda: not b.server.hub.backplane.available)
            proxy.forwarding = True  # B gets through again, and announces itself
            await eventually(lambda: b.server.hub.backplane.available, timeout=10)
            echo = await peer.request({"type": "echo", "text": "back"}, timeout=seconds(5))
            assert echo.message["echo"] == "back"
    finally:
        await observer.aclose()
        await proxy.close()


async def test_groups_a_node_has_no_members_in_any_more_leave_no_record(redis_url: str) -> None:
    """Per-user groups come and go: a node's record of its groups must not grow forever."""
    import redis.asyncio as redis

    async with cluster(redis_url, clients=2) as (a, b):
        backplane = a.server.hub.backplane
        assert isinstance(backplane, wyre.RedisBackplane)
        observer = redis.Redis.from_url(redis_url)

        async def groups_of(node: Node) -> set[str]:
            key = f"{backplane.prefix}:ng:{node.server.node_id}"
            return {name.decode() for name in await observer.smembers(key)}

        try:
            names = [f"user:{n}" for n in range(50)]
            for name in names:
                await a.remote(0).join(name)
            await a.remote(1).join("user:0")
            await b.remote(0).join("user:0")
            assert await groups_of(a) == set(names)
            for name in names:
                await a.remote(0).leave(name)
            assert await groups_of(a) == {"user:0"}  # remote(1) is still in it
            assert await groups_of(b) == {"user:0"}
            await a.conns[1].close()  # its memberships end with it
            async with asyncio.timeout(seconds(5)):
                while await groups_of(a):
                    await asyncio.sleep(0.01)
            assert await a.server.presence("user:0") == {b.remote(0).id: b.server.node_id}
        finally:
            await observer.aclose()
