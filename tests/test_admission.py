"""Who may connect: authenticate, origins, connection limits and bad handshakes.

Every case runs on each transport, with a real client (or a raw socket for
requests no client would send), and checks that the refused client gets a
clear HTTP status, that the operator hears of it where the docs say so, and
that the connections already open go on.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

import wyre

from .conftest import eventually, seconds
from .proxy import record

SOCKET_TRANSPORTS = ["websockets", "picows"]


@asynccontextmanager
async def server_with(transport: str, **options: Any) -> AsyncIterator[tuple[wyre.Server, str]]:
    """A listening server with an ``echo`` request handler, and its URL."""
    server = wyre.Server(transport=transport, **{"close_timeout": seconds(2), **options})
    server.on("request", "echo", lambda ctx: ctx.message)
    await server.listen(port=0, host="127.0.0.1")
    try:
        yield server, f"ws://127.0.0.1:{server.port}"
    finally:
        async with asyncio.timeout(seconds(15)):
            await server.close(grace=1)


@asynccontextmanager
async def client_of(transport: str) -> AsyncIterator[wyre.Client]:
    client = wyre.Client(transport=transport, open_timeout=seconds(5))
    try:
        yield client
    finally:
        await client.close()


@asynccontextmanager
async def served(
    transport: str, **options: Any
) -> AsyncIterator[tuple[wyre.Server, str, wyre.Client]]:
    """:func:`server_with` and a client for it."""
    async with server_with(transport, **options) as (server, url), client_of(transport) as client:
        yield server, url, client


async def still_serves(conn: wyre.Connection) -> None:
    """The connection that was open before goes on answering."""
    reply = await asyncio.wait_for(conn.request({"type": "echo", "n": 7}), seconds(5))
    assert reply.message["n"] == 7


def request_bytes(port: int, *, path: str = "/", extra: list[str] | None = None) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
        "Sec-WebSocket-Version: 13",
        *(extra or []),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def raw_status(port: int, data: bytes) -> tuple[int | None, bytes]:
    """Send ``data`` on a new TCP connection; the HTTP status answered (None if none) and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        async with asyncio.timeout(seconds(5)):
            answer = await reader.read()  # the server answers and closes
    finally:
        writer.close()
    if not answer.startswith(b"HTTP/1.1 "):
        return None, answer
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


# -- authenticate --------------------------------------------------------------------------


async def test_the_hook_sees_the_handshake_and_its_identity_reaches_handlers(
    transport: str,
) -> None:
    seen: list[wyre.Handshake] = []

    def authenticate(handshake: wyre.Handshake) -> dict[str, str]:
        seen.append(handshake)
        return {"user": handshake.cookies["session"]}

    async with server_with(transport, authenticate=authenticate) as (server, url):
        server.on("request", "whoami", lambda ctx: {"identity": ctx.connection.identity})
        async with client_of(transport) as client:
            conn = await client.connect(
                f"{url}/chat?room=a&tag=x&tag=y",
                headers=[("Authorization", "Bearer t0ken"), ("Cookie", "session=ada; theme=dark")],
            )
            reply = await asyncio.wait_for(conn.request({"type": "whoami"}), seconds(5))
            assert reply.message["identity"] == {"user": "ada"}
            assert conn.handshake is None and conn.identity is None  # a client's side
            peer = await eventually(lambda: list(server.connections.values()))
    (handshake,) = seen
    assert handshake.path == "/chat"
    assert handshake.query["room"] == "a"
    assert handshake.query.getall("tag") == ["x", "y"]
    assert handshake.headers["authorization"] == "Bearer t0ken"
    assert handshake.headers["AUTHORIZATION"] == "Bearer t0ken"
    assert handshake.cookies == {"session": "ada", "theme": "dark"}
    assert handshake.remote_address is not None and handshake.remote_address[0] == "127.0.0.1"
    assert handshake.subprotocols[-1] == "wyre.v2"
    assert peer[0].handshake is handshake and peer[0].identity == {"user": "ada"}


async def test_a_coroutine_hook_is_awaited(transport: str) -> None:
    async def authenticate(handshake: wyre.Handshake) -> str:
        await asyncio.sleep(0.01)
        return handshake.query["user"]

    async with served(transport, authenticate=authenticate) as (server, url, client):
        await client.connect(f"{url}/?user=grace")
        peer = await eventually(lambda: list(server.connections.values()))
        assert peer[0].identity == "grace"


async def test_reject_sends_its_status_and_reason_and_opens_nothing(transport: str) -> None:
    def authenticate(handshake: wyre.Handshake) -> None:
        if handshake.headers.get("authorization") != "Bearer good":
            raise wyre.Reject(401, "who are you?")

    async with server_with(transport, authenticate=authenticate) as (server, url):
        errors, opened = record(server, "error"), record(server, "connection")
        async with client_of(transport) as client:
            good = await client.connect(url, headers={"Authorization": "Bearer good"})
            with pytest.raises(wyre.ConnectError) as refused:
                await client.connect(url, headers={"Authorization": "Bearer bad"})
            assert refused.value.status == 401
            assert refused.value.reason == "who are you?"
            assert "401" in str(refused.value)
            await still_serves(good)
        assert len(opened) == 1
        assert errors == []  # the application's own decision: not an error


