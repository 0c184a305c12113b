"""The picows driver against hand-made bytes: each test pins one reported defect.

Peers here are raw sockets on loopback: an HTTP upgrade written by hand, then
frames built with ``wyre.transports.frames`` (bits flipped where a test needs
a frame no library would send). The cross-driver rules are in the driver
conformance tests; these check picows' own seams.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import hashlib
import importlib.util
import logging
import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import wyre
from wyre.transport import KEEPALIVE_TIMEOUT, MAX_FRAGMENTS
from wyre.transports import frames

from .conftest import REQUIRE_ALL, eventually, seconds
from .proxy import record, serving

if importlib.util.find_spec("picows") is None:  # the fast extra
    if REQUIRE_ALL:
        raise ImportError("picows is not installed: these tests must run here")
    pytest.skip("picows is not installed: pip install 'pywyre[fast]'", allow_module_level=True)
from wyre.transports import picows_driver

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# -- a raw client: an upgrade written by hand, frames built byte by byte -----------------


class RawClient:
    """A WebSocket client made of a TCP stream; it answers nothing by itself."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.frames = frames.FrameWriter(mask=True)

    def send(
        self, opcode: int, payload: bytes = b"", *, fin: bool = True, rsv1: bool = False
    ) -> None:
        out = bytearray()
        self.frames.frame(out, opcode, payload, fin=fin)
        if rsv1:
            out[0] |= 0x40
        self.writer.write(out)

    def send_close(self, code: int, reason: bytes = b"") -> None:
        self.send(frames.CLOSE, code.to_bytes(2, "big") + reason)

    async def recv(self) -> tuple[int, bytes]:
        """The next frame from the server: (opcode, payload)."""
        head = await self.reader.readexactly(2)
        assert not head[1] & 0x80, "a server does not mask"
        size = head[1] & 0x7F
        if size == 126:
            size = int.from_bytes(await self.reader.readexactly(2), "big")
        elif size == 127:
            size = int.from_bytes(await self.reader.readexactly(8), "big")
        return head[0] & 0x0F, await self.reader.readexactly(size)

    async def close_code(self) -> tuple[int, str]:
        """Read until the server's close frame; return its code and reason."""
        async with asyncio.timeout(seconds(5)):
            while True:
                opcode, payload = await self.recv()
                if opcode == frames.CLOSE:
                    return frames.parse_close(payload)

    async def closed(self) -> None:
        """Wait until the server closed the TCP connection."""
        async with asyncio.timeout(seconds(5)):
            while await self.reader.read(65536):
                pass


