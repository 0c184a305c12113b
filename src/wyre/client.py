"""The Client: opens connections to a wyre server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .connection import Connection
from .endpoint import Endpoint
from .exceptions import ConnectError, ConnectionClosed
from .protocol.negotiation import offer
from .transports import driver

if TYPE_CHECKING:
    import ssl as ssl_module

    from .transport import OnOpen, Receiver

__all__ = ["Client"]


@dataclass(frozen=True, slots=True)
class _Target:
    """Where a connection was opened, to open it again (reconnect)."""

    url: str
    subprotocols: list[str]
    headers: list[tuple[str, str]]
    ssl: ssl_module.SSLContext | None


class Client(Endpoint):
    """A wyre client. Options: see :class:`~wyre.config.Options`.

    ::

        async with wyre.Client() as client:
            conn = await client.connect("ws://localhost:8765")
            reply = await conn.request({"type": "greet", "name": "Ada"})
            print(reply.message["text"])

    Handlers registered with :meth:`on` serve requests and messages that the
    server sends to this client, exactly as on a server.

    With the ``reconnect`` option, a connection whose socket is lost gets a
    new one, and the same :class:`~wyre.Connection` object goes on (see
    :attr:`Connection.reconnecting <wyre.Connection.reconnecting>`).
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._policy = self.options.reconnect_policy
        self._targets: dict[str, _Target] = {}
        self._reconnects: dict[str, asyncio.Future[Any]] = {}
        self._closing = False

    async def connect(
        self,
        url: str,
        protocols: list[str] | str | None = None,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        ssl: ssl_module.SSLContext | None = None,
    ) -> Connection:
        """Open a connection; returns once the WebSocket handshake is done.

        ``protocols`` are application subprotocols to offer; ``wyre.v2`` is
        offered after them unless the ``extensions`` option is off, and
        before it ``wyre.v2.msgpack`` with ``codec="msgpack"`` (a server that
        does not select it gets JSON on this connection).
        ``headers`` are added to the upgrade request: credentials for the
        server's ``authenticate`` hook, e.g.
        ``{"Authorization": "Bearer ..."}``. ``ssl`` is the TLS context for a
        ``wss://`` URL (default: the system's trusted certificates).

        Raises:
            ConnectError: nothing listening, the handshake was refused (its
                ``.status`` and ``.reason`` say how), or it took longer than
                ``open_timeout``.
        """
        application = [protocols] if isinstance(protocols, str) else list(protocols or ())
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers or ())
        for name, value in pairs:
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError("headers must map strings to strings")
            if any(c in name + value for c in "\r\n\0"):
                raise ValueError(f"header {name!r} contains a line break or NUL")
        target = _Target(
            url,
            offer(application, self.options.extensions, self.options.speaks_msgpack),
            pairs,
            ssl,
        )
        receiver = await self._open(target, self.attach)
        assert isinstance(receiver, Connection)
        if self._policy is not None:
            self._targets[receiver.id] = target
            receiver._reviver = self
        if self.msgpack_envelope is not None and receiver.codec is not self.msgpack_envelope.codec:
            self.reporter.log.debug(
                "the server did not agree on MessagePack (subprotocol %s): JSON on this connection",
                receiver.subprotocol,
                connection=receiver,
            )
        return receiver

    async def _open(self, target: _Target, on_open: OnOpen) -> Receiver:
        return await driver(self.options.transport).connect(
            self.options,
            on_open,
            target.url,
            subprotocols=target.subprotocols,
            ssl=target.ssl,
            headers=target.headers,
        )

    # -- reconnection --------------------------------------------------------------

    def _revive(self, connection: Connection) -> bool:
        """A connection lost its socket: start reconnecting it, unless it ended for good.

        Called by the Connection; True when a reconnection started. A close
        from the server with 1000 (normal) or 1008 (policy) is deliberate,
        and is not undone.
        """
        target = self._targets.get(connection.id)
        if self._policy is None or target is None or self._closing:
            return False
        if connection.close_code in (1000, 1008):
            return False
        connection._reconnecting = asyncio.get_running_loop().create_future()
        self._reconnects[connection.id] = self.spawn(self._reconnect(connection, target))
        return True

    async def _reconnect(self, connection: Connection, target: _Target) -> None:
        policy = self._policy
        assert policy is not None
        attempt = 0
        while policy.max_attempts is None or attempt < policy.max_attempts:
            attempt += 1
            delay = policy.delay(attempt)
            self._emit("reconnecting", attempt, delay, connection)
            await asyncio.sleep(delay)
            try:
                await self._open(target, lambda transport: connection._rebind(transport))
            except ConnectError as exc:
                self.reporter.log.debug("reconnection %d failed: %s", attempt, exc)
                continue
            waiter, connection._reconnecting = connection._reconnecting, None
            self._reconnects.pop(connection.id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            self.reporter.log.debug(
                "reconnected after %d attempt(s)", attempt, connection=connection
            )
            self._emit("reconnected", connection)
            return
        self._reconnects.pop(connection.id, None)
        self._end(connection, connection.close_code or 1006, connection.close_reason or "")

    def _give_up(self, connection: Connection, code: int, reason: str) -> None:
        """The application closed a connection that was reconnecting."""
        task = self._reconnects.pop(connection.id, None)
        if task is not None:
            task.cancel()
        self._end(connection, code, reason)

    def _end(self, connection: Connection, code: int, reason: str) -> None:
        """A reconnecting connection is over: what waits for it fails; ``close`` is emitted."""
        waiter, connection._reconnecting = connection._reconnecting, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionClosed(code, reason))
            waiter.exception()  # retrieved: the waiters get it
        self._targets.pop(connection.id, None)
        connection.close_code, connection.close_reason = code, reason
        self.detach(connection)

    def _emit(self, event: str, *args: Any) -> None:
        handler = self.router.untyped.get(event)
        if handler is not None:
            self.reporter.call(handler, *args)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close every connection of this client (each bounded by close_timeout)."""
        self._closing = True
        for connection in list(self.connections.values()):
            if connection.reconnecting:
                self._give_up(connection, code, reason)
        connections = list(self.connections.values())
        if connections:
            await asyncio.gather(*(c.close(code, reason) for c in connections))
        await self._settle_tasks(self.options.close_timeout)
        self._closing = False
