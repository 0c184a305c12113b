"""The Redis backplane: pub/sub between nodes, and the cluster's records in a few keys.

Needs the ``redis`` extra (redis-py's asyncio client). Keys, under ``prefix``::

    {p}:node:{id}    "1", expiring after node_ttl: the node is alive while it exists
    {p}:nodes        SET of node ids (live or not yet reaped)
    {p}:conns        HASH connection id -> node id
    {p}:nc:{id}      SET of the node's connection ids      (to reap a dead node's records)
    {p}:g:{name}     HASH connection id -> node id: the members of a group
    {p}:ng:{id}      SET of the groups the node has members in
    channels         {p}:ch:{id} (one per node), {p}:all (broadcasts)

Every ``heartbeat`` a node refreshes its key, publishes a ping to its own
channel (a subscription can die without an error: the ping not coming back
says so), and reaps nodes whose key expired, failing what waited on them.
Records of a dead node stay invisible meanwhile: every query filters by live
nodes. Envelopes are published in the order :meth:`~RedisBackplane.publish` is
called, pipelined on one connection (a request's partials and its reply
cannot overtake one another), and the other commands share a bounded pool of
connections: a burst waits its turn instead of failing.

When Redis is lost the node reconnects with exponential backoff and full
jitter, and re-announces all of its state (also when its key vanished
because Redis restarted empty); the callers of the calls it dropped
meanwhile hear of it then.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..exceptions import BackplaneError
from .envelope import MAGIC, Envelope, Kind, encode

if TYPE_CHECKING:
    from ..hub import Hub

__all__ = ["RedisBackplane"]

log = logging.getLogger("wyre.backplane")

MAX_CONNECTIONS = 16
"""Redis connections of a node (its subscription holds one); more commands wait their turn."""
MAX_BATCH = 1024
"""Most envelopes published in one pipeline."""

_LOCATE = """
local n = redis.call('HGET', KEYS[1], ARGV[1])
if n and redis.call('EXISTS', ARGV[2] .. n) == 1 then return n end
return false
"""

_PRESENCE = """
local all = redis.call('HGETALL', KEYS[1])
local alive, out = {}, {}
for i = 1, #all, 2 do
  local n = all[i + 1]
  if alive[n] == nil then alive[n] = redis.call('EXISTS', ARGV[1] .. n) end
  if alive[n] == 1 then out[#out + 1] = all[i]; out[#out + 1] = n end
end
return out
"""

_NODES = """
local out = {}
for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. n) == 1 then out[#out + 1] = n end
end
return out
"""

# Remove every record of node ARGV[2]; unless ARGV[3] == "force", only if it is dead.
_FORGET = """
local p, n = ARGV[1], ARGV[2]
if ARGV[3] ~= 'force' and redis.call('EXISTS', p .. ':node:' .. n) == 1 then return 0 end
for _, c in ipairs(redis.call('SMEMBERS', p .. ':nc:' .. n)) do
  if redis.call('HGET', p .. ':conns', c) == n then redis.call('HDEL', p .. ':conns', c) end
end
for _, g in ipairs(redis.call('SMEMBERS', p .. ':ng:' .. n)) do
  local key = p .. ':g:' .. g
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    if all[i + 1] == n then redis.call('HDEL', key, all[i]) end
  end
end
redis.call('DEL', p .. ':nc:' .. n, p .. ':ng:' .. n)
if ARGV[3] ~= 'force' then redis.call('SREM', p .. ':nodes', n) end
return 1
"""


class RedisBackplane:
    """A :class:`~wyre.backplane.Backplane` on Redis (pub/sub and a few keys).

    ::

        server = wyre.Server(backplane=wyre.RedisBackplane("redis://10.0.0.5:6379/0"))

    Args:
        url: the Redis server (``redis://``, ``rediss://`` or ``unix://``).
        prefix: of every key and channel; clusters sharing a Redis differ by it.
        heartbeat: seconds between a node's heartbeats (its liveness, its
            subscription check, the reaping of dead nodes).
        node_ttl: seconds after its last heartbeat that a node counts as dead;
            at least twice ``heartbeat``.
        max_envelope_size: largest envelope (a message with its routing) it
            carries; a larger message fails with :class:`~wyre.LimitExceeded`.
            Keep it well below Redis' ``client-output-buffer-limit pubsub``.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "wyre",
        heartbeat: float = 1.0,
        node_ttl: float = 5.0,
        max_envelope_size: int = 1 << 20,
    ) -> None:
        if not isinstance(prefix, str) or not prefix or " " in prefix:
            raise ValueError("prefix must be a non-empty string without spaces")
        if not heartbeat > 0:
            raise ValueError("heartbeat must be a positive number of seconds")
        if not node_ttl >= 2 * heartbeat:
            raise ValueError("node_ttl must be at least twice the heartbeat")
        if max_envelope_size < 1024:
            raise ValueError("max_envelope_size must be at least 1024 bytes")
        self.url = url
        self.prefix = prefix
        self.heartbeat = heartbeat
        self.node_ttl = node_ttl
        self.max_envelope_size = max_envelope_size
        self._hub: Hub | None = None
        self._redis: Any = None
        self._pubsub: Any = None
        self._scripts: dict[str, Any] = {}
        self._available = False
        self._stopping = False
        self._reader: asyncio.Task[None] | None = None
        self._beater: asyncio.Task[None] | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._ops: list[tuple[tuple[Any, ...], asyncio.Future[None] | None]] = []
        self._sender: asyncio.Task[None] | None = None
        self._outbox: list[tuple[str, bytes, asyncio.Future[int]]] = []
        self._ping_sent: str | None = None
        self._ping_heard: str | None = None
        self._lost_at = 0.0
        self._outages: tuple[type[BaseException], ...] = (OSError, TimeoutError)

    def __repr__(self) -> str:
        return f"RedisBackplane({self.url!r}, prefix={self.prefix!r})"

    # -- the Backplane ---------------------------------------------------------------

    @property
    def available(self) -> bool:
        return self._available

    async def start(self, hub: Hub) -> None:
        self._hub = hub
        self._stopping = False
        try:
            await self._connect()
        except Exception as exc:
            await self._disconnect()
            raise BackplaneError(f"cannot reach the backplane at {self.url}: {exc}") from exc
        await self._announce_all()
        self._beater = asyncio.get_running_loop().create_task(self._beat_forever())

    async def stop(self) -> None:
        self._stopping = True
        for task in (self._beater, self._reconnecting, self._reader):
            if task is not None:
                task.cancel()
        self._beater = self._reconnecting = self._reader = None
        if self._available and self._hub is not None:
            node = self._hub.node_id
            try:
                async with asyncio.timeout(max(1.0, self.heartbeat)):
                    for writing in (self._flusher, self._sender):
                        if writing is not None:
                            await writing
                    pipe = self._redis.pipeline(transaction=False)
                    await self._scripts["forget"](args=[self.prefix, node, "force"], client=pipe)
                    pipe.delete(self._key("node", node))
                    pipe.srem(f"{self.prefix}:nodes", node)
                    await pipe.execute()
            except Exception as exc:  # the others reap it after node_ttl
                log.debug("could not remove this node's records: %s", exc)
        self._fail_outbox(BackplaneError("the backplane was stopped"))
        self._available = False
        await self._disconnect()

    async def publish(self, node: str | None, data: bytes) -> int:
        """Publish in call order; returns how many subscribers received it."""
        channel = f"{self.prefix}:all" if node is None else self._key("ch", node)
        self._checked()
        sent: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._outbox.append((channel, data, sent))
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send())
        return await sent

    async def locate(self, connection_id: str) -> str | None:
        found = await self._call(
            self._scripts["locate"](
                keys=[f"{self.prefix}:conns"], args=[connection_id, f"{self.prefix}:node:"]
            )
        )
        return None if found is None else _text(found)

    async def presence(self, group: str | None) -> dict[str, str]:
        key = f"{self.prefix}:conns" if group is None else self._key("g", group)
        flat = await self._call(
            self._scripts["presence"](keys=[key], args=[f"{self.prefix}:node:"])
        )
        return {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}

    async def nodes(self) -> list[str]:
        found = await self._call(
            self._scripts["nodes"](keys=[f"{self.prefix}:nodes"], args=[f"{self.prefix}:node:"])
        )
        return sorted(_text(n) for n in found)

    def opened(self, connection_id: str) -> None:
        self._queue(("open", connection_id))

    def closed(self, connection_id: str, groups: Iterable[str]) -> None:
        self._queue(("close", connection_id, tuple(groups)))

    async def joined(self, group: str, connection_id: str) -> None:
        await self._queued(("join", group, connection_id))

    async def left(self, group: str, connection_id: str) -> None:
        await self._queued(("leave", group, connection_id))

    # -- connecting -------------------------------------------------------------------

    async def _connect(self) -> None:
        try:
            from redis import exceptions
            from redis.asyncio import BlockingConnectionPool, Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
        except ImportError as exc:
            raise ImportError(
                "the Redis backplane needs redis-py: pip install 'pywyre[redis]'", name="redis"
            ) from exc
        assert self._hub is not None
        self._outages = (OSError, TimeoutError, exceptions.ConnectionError, exceptions.TimeoutError)
        limit = max(1.0, 2 * self.heartbeat)  # every command is bounded, so an outage shows
        # A bounded pool that makes a burst of commands wait for a connection (bounded
        # too), where the default pool would fail it: that is no outage.
        pool = BlockingConnectionPool.from_url(
            self.url,
            max_connections=MAX_CONNECTIONS,
            timeout=limit,
            socket_timeout=limit,
            socket_connect_timeout=limit,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._redis = Redis.from_pool(pool)
        async with asyncio.timeout(limit * 2):
            await self._redis.ping()
            self._scripts = {
                "locate": self._redis.register_script(_LOCATE),
                "presence": self._redis.register_script(_PRESENCE),
                "nodes": self._redis.register_script(_NODES),
                "forget": self._redis.register_script(_FORGET),
            }
            self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            node = self._hub.node_id
            await self._pubsub.subscribe(self._key("ch", node), f"{self.prefix}:all")
        self._ping_sent = self._ping_heard = None
        self._available = True
        self._reader = asyncio.get_running_loop().create_task(self._read(self._pubsub))

    async def _disconnect(self) -> None:
        pubsub, client = self._pubsub, self._redis
        self._pubsub = self._redis = None
        for closing in (pubsub, client):
            if closing is None:
                continue
            try:
                async with asyncio.timeout(1.0):
                    await closing.aclose()
            except Exception as exc:
                log.debug("closing a Redis connection failed: %s", exc)

    def _lost(self, exc: BaseException) -> None:
        """Redis is unreachable: fail what is in flight, and reconnect in the background."""
        if not self._available or self._stopping:
            return
        self._available = False
        loop = asyncio.get_running_loop()
        self._lost_at = loop.time()
        log.warning("backplane %s lost (%s); reconnecting", self.url, exc or type(exc).__name__)
        error = BackplaneError(f"the backplane at {self.url} is unreachable: {exc}")
        for op in self._ops:
            if op[1] is not None and not op[1].done():
                op[1].set_result(None)  # re-announced when it is back
        self._ops.clear()
        self._fail_outbox(error)
        current = asyncio.current_task()
        for task in (self._reader, self._beater, self._flusher, self._sender):
            if task is not None and task is not current:
                task.cancel()
        self._reader = self._beater = self._flusher = self._sender = None
        if self._hub is not None:
            self._hub.backplane_lost(error)
        self._reconnecting = loop.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        await self._disconnect()
        attempt = 0
        cap = max(2 * self.heartbeat, 0.2)
        while not self._stopping:
            # Full jitter: nodes that lost Redis together do not come back in step.
            await asyncio.sleep(random.uniform(0, min(cap, 0.05 * 2**attempt)))
            attempt += 1
            try:
                await self._connect()
                await self._announce_all()
            except Exception as exc:
                self._available = False
                if self._reader is not None:
                    self._reader.cancel()
                    self._reader = None
                await self._disconnect()
                log.debug("backplane reconnection %d failed: %s", attempt, exc)
                continue
            if not self._available or self._reconnecting is not asyncio.current_task():
                return  # lost again while announcing: a newer reconnection took over
            down = asyncio.get_running_loop().time() - self._lost_at
            log.warning("backplane %s is back after %.1f s", self.url, down)
            self._reconnecting = None
            self._beater = asyncio.get_running_loop().create_task(self._beat_forever())
            if self._hub is not None:
                self._hub.backplane_back()
            return

    # -- reading and the heartbeat ------------------------------------------------------

    async def _read(self, pubsub: Any) -> None:
        ping = MAGIC + b" " + Kind.PING.value.encode() + b" "
        try:
            while True:
                message = await pubsub.get_message(timeout=self.heartbeat)
                if message is None or message.get("type") != "message":
                    continue
                data = message["data"]
                if data.startswith(ping):
                    self._ping_heard = data.split(b" ", 5)[4].split(b"\n", 1)[0].decode()
                    continue
                assert self._hub is not None
                self._hub.receive(data)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._lost(exc)

    async def _beat_forever(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.heartbeat)
                await self._beat()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._lost(exc)

    async def _beat(self) -> None:
        hub = self._hub
        assert hub is not None
        if self._ping_sent is not None and self._ping_heard != self._ping_sent:
            raise BackplaneError("this node's subscription stopped hearing its own pings")
        node, prefix = hub.node_id, self.prefix
        nonce = f"{random.getrandbits(64):x}"
        ping = encode(Envelope(Kind.PING, node, "-", nonce), self.max_envelope_size)
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(self._key("node", node), "1", px=int(self.node_ttl * 1000), get=True)
        pipe.sadd(f"{prefix}:nodes", node)
        pipe.publish(self._key("ch", node), ping)
        pipe.smembers(f"{prefix}:nodes")
        was, _, _, members = await pipe.execute()
        self._ping_sent = nonce
        if was is None:  # Redis restarted empty, or others reaped this node: say it all again
            log.info("backplane: this node's records were gone; announcing them again")
            self._queue(("all",))
        others = [_text(m) for m in members if _text(m) != node]
        if others:
            pipe = self._redis.pipeline(transaction=False)
            for other in others:
                pipe.exists(self._key("node", other))
            alive = await pipe.execute()
            dead = {n for n, up in zip(others, alive, strict=True) if not up}
        else:
            dead = set()
        dead |= {n for n in hub.waiting_on() if n != node and n not in others}
        for gone in dead:
            await self._scripts["forget"](args=[prefix, gone, "reap"])
        if dead:
            log.info("backplane: node(s) %s gone", ", ".join(sorted(dead)))
            hub.nodes_lost(dead)

    # -- announcements ------------------------------------------------------------------

    async def _announce_all(self) -> None:
        await self._queued(("all",))

    def _queue(self, op: tuple[Any, ...], done: asyncio.Future[None] | None = None) -> None:
        if not self._available:
            if done is not None:
                done.set_result(None)  # the state is re-announced when Redis is back
            return
        self._ops.append((op, done))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _queued(self, op: tuple[Any, ...]) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue(op, done)
        await done

    async def _flush(self) -> None:
        """Write queued announcements in order, each burst in one round trip."""
        try:
            await asyncio.sleep(0)  # let a burst (many joins at once) gather
            while self._ops:
                ops, self._ops = self._ops, []
                pipe = self._redis.pipeline(transaction=False)
                for op, _ in ops:
                    await self._apply(pipe, op)
                try:
                    await pipe.execute()
                finally:
                    for _, done in ops:
                        if done is not None and not done.done():
                            done.set_result(None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._flusher = None
            self._lost(exc)
            return
        self._flusher = None

    async def _send(self) -> None:
        """Publish the outbox in order: what queued meanwhile goes in one pipeline."""
        batch: list[tuple[str, bytes, asyncio.Future[int]]] = []
        try:
            while self._outbox:
                batch, self._outbox = self._outbox[:MAX_BATCH], self._outbox[MAX_BATCH:]
                pipe = self._redis.pipeline(transaction=False)
                for channel, data, _ in batch:
                    pipe.publish(channel, data)
                try:
                    counts = await pipe.execute()
                except self._outages as exc:
                    self._sender = None
                    self._fail(batch, BackplaneError(f"the backplane is unreachable: {exc}"))
                    self._lost(exc)
                    return
                except Exception as exc:  # not an outage: these envelopes fail, not the link
                    self._fail(batch, BackplaneError(f"publishing failed: {exc}"))
                    continue
                for (_, _, sent), count in zip(batch, counts, strict=True):
                    if not sent.done():
                        sent.set_result(int(count))
                batch = []
        except asyncio.CancelledError:
            self._fail(batch, BackplaneError("the backplane connection was closed"))
            raise
        self._sender = None

    def _fail_outbox(self, error: BackplaneError) -> None:
        outbox, self._outbox = self._outbox, []
        self._fail(outbox, error)

    @staticmethod
    def _fail(batch: list[tuple[str, bytes, asyncio.Future[int]]], error: BaseException) -> None:
        for _, _, sent in batch:
            if not sent.done():
                sent.set_exception(error)

    async def _apply(self, pipe: Any, op: tuple[Any, ...]) -> None:
        """Add the commands of one announcement to ``pipe`` (awaited: scripts load first)."""
        hub = self._hub
        assert hub is not None
        node, prefix = hub.node_id, self.prefix
        kind = op[0]
        if kind == "open":
            pipe.hset(f"{prefix}:conns", op[1], node)
            pipe.sadd(self._key("nc", node), op[1])
        elif kind == "close":
            pipe.hdel(f"{prefix}:conns", op[1])
            pipe.srem(self._key("nc", node), op[1])
            for group in op[2]:
                pipe.hdel(self._key("g", group), op[1])
                if not hub.has_members(group):  # else {p}:ng:{id} would only ever grow
                    pipe.srem(self._key("ng", node), group)
        elif kind == "join":
            pipe.hset(self._key("g", op[1]), op[2], node)
            pipe.sadd(self._key("ng", node), op[1])
        elif kind == "leave":
            pipe.hdel(self._key("g", op[1]), op[2])
            if not hub.has_members(op[1]):
                pipe.srem(self._key("ng", node), op[1])
        else:  # "all": replace every record of this node with its present state
            connections, memberships = hub.snapshot()
            pipe.set(self._key("node", node), "1", px=int(self.node_ttl * 1000))
            pipe.sadd(f"{prefix}:nodes", node)
            await self._scripts["forget"](args=[prefix, node, "force"], client=pipe)
            if connections:
                pipe.hset(f"{prefix}:conns", mapping=dict.fromkeys(connections, node))
                pipe.sadd(self._key("nc", node), *connections)
            groups: dict[str, list[str]] = {}
            for group, connection_id in memberships:
                groups.setdefault(group, []).append(connection_id)
            for group, members in groups.items():
                pipe.hset(self._key("g", group), mapping=dict.fromkeys(members, node))
            if groups:
                pipe.sadd(self._key("ng", node), *groups)

    # -- inside -------------------------------------------------------------------------

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}:{kind}:{name}"

    def _checked(self) -> Any:
        if not self._available or self._redis is None:
            raise BackplaneError(f"the backplane at {self.url} is unreachable")
        return self._redis

    async def _call(self, awaitable: Any) -> Any:
        """Await one Redis command; an outage becomes BackplaneError (and a reconnection)."""
        if not self._available:
            if hasattr(awaitable, "close"):
                awaitable.close()
            raise BackplaneError(f"the backplane at {self.url} is unreachable")
        try:
            return await awaitable
        except self._outages as exc:
            self._lost(exc)
            raise BackplaneError(f"the backplane at {self.url} is unreachable: {exc}") from exc


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
