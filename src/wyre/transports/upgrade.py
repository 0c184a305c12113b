"""The HTTP side of a server's opening handshake, shared by the drivers.

Both socket drivers read the upgrade request with websockets' Sans-I/O
parser, so they check it the same way and answer a bad one with the same
status; these helpers turn what the parser gives into wyre's terms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from websockets.datastructures import Headers
from websockets.exceptions import InvalidMessage
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from ..browser import client_script_body
from ..handshake import Handshake
from ..protocol.negotiation import select

if TYPE_CHECKING:
    from ..config import Options

__all__ = [
    "VERSION_HEADERS",
    "client_script_response",
    "handshake_of",
    "reason_of",
    "refusal",
    "remote_address",
    "subprotocol_selector",
    "unreadable",
    "unsupported_version",
]

VERSION_HEADERS = {"Sec-WebSocket-Version": "13"}
"""Sent with a 426 refusal: the one WebSocket version servers speak (RFC 6455 4.4)."""


def subprotocol_selector(
    options: Options,
) -> Callable[[ServerProtocol, Sequence[Subprotocol]], Subprotocol | None]:
    """websockets' ``select_subprotocol`` hook for a server with these options."""
    accepted, extensions, msgpack = options.subprotocols, options.extensions, options.speaks_msgpack

    def select_subprotocol(_: ServerProtocol, offered: Sequence[Subprotocol]) -> Subprotocol | None:
        chosen = select(offered, accepted, extensions, msgpack)
        return None if chosen is None else Subprotocol(chosen)

    return select_subprotocol


def unsupported_version(request: Request) -> bool:
    """Whether the client asks for a WebSocket version other than 13 (answer 426)."""
    return request.headers.get_all("Sec-WebSocket-Version") != ["13"]


def remote_address(peername: Any) -> tuple[str, int] | None:
    """``(host, port)`` of a socket's peer; an IPv4-mapped IPv6 host as plain IPv4.

    A dual-stack listening socket reports IPv4 clients as ``::ffff:a.b.c.d``;
    limits per address and logs must see the same host either way.
    """
    if not isinstance(peername, tuple) or len(peername) < 2:
        return None
    host = str(peername[0])
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return host, int(peername[1])


def handshake_of(request: Request, peer: tuple[str, int] | None) -> Handshake:
    """The :class:`~wyre.Handshake` of a parsed upgrade request."""
    path, _, query = request.path.partition("?")
    return Handshake(
        path=path, query_string=query, headers=request.headers.raw_items(), remote_address=peer
    )


def unreadable(exc: Exception) -> tuple[int, str]:
    """The status and reason for a request the parser could not read.

    websockets (from version 17) tells an over-long request line (414) and
    oversized headers (431) apart; anything else is 400.
    """
    if isinstance(exc, InvalidMessage):
        return 400, "not a valid HTTP request"
    return (414 if type(exc).__name__ == "RequestLineTooLong" else 431), str(exc)


def reason_of(response: Response) -> str:
    """The text body of an HTTP response, stripped (the reason of a refusal)."""
    return response.body.decode(errors="replace").strip() if response.body else ""


def refusal(status: int, reason: str, headers: dict[str, str] | None = None) -> bytes:
    """A complete HTTP error response with ``reason`` as its text body (the connection closes)."""
    body = (reason.rstrip("\n") + "\n").encode()
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    head = (
        f"HTTP/1.1 {status} {phrase}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        + "\r\n"
    )
    return head.encode() + body


def client_script_response(request: Request, path: str | None) -> Response | None:
    """The answer to a plain HTTP GET for the JavaScript client at ``path``, else None.

    None when ``path`` is None (the option is off), when the request asks for
    another path, or when it is a WebSocket upgrade: those keep their usual
    answers. The module is sent with an ``ETag``; a request whose
    ``If-None-Match`` carries it gets 304 without a body. The connection closes
    after the response, as after every plain HTTP answer of a wyre server.
    """
    if path is None or request.path.partition("?")[0] != path:
        return None
    if "websocket" in request.headers.get("Upgrade", "").lower():
        return None
    body, etag = client_script_body()
    headers = Headers(
        {
            "Content-Type": "text/javascript; charset=utf-8",
            "ETag": etag,
            "Cache-Control": "no-cache",
            # A public file: pages on other origins may import it as a module.
            "Access-Control-Allow-Origin": "*",
            "Connection": "close",
        }
    )
    tags = {
        t.strip().removeprefix("W/") for t in request.headers.get("If-None-Match", "").split(",")
    }
    if etag in tags or "*" in tags:
        return Response(304, "Not Modified", headers)
    headers["Content-Length"] = str(len(body))
    return Response(200, "OK", headers, body)
