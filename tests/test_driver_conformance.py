"""Driver conformance: every driver enforces the same WebSocket rules (``wyre.transport.Driver``).

Each case runs against every driver in ``TRANSPORTS`` over real loopback
sockets. The other end is a raw peer written here: a hand-written HTTP
upgrade and hand-made frames over a bare asyncio stream, so that it can
send what no WebSocket library would (invalid UTF-8, RSV1 bits, endless
continuations, unmasked client frames) and record exactly what arrives
(close codes, pings, the end of the stream).

Where a rule holds on both sides, ``side`` says which end is wyre's: a wyre
``server`` facing a raw client, or a wyre ``client`` facing a raw server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import socket
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

import wyre
from wyre.config import Options
from wyre.transport import MAX_FRAGMENTS, Receiver, Transport, TransportClosing
from wyre.transports import driver

from .conftest import TRANSPORTS, eventually, not_on_asgi, seconds
from .proxy import in_flight, record

SIDES = ["server", "client"]
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
V2 = ("wyre.v2",)
KB = 1024

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

# -- frames by hand ----------------------------------------------------------------


def encode_frame(
    opcode: int, payload: bytes = b"", *, mask: bool, fin: bool = True, rsv1: bool = False
) -> bytes:
    """One WebSocket frame (RFC 6455 5.2), with whatever bits the test asks for."""
    head1 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        header = struct.pack("!BB", head1, mask_bit | length)
    elif length < 65536:
        header = struct.pack("!BBH", head1, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", head1, mask_bit | 127, length)
    if not mask:
        return header + payload
    key = os.urandom(4)
    return header + key + _masked(payload, key)


def _masked(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return b""
    keystream = (key * (len(payload) // 4 + 1))[: len(payload)]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")
    return value.to_bytes(len(payload), "big")


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """(opcode, fin, payload) of the next frame, unmasked."""
    head1, head2 = await reader.readexactly(2)
    length = head2 & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    key = await reader.readexactly(4) if head2 & 0x80 else b""
    payload = await reader.readexactly(length)
    if key:
        payload = _masked(payload, key)
    return head1 & 0x0F, bool(head1 & 0x80), payload


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """The status (or 0 for a request) and lower-cased headers of an HTTP head."""
    lines = head.decode("latin-1").split("\r\n")
    first = lines[0].split(" ")
    status = int(first[1]) if first[0].startswith("HTTP/") else 0
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return status, headers


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


# -- a raw peer --------------------------------------------------------------------


class Peer:
    """One raw end of a WebSocket: writes frames as told, records every frame read.

    ``answer_pings``: send a pong for each ping. ``close_on_eof``: close the
    TCP connection once the other end closed its side (as a real peer does).
    ``hang_up_on_close``: close the TCP connection when a close frame arrives
    (as a server does once the closing handshake is complete). A close frame
    is never echoed: tests send their own.
    """

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, mask: bool
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.mask = mask
        self.frames: list[tuple[int, bool, bytes]] = []
        self.eof = asyncio.Event()
        self.answer_pings = True
        self.close_on_eof = True
        self.hang_up_on_close = False
        self._reading: asyncio.Task[None] | None = None

    def start_reading(self) -> None:
        self._reading = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                opcode, fin, payload = await read_frame(self.reader)
                self.frames.append((opcode, fin, payload))
                if opcode == PING and self.answer_pings:
                    self.send(PONG, payload)
                elif opcode == CLOSE and self.hang_up_on_close:
                    self.writer.close()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.eof.set()
            if self.close_on_eof:
                self.writer.close()

    def send(
        self, opcode: int, payload: bytes = b"", *, fin: bool = True, rsv1: bool = False
    ) -> None:
        self.writer.write(encode_frame(opcode, payload, mask=self.mask, fin=fin, rsv1=rsv1))

    def send_json(self, message: dict[str, Any]) -> None:
        self.send(TEXT, json.dumps(message).encode())

    def messages(self) -> list[Any]:
        return [json.loads(p) for op, fin, p in self.frames if op == TEXT and fin]

    def find(self, **fields: Any) -> dict[str, Any] | None:
        for message in self.messages():
            if isinstance(message, dict) and fields.items() <= message.items():
                return message
        return None

    def close_frame(self) -> tuple[int, str] | None:
        for opcode, _, payload in self.frames:
            if opcode == CLOSE:
                if len(payload) < 2:
                    return 1005, ""
                return struct.unpack("!H", payload[:2])[0], payload[2:].decode()
        return None

    def pings(self) -> int:
        return sum(1 for opcode, _, _ in self.frames if opcode == PING)

    async def ended(self, timeout: float = 5) -> None:
        """Wait until the other end closed the stream (or reset it)."""
        await asyncio.wait_for(self.eof.wait(), seconds(timeout))

    async def aclose(self) -> None:
        self.writer.transport.abort()
        if self._reading is not None:
            await self._reading


def request_head(host: str, port: int, key: str, protocols: tuple[str, ...]) -> bytes:
    lines = [
        "GET / HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if protocols:
        lines.append(f"Sec-WebSocket-Protocol: {', '.join(protocols)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@asynccontextmanager
async def raw_client(
    port: int,
    *,
    host: str = "127.0.0.1",
    protocols: tuple[str, ...] = V2,
    read: bool = True,
    receive_buffer: int | None = None,
) -> AsyncIterator[Peer]:
    """A raw client that completed the upgrade to a server on ``port``."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    reader, writer = await asyncio.open_connection(sock=sock)
    peer = Peer(reader, writer, mask=True)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(request_head(host, port, key, protocols))
        status, headers = parse_head(await reader.readuntil(b"\r\n\r\n"))
        assert status == 101, status
        assert headers["sec-websocket-accept"] == accept_key(key)
        if read:
            peer.start_reading()
        yield peer
    finally:
        await peer.aclose()