async def test_a_hook_that_raises_gets_500_and_the_error_event(transport: str) -> None:
    calls = 0

    def authenticate(handshake: wyre.Handshake) -> str:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("user database unreachable")
        return "someone"

    async with server_with(transport, authenticate=authenticate) as (server, url):
        errors = record(server, "error")
        async with client_of(transport) as client:
            first = await client.connect(url)
            with pytest.raises(wyre.ConnectError) as refused:
                await client.connect(url)
            assert refused.value.status == 500
            assert "database" not in refused.value.reason  # internals stay on the server
            await client.connect(url)  # the server goes on
            await still_serves(first)
        (error,) = await eventually(lambda: errors)
        assert isinstance(error, wyre.HandshakeRefused) and error.status == 500
        assert isinstance(error.__cause__, RuntimeError)


async def test_a_hook_that_hangs_is_cut_at_open_timeout_with_503(transport: str) -> None:
    release = asyncio.Event()

    async def authenticate(handshake: wyre.Handshake) -> None:
        if handshake.query.get("hang"):
            await release.wait()

    options = {"authenticate": authenticate, "open_timeout": seconds(0.5)}
    async with server_with(transport, **options) as (server, url):
        errors = record(server, "error")
        async with client_of(transport) as client:
            first = await client.connect(url)
            hanging = asyncio.ensure_future(client.connect(f"{url}/?hang=1"))
            await asyncio.sleep(seconds(0.1))
            await still_serves(first)  # the others are served meanwhile
            with pytest.raises(wyre.ConnectError) as refused:
                await asyncio.wait_for(hanging, seconds(5))
            assert refused.value.status == 503
        (error,) = await eventually(lambda: errors)
        assert isinstance(error, wyre.HandshakeRefused) and "longer than" in error.reason
        release.set()


async def test_a_handshake_waiting_for_the_hook_gets_503_when_the_server_closes(
    transport: str,
) -> None:
    entered = asyncio.Event()

    async def authenticate(handshake: wyre.Handshake) -> None:
        entered.set()
        await asyncio.sleep(3600)

    server = wyre.Server(transport=transport, authenticate=authenticate)
    await server.listen(port=0, host="127.0.0.1")
    async with client_of(transport) as client:
        connecting = asyncio.ensure_future(client.connect(f"ws://127.0.0.1:{server.port}"))
        await asyncio.wait_for(entered.wait(), seconds(5))
        await asyncio.wait_for(server.close(), seconds(10))
        with pytest.raises(wyre.ConnectError) as refused:
            await asyncio.wait_for(connecting, seconds(5))
        assert refused.value.status == 503


async def test_a_client_leaving_while_the_hook_runs_frees_its_place(transport: str) -> None:
    """Its admission is cancelled (the gate contract), so the limit counts it no more."""
    release = asyncio.Event()

    async def authenticate(handshake: wyre.Handshake) -> str:
        if handshake.query.get("slow"):
            await release.wait()  # its client gives up meanwhile
        return "ok"

    options = {"authenticate": authenticate, "max_connections": 1}
    async with server_with(transport, **options) as (server, url):
        impatient = wyre.Client(transport=transport, open_timeout=seconds(0.3))
        with pytest.raises(wyre.ConnectError):
            await impatient.connect(f"{url}/?slow=1")
        await impatient.close()
        async with client_of(transport) as client:
            async with asyncio.timeout(seconds(2)):  # once the server has seen it leave
                while True:
                    try:
                        conn = await client.connect(url)
                        break
                    except wyre.ConnectError as exc:
                        assert exc.status == 503
                        await asyncio.sleep(0.02)
            await still_serves(conn)
            (peer,) = server.connections.values()
            assert peer.identity == "ok"
        release.set()


async def test_client_headers_with_line_breaks_are_refused_before_connecting() -> None:
    client = wyre.Client()
    with pytest.raises(ValueError, match="line break"):
        await client.connect("ws://127.0.0.1:1", headers={"X-Evil": "a\r\nHost: b"})


# -- origins ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://app.example", True),
        ("https://evil.example", False),
        ("https://app.example.evil.example", False),
        (None, True),  # None in the list: clients that send no Origin (not browsers)
    ],
)
async def test_only_listed_origins_connect(
    transport: str, origin: str | None, allowed: bool
) -> None:
    origins = ["https://app.example", None]
    async with server_with(transport, origins=origins) as (server, url):
        errors = record(server, "error")
        headers = {"Origin": origin} if origin is not None else {}
        async with client_of(transport) as client:
            if allowed:
                await still_serves(await client.connect(url, headers=headers))
                assert errors == []
                return
            with pytest.raises(wyre.ConnectError) as refused:
                await client.connect(url, headers=headers)
        assert refused.value.status == 403
        (error,) = await eventually(lambda: errors)
        assert isinstance(error, wyre.HandshakeRefused) and error.status == 403


