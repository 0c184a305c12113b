"""Server.stats(), its Prometheus exposition, and log records that name their connection.

Every count is checked after known traffic over real sockets, on each
transport: the same frames must be counted sent at one end and received at
the other, and a connection's counts must outlive it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.parser import text_string_to_metric_families

import wyre
from wyre.metrics import Stats, prometheus_collector

from .conftest import close_pair, eventually, not_on_asgi, open_pair, seconds
from .proxy import Gated, hold_requests, in_flight, raw_client
from .test_admission import raw_status, request_bytes
from .test_cluster import cluster
from .test_docs import ROOT, python_blocks, run_script
from .test_driver_conformance import TEXT
from .test_driver_conformance import raw_client as raw_socket


@asynccontextmanager
async def pair_with(
    transport: str, codec: str = "json", **server_options: Any
) -> AsyncIterator[tuple[wyre.Server, wyre.Client, wyre.Connection, wyre.Connection]]:
    """(server, client, client's connection, server's connection), closed afterwards."""

    def prepare(server: wyre.Server, client: wyre.Client) -> None:
        server.on("request", "echo", lambda ctx: ctx.message)
        server.on("message", "note", lambda ctx: None)

        @server.on("request", "boom")
        @server.on("message", "boom")
        def boom(ctx: wyre.Context) -> None:
            raise ValueError("boom")

        hold_requests(server)  # every other type: kept unanswered

    server, client, conn, peer = await open_pair(
        transport, {"close_timeout": seconds(2), **server_options}, prepare=prepare, codec=codec
    )
    try:
        yield server, client, conn, peer
    finally:
        await close_pair(server, client)


def traffic(stats: Stats) -> tuple[int, int, int, int]:
    return stats.frames_received, stats.frames_sent, stats.bytes_received, stats.bytes_sent


async def test_counts_after_known_traffic(transport: str, codec: str) -> None:
    async with pair_with(transport, codec) as (server, client, conn, _):
        # A request nobody answers times out; the client tells the server (CANCEL).
        with pytest.raises(wyre.RequestTimeout):
            await conn.request({"type": "held"}, timeout=seconds(0.2))
        await eventually(lambda: server.stats().open_requests == 0)
        with pytest.raises(wyre.RequestError):
            await conn.request({"type": "boom"})
        for n in range(3):
            await conn.send({"type": "note", "n": n})
        await conn.send({"type": "boom"})
        for n in range(5):  # the last reply proves the server read everything before it
            assert (await conn.request({"type": "echo", "n": n})).message["n"] == n

        ours, theirs = client.stats(), server.stats()
        # held + its CANCEL + 2 booms + 3 notes + 5 echoes; an ERROR and 5 replies back
        assert (theirs.frames_received, theirs.frames_sent) == (12, 6)
        assert (ours.frames_sent, ours.frames_received) == (12, 6)
        assert theirs.bytes_received == ours.bytes_sent > 12
        assert theirs.bytes_sent == ours.bytes_received > 6
        assert (theirs.handler_errors, theirs.requests_timed_out, theirs.bad_frames) == (2, 0, 0)
        assert (ours.handler_errors, ours.requests_timed_out, ours.bad_frames) == (0, 1, 0)
        for stats in (ours, theirs):
            assert (stats.connections_open, stats.connections_opened) == (1, 1)
            assert stats.connections_closed == {}
            assert (stats.pending_requests, stats.open_requests) == (0, 0)
        assert theirs.handshakes_refused == {} and ours.handshakes_refused == {}

        await conn.close(4001, "done")
        await eventually(lambda: not server.connections)
        # The connection is gone; what it did still counts.
        for stats, before in ((client.stats(), ours), (server.stats(), theirs)):
            assert stats.connections_open == 0
            assert stats.connections_closed == {4001: 1} and stats.connections_closed_total == 1
            assert traffic(stats) == traffic(before)


async def test_requests_in_flight_both_ways(transport: str, codec: str) -> None:
    server, client, conn, peer = await open_pair(transport, codec=codec)
    try:
        at_server, at_client = Gated(server, type="slow"), Gated(client, type="slow")
        to_server = [in_flight(conn.request({"type": "slow", "n": n})) for n in range(3)]
        to_client = [in_flight(peer.request({"type": "slow", "n": n})) for n in range(2)]
        await eventually(lambda: at_server.running == 3 and at_client.running == 2)
        theirs, ours = server.stats(), client.stats()
        assert (theirs.open_requests, theirs.pending_requests) == (3, 2)
        assert (ours.open_requests, ours.pending_requests) == (2, 3)
        at_server.release()
        at_client.release()
        await asyncio.wait_for(asyncio.gather(*to_server, *to_client), seconds(5))
        for endpoint in (server, client):
            stats = endpoint.stats()
            assert (stats.open_requests, stats.pending_requests) == (0, 0)
    finally:
        await close_pair(server, client)


def allow_friends(handshake: wyre.Handshake) -> str:
    if handshake.headers.get("x-friend") != "yes":
        raise wyre.Reject(403, "friends only")
    return "friend"


async def test_a_request_to_another_node_that_times_out_counts(redis_url: str) -> None:
    async with cluster(redis_url) as (a, b):

        @b.client.on("request", "slow")
        async def slow(ctx: wyre.Context) -> None:
            await asyncio.sleep(3600)

        peer = a.server.peer(b.remote(0).id)
        with pytest.raises(wyre.RequestTimeout):
            await asyncio.wait_for(peer.request({"type": "slow"}, timeout=seconds(0.2)), seconds(5))
        assert a.server.stats().requests_timed_out == 1


@not_on_asgi(
    "a malformed upgrade request is answered by the ASGI server before the application is "
    "called: wyre never hears of it, so its 400 is not counted"
)
async def test_handshakes_refused_by_status_and_bad_frames(transport: str) -> None:
    server = wyre.Server(transport=transport, close_timeout=seconds(2), authenticate=allow_friends)
    server.on("request", "echo", lambda ctx: ctx.message)
    await server.listen(port=0, host="127.0.0.1")
    url = f"ws://127.0.0.1:{server.port}"
    try:
        async with wyre.Client(transport=transport) as client:
            for _ in range(2):
                with pytest.raises(wyre.ConnectError):
                    await client.connect(url)
        status, _ = await raw_status(server.port, request_bytes(server.port).replace(
            b"Sec-WebSocket-Key", b"X-Nothing"
        ))  # fmt: skip
        assert status == 400
        async with raw_client(url, additional_headers={"X-Friend": "yes"}) as raw:
            await raw.send("this is not JSON")
            await raw.send({"direction": "REPLY", "key": "never asked"})
            await raw.send({"type": "echo", "key": "k", "direction": "REQUEST"})
            await raw.frame(key="k", direction="REPLY")
            stats = server.stats()
            assert stats.bad_frames == 2
            assert (stats.frames_received, stats.frames_sent) == (3, 1)
        stats = server.stats()
        assert stats.handshakes_refused == {403: 2, 400: 1}
        assert stats.handshakes_refused_total == 3
        assert stats.connections_opened == 1
    finally:
        await server.close(grace=1)


async def test_connections_closed_by_code(transport: str) -> None:
    server = wyre.Server(transport=transport, close_timeout=seconds(2))
    await server.listen(port=0, host="127.0.0.1")
    url = f"ws://127.0.0.1:{server.port}"
    try:
        async with wyre.Client(transport=transport) as client:
            conns = [await client.connect(url) for _ in range(4)]
            await eventually(lambda: server.stats().connections_open == 4)
            await conns[0].close()
            await conns[1].close(4000, "bye")
            await conns[2].close(4000, "bye")
            await eventually(lambda: server.stats().connections_open == 1)
            (last,) = server.connections.values()
            await last.close(4002, "server says bye")
            await eventually(lambda: not client.connections)
        for stats in (server.stats(), client.stats()):
            assert stats.connections_opened == 4
            assert stats.connections_open == 0
            assert stats.connections_closed == {1000: 1, 4000: 2, 4002: 1}
    finally:
        await server.close(grace=1)


# -- Prometheus ----------------------------------------------------------------------


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition at ``port``, by name and labels (over HTTP)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=seconds(5)) as r:
        text = r.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_prometheus_exposition_is_scraped_over_http(transport: str) -> None:
    registry = CollectorRegistry()
    async with pair_with(transport) as (server, client, conn, _):
        registry.register(prometheus_collector(server, labels={"server": "chat"}))
        httpd, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
        try:
            for n in range(4):
                await conn.request({"type": "echo", "n": n})
            other = await client.connect(f"ws://127.0.0.1:{server.port}")
            await other.close(4000)
            await eventually(lambda: server.stats().connections_open == 1)
            # Scraped from the HTTP server's thread while the loop runs on.
            samples = await asyncio.to_thread(scrape, httpd.server_port)
        finally:
            httpd.shutdown()
            httpd.server_close()
            thread.join()
    chat = (("server", "chat"),)
    assert samples["wyre_connections_open", chat] == 1
    assert samples["wyre_connections_opened_total", chat] == 2
    assert samples["wyre_connections_closed_total", (("code", "4000"), *chat)] == 1
    assert samples["wyre_frames_received_total", chat] == 4
    assert samples["wyre_frames_sent_total", chat] == 4
    assert samples["wyre_received_bytes_total", chat] > 4
    assert samples["wyre_pending_requests", chat] == 0
    assert samples["wyre_open_requests", chat] == 0
    for name in ("handler_errors", "requests_timed_out", "bad_frames"):
        assert samples[f"wyre_{name}_total", chat] == 0


async def test_prometheus_labels_refusals_by_status(transport: str) -> None:
    server = wyre.Server(transport=transport, authenticate=allow_friends)
    registry = CollectorRegistry()
    registry.register(prometheus_collector(server, prefix="chat"))
    await server.listen(port=0, host="127.0.0.1")
    try:
        async with wyre.Client(transport=transport) as client:
            with pytest.raises(wyre.ConnectError):
                await client.connect(f"ws://127.0.0.1:{server.port}")
    finally:
        await server.close(grace=1)
    text = generate_latest(registry).decode()
    assert 'chat_handshakes_refused_total{status="403"} 1.0' in text
    with pytest.raises(ValueError, match="Duplicated"):
        registry.register(prometheus_collector(server, prefix="chat"))


def test_without_prometheus_client_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pywyre\[prometheus\]"):
        prometheus_collector(wyre.Server())


# -- logs ------------------------------------------------------------------------------


@not_on_asgi(
    "invalid UTF-8 is refused (1007) by the ASGI server before wyre sees the message: "
    "the record of failing the connection is the server's, not the connection's"
)
async def test_one_connections_records_carry_its_id(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("wyre.test.one-connection")
    caplog.set_level(logging.DEBUG, logger=logger.name)
    server = wyre.Server(transport=transport, logger=logger, close_timeout=seconds(2))

    @server.on("request", "boom")
    def boom(ctx: wyre.Context) -> None:
        raise ValueError("boom")

    await server.listen(port=0, host="127.0.0.1")
    try:
        async with raw_socket(server.port) as peer:
            (conn,) = await eventually(lambda: list(server.connections.values()))
            peer.send(TEXT, b"not JSON")  # a bad frame
            peer.send_json({"type": "boom", "key": "k1", "direction": "REQUEST"})
            await eventually(lambda: peer.find(key="k1", direction="ERROR"))
            peer.send(TEXT, b"\xff\xfe")  # invalid UTF-8: the driver fails the connection
            await eventually(lambda: conn.closed)
        assert conn.close_code == 1007
    finally:
        await server.close(grace=1)
    records = [r for r in caplog.records if r.name == logger.name]
    about = [r for r in records if not r.getMessage().startswith("listening on")]
    assert about, records
    assert all(getattr(r, "connection_id", None) == conn.id for r in about), [
        (r.getMessage(), getattr(r, "connection_id", None)) for r in about
    ]
    said = [r.getMessage() for r in about]
    assert any(m.startswith("opened") for m in said), said
    assert any("RemoteProtocolError" in m or "CodecError" in m for m in said), said
    assert any(m.startswith("handler") and "raised" in m for m in said), said
    assert any("failing the connection: 1007" in m for m in said), said
    assert any(m.startswith("closed: 1007") for m in said), said


async def test_connection_log_follows_the_endpoints_level(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("wyre.test.level")
    caplog.set_level(logging.DEBUG, logger=logger.name)  # restored afterwards
    logger.setLevel(logging.WARNING)  # the endpoint's own level must win
    async with pair_with(transport, logger=logger, log_level="debug") as (_, _, _, peer):
        peer.log(logging.DEBUG, "user %s joined", "ada")
    (record,) = [r for r in caplog.records if r.getMessage() == "user ada joined"]
    assert record.connection_id == peer.id  # type: ignore[attr-defined]
    assert record.funcName == "test_connection_log_follows_the_endpoints_level"


# -- docs -------------------------------------------------------------------------------


def test_readme_metrics_example_runs() -> None:
    (block,) = [b for b in python_blocks(ROOT / "README.md") if "server.stats()" in b]
    assert run_script(block).splitlines() == [
        "connections open: 1",
        "frames in/out: 4/4",
        "handler errors: 1",
        "closed by code: {1000: 1}",
    ]
