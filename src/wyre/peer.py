"""A handle on a connection wherever it lives: this process or another node of the cluster."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .exceptions import NoSuchConnection

if TYPE_CHECKING:
    from .connection import Connection
    from .hub import Hub
    from .request import Callback, Request
    from .server import Server

__all__ = ["Peer"]

_UNSET: Any = object()


class Peer:
    """The handle of a connection by id, made by :meth:`wyre.Server.peer` without any I/O.

    It works the same whether the connection is open on this server (then
    nothing crosses the backplane) or on another node of the cluster::

        peer = server.peer(connection_id)
        await peer.send({"type": "notice", "text": "hi"})
        reply = await peer.request({"type": "confirm"}, timeout=10)
        await peer.close(4000, "kicked")

    An id that no live node holds raises :class:`~wyre.NoSuchConnection`
    promptly (from the awaitable).
    """

    __slots__ = ("_server", "id")

    def __init__(self, server: Server, connection_id: str) -> None:
        self._server = server
        self.id = connection_id

    @property
    def local(self) -> Connection | None:
        """The connection, if it is open on this server; else None."""
        return self._server.connections.get(self.id)

    # timeout= as on Connection.send, whose signature this mirrors
    async def send(
        self,
        message: Any,
        *,
        ack: bool = False,
        timeout: Any = _UNSET,  # noqa: ASYNC109
    ) -> None:
        """Send a message (a dict) to the connection.

        Without ``ack`` it is at most once across nodes: it returns once the
        message is handed to the connection (here) or to the backplane. With
        ``ack`` it returns when the connection's client acknowledged it
        (``wyre.v2`` clients; others when it was written), or raises
        :class:`~wyre.RequestTimeout` after ``timeout`` (default: the
        ``request_timeout`` option).

        Raises:
            NoSuchConnection, ConnectionClosed, RequestTimeout, BackplaneError,
            LimitExceeded: as the case may be.
        """
        connection = self.local
        timeout = self._timeout(timeout)
        if connection is not None:
            if ack:
                await connection.send(message, ack=True, timeout=timeout)
            else:
                await connection.send(message)
            return
        hub = self._hub()
        await hub.send(self, message, ack, timeout)

    def request(
        self,
        message: Any,
        callback: Callback | None = None,
        *,
        timeout: Any = _UNSET,
    ) -> Request:
        """Send a request; the same :class:`~wyre.Request` as :meth:`Connection.request
        <wyre.Connection.request>` gives: await it for the reply's context, iterate
        ``partials()``, cancel it (the cancellation reaches the remote handler).

        A reply from another node is a :class:`~wyre.Context` whose
        ``connection`` is this Peer.
        """
        connection = self.local
        timeout = self._timeout(timeout)
        if connection is not None:
            return connection.request(message, callback=callback, timeout=timeout)
        return self._server.hub.request(self, message, callback, timeout)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with this code and reason; returns once it is closed.

        Raises:
            NoSuchConnection, BackplaneError, RequestTimeout: as the case may be.
        """
        connection = self.local
        if connection is not None:
            await connection.close(code, reason)
            return
        hub = self._hub()
        await hub.close(self, code, reason, self._server.options.close_timeout)

    def _hub(self) -> Hub:
        hub = self._server.hub
        if hub.backplane is None:
            hub._check_alone("peer()")
            raise NoSuchConnection(self.id)
        return hub

    def _timeout(self, timeout: Any) -> float | None:
        if timeout is _UNSET:
            return self._server.options.request_timeout
        return None if timeout is None else float(timeout)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Peer) and other.id == self.id and other._server is self._server

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<Peer {self.id}>"
