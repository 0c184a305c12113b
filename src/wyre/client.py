"""The Client: opens connections to a wyre server."""

from __future__ import annotations

import asyncio

from .connection import Connection
from .endpoint import Endpoint
from .protocol import SUBPROTOCOL
from .transports import load

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

    async def connect(self, url: str, protocols: list[str] | str | None = None) -> Connection:
        """Open a connection; returns once the WebSocket handshake is done.

        ``protocols`` are application subprotocols to offer; ``wyre.v2`` is
        offered after them unless the ``extensions`` option is off.

        Raises:
            ConnectError: nothing listening, the handshake was refused, or it
                took longer than ``open_timeout``.
        """
        offered = [protocols] if isinstance(protocols, str) else list(protocols or ())
        if self.options.extensions and SUBPROTOCOL not in offered:
            offered.append(SUBPROTOCOL)
        driver = load(self.options.transport)
        connection: Connection = await driver.connect(self, url, offered)
        return connection

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close every connection of this client (each bounded by close_timeout)."""
        connections = list(self.connections.values())
        if connections:
            await asyncio.gather(*(c.close(code, reason) for c in connections))
        await self._settle_tasks(self.options.close_timeout)