Select = Callable[[list[str]], str | None]


def select_v2(offered: list[str]) -> str | None:
    return "wyre.v2" if "wyre.v2" in offered else None


class RawServer:
    """Upgrades every connection by hand (``status`` 101 unless told otherwise)."""

    def __init__(self, select: Select = select_v2, status: int = 101) -> None:
        self.select = select
        self.status = status
        self.url = ""
        self.peers: asyncio.Queue[Peer] = asyncio.Queue()
        self.opened: list[Peer] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            _, headers = parse_head(await reader.readuntil(b"\r\n\r\n"))
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        if self.status != 101:
            head = f"HTTP/1.1 {self.status} Nope\r\nContent-Length: 0\r\nConnection: close"
            writer.write(f"{head}\r\n\r\n".encode())
            writer.close()
            return
        offered = [
            p.strip() for p in headers.get("sec-websocket-protocol", "").split(",") if p.strip()
        ]
        chosen = self.select(offered)
        lines = [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {accept_key(headers['sec-websocket-key'])}",
        ]
        if chosen is not None:
            lines.append(f"Sec-WebSocket-Protocol: {chosen}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        peer = Peer(reader, writer, mask=False)
        peer.start_reading()
        self.opened.append(peer)
        self.peers.put_nowait(peer)

    async def accepted(self) -> Peer:
        return await asyncio.wait_for(self.peers.get(), seconds(5))


@asynccontextmanager
async def raw_server(select: Select = select_v2, status: int = 101) -> AsyncIterator[RawServer]:
    raw = RawServer(select, status)
    server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
    raw.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield raw
    finally:
        server.close()
        for peer in raw.opened:
            await peer.aclose()


Endpoint = wyre.Server | wyre.Client


@asynccontextmanager
async def against_raw(
    transport: str,
    side: str,
    *,
    protocols: tuple[str, ...] = V2,
    select: Select = select_v2,
    **options: Any,
) -> AsyncIterator[tuple[Endpoint, wyre.Connection, Peer]]:
    """A wyre ``side`` connected to a raw peer: (the wyre endpoint, its connection, the peer).

    ``protocols``: what a raw client offers; ``select``: what a raw server selects.
    """
    options = {"request_timeout": 60, "close_timeout": seconds(1), **options}
    if side == "server":
        server = wyre.Server(transport=transport, **options)
        await server.listen(port=0, host="127.0.0.1")
        try:
            assert server.port is not None
            async with raw_client(server.port, protocols=protocols) as peer:
                (conn,) = await eventually(lambda: list(server.connections.values()))
                yield server, conn, peer
        finally:
            async with asyncio.timeout(seconds(15)):
                await server.close(grace=0)
        return
    client = wyre.Client(transport=transport, **options)
    async with raw_server(select) as raw:
        try:
            conn = await client.connect(raw.url)
            yield client, conn, await raw.accepted()
        finally:
            for peer in raw.opened:
                peer.hang_up_on_close = True  # let the client's close end at once
            async with asyncio.timeout(seconds(15)):
                await client.close()


async def closed_with(request: asyncio.Future[Any], code: int) -> None:
    """``request`` fails with ConnectionClosed(``code``), soon."""
    with pytest.raises(wyre.ConnectionClosed) as caught:
        await asyncio.wait_for(request, seconds(5))
    assert caught.value.code == code


# -- frame errors --------------------------------------------------------------------

Frames = list[tuple[int, bytes, bool, bool]]  # opcode, payload, fin, rsv1
LIMIT = 1024

FRAME_ERRORS: dict[str, tuple[Frames, int]] = {
    "invalid-utf8": ([(TEXT, b'{"a": "\xff\xfe"}', True, False)], 1007),
    "invalid-utf8-fragmented": (
        [(TEXT, b'{"a": "\xc3', False, False), (CONT, b'\x28"}', True, False)],
        1007,
    ),
    "oversized": ([(TEXT, b"x" * (LIMIT + 1), True, False)], 1009),
    "oversized-fragmented": (
        [(TEXT, b"x" * (LIMIT // 2 + 1), False, False), (CONT, b"x" * (LIMIT // 2), True, False)],
        1009,
    ),
    "too-many-fragments": (
        [(TEXT, b"", False, False)]
        + [(CONT, b"", False, False)] * MAX_FRAGMENTS
        + [(CONT, b"{}", True, False)],
        1009,
    ),
    "continuation-without-start": ([(CONT, b"{}", True, False)], 1002),
    "new-message-inside-fragmented": (
        [(TEXT, b"{", False, False), (TEXT, b"{}", True, False)],
        1002,
    ),
    "rsv1-without-extension": ([(TEXT, b"{}", True, True)], 1002),
}


def send_frames(peer: Peer, frames: Frames) -> None:
    peer.writer.write(
        b"".join(
            encode_frame(op, data, mask=peer.mask, fin=fin, rsv1=rsv1)
            for op, data, fin, rsv1 in frames
        )
    )


FRAME_ERROR_RUNS = [
    pytest.param(transport, side, case, id=f"{transport}-{case}-{side}")
    for transport in TRANSPORTS
    for case in FRAME_ERRORS
    for side in SIDES
    # Through ASGI, uvicorn joins the fragments itself and sets no cap on their
    # number: a message in too many of them arrives whole (docs/asgi.md).
    if not (transport == "asgi" and side == "server" and case == "too-many-fragments")
]


@pytest.mark.parametrize(("transport", "side", "case"), FRAME_ERROR_RUNS, indirect=["transport"])
async def test_a_frame_error_closes_with_its_code(transport: str, side: str, case: str) -> None:
    frames, code = FRAME_ERRORS[case]
    options = {"max_message_size": LIMIT, "close_timeout": seconds(0.5)}
    async with against_raw(transport, side, **options) as (endpoint, conn, peer):
        closes = record(endpoint, "close")
        pending = in_flight(conn.request({"n": 1}))
        await eventually(lambda: peer.find(direction="REQUEST"))
        send_frames(peer, frames)
        await peer.ended()
        assert peer.close_frame() is not None
        assert peer.close_frame()[0] == code  # type: ignore[index]
        await closed_with(pending, code)
        (got, _, closed) = (await eventually(lambda: closes))[0]
        assert (got, closed) == (code, conn)
        assert conn.close_code == code


@pytest.mark.parametrize("side", SIDES)
async def test_a_frame_with_the_wrong_masking_closes_with_1002(transport: str, side: str) -> None:
    """A client must mask its frames and a server must not (RFC 6455 5.1)."""
    async with against_raw(transport, side, close_timeout=seconds(0.5)) as (endpoint, _, peer):
        closes = record(endpoint, "close")
        peer.writer.write(encode_frame(TEXT, b"{}", mask=not peer.mask))
        await peer.ended()
        assert peer.close_frame() is not None
        assert peer.close_frame()[0] == 1002  # type: ignore[index]
        (got, _, _) = (await eventually(lambda: closes))[0]
        assert got == 1002


@pytest.mark.parametrize("side", SIDES)
async def test_the_socket_is_dropped_after_a_frame_error_while_the_peer_streams_on(
    transport: str, side: str
) -> None:
    options = {
        "max_message_size": LIMIT,
        "close_timeout": seconds(0.5),
        "ping_interval": None,
    }
    async with against_raw(transport, side, **options) as (endpoint, conn, peer):
        closes = record(endpoint, "close")
        pending = in_flight(conn.request({"n": 1}))
        await eventually(lambda: peer.find(direction="REQUEST"))
        peer.close_on_eof = False  # deaf to the close: it streams on until the socket drops
        peer.send(TEXT, b"x" * (LIMIT + 1))
        chunk = encode_frame(TEXT, b'"' + b"y" * 500 + b'"', mask=peer.mask) * 20

        async def stream() -> None:
            with contextlib.suppress(ConnectionError):
                while True:
                    peer.writer.write(chunk)
                    await peer.writer.drain()
                    await asyncio.sleep(0)

        streaming = asyncio.create_task(stream())
        try:
            await closed_with(pending, 1009)
            (got, _, _) = (await eventually(lambda: closes))[0]
            assert got == 1009
            await asyncio.wait_for(streaming, seconds(5))  # the socket is gone
        finally:
            streaming.cancel()
            await asyncio.gather(streaming, return_exceptions=True)
        assert peer.close_frame() is not None
        assert peer.close_frame()[0] == 1009  # type: ignore[index]


@not_on_asgi("uvicorn sets no cap on the fragments of one message (MAX_FRAGMENTS)")
async def test_endless_empty_continuations_close_and_others_are_served(transport: str) -> None:
    server = wyre.Server(transport=transport, close_timeout=seconds(0.5))
    server.on("request", lambda ctx: {"n": ctx.message["n"]})
    await server.listen(port=0, host="127.0.0.1")
    assert server.port is not None
    client = wyre.Client(transport=transport)
    try:
        async with raw_client(server.port) as peer:
            peer.send(TEXT, b"", fin=False)
            batch = encode_frame(CONT, b"", mask=True, fin=False) * 500

            async def flood() -> None:
                with contextlib.suppress(ConnectionError):
                    while not peer.eof.is_set():
                        peer.writer.write(batch)
                        await peer.writer.drain()
                        await asyncio.sleep(0)

            flooding = asyncio.create_task(flood())
            conn = await client.connect(f"ws://127.0.0.1:{server.port}")
            for n in range(5):
                reply = await asyncio.wait_for(conn.request({"n": n}), seconds(5))
                assert reply.message["n"] == n
            await peer.ended()
            await asyncio.wait_for(flooding, seconds(5))
            assert peer.close_frame() is not None
            assert peer.close_frame()[0] == 1009  # type: ignore[index]
            assert not conn.closed
    finally:
        async with asyncio.timeout(seconds(15)):
            await client.close()
            await server.close(grace=0)


# -- closing -------------------------------------------------------------------------


@pytest.mark.parametrize("closer", ["client", "server"])
@pytest.mark.parametrize(
    ("code", "reason"), [(1000, ""), (1001, "going away"), (4000, "bye"), (4999, "fin ✓")]
)
async def test_the_closing_handshake_passes_code_and_reason_both_ways(
    transport: str, closer: str, code: int, reason: str
) -> None:
    server = wyre.Server(transport=transport)
    client = wyre.Client(transport=transport)
    server_closes, client_closes = record(server, "close"), record(client, "close")
    await server.listen(port=0, host="127.0.0.1")
    try:
        conn = await client.connect(f"ws://127.0.0.1:{server.port}")
        (peer,) = await eventually(lambda: list(server.connections.values()))
        pending = [in_flight(c.request({})) for c in (conn, peer)]
        closing = conn if closer == "client" else peer
        async with asyncio.timeout(seconds(5)):
            await closing.close(code, reason)
        for request in pending:
            await closed_with(request, code)
        for closes in (server_closes, client_closes):
            (got_code, got_reason, _) = (await eventually(lambda c=closes: c))[0]
            assert (got_code, got_reason) == (code, reason)
    finally:
        async with asyncio.timeout(seconds(15)):
            await client.close()
            await server.close(grace=0)


@pytest.mark.parametrize("side", SIDES)
async def test_a_close_from_the_peer_is_echoed_and_reported(transport: str, side: str) -> None:
    async with against_raw(transport, side, close_timeout=seconds(2)) as (endpoint, conn, peer):
        closes = record(endpoint, "close")
        pending = in_flight(conn.request({}))
        await eventually(lambda: peer.find(direction="REQUEST"))
        peer.hang_up_on_close = not peer.mask  # a server closes TCP once its close is echoed
        peer.send(CLOSE, close_payload(4000, "raw bye"))
        await closed_with(pending, 4000)
        (code, reason, _) = (await eventually(lambda: closes))[0]
        assert (code, reason) == (4000, "raw bye")
        await peer.ended()
        assert peer.close_frame() == (4000, "raw bye")  # the echo


@not_on_asgi("uvicorn waits 10 s for the peer's close frame whatever close_timeout says")
@pytest.mark.parametrize("side", SIDES)
async def test_a_peer_that_never_answers_our_close_is_dropped(transport: str, side: str) -> None:
    async with against_raw(transport, side, close_timeout=seconds(0.3)) as (endpoint, conn, peer):
        closes = record(endpoint, "close")
        peer.close_on_eof = False
        async with asyncio.timeout(seconds(5)):
            await conn.close(1000, "done")
        assert conn.closed
        (code, _, _) = (await eventually(lambda: closes))[0]
        assert code == 1006  # no closing handshake completed: lost
        await peer.ended()
        assert peer.close_frame() == (1000, "done")


@pytest.mark.parametrize("side", SIDES)
async def test_frames_after_our_close_are_dropped(transport: str, side: str) -> None:
    async with against_raw(transport, side, close_timeout=seconds(2)) as (endpoint, conn, peer):
        got = record(endpoint, "message")
        closing = asyncio.ensure_future(conn.close(4000, "bye"))
        await eventually(peer.close_frame)
        peer.send_json({"late": True})
        peer.send(CLOSE, close_payload(4000, "bye"))
        if not peer.mask:
            peer.writer.close()
        await asyncio.wait_for(closing, seconds(5))
        assert conn.close_code == 4000
        assert got == []


# -- the opening handshake -------------------------------------------------------------


@not_on_asgi("the request before the application is called is uvicorn's: it sets no deadline")
async def test_a_handshake_never_completed_is_dropped_after_open_timeout(transport: str) -> None:
    server = wyre.Server(transport=transport, open_timeout=seconds(0.3))
    opened = record(server, "connection")
    await server.listen(port=0, host="127.0.0.1")
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        async with asyncio.timeout(seconds(5)):
            with contextlib.suppress(ConnectionError):
                assert await reader.read() == b""
        writer.close()
        assert opened == []
        assert server.port is not None
        async with raw_client(server.port):  # a complete handshake still opens
            await eventually(lambda: opened)
    finally:
        async with asyncio.timeout(seconds(15)):
            await server.close(grace=0)


async def test_stop_accepting_refuses_a_handshake_in_progress(transport: str) -> None:
    server = wyre.Server(transport=transport, close_timeout=seconds(1))
    opened = record(server, "connection")
    await server.listen(port=0, host="127.0.0.1")
    assert server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        head = request_head("127.0.0.1", server.port, key, V2)
        writer.write(head[:20])
        await writer.drain()
        await asyncio.sleep(seconds(0.1))  # the server accepts the TCP connection
        closing = asyncio.create_task(server.close(grace=0))
        await asyncio.sleep(0)
        with contextlib.suppress(ConnectionError):
            writer.write(head[20:])
        async with asyncio.timeout(seconds(5)):
            try:
                response = await reader.read()
            except ConnectionError:
                response = b""
        assert response == b"" or response.startswith(b"HTTP/1.1 503"), response[:100]
        async with asyncio.timeout(seconds(15)):
            await closing
        assert opened == []
    finally:
        writer.close()


def ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


async def test_listening_without_a_host_serves_ipv4_and_ipv6_on_one_port(transport: str) -> None:
    server = wyre.Server(transport=transport)
    server.on("request", lambda ctx: {"ok": True})
    await server.listen(port=0)
    client = wyre.Client(transport=transport)
    try:
        port = server.port
        assert isinstance(port, int) and port > 0
        hosts = ["127.0.0.1"] + (["[::1]"] if ipv6_loopback() else [])
        for host in hosts:
            conn = await client.connect(f"ws://{host}:{port}")
            assert (await conn.request({})).message["ok"] is True
        if len(hosts) == 1:
            pytest.skip("no IPv6 loopback here: only the IPv4 half ran")
    finally:
        async with asyncio.timeout(seconds(15)):
            await client.close()
            await server.close(grace=0)


async def test_connect_errors(transport: str) -> None:
    client = wyre.Client(transport=transport, open_timeout=seconds(0.3))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    with pytest.raises(wyre.ConnectError):  # nothing listening
        await client.connect(f"ws://127.0.0.1:{free}")
    for url in ("http://127.0.0.1:1/", "ws://127.0.0.1:port/", "not a url"):
        with pytest.raises(wyre.ConnectError):
            await client.connect(url)
    async with raw_server(status=403) as raw:
        with pytest.raises(wyre.ConnectError) as caught:
            await client.connect(raw.url)
        assert caught.value.status == 403
        assert "403" in str(caught.value)
    async with raw_server(select=lambda offered: "chat") as raw:  # never offered
        with pytest.raises(wyre.ConnectError):
            await client.connect(raw.url)
    held: list[asyncio.StreamWriter] = []
    silent = await asyncio.start_server(lambda _, writer: held.append(writer), "127.0.0.1", 0)
    try:
        port = silent.sockets[0].getsockname()[1]
        with pytest.raises(wyre.ConnectError):  # no answer within open_timeout
            await asyncio.wait_for(client.connect(f"ws://127.0.0.1:{port}"), seconds(5))
    finally:
        silent.close()
        for writer in held:
            writer.transport.abort()
    assert client.connections == {}
    await client.close()


# -- keepalive -------------------------------------------------------------------------


@not_on_asgi("keepalive is uvicorn's: it drops the peer, but its disconnect does not say 1011")
@pytest.mark.parametrize("side", SIDES)
async def test_a_v2_peer_that_stops_answering_pings_is_dropped_with_1011(
    transport: str, side: str
) -> None:
    options = {"ping_interval": seconds(0.1), "ping_timeout": seconds(0.2)}
    async with against_raw(transport, side, **options) as (endpoint, conn, peer):
        assert conn.subprotocol == "wyre.v2"
        closes = record(endpoint, "close")
        await eventually(lambda: peer.pings() >= 2)  # answered: the connection lives on
        assert not conn.closed
        peer.answer_pings = False
        pending = in_flight(conn.request({}))
        await closed_with(pending, 1011)
        (code, _, _) = (await eventually(lambda: closes))[0]
        assert code == 1011


def select_none(offered: list[str]) -> str | None:
    return None


@not_on_asgi("uvicorn pings every peer, whatever its subprotocol: ping_base_peers cannot apply")
@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("ping_base_peers", [False, True])
async def test_base_protocol_peers_are_pinged_only_when_asked(
    transport: str, side: str, ping_base_peers: bool
) -> None:
    options = {"ping_interval": seconds(0.05), "ping_base_peers": ping_base_peers}
    async with against_raw(transport, side, protocols=(), select=select_none, **options) as (
        _,
        conn,
        peer,
    ):
        assert conn.subprotocol is None
        if ping_base_peers:
            await eventually(lambda: peer.pings() >= 2)
        else:
            # a v2 peer would have had several pings by now
            await asyncio.sleep(seconds(0.4))
            assert peer.pings() == 0
        assert not conn.closed


# -- flow control, at the driver level ---------------------------------------------------


class Recorder:
    """A Receiver that records what the driver reports, and may pause at chosen messages."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.messages: list[str | bytes] = []
        self.lost: list[tuple[int, str]] = []
        self.pause_at: set[int] = set()

    def receive(self, data: str | bytes) -> None:
        assert not self.lost
        self.messages.append(data)
        if len(self.messages) in self.pause_at:
            self.transport.pause_reading()

    def connection_lost(self, code: int, reason: str) -> None:
        self.lost.append((code, reason))

    def log(self, level: int, msg: str, *args: Any, stacklevel: int = 1) -> None:
        logging.getLogger("wyre.test").log(level, msg, *args, stacklevel=stacklevel + 1)


@asynccontextmanager
async def driver_server(
    transport: str, **options: Any
) -> AsyncIterator[tuple[int, list[Recorder]]]:
    """A bare driver listening with ``options``; yields its port and a Recorder per connection."""
    opened: list[Recorder] = []

    def on_open(t: Transport) -> Receiver:
        recorder = Recorder(t)
        opened.append(recorder)
        return recorder

    listener = await driver(transport).listen(
        Options(close_timeout=seconds(1), **options), on_open, host="127.0.0.1", port=0
    )
    try:
        yield listener.port, opened
    finally:
        listener.stop_accepting()
        for recorder in opened:
            if not recorder.lost:
                recorder.transport.abort()
        await eventually(lambda: all(r.lost for r in opened))
        await asyncio.wait_for(listener.wait_closed(), seconds(5))
        assert all(len(r.lost) == 1 for r in opened)  # reported exactly once


async def test_pause_and_resume_reading_deliver_everything_in_order(transport: str) -> None:
    count = 300
    async with (
        driver_server(transport) as (port, opened),
        raw_client(port) as peer,
    ):
        (recorder,) = await eventually(lambda: opened)
        recorder.pause_at = {10, 150}
        peer.writer.write(
            b"".join(encode_frame(TEXT, str(n).encode(), mask=True) for n in range(count))
        )
        await eventually(lambda: len(recorder.messages) >= 10)
        await asyncio.sleep(seconds(0.1))
        assert len(recorder.messages) == 10  # paused: nothing more delivered
        recorder.transport.resume_reading()
        await eventually(lambda: len(recorder.messages) >= 150)
        await asyncio.sleep(seconds(0.1))
        assert len(recorder.messages) == 150  # paused again, while the backlog was delivered
        recorder.transport.resume_reading()
        await eventually(lambda: len(recorder.messages) == count)
        assert recorder.messages == [str(n) for n in range(count)]
        peer.send_json({"after": True})  # and reading goes on
        await eventually(lambda: len(recorder.messages) == count + 1)


async def test_the_write_buffer_grows_and_drain_waits_for_the_peer(transport: str) -> None:
    limit = 64 * KB
    async with (
        driver_server(transport, write_limit=limit) as (port, opened),
        raw_client(port, read=False, receive_buffer=4 * KB) as peer,
    ):
        (recorder,) = await eventually(lambda: opened)
        t = recorder.transport
        blob = b"x" * (16 * KB)
        for _ in range(10_000):
            if t.write_buffer_size() > limit:
                break
            t.write(blob, True)
            await asyncio.sleep(0)
        assert t.write_buffer_size() > limit
        draining = asyncio.ensure_future(t.drain())
        await asyncio.sleep(seconds(0.1))
        assert not draining.done()  # the peer reads nothing
        peer.start_reading()
        await asyncio.wait_for(draining, seconds(5))
        assert t.write_buffer_size() <= limit
        assert not recorder.lost


@not_on_asgi(
    "ASGI ends the connection for the application once its close is sent: the closing "
    "handshake after it is the server's, out of sight, so there is no 'closing' to refuse in"
)
async def test_writes_are_refused_once_closing_and_fail_once_closed(transport: str) -> None:
    async with driver_server(transport) as (port, opened), raw_client(port) as peer:
        (recorder,) = await eventually(lambda: opened)
        closing = asyncio.ensure_future(recorder.transport.close(4000, "bye"))
        await eventually(peer.close_frame)
        with pytest.raises(TransportClosing):
            recorder.transport.write("{}", False)
        peer.send(CLOSE, close_payload(4000, "bye"))
        await asyncio.wait_for(closing, seconds(5))
        assert recorder.lost == [(4000, "bye")]
        with pytest.raises(ConnectionError) as caught:
            recorder.transport.write("{}", False)
        assert not isinstance(caught.value, TransportClosing)


async def test_writes_are_refused_after_the_peers_close(transport: str) -> None:
    async with driver_server(transport) as (port, opened), raw_client(port) as peer:
        (recorder,) = await eventually(lambda: opened)
        peer.close_on_eof = False  # keep the socket open a while after the closing handshake
        peer.send(CLOSE, close_payload(4001, "peer bye"))
        await eventually(peer.close_frame)  # the echo
        assert peer.close_frame() == (4001, "peer bye")
        # Closing until the driver reported the loss, closed after (a server may
        # close its TCP end at once after its echo: RFC 6455 7.1.1).
        closed = bool(recorder.lost)
        with pytest.raises(ConnectionError) as caught:
            recorder.transport.write("{}", False)
        assert isinstance(caught.value, TransportClosing) is not closed
        await eventually(lambda: recorder.lost)
        assert recorder.lost == [(4001, "peer bye")]


async def test_a_sender_flooding_a_congested_socket_still_reads_its_replies(transport: str) -> None:
    """Reading pauses while the write buffer is full; resumed, it must get its turn.

    The senders never yield but to a full buffer, so they fill it again (and
    pause reading again) in the very step in which reading resumed.
    """
    notes = 0

    def note(ctx: wyre.Context) -> None:
        nonlocal notes
        notes += 1

    server = wyre.Server(transport=transport)
    server.on("message", "note", note)
    server.on("request", "count", lambda ctx: {"count": notes})
    await server.listen(port=0, host="127.0.0.1")
    client = wyre.Client(transport=transport, write_limit=16 * KB)
    running = True
    try:
        conn = await client.connect(f"ws://127.0.0.1:{server.port}")

        async def flood() -> None:
            with contextlib.suppress(wyre.ConnectionClosed):
                while running:
                    await conn.send({"type": "note", "pad": "x" * 100})

        floods = [asyncio.create_task(flood()) for _ in range(10)]
        await eventually(lambda: notes > 10_000, timeout=20)
        for _ in range(3):
            reply = await asyncio.wait_for(conn.request({"type": "count"}), seconds(10))
            assert reply.message["count"] > 0
        running = False
        await asyncio.wait_for(asyncio.gather(*floods), seconds(10))
    finally:
        running = False
        async with asyncio.timeout(seconds(15)):
            await client.close()
            await server.close(grace=0)