def upgrade_request(port: int, *, version: str = "13", protocols: str | None = "wyre.v2") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET / HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        f"Sec-WebSocket-Version: {version}",
    ]
    if protocols is not None:
        lines.append(f"Sec-WebSocket-Protocol: {protocols}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """An HTTP response's status and headers (names in lower case)."""
    async with asyncio.timeout(seconds(5)):
        head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers


@asynccontextmanager
async def raw_client(
    port: int, *, version: str = "13", protocols: str | None = "wyre.v2", expect: int = 101
) -> AsyncIterator[RawClient]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(upgrade_request(port, version=version, protocols=protocols))
        status, _ = await read_response(reader)
        assert status == expect
        yield RawClient(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def port_of(server: wyre.Server) -> int:
    assert server.port is not None
    return server.port


# -- frames the server must refuse ---------------------------------------------------------


RawFrame = tuple[int, bytes, bool, bool]
"""(opcode, payload, fin, rsv1)"""


def whole(opcode: int, payload: bytes, *, rsv1: bool = False) -> RawFrame:
    return opcode, payload, True, rsv1


def part(opcode: int, payload: bytes) -> RawFrame:
    return opcode, payload, False, False


def close(code: int) -> RawFrame:
    return whole(frames.CLOSE, code.to_bytes(2, "big"))


REFUSED: dict[str, tuple[list[RawFrame], int]] = {
    "invalid-utf8-text": ([whole(frames.TEXT, b'{"a": "\xff"}')], 1007),
    "invalid-utf8-across-fragments": (
        [part(frames.TEXT, b'{"a": "'), whole(frames.CONTINUATION, b'\xc3"}')],
        1007,
    ),
    "rsv1-without-extension": ([whole(frames.TEXT, b"{}", rsv1=True)], 1002),
    "rsv1-on-a-continuation": (
        [part(frames.TEXT, b"{"), whole(frames.CONTINUATION, b"}", rsv1=True)],
        1002,
    ),
    "lone-final-continuation": ([whole(frames.CONTINUATION, b"{}")], 1002),
    "new-message-inside-a-fragmented-one": (
        [part(frames.TEXT, b"{"), whole(frames.TEXT, b"{}")],
        1002,
    ),
    "fragments-over-max-size": (
        [part(frames.BINARY, b"x" * 600), whole(frames.CONTINUATION, b"x" * 600)],
        1009,
    ),
    "close-code-0": ([close(0)], 1002),
    "close-code-1006": ([close(1006)], 1002),  # local only: never in a frame
    "close-code-5000": ([close(5000)], 1002),
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_a_broken_frame_closes_with_its_code(case: str) -> None:
    sequence, code = REFUSED[case]
    async with serving("picows", max_message_size=1000) as (server, _):
        closes = record(server, "close")
        errors = record(server, "error")
        async with raw_client(port_of(server)) as raw:
            for opcode, payload, fin, rsv1 in sequence:
                raw.send(opcode, payload, fin=fin, rsv1=rsv1)
            assert (await raw.close_code())[0] == code
            await raw.closed()
        await eventually(lambda: closes)
        assert closes[0][0] == code
        assert errors == []  # a frame error, not a message the application sees


async def test_a_valid_message_after_fragments_and_pings_is_delivered() -> None:
    seen: list[Any] = []

    def prepare(server: wyre.Server) -> None:
        server.on("message", lambda ctx: seen.append(ctx.message))

    async with serving("picows", prepare) as (server, _), raw_client(port_of(server)) as raw:
        raw.send(frames.TEXT, b'{"a": "sn', fin=False)
        raw.send(frames.PING, b"hi")
        raw.send(frames.CONTINUATION, '☃"'.encode()[:2], fin=False)  # a cut character
        raw.send(frames.CONTINUATION, '☃"}'.encode()[2:])
        assert await asyncio.wait_for(raw.recv(), seconds(5)) == (frames.PONG, b"hi")
        await eventually(lambda: seen)
        assert seen == [{"a": "sn☃"}]


async def test_endless_empty_continuations_are_cut_off_and_others_are_served() -> None:
    def prepare(server: wyre.Server) -> None:
        server.on("request", "echo", lambda ctx: ctx.message)

    async with serving("picows", prepare) as (server, url):
        closes = record(server, "close")
        async with wyre.Client(transport="picows") as client:
            other = await client.connect(url)
            async with raw_client(port_of(server)) as raw:
                raw.send(frames.TEXT, b"", fin=False)
                for _ in range(MAX_FRAGMENTS + 100):
                    raw.send(frames.CONTINUATION, b"", fin=False)
                code, _ = await raw.close_code()
                assert code == 1009
                await raw.closed()
            reply = await asyncio.wait_for(other.request({"type": "echo", "n": 1}), seconds(5))
            assert reply.message["n"] == 1
        await eventually(lambda: any(c[0] == 1009 for c in closes))


async def test_a_peer_close_code_in_the_private_range_is_reported_and_echoed() -> None:
    async with serving("picows") as (server, _):
        closes = record(server, "close")
        async with raw_client(port_of(server)) as raw:
            raw.send_close(4321, b"au revoir")
            assert await raw.close_code() == (4321, "au revoir")
            await raw.closed()
        await eventually(lambda: closes)
        assert closes[0][:2] == (4321, "au revoir")


async def test_a_close_code_in_the_private_range_goes_out_as_is() -> None:
    async with serving("picows") as (server, _), raw_client(port_of(server)) as raw:
        conn = await eventually(lambda: list(server.connections.values()))
        closing = asyncio.ensure_future(conn[0].close(4999, "bye"))
        assert await raw.close_code() == (4999, "bye")
        raw.send_close(4999, b"bye")
        await asyncio.wait_for(closing, seconds(5))


# -- the opening handshake -----------------------------------------------------------------


@pytest.mark.parametrize("version", ["8", "7", "12", ""])
async def test_a_websocket_version_other_than_13_is_refused(version: str) -> None:
    async with serving("picows") as (server, _):
        opened = record(server, "connection")
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        writer.write(upgrade_request(port_of(server), version=version))
        status, headers = await read_response(reader)
        writer.close()
        assert status == 426
        assert headers["sec-websocket-version"] == "13"
        assert opened == [] and server.connections == {}


async def test_a_handshake_under_way_when_the_server_closes_gets_503() -> None:
    server = wyre.Server(transport="picows")
    opened = record(server, "connection")
    await server.listen(port=0, host="127.0.0.1")
    port = port_of(server)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await asyncio.sleep(0)  # the TCP connection is accepted; no request yet
        await asyncio.wait_for(server.close(), seconds(5))
        writer.write(upgrade_request(port))
        status, _ = await read_response(reader)
        assert status == 503
        await asyncio.wait_for(reader.read(), seconds(5))  # the body, then the socket closes
        assert opened == [] and server.connections == {}
    finally:
        writer.close()


async def test_the_listener_refuses_handshakes_once_it_stops_accepting() -> None:
    server = wyre.Server(transport="picows")
    driver = picows_driver.PicowsDriver()
    listener = await driver.listen(server.options, server.attach, host="127.0.0.1", port=0)
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    listener.stop_accepting()
    writer.write(upgrade_request(listener.port))
    status, _ = await read_response(reader)
    writer.close()
    assert status == 503 and server.connections == {}
    await listener.wait_closed()


async def test_the_server_drops_a_peer_that_sends_no_handshake_within_open_timeout() -> None:
    async with serving("picows", open_timeout=seconds(0.2)) as (server, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        try:
            assert await asyncio.wait_for(reader.read(), seconds(5)) == b""
        finally:
            writer.close()


# -- a raw server, our client ------------------------------------------------------------


@asynccontextmanager
async def raw_server(
    respond: Callable[[dict[str, str]], bytes | None],
    after: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]] | None = None,
) -> AsyncIterator[str]:
    """A TCP server that answers each upgrade request with ``respond(headers)``'s bytes.

    ``None`` means never answer. ``after`` then runs on the socket.
    """
    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            headers = {}
            for line in head.decode().split("\r\n")[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            answer = respond(headers)
            if answer is None:
                await asyncio.sleep(3600)
            writer.write(answer or b"")
            if after is not None:
                await after(reader, writer)
            else:
                with contextlib.suppress(OSError):
                    await reader.read()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    tcp = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"ws://127.0.0.1:{tcp.sockets[0].getsockname()[1]}"
    finally:
        tcp.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def switching(protocol: str | None) -> Callable[[dict[str, str]], bytes]:
    """A valid 101 answer, selecting ``protocol``."""

    def respond(headers: dict[str, str]) -> bytes:
        accept = base64.b64encode(
            hashlib.sha1(headers["sec-websocket-key"].encode() + GUID).digest()
        ).decode()
        lines = [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {accept}",
        ]
        if protocol is not None:
            lines.append(f"Sec-WebSocket-Protocol: {protocol}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    return respond


@pytest.mark.parametrize("selected", ["chat", "wyre.v2, wyre", "wyre.v3"])
async def test_the_client_refuses_a_subprotocol_it_did_not_offer(selected: str) -> None:
    async with raw_server(switching(selected)) as url, wyre.Client(transport="picows") as client:
        with pytest.raises(wyre.ConnectError, match="not offered"):
            await client.connect(url)
        assert client.connections == {}


async def test_the_client_accepts_the_subprotocol_it_offered() -> None:
    async with raw_server(switching("wyre.v2")) as url, wyre.Client(transport="picows") as client:
        conn = await client.connect(url)
        assert conn.subprotocol == "wyre.v2" and conn.extensions


@pytest.mark.parametrize(("status", "phrase"), [(403, "Forbidden"), (503, "Service Unavailable")])
async def test_a_refused_handshake_is_a_connect_error_with_the_status(
    status: int, phrase: str
) -> None:
    answer = f"HTTP/1.1 {status} {phrase}\r\nContent-Length: 0\r\n\r\n".encode()
    async with raw_server(lambda _: answer) as url, wyre.Client(transport="picows") as client:
        with pytest.raises(wyre.ConnectError) as refused:
            await client.connect(url)
    assert refused.value.status == status
    assert str(status) in str(refused.value)


async def test_nothing_listening_is_a_connect_error_without_status() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    async with wyre.Client(transport="picows") as client:
        with pytest.raises(wyre.ConnectError) as refused:
            await client.connect(f"ws://127.0.0.1:{port}")
    assert refused.value.status is None


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/", "not a url"])
async def test_a_url_picows_cannot_use_is_a_connect_error(url: str) -> None:
    async with wyre.Client(transport="picows") as client:
        with pytest.raises(wyre.ConnectError):
            await client.connect(url)


async def test_a_server_that_never_answers_is_a_connect_error_after_open_timeout() -> None:
    async with (
        raw_server(lambda _: None) as url,
        wyre.Client(transport="picows", open_timeout=seconds(0.2)) as client,
    ):
        with pytest.raises(wyre.ConnectError):
            await asyncio.wait_for(client.connect(url), seconds(5))
        assert client.connections == {}


async def test_a_message_too_big_for_the_client_logs_no_unretrieved_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """picows keeps its 1009 error for wait_disconnected(); the driver collects it.

    Otherwise asyncio logs it once the connection is garbage collected.
    """

    def prepare(server: wyre.Server) -> None:
        server.on("connection", lambda conn: conn.send({"big": "x" * 5000}))

    caplog.set_level(logging.ERROR, logger="asyncio")
    codes: list[int] = []  # codes only: a Connection kept here would never be collected
    async with serving("picows", prepare) as (server, url):
        server.on("close", lambda code, reason, conn: codes.append(code))
        async with wyre.Client(transport="picows", max_message_size=1000) as client:
            client.on("close", lambda code, reason, conn: codes.append(code))
            await client.connect(url)
            await eventually(lambda: len(codes) == 2)
    assert codes == [1009, 1009]
    for _ in range(3):
        await asyncio.sleep(0)
        gc.collect()
    assert "never retrieved" not in caplog.text


# -- keepalive -----------------------------------------------------------------------------


async def frames_received(raw: RawClient, wait: float) -> list[tuple[int, bytes]]:
    """Every frame that arrives within ``wait`` seconds."""
    received: list[tuple[int, bytes]] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait):
            while True:
                received.append(await raw.recv())
    return received


@pytest.mark.parametrize("protocols", [None, "wyre"], ids=["no-subprotocol", "base-protocol"])
async def test_peers_without_wyre_v2_are_not_pinged(protocols: str | None) -> None:
    options: dict[str, Any] = {"ping_interval": seconds(0.02), "ping_timeout": seconds(0.05)}
    async with (
        serving("picows", **options) as (server, _),
        raw_client(port_of(server), protocols=protocols) as raw,
    ):
        assert await frames_received(raw, seconds(0.3)) == []  # some 15 intervals
        assert len(server.connections) == 1  # and not dropped for never answering


async def test_ping_base_peers_pings_them_too() -> None:
    options: dict[str, Any] = {"ping_interval": seconds(0.02), "ping_base_peers": True}
    async with (
        serving("picows", **options) as (server, _),
        raw_client(port_of(server), protocols=None) as raw,
    ):
        opcode, _ = await asyncio.wait_for(raw.recv(), seconds(5))
        assert opcode == frames.PING


async def test_a_wyre_v2_peer_that_answers_pings_stays_connected() -> None:
    options: dict[str, Any] = {"ping_interval": seconds(0.02), "ping_timeout": seconds(0.2)}
    async with serving("picows", **options) as (server, _), raw_client(port_of(server)) as raw:
        for _ in range(10):  # each pong is late by most of ping_timeout: never too late
            opcode, payload = await asyncio.wait_for(raw.recv(), seconds(5))
            assert opcode == frames.PING and len(payload) == 4
            await asyncio.sleep(seconds(0.1))
            raw.send(frames.PONG, payload)
        assert len(server.connections) == 1


async def test_a_wyre_v2_peer_that_does_not_answer_is_dropped_with_1011() -> None:
    options: dict[str, Any] = {"ping_interval": seconds(0.02), "ping_timeout": seconds(0.05)}
    async with serving("picows", **options) as (server, _):
        closes = record(server, "close")
        async with raw_client(port_of(server)) as raw:
            opcode, _ = await asyncio.wait_for(raw.recv(), seconds(5))
            assert opcode == frames.PING
            await eventually(lambda: closes)
            assert closes[0][:2] == KEEPALIVE_TIMEOUT
            await raw.closed()


async def test_the_client_pings_a_server_and_drops_it_when_it_does_not_answer() -> None:
    pings: list[bytes] = []

    async def read_pings(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
        while True:  # client frames are masked; nothing is answered
            head = await reader.readexactly(2)
            key = await reader.readexactly(4)
            payload = await reader.readexactly(head[1] & 0x7F)
            if head[0] & 0x0F == frames.PING:
                pings.append(bytes(b ^ key[i % 4] for i, b in enumerate(payload)))

    options: dict[str, Any] = {"ping_interval": seconds(0.02), "ping_timeout": seconds(0.05)}
    async with (
        raw_server(switching("wyre.v2"), read_pings) as url,
        wyre.Client(transport="picows", **options) as client,
    ):
        closes = record(client, "close")
        await client.connect(url)
        await eventually(lambda: closes)
        assert closes[0][:2] == KEEPALIVE_TIMEOUT
        assert pings and all(len(p) == 4 for p in pings)


async def test_pings_between_wyre_peers_keep_the_connection_up() -> None:
    options: dict[str, Any] = {"ping_interval": seconds(0.02), "ping_timeout": seconds(0.2)}

    def prepare(server: wyre.Server) -> None:
        server.on("request", "echo", lambda ctx: ctx.message)

    async with (
        serving("picows", prepare, **options) as (_, url),
        wyre.Client(transport="picows", **options) as client,
    ):
        conn = await client.connect(url)
        await asyncio.sleep(seconds(0.3))  # some 15 pings each way
        assert not conn.closed
        reply = await asyncio.wait_for(conn.request({"type": "echo"}), seconds(5))
        assert reply.message["type"] == "echo"


# -- sockets ---------------------------------------------------------------------------


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


async def test_listening_without_a_host_serves_ipv4_and_ipv6_on_one_port() -> None:
    if not ipv6_loopback():
        pytest.skip("no IPv6 loopback")

    server = wyre.Server(transport="picows")
    server.on("request", "echo", lambda ctx: ctx.message)
    await server.listen(port=0)
    try:
        async with wyre.Client(transport="picows") as client:
            for host in ("127.0.0.1", "[::1]"):
                conn = await client.connect(f"ws://{host}:{server.port}")
                reply = await asyncio.wait_for(conn.request({"type": "echo"}), seconds(5))
                assert reply.message["type"] == "echo"
    finally:
        await server.close()


async def test_tcp_keepalive_is_on_for_every_socket() -> None:
    async with (
        serving("picows", ping_interval=7) as (server, url),
        wyre.Client(transport="picows") as client,
    ):
        conn = await client.connect(url)
        peer = (await eventually(lambda: list(server.connections.values())))[0]
        for connection in (conn, peer):
            transport = connection._transport
            assert isinstance(transport, picows_driver.PicowsTransport)
            sock = transport._ws.underlying_transport.get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            if hasattr(socket, "TCP_KEEPIDLE"):
                idle = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
                assert idle == (7 if connection is peer else 20)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1: (cert, key)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        if REQUIRE_ALL:
            pytest.fail("no openssl command to make a certificate")
        pytest.skip("no openssl command to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


async def test_wss_with_ssl_contexts_on_both_sides(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))

    server = wyre.Server(transport="picows")
    server.on("request", "echo", lambda ctx: ctx.message)
    client = wyre.Client(transport="picows")
    driver = picows_driver.PicowsDriver()
    listener = await driver.listen(
        server.options, server.attach, host="127.0.0.1", port=0, ssl=server_context
    )
    try:
        conn = await driver.connect(
            client.options,
            client.attach,
            f"wss://localhost:{listener.port}",
            subprotocols=["wyre", "wyre.v2"],
            ssl=client_context,
        )
        assert isinstance(conn, wyre.Connection) and conn.subprotocol == "wyre.v2"
        reply = await asyncio.wait_for(conn.request({"type": "echo", "n": 1}), seconds(5))
        assert reply.message["n"] == 1
        with pytest.raises(wyre.ConnectError):  # without the certificate: refused
            await driver.connect(
                client.options,
                client.attach,
                f"wss://localhost:{listener.port}",
                subprotocols=[],
                ssl=ssl.create_default_context(),
            )
    finally:
        listener.stop_accepting()
        await client.close()
        await server.close()


# -- the closing handshake ---------------------------------------------------------------


async def test_closing_a_peer_that_never_answers_is_bounded_by_close_timeout() -> None:
    async with serving("picows", close_timeout=seconds(0.2)) as (server, _):
        closes = record(server, "close")
        async with raw_client(port_of(server)) as raw:
            conn = (await eventually(lambda: list(server.connections.values())))[0]
            await asyncio.wait_for(conn.close(4000, "bye"), seconds(5))
            assert await raw.close_code() == (4000, "bye")  # sent, never answered
            await raw.closed()
        assert closes[0][:2] == (4000, "bye")
