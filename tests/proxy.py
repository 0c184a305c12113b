"""Peers that misbehave, for the fault tests.

* :class:`Proxy`: a TCP relay between a wyre client and server that a test can
  cut without a closing handshake (a dead network) or black-hole (packets lost).
* :class:`RawPeer`, :func:`raw_client`, :func:`raw_server`: WebSocket peers made
  with the ``websockets`` library alone, which speak JSON frames by hand.
* :func:`stalled_client`: a raw peer that stops reading after the handshake.
* helpers shared by those tests: pairs with options in both directions,
  requests left pending both ways, waiting for them to fail, and
  :class:`Gated`, a handler that blocks until released.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

import wyre

from .conftest import Link, close_pair, eventually, open_pair, seconds

V2 = Subprotocol("wyre.v2")
DIRECTIONS = ["client->server", "server->client"]

# -- a TCP relay ----------------------------------------------------------------


class Proxy:
    """Relays TCP connections from ``url`` to a server on ``target_port``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.url = ""
        self.forwarding = True
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._relays: set[asyncio.Task[Any]] = set()

    async def start(self) -> Proxy:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    def blackhole(self) -> None:
        """From now on, drop every byte in both directions (the sockets stay open)."""
        self.forwarding = False

    def kill(self) -> None:
        """Drop every relayed socket at once: no closing handshake, no FIN."""
        for writer in self._writers:
            writer.transport.abort()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        self.kill()
        await asyncio.gather(*self._relays, return_exceptions=True)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        self._writers.append(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.append(up_writer)
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if self.forwarding:
                    writer.write(data)
                    await writer.drain()
        writer.close()


@dataclass
class Relayed:
    """A server and a client connected through a :class:`Proxy`."""

    server: wyre.Server
    client: wyre.Client
    conn: wyre.Connection
    """The client's connection."""
    peer: wyre.Connection
    """The server's connection."""
    proxy: Proxy


@asynccontextmanager
async def proxied(transport: str, **options: Any) -> AsyncIterator[Relayed]:
    """A server and a client (both with ``options``) connected through a :class:`Proxy`."""
    server = wyre.Server(transport=transport, **options)
    client = wyre.Client(transport=transport, **options)
    await server.listen(port=0, host="127.0.0.1")
    proxy = await Proxy(server.port or 0).start()
    try:
        conn = await client.connect(proxy.url)
        (peer,) = await eventually(lambda: list(server.connections.values()))
        yield Relayed(server, client, conn, peer, proxy)
    finally:
        proxy.kill()
        await close_pair(server, client)
        await proxy.close()


# -- pairs and pending requests -------------------------------------------------


@asynccontextmanager
async def linked(
    transport: str, direction: str, client_options: dict[str, Any] | None = None, **options: Any
) -> AsyncIterator[Link]:
    """Like the ``link`` fixture, with ``options`` for both endpoints (and the client's own)."""
    server, client, client_conn, server_conn = await open_pair(
        transport, options, {**options, **(client_options or {})}
    )
    try:
        if direction == "client->server":
            yield Link(client, server, client_conn, server_conn, server, client, direction)
        else:
            yield Link(server, client, server_conn, client_conn, server, client, direction)
    finally:
        await close_pair(server, client)


def numbered(ctx: wyre.Context) -> dict[str, Any]:
    """The reply :class:`Gated` sends by default: the request's ``n``, and ``finished``."""
    return {"n": ctx.message.get("n"), "finished": True}


class Gated:
    """A coroutine handler held at a gate until released; it counts and records its calls.

    It registers itself on ``endpoint`` for ``event`` ("request" or "message"),
    and only for ``type`` if one is given. Each call:

    1. appends its context to ``contexts``, sets ``started`` and counts itself
       in ``running`` (``peak`` is the most that ran at once);
    2. awaits ``before(ctx)``, if given (to send partials first, say);
    3. waits until the ``gate`` opens (:meth:`release`);
    4. counts itself in ``finished`` and returns ``reply(ctx)`` (by default
       :func:`numbered`; a message handler's return value is dropped).

    Cancelled before it finished, a call appends its context to
    ``cancelled_contexts``, sets ``cancelled`` and stops; unless ``stubborn``:
    then it ignores the cancellation and tries every way to answer anyway (a
    partial, a reply, a return value), none of which may reach the peer.
    """

    def __init__(
        self,
        endpoint: wyre.Server | wyre.Client,
        event: str = "request",
        type: str | int | None = None,
        *,
        reply: Callable[[wyre.Context], Any] = numbered,
        before: Callable[[wyre.Context], Awaitable[Any]] | None = None,
        stubborn: bool = False,
    ) -> None:
        self.running = self.peak = self.finished = 0
        self.gate = asyncio.Event()
        self.started, self.cancelled = asyncio.Event(), asyncio.Event()
        self.contexts: list[wyre.Context] = []
        self.cancelled_contexts: list[wyre.Context] = []
        self._reply, self._before, self._stubborn = reply, before, stubborn
        if type is None:
            endpoint.on(event, self)
        else:
            endpoint.on(event, type, self)

    def release(self) -> None:
        """Open the gate: every call waiting, and every later one, goes on."""
        self.gate.set()

    async def __call__(self, ctx: wyre.Context) -> Any:
        self.contexts.append(ctx)
        self.started.set()
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            if self._before is not None:
                await self._before(ctx)
            await self.gate.wait()
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            self.cancelled_contexts.append(ctx)
            self.cancelled.set()
            if not self._stubborn:
                raise
            return await self._answer_anyway(ctx)
        finally:
            self.running -= 1
        self.finished += 1
        return self._reply(ctx)

    @staticmethod
    async def _answer_anyway(ctx: wyre.Context) -> Any:
        await ctx.partial({"late": "partial"})
        await ctx.reply({"late": "reply"})
        return {"late": "return"}

    async def stays_at(self, limit: int, link: Link) -> None:
        """Wait until ``limit`` handlers run, check that no more start, then open the gate.

        ``link.conn`` is the connection that sent the work: a :func:`barrier`
        proves that everything it sent was read before the count is checked.
        """
        try:
            await eventually(lambda: self.running >= limit)
            await barrier(link)
            assert self.running == limit
        finally:
            self.gate.set()


PROBE = "wyre-test-probe"


async def barrier(link: Link) -> None:
    """Return once ``link.peer`` has read and dispatched every frame ``link.conn`` sent so far.

    Frames are handled in the order they arrive, so the reply to a probe
    request sent now (answered by a plain handler, which never waits for a
    slot) comes back only after everything before it was dispatched. This
    replaces "sleep a while, then check nothing happened".
    """
    link.handler.on("request", PROBE, lambda ctx: {})
    await asyncio.wait_for(link.conn.request({"type": PROBE}), seconds(10))


def hold_requests(endpoint: wyre.Server | wyre.Client) -> list[wyre.Context]:
    """Make ``endpoint`` keep every request it gets unanswered; returns their contexts."""
    held: list[wyre.Context] = []
    endpoint.on("request", held.append)
    return held


def in_flight(awaitable: Any) -> asyncio.Future[Any]:
    """Run ``awaitable`` as a future whose failure is never reported as unretrieved.

    The test checks the outcome; should it fail first, an unretrieved error
    logged during garbage collection must not add noise to its report.
    """
    future = asyncio.ensure_future(awaitable)
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return future


async def pending_both_ways(
    conn: wyre.Connection, peer: wyre.Connection, count: int = 3
) -> list[asyncio.Future[Any]]:
    """Leave ``count`` requests pending in each direction between ``conn`` and ``peer``.

    Both endpoints must hold their requests (:func:`hold_requests`); returns
    once every request reached its handler.
    """
    held = [hold_requests(conn.endpoint), hold_requests(peer.endpoint)]  # type: ignore[arg-type]
    requests = [in_flight(c.request({"n": n})) for c in (conn, peer) for n in range(count)]
    await eventually(lambda: all(len(h) == count for h in held))
    return requests


async def all_closed(requests: list[asyncio.Future[Any]], timeout: float = 5) -> list[Any]:
    """Wait (at most ``timeout`` scaled seconds) until each request failed; return the errors."""
    async with asyncio.timeout(seconds(timeout)):
        errors = await asyncio.gather(*requests, return_exceptions=True)
    assert all(isinstance(e, wyre.ConnectionClosed) for e in errors), errors
    return errors


def record(endpoint: wyre.Server | wyre.Client, event: str) -> list[Any]:
    """Record the arguments of every ``event`` of ``endpoint`` (one value, or a tuple)."""
    log: list[Any] = []
    endpoint.on(event, lambda *args: log.append(args[0] if len(args) == 1 else args))
    return log


# -- raw WebSocket peers -----------------------------------------------------------


Prepare = Callable[[Any], None]


@asynccontextmanager
async def serving(
    transport: str, prepare: Prepare | None = None, **options: Any
) -> AsyncIterator[tuple[wyre.Server, str]]:
    """A listening wyre server and its URL, for raw peers to connect to.

    ``prepare(server)`` runs before it listens. The close timeout is short
    by default, since raw peers may not answer a closing handshake.
    """
    server = wyre.Server(transport=transport, **{"close_timeout": seconds(2), **options})
    if prepare is not None:
        prepare(server)
    await server.listen(port=0, host="127.0.0.1")
    try:
        yield server, f"ws://127.0.0.1:{server.port}"
    finally:
        async with asyncio.timeout(seconds(15)):
            await server.close(grace=1)


def decode(data: str | bytes) -> Any:
    """A received frame as JSON when it is, else as it came."""
    try:
        return json.loads(data)
    except ValueError:
        return data


class RawPeer:
    """One end of a WebSocket without wyre: sends what it is told, records what arrives."""

    def __init__(self, ws: ClientConnection | ServerConnection) -> None:
        self.ws = ws
        self.received: list[Any] = []

    async def send(self, frame: Any) -> None:
        """Send ``frame``: a dict as JSON text, a str or bytes as it is."""
        await self.ws.send(json.dumps(frame) if isinstance(frame, dict) else frame)

    async def read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for data in self.ws:
                self.received.append(decode(data))

    async def frame(self, **fields: Any) -> dict[str, Any]:
        """Wait for a received JSON object that has all of ``fields``."""
        return await eventually(lambda: self.find(**fields))  # type: ignore[no-any-return]

    def find(self, **fields: Any) -> dict[str, Any] | None:
        for frame in self.received:
            if isinstance(frame, dict) and fields.items() <= frame.items():
                return frame
        return None

    def directions(self) -> set[Any]:
        return {f.get("direction") for f in self.received if isinstance(f, dict)}


@asynccontextmanager
async def raw_client(url: str, *, v2: bool = True, **kwargs: Any) -> AsyncIterator[RawPeer]:
    """Connect a :class:`RawPeer`, offering ``wyre.v2`` or no subprotocol at all."""
    async with connect(
        url, subprotocols=[V2] if v2 else None, ping_interval=None, proxy=None, **kwargs
    ) as ws:
        peer = RawPeer(ws)
        reading = asyncio.create_task(peer.read())
        try:
            yield peer
        finally:
            await ws.close()
            await reading


class RawServer:
    """A WebSocket server without wyre; each accepted socket becomes a :class:`RawPeer`."""

    def __init__(self) -> None:
        self.url = ""
        self.peers: list[RawPeer] = []

    async def accepted(self) -> RawPeer:
        peers = await eventually(lambda: self.peers)
        return peers[0]  # type: ignore[no-any-return]

    async def handle(self, ws: ServerConnection) -> None:
        peer = RawPeer(ws)
        self.peers.append(peer)
        await peer.read()


@asynccontextmanager
async def raw_server(*, v2: bool = True) -> AsyncIterator[RawServer]:
    """Serve a :class:`RawServer` on loopback, selecting ``wyre.v2`` or nothing."""
    raw = RawServer()
    async with serve(
        raw.handle, "127.0.0.1", 0, subprotocols=[V2] if v2 else None, ping_interval=None
    ) as ws_server:
        raw.url = f"ws://127.0.0.1:{ws_server.sockets[0].getsockname()[1]}"
        yield raw


@asynccontextmanager
async def stalled_client(url: str, receive_buffer: int = 4096) -> AsyncIterator[ClientConnection]:
    """A raw ``wyre.v2`` client that reads nothing after the handshake.

    Its socket has a small receive buffer, so the server's writes pile up in
    the server's own buffers soon.
    """
    host, port = url.removeprefix("ws://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    async with connect(
        url, sock=sock, subprotocols=[V2], ping_interval=None, close_timeout=1, proxy=None
    ) as ws:
        ws.transport.pause_reading()
        try:
            yield ws
        finally:
            ws.transport.abort()


@asynccontextmanager
async def against_raw(
    transport: str,
    side: str,
    *,
    v2: bool = True,
    prepare: Prepare | None = None,
    **options: Any,
) -> AsyncIterator[tuple[wyre.Connection, RawPeer]]:
    """A wyre ``side`` ("server" or "client") connected to a :class:`RawPeer`.

    Yields the wyre connection and the raw peer; ``v2`` says whether the raw
    peer offers (or selects) ``wyre.v2``; ``prepare(endpoint)`` runs before
    the connection opens.
    """
    if side == "server":
        async with (
            serving(transport, prepare, **options) as (server, url),
            raw_client(url, v2=v2) as raw,
        ):
            (conn,) = await eventually(lambda: list(server.connections.values()))
            yield conn, raw
        return
    client = wyre.Client(transport=transport, **options)
    if prepare is not None:
        prepare(client)
    async with raw_server(v2=v2) as raw_end:
        try:
            conn = await client.connect(raw_end.url)
            yield conn, await raw_end.accepted()
        finally:
            await client.close()
