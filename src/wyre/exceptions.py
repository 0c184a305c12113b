"""Every exception wyre raises, under one root.

::

    WyreError
    ├── ConnectError            no socket: nothing listening, or the handshake was refused (.status)
    ├── Reject                  raised by an ``authenticate`` hook: refuse the handshake (.status)
    ├── HandshakeRefused        reported to a server's ``error`` event: a handshake it refused
    ├── ConnectionClosed        the connection is gone (.code, .reason); pending work fails with it
    ├── RequestError            the peer answered a request with an ERROR reply (.context)
    ├── RequestTimeout          no reply within the timeout; also a TimeoutError
    ├── LimitExceeded           a configured limit refused the operation; also a RuntimeError
    ├── NoSuchConnection        server.peer(id): no live node holds that connection; a LookupError
    ├── BackplaneError          the cluster's backplane (Redis) is unreachable; a ConnectionError
    └── ProtocolError           a frame or a call broke the protocol (.preview)
        ├── LocalProtocolError  this side misused the API (e.g. a message that is not an object)
        ├── RemoteProtocolError the peer sent something that cannot be handled
        └── CodecError          a frame could not be decoded or a message encoded

Errors about a frame received from the peer carry ``connection`` (the
:class:`~wyre.Connection` it arrived on, or ``None``) and ``preview`` (a short,
truncated rendering of the frame) so that the ``error`` event can say what and
where without holding on to a large payload.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .connection import Connection
    from .context import Context
    from .handshake import Handshake

__all__ = [
    "BackplaneError",
    "CodecError",
    "ConnectError",
    "ConnectionClosed",
    "HandshakeRefused",
    "LimitExceeded",
    "LocalProtocolError",
    "NoSuchConnection",
    "ProtocolError",
    "Reject",
    "RemoteProtocolError",
    "RequestError",
    "RequestTimeout",
    "WyreError",
]

PREVIEW_LIMIT = 120


def preview(frame: object, limit: int = PREVIEW_LIMIT) -> str:
    """Render a frame for an error message, cut to ``limit`` characters.

    Frames come from the peer and may be huge or binary; an error must say what
    arrived without copying all of it into logs.
    """
    text = repr(frame) if not isinstance(frame, str) else frame
    if len(text) > limit:
        return text[:limit] + f"... ({len(text)} chars)"
    return text


class WyreError(Exception):
    """Root of every exception raised by wyre."""

    connection: Connection | None = None


class ConnectError(WyreError):
    """The connection could not be opened: nothing listening, refused or timed out.

    ``status`` is the HTTP status the server answered the handshake with,
    when it answered with something other than 101, and ``reason`` the body
    of that answer (what the server said, e.g. ``"origin not allowed"``);
    otherwise None and ``""``.
    """

    def __init__(self, *args: object, status: int | None = None, reason: str = "") -> None:
        super().__init__(*args)
        self.status = status
        self.reason = reason


class Reject(WyreError):
    """Refuse a connection from an ``authenticate`` hook: the client gets this HTTP status.

    ::

        def authenticate(handshake):
            user = users.get(handshake.headers.get("Authorization"))
            if user is None:
                raise wyre.Reject(401, "who are you?")
            return user

    The socket never opens; the client's ``connect()`` raises
    :class:`ConnectError` with ``.status`` and ``.reason``. ``reason`` is
    sent as the response body: do not put secrets in it.
    """

    def __init__(self, status: int, reason: str = "") -> None:
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"Reject needs an HTTP error status (400-599), not {status!r}")
        super().__init__(f"HTTP {status}" + (f": {reason}" if reason else ""))
        self.status = status
        self.reason = reason


class HandshakeRefused(WyreError):
    """A server refused a handshake for a reason its operator should hear of.

    Reported to the ``error`` event (never raised to a caller): a malformed
    or oversized upgrade request, an origin not allowed, a connection limit,
    an ``authenticate`` hook that failed (``__cause__``) or took longer than
    ``open_timeout``. A plain :class:`Reject` from the hook is the
    application's own decision and is not reported.

    Attributes:
        status: the HTTP status sent to the client.
        reason: why, as sent in the response body.
        handshake: the :class:`~wyre.Handshake`, or None when the request
            could not be read.
        remote_address: the peer's ``(host, port)``, when known.
    """

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        handshake: Handshake | None = None,
        remote_address: tuple[str, int] | None = None,
    ) -> None:
        where = f" from {remote_address[0]}" if remote_address else ""
        super().__init__(f"handshake{where} refused with HTTP {status}: {reason}")
        self.status = status
        self.reason = reason
        self.handshake = handshake
        self.remote_address = remote_address


class ConnectionClosed(WyreError):
    """The connection closed; what pending requests and later sends fail with.

    ``code`` and ``reason`` are the WebSocket close code and reason, as received
    from the peer or, for a connection lost without a closing handshake, 1006.
    The connection cannot be used again.
    """

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        text = f"connection closed with code {self.code}"
        return f"{text}: {self.reason}" if self.reason else text


class RequestError(WyreError):
    """The peer answered a request with an ERROR reply.

    ``context`` is the error's message context; its ``message`` is the object
    the peer sent (by convention ``{"error": name, "message": text}`` when the
    peer's handler raised).
    """

    def __init__(self, context: Context) -> None:
        message = context.message
        detail: Any = message
        if isinstance(message, dict):
            detail = message.get("message") or message.get("error") or message
        super().__init__(f"request failed: {detail}")
        self.context = context
        self.connection = context.connection


class RequestTimeout(WyreError, TimeoutError):
    """No reply came within the request's timeout.

    The key is forgotten (a late reply is dropped) and, when the peer speaks
    ``wyre.v2``, the peer is told to cancel its handler.
    """


class LimitExceeded(WyreError, RuntimeError):
    """A configured limit refused the operation (e.g. too many pending requests).

    Nothing was sent; the connection is still usable.
    """


class NoSuchConnection(WyreError, LookupError):
    """No live node holds a connection with this id (:meth:`wyre.Server.peer`).

    Raised promptly (one look-up), not after a timeout: the connection
    closed, never existed, or lived on a node that died.
    """

    def __init__(self, connection_id: str) -> None:
        super().__init__(f"no live connection with id {connection_id!r}")
        self.connection_id = connection_id


class BackplaneError(WyreError, ConnectionError):
    """The cluster's backplane cannot be reached; cluster-wide operations fail fast with it.

    Local traffic is not affected. The server reconnects by itself (with
    backoff) and re-announces its connections and groups once the backplane
    is back.
    """


class ProtocolError(WyreError):
    """A frame or a call broke the protocol."""

    def __init__(self, message: str, *, frame: object = None) -> None:
        super().__init__(message)
        self.preview = "" if frame is None else preview(frame)

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}: {self.preview}" if self.preview else text


class LocalProtocolError(ProtocolError):
    """This side misused the API; nothing was sent."""


class RemoteProtocolError(ProtocolError):
    """The peer sent a frame that cannot be handled; the connection goes on."""


class CodecError(ProtocolError):
    """A frame could not be decoded, or a message could not be encoded."""
