"""The Client: opens connections to a wyre server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from .connection import Connection
from .endpoint import Endpoint
from .protocol.negotiation import offer
from .transports import driver

if TYPE_CHECKING:
    import ssl as ssl_module

__all__ = ["Client"]


class Client(Endpoint):
    """A wyre client. Options: see :class:`~wyre.config.Options`.

    ::

        async with wyre.Client() as client:
            conn = await client.connect("ws://localhost:8765")
            reply = await conn.request({"type": "greet", "name": "Ada"})
            print(reply.message["text"])

    Handlers registered with :meth:`on` serve requests and messages that the
    server sends to this client, exactly as on a server.
    """

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
        receiver = await driver(self.options.transport).connect(
            self.options,
            self.attach,
            url,
            subprotocols=offer(application, self.options.extensions, self.options.speaks_msgpack),
            ssl=ssl,
            headers=pairs,
        )
        assert isinstance(receiver, Connection)
        if self.msgpack_envelope is not None and receiver.codec is not self.msgpack_envelope.codec:
            self.reporter.log.debug(
                "the server did not agree on MessagePack (subprotocol %s): JSON on this connection",
                receiver.subprotocol,
                connection=receiver,
            )
        return receiver

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close every connection of this client (each bounded by close_timeout)."""
        connections = list(self.connections.values())
        if connections:
            await asyncio.gather(*(c.close(code, reason) for c in connections))
        await self._settle_tasks(self.options.close_timeout)
