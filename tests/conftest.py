"""Shared fixtures: real endpoints on loopback, for every transport, codec and direction.

``link`` is the workhorse: a connected pair seen from the side that sends
(``link.conn``, ``link.sender``) and the side that handles (``link.peer``,
``link.handler``). It runs once with the client sending to the server and
once the other way round, so every scenario is checked in both directions.
``pair`` and ``link`` also run once per codec: JSON (the default options) and
MessagePack (``codec="msgpack"`` on both ends, so they agree on
``wyre.v2.msgpack``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

import wyre

SCALE = float(os.environ.get("WYRE_TEST_TIMEOUT_SCALE", "1"))
"""Multiplies every wait in the tests; raise it on a slow machine."""

TRANSPORTS = [
    name
    for name in ("websockets", "picows", "asgi")
    if name in os.environ.get("WYRE_TRANSPORTS", "websockets,picows,asgi").split(",")
]
"""Every transport the suite runs on; ``WYRE_TRANSPORTS=websockets`` narrows it.

``asgi`` is a server's connections through uvicorn (``tests/asgi_driver.py``,
registered under that name below), with a websockets client."""

SOCKET_TRANSPORTS = [name for name in TRANSPORTS if name != "asgi"]
"""The drivers that own their sockets (see :func:`not_on_asgi`)."""

LIBRARIES = {"websockets": "websockets", "picows": "picows", "asgi": "uvicorn"}
"""What each transport needs installed."""

CODECS = [
    name
    for name in ("json", "msgpack")
    if name in os.environ.get("WYRE_CODECS", "json,msgpack").split(",")
]
"""Every codec ``pair`` and ``link`` run on; ``WYRE_CODECS=json`` narrows it."""

REQUIRE_ALL = os.environ.get("WYRE_REQUIRE_ALL") == "1"
"""Set by ``.ci/run``: a transport or service the tests need must be there, not skipped."""


def need_transport(name: str) -> None:
    """Skip (locally) or fail (in CI) when the library behind a transport is missing."""
    library = LIBRARIES[name]
    if importlib.util.find_spec(library) is None:
        extra = "test" if name == "asgi" else "fast"
        message = f"the {name} transport needs {library}: pip install 'pywyre[{extra}]'"
        if REQUIRE_ALL:
            pytest.fail(message)
        pytest.skip(message)
    if name == "asgi":
        from wyre.transports import known, register

        if not known("asgi"):
            from .asgi_driver import UvicornDriver

            register("asgi", UvicornDriver())


def not_on_asgi(reason: str) -> Callable[[Any], Any]:
    """Run a test on the socket drivers only: what it checks is the ASGI server's to do.

    Through ASGI the server (uvicorn here) owns the socket, and with it some
    WebSocket rules wyre cannot reach: ``reason`` says which. Each of them is
    listed in docs/asgi.md. The test still runs on every other transport.
    """

    def restrict(test: Any) -> Any:
        test = pytest.mark.parametrize("transport", SOCKET_TRANSPORTS, indirect=True)(test)
        return pytest.mark.not_on_asgi(reason)(test)

    return restrict


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "not_on_asgi(reason): the ASGI server owns what this test checks"
    )


def need_codec(name: str) -> None:
    """Skip (locally) or fail (in CI) when the library behind a codec is missing."""
    if name == "msgpack" and importlib.util.find_spec("msgpack") is None:
        message = "the msgpack codec is not installed: pip install 'pywyre[msgpack]'"
        if REQUIRE_ALL:
            pytest.fail(message)
        pytest.skip(message)


def codec_options(codec: str) -> dict[str, Any]:
    """The endpoint options that make a pair speak ``codec``: none for JSON, the default."""
    return {} if codec == "json" else {"codec": codec}


def seconds(value: float) -> float:
    """A test wait, scaled for slow machines."""
    return value * SCALE


async def eventually(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll ``predicate`` until it is truthy; fail the test after ``timeout``."""
    async with asyncio.timeout(seconds(timeout)):
        while not (result := predicate()):
            await asyncio.sleep(0.005)
        return result


@dataclass
class Link:
    """A connected pair: ``sender`` uses ``conn``; ``handler`` answers on ``peer``."""

    sender: wyre.Server | wyre.Client
    handler: wyre.Server | wyre.Client
    conn: wyre.Connection
    peer: wyre.Connection
    server: wyre.Server
    client: wyre.Client
    direction: str


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    need_transport(request.param)
    return str(request.param)


@pytest.fixture(params=CODECS)
def codec(request: pytest.FixtureRequest) -> str:
    need_codec(request.param)
    return str(request.param)


async def open_pair(
    transport: str,
    server_options: dict[str, Any] | None = None,
    client_options: dict[str, Any] | None = None,
    prepare: Callable[[wyre.Server, wyre.Client], None] | None = None,
    *,
    codec: str = "json",
) -> tuple[wyre.Server, wyre.Client, wyre.Connection, wyre.Connection]:
    """Start a server on a free loopback port and connect a client to it.

    Both speak ``codec`` unless their options name a codec of their own.
    """
    speak = codec_options(codec)
    server = wyre.Server(transport=transport, **{**speak, **(server_options or {})})
    client = wyre.Client(transport=transport, **{**speak, **(client_options or {})})
    if prepare is not None:
        prepare(server, client)
    await server.listen(port=0, host="127.0.0.1")
    conn = await client.connect(f"ws://127.0.0.1:{server.port}")
    peers = await eventually(lambda: list(server.connections.values()))
    if server.options.speaks_msgpack and client.options.speaks_msgpack:
        assert conn.codec.name == peers[0].codec.name == "msgpack", conn.subprotocol
    return server, client, conn, peers[0]


async def close_pair(server: wyre.Server, client: wyre.Client) -> None:
    async with asyncio.timeout(seconds(15)):
        await client.close()
        await server.close(grace=1)


@pytest.fixture
async def pair(
    transport: str, codec: str
) -> AsyncIterator[tuple[wyre.Server, wyre.Client, wyre.Connection, wyre.Connection]]:
    """(server, client, client's connection, server's connection)."""
    server, client, conn, peer = await open_pair(transport, codec=codec)
    yield server, client, conn, peer
    await close_pair(server, client)


@pytest.fixture(params=["client->server", "server->client"])
async def link(request: pytest.FixtureRequest, pair: Any) -> Link:
    server, client, client_conn, server_conn = pair
    if request.param == "client->server":
        return Link(client, server, client_conn, server_conn, server, client, request.param)
    return Link(server, client, server_conn, client_conn, server, client, request.param)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A Redis for the cluster tests: ``WYRE_TEST_REDIS_URL``, or a private redis-server."""
    from .redis_server import EXTERNAL_URL, RedisServer, missing

    if importlib.util.find_spec("redis") is None:
        missing("redis-py is not installed")
    if EXTERNAL_URL:
        yield EXTERNAL_URL
        return
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_server(tmp_path: Any) -> Any:
    """A private redis-server this test may stop and start again (same port, empty)."""
    from .redis_server import EXTERNAL_URL, RedisServer, missing

    if importlib.util.find_spec("redis") is None:
        missing("redis-py is not installed")
    if EXTERNAL_URL and not shutil.which("redis-server"):
        missing("WYRE_TEST_REDIS_URL is set and there is no redis-server to restart")
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