async def test_without_none_in_origins_a_client_must_send_one(transport: str) -> None:
    async with served(transport, origins=["https://app.example"]) as (_, url, client):
        with pytest.raises(wyre.ConnectError) as refused:
            await client.connect(url)
        assert refused.value.status == 403


@pytest.mark.parametrize("transport", SOCKET_TRANSPORTS)
async def test_a_repeated_origin_header_gets_400(transport: str) -> None:
    async with server_with(transport, origins=["https://app.example"]) as (server, _):
        data = request_bytes(
            server.port, extra=["Origin: https://app.example", "Origin: https://evil.example"]
        )
        status, _ = await raw_status(server.port, data)
        assert status == 400
        assert server.connections == {}


# -- connection limits -----------------------------------------------------------------------


async def test_max_connections_refuses_with_503_until_one_closes(transport: str) -> None:
    async with server_with(transport, max_connections=2) as (server, url):
        errors = record(server, "error")
        async with client_of(transport) as client:
            first = await client.connect(url)
            await client.connect(url)
            with pytest.raises(wyre.ConnectError) as refused:
                await client.connect(url)
            assert refused.value.status == 503
            (error,) = await eventually(lambda: errors)
            assert isinstance(error, wyre.HandshakeRefused) and "too many" in error.reason
            await first.close()
            await eventually(lambda: len(server.connections) == 1)
            await still_serves(await client.connect(url))


async def test_max_connections_per_ip(transport: str) -> None:
    async with served(transport, max_connections_per_ip=1) as (_, url, client):
        await client.connect(url)
        with pytest.raises(wyre.ConnectError) as refused:
            await client.connect(url)
        assert refused.value.status == 503
        assert "127.0.0.1" in refused.value.reason


async def test_a_burst_of_handshakes_cannot_overshoot_max_connections(transport: str) -> None:
    async def authenticate(handshake: wyre.Handshake) -> None:
        await asyncio.sleep(0.05)  # all of the burst is being admitted at once

    options = {"max_connections": 3, "authenticate": authenticate}
    async with served(transport, **options) as (server, url, client):
        results = await asyncio.gather(
            *(client.connect(url) for _ in range(8)), return_exceptions=True
        )
        opened = [r for r in results if isinstance(r, wyre.Connection)]
        refused = [r for r in results if isinstance(r, wyre.ConnectError)]
        assert len(opened) == 3 and len(refused) == 5
        assert {r.status for r in refused} == {503}
        assert len(server.connections) == 3


# -- bad handshakes --------------------------------------------------------------------------


@pytest.mark.parametrize("transport", SOCKET_TRANSPORTS)
@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("garbage", {400}),
        ("no key", {400}),
        ("two keys", {400}),
        ("huge header", {400, 431}),
        ("huge request line", {400, 414}),
        ("too many headers", {400, 431}),
    ],
)
async def test_a_bad_handshake_gets_a_status_and_the_error_event(
    transport: str, case: str, expected: set[int]
) -> None:
    async with server_with(transport) as (server, url):
        errors = record(server, "error")
        async with client_of(transport) as client:
            first = await client.connect(url)
            port = server.port
            data = {
                "garbage": b"\x16\x03\x01 this is not HTTP at all\r\n\r\n",
                "no key": request_bytes(port).replace(b"Sec-WebSocket-Key", b"X-Nothing"),
                "two keys": request_bytes(
                    port, extra=["Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="]
                ),
                "huge header": request_bytes(port, extra=["X-Big: " + "a" * 20_000]),
                "huge request line": request_bytes(port, path="/" + "a" * 20_000),
                "too many headers": request_bytes(port, extra=[f"X-{i}: {i}" for i in range(300)]),
            }[case]
            status, _ = await raw_status(port, data)
            assert status in expected
            (error,) = await eventually(lambda: errors)
            assert isinstance(error, wyre.HandshakeRefused) and error.status == status
            assert error.remote_address is not None
            await still_serves(first)
            assert len(server.connections) == 1


@pytest.mark.parametrize("transport", SOCKET_TRANSPORTS)
async def test_a_plain_http_request_gets_426_without_an_error_event(transport: str) -> None:
    async with server_with(transport) as (server, _):
        errors = record(server, "error")
        data = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode()
        status, _ = await raw_status(server.port, data)
        assert status == 426
        await asyncio.sleep(0.05)
        assert errors == []  # load-balancer health checks are not errors


@pytest.mark.parametrize("transport", SOCKET_TRANSPORTS)
async def test_a_peer_that_never_completes_the_upgrade_is_dropped(transport: str) -> None:
    async with served(transport, open_timeout=seconds(0.3)) as (server, url, client):
        first = await client.connect(url)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request_bytes(server.port)[:40])  # half a request, then nothing
        try:
            async with asyncio.timeout(seconds(5)):
                assert await reader.read() == b""  # closed by the server
        finally:
            writer.close()
        await still_serves(first)
