"""TLS: ``wss://`` with certificates made for the test (trustme), on every socket transport."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trustme

import wyre

from .conftest import TRANSPORTS, need_transport, seconds

SOCKET_TRANSPORTS = [t for t in TRANSPORTS if t in ("websockets", "picows")]
PAIRS = [(s, c) for s in SOCKET_TRANSPORTS for c in SOCKET_TRANSPORTS]


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


def trusting(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    authority.configure_trust(context)
    return context


@asynccontextmanager
async def tls_server(transport: str, context: ssl.SSLContext) -> AsyncIterator[wyre.Server]:
    need_transport(transport)
    server = wyre.Server(transport=transport, open_timeout=seconds(5))
    server.on(
        "request",
        "echo",
        lambda ctx: {"n": ctx.message["n"], "path": ctx.connection.handshake.path},
    )
    await server.listen(port=0, host="127.0.0.1", ssl=context)
    try:
        yield server
    finally:
        async with asyncio.timeout(seconds(15)):
            await server.close(grace=1)


@pytest.mark.parametrize(("server_transport", "client_transport"), PAIRS)
async def test_a_valid_chain_connects_and_carries_requests(
    authority: trustme.CA,
    server_context: ssl.SSLContext,
    server_transport: str,
    client_transport: str,
) -> None:
    need_transport(client_transport)
    async with (
        tls_server(server_transport, server_context) as server,
        wyre.Client(transport=client_transport) as client,
    ):
        conn = await client.connect(
            f"wss://localhost:{server.port}/secure", ssl=trusting(authority)
        )
        assert conn.subprotocol == "wyre.v2"
        reply = await asyncio.wait_for(conn.request({"type": "echo", "n": 3}), seconds(5))
        assert reply.message["n"] == 3 and reply.message["path"] == "/secure"
        big = {"type": "echo", "n": 4, "blob": "x" * 200_000}  # many TLS records
        reply = await asyncio.wait_for(conn.request(big), seconds(5))
        assert reply.message["n"] == 4


@pytest.mark.parametrize(("server_transport", "client_transport"), PAIRS)
async def test_a_certificate_from_another_authority_is_refused(
    server_context: ssl.SSLContext, server_transport: str, client_transport: str
) -> None:
    need_transport(client_transport)
    async with (
        tls_server(server_transport, server_context) as server,
        wyre.Client(transport=client_transport, open_timeout=seconds(5)) as client,
    ):
        with pytest.raises(wyre.ConnectError):
            await client.connect(f"wss://localhost:{server.port}", ssl=trusting(trustme.CA()))
        with pytest.raises(wyre.ConnectError):  # the system's trust store: not ours either
            await client.connect(f"wss://localhost:{server.port}")
        assert server.connections == {}


@pytest.mark.parametrize("transport", SOCKET_TRANSPORTS)
async def test_a_plain_client_on_a_tls_port_fails_and_the_server_goes_on(
    authority: trustme.CA, server_context: ssl.SSLContext, transport: str
) -> None:
    async with (
        tls_server(transport, server_context) as server,
        wyre.Client(transport=transport, open_timeout=seconds(2)) as client,
    ):
        good = await client.connect(f"wss://localhost:{server.port}", ssl=trusting(authority))
        with pytest.raises(wyre.ConnectError):
            await client.connect(f"ws://localhost:{server.port}")
        reply = await asyncio.wait_for(good.request({"type": "echo", "n": 5}), seconds(5))
        assert reply.message["n"] == 5
