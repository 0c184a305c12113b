"""wyre: request/reply messaging over WebSocket, for asyncio.

Either side of a connection can ``send`` a message, or send a ``request`` and
get back exactly one reply or error, with any number of partial replies
streamed before it. Handlers are routed by event and by the message's type.
The wire format is the original wyre's (``docs/protocol.md``), so JavaScript
wyre peers interoperate.
"""

from .backplane.redis import RedisBackplane
from .browser import client_script
from .client import Client
from .config import Options
from .connection import Connection
from .context import Context
from .exceptions import (
    BackplaneError,
    CodecError,
    ConnectError,
    ConnectionClosed,
    HandshakeRefused,
    LimitExceeded,
    LocalProtocolError,
    NoSuchConnection,
    ProtocolError,
    Reject,
    RemoteProtocolError,
    RequestError,
    RequestTimeout,
    WyreError,
)
from .handshake import Handshake
from .peer import Peer
from .protocol import Codec, Direction
from .request import Delivery, Request
from .server import Server

__version__ = "0.1.0"

__all__ = [
    "BackplaneError",
    "Client",
    "Codec",
    "CodecError",
    "ConnectError",
    "Connection",
    "ConnectionClosed",
    "Context",
    "Delivery",
    "Direction",
    "Handshake",
    "HandshakeRefused",
    "LimitExceeded",
    "LocalProtocolError",
    "NoSuchConnection",
    "Options",
    "Peer",
    "ProtocolError",
    "RedisBackplane",
    "Reject",
    "RemoteProtocolError",
    "Request",
    "RequestError",
    "RequestTimeout",
    "Server",
    "WyreError",
    "__version__",
    "client_script",
]
