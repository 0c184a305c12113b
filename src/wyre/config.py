"""Options shared by :class:`~wyre.Server` and :class:`~wyre.Client`.

Every wait on the peer has a finite default; ``None`` means "no limit" and is
only ever used when asked for.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .protocol import Codec, default_codec, json_codec, msgpack_codec, orjson_codec
from .transports import known as known_transport

if TYPE_CHECKING:
    from .backplane import Backplane
    from .handshake import Handshake
    from .transport import Driver

__all__ = ["LOG_LEVELS", "Options", "Reconnect", "TransportName", "log_level"]

TransportName = Literal["websockets", "picows"]

SILLY = 5
"""The original's most verbose level, below ``logging.DEBUG``."""

LOG_LEVELS: dict[str | int, int] = {
    "none": logging.CRITICAL + 10,
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "silly": SILLY,
    0: logging.CRITICAL + 10,
    1: logging.ERROR,
    2: logging.WARNING,
    3: logging.INFO,
    4: logging.DEBUG,
    5: SILLY,
}
"""The original's level names and numbers, mapped to :mod:`logging` levels."""


def log_level(level: str | int) -> int:
    """Translate an original level name or number (0-5) to a logging level.

    Raises:
        ValueError: for anything else.
    """
    key = level.lower() if isinstance(level, str) else level
    try:
        return LOG_LEVELS[key]
    except KeyError:
        raise ValueError(
            f"unknown log level {level!r}: use none, error, warn, info, debug, silly or 0-5"
        ) from None


@dataclass(frozen=True, kw_only=True, slots=True)
class Options:
    """Configuration of an endpoint; pass these as keyword arguments.

    Timeouts are in seconds. Sizes are in bytes.
    """

    log_level: str | int | None = None
    """The original's level names: this endpoint's own level (the shared logger's
    level is not changed). None: follow ``logger``'s level. A logging handler
    must still be configured (e.g. ``logging.basicConfig()``) to see anything."""
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("wyre"))
    """Where the endpoint logs; the default is the ``wyre`` logger. Records about one
    connection carry its id as ``connection_id``."""
    transport: TransportName | str | Driver = "websockets"
    """``websockets`` (default), ``picows`` (the ``fast`` extra), a name given to
    :func:`wyre.transports.register`, or a :class:`~wyre.transport.Driver` object."""
    codec: Codec | Literal["json", "orjson", "msgpack"] | None = None
    """How messages are encoded: ``"json"`` (standard library), ``"orjson"``,
    a :class:`~wyre.Codec`, or None: orjson when installed, else json.
    ``"msgpack"`` (the ``msgpack`` extra) is negotiated per connection: binary
    MessagePack frames with every peer that agrees on ``wyre.v2.msgpack`` in the
    handshake, and the default JSON codec with the others, so a server with it
    serves JSON and MessagePack clients at once and a client with it still
    connects to a JSON-only server. It needs ``extensions`` (it is a form of
    ``wyre.v2``)."""
    request_timeout: float | None = 30.0
    """Default time to wait for a request's reply (or a send's acknowledgement)."""
    open_timeout: float | None = 10.0
    """Time allowed for the opening handshake: a client's connect(), and on a server
    each accepted socket (from the TCP accept to the upgrade; then it is dropped)."""
    close_timeout: float | None = 10.0
    """Time allowed for a closing handshake before the socket is dropped."""
    shutdown_grace: float = 10.0
    """Time ``Server.close()`` lets running request handlers finish."""
    extensions: bool = True
    """Offer/accept the ``wyre.v2`` subprotocol (acknowledgements, cancellation)."""
    max_message_size: int | None = 1 << 20
    """Largest frame accepted; a larger one closes the connection with 1009."""
    max_pending_requests: int = 1024
    """Outgoing requests awaiting a reply, per connection; past it LimitExceeded.
    Also the most incoming requests left unanswered at once (a plain handler may
    keep one open to answer later); past it a request gets an ERROR back."""
    max_running_handlers: int = 128
    """Coroutine handlers (requests and messages) running at once per connection;
    past it new ones wait their turn in a queue (reading goes on, so the replies
    and cancellations running handlers wait for still arrive)."""
    max_queued_handlers: int = 1024
    """Coroutine handlers waiting for a slot, per connection; past it the connection
    stops reading (TCP backpressure) until the queue is half empty."""
    max_buffered_partials: int = 1024
    """Unread partial replies per request. Past it, while they are being read,
    the connection stops reading until the reader caught up; while nobody reads
    them, the oldest are dropped (counted in ``Request.dropped_partials``)."""
    max_bad_frames: int | None = 100
    """Bad frames a peer may send per 10 s (a leaky bucket) before it is
    disconnected with 1008. None: no limit."""
    write_limit: int = 256 * 1024
    """Write buffer high-water mark: above it, sends wait and reading pauses."""
    write_timeout: float | None = 30.0
    """How long a peer may leave the write buffer full before it is dropped."""
    ping_interval: float | None = 20.0
    """Keepalive ping period."""
    ping_timeout: float | None = 20.0
    """Time a pong may take before the peer is considered dead (close code 1011)."""
    ping_base_peers: bool = False
    """Ping peers that speak only the original protocol too. Off by default: the
    original wyre on ``ws`` 0.8 crashes on a ping. Such peers are still detected
    dead by TCP keepalive (after about ``ping_interval`` + 30 s) and, when they
    stop reading, by ``write_timeout``."""
    compression: bool = False
    """Negotiate permessage-deflate (off by default, as in the original)."""
    debug_errors: bool = False
    """Put the traceback into the ERROR reply sent when a handler raises."""
    subprotocols: tuple[str, ...] = ()
    """Server: application subprotocols it accepts, preferred over ``wyre.v2``."""
    authenticate: Callable[[Handshake], Any] | None = None
    """Server: called with each :class:`~wyre.Handshake` before its socket opens
    (a plain or coroutine function, bounded by ``open_timeout``). It returns the
    connection's ``identity`` or raises :class:`~wyre.Reject` (status, reason);
    anything else it raises refuses with 500."""
    origins: tuple[str | None, ...] | None = None
    """Server: the ``Origin`` values allowed (None in the list admits clients
    that send none, i.e. not browsers); others get 403. None: every origin.
    Set it whenever browsers connect: a page on any site can otherwise open a
    socket to this server with its visitor's cookies (cross-site WebSocket
    hijacking)."""
    max_connections: int | None = None
    """Server: most connections open (or being admitted) at once; past it, 503."""
    max_connections_per_ip: int | None = None
    """Server: most connections from one remote address; past it, 503."""
    reuse_port: bool = False
    """Server: listen with ``SO_REUSEPORT``, so that several processes share one port
    and the kernel spreads connections over them (what ``wyre serve --workers``
    does). Linux, BSD and macOS only."""
    reconnect: bool | Mapping[str, float | int | None] = False
    """Client: when a connection's socket is lost (not closed by this side, nor by the
    server with 1000 or 1008), open a new one for the same Connection object, with
    exponential backoff and full jitter. True, or a dict of ``initial_delay``
    (0.5 s), ``max_delay`` (30 s) and ``max_attempts`` (None: for ever). What was
    pending on the lost socket fails with ConnectionClosed (never replayed); sends
    and requests made meanwhile wait for the new socket within their timeout.
    Events: ``reconnecting`` (attempt, delay, connection), ``reconnected``
    (connection)."""
    client_script: str | None = None
    """Server: answer a plain HTTP ``GET`` for this path (e.g. ``"/wyre.js"``) on the
    WebSocket port with the JavaScript client module (with an ``ETag``; 304 when
    it matches). None: off, and such a request gets 426 like any plain request."""
    backplane: str | Backplane | None = None
    """Server: join a cluster of servers through this engine: a ``redis://`` URL
    or a :class:`~wyre.RedisBackplane`. Groups, broadcast, :meth:`~wyre.Server.peer`
    and presence then span every node. None: this process alone."""

    def __post_init__(self) -> None:
        if isinstance(self.transport, str) and not known_transport(self.transport):
            raise ValueError(
                f"unknown transport {self.transport!r}: use websockets, picows, "
                "a registered name or a driver object"
            )
        for name in (
            "max_pending_requests",
            "max_running_handlers",
            "max_queued_handlers",
            "max_buffered_partials",
            "write_limit",
        ):
            _check_count(name, getattr(self, name))
        if self.max_message_size is not None:
            _check_count("max_message_size", self.max_message_size)
        for name in ("max_bad_frames", "max_connections", "max_connections_per_ip"):
            if getattr(self, name) is not None:
                _check_count(name, getattr(self, name))
        for name in (
            "request_timeout",
            "open_timeout",
            "close_timeout",
            "write_timeout",
            "ping_interval",
            "ping_timeout",
        ):
            _check_seconds(name, getattr(self, name))
        _check_seconds("shutdown_grace", self.shutdown_grace, allow_none=False, allow_zero=True)
        if self.log_level is not None:
            log_level(self.log_level)  # raises for an unknown level
        if not isinstance(self.logger, logging.Logger):
            raise TypeError(f"logger must be a logging.Logger, not {type(self.logger).__name__}")
        if self.codec not in (None, "json", "orjson", "msgpack") and not isinstance(
            self.codec, Codec
        ):
            raise ValueError(
                f"unknown codec {self.codec!r}: use json, orjson, msgpack or a wyre.Codec"
            )
        if self.codec == "msgpack" and not self.extensions:
            raise ValueError(
                "codec='msgpack' is negotiated as part of wyre.v2: it needs extensions=True"
            )
        if isinstance(self.subprotocols, str) or not all(
            isinstance(p, str) for p in self.subprotocols
        ):
            raise TypeError("subprotocols must be a sequence of strings")
        if isinstance(self.backplane, str) and not self.backplane.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ValueError(f"unknown backplane {self.backplane!r}: use a redis:// URL")
        if not isinstance(self.reconnect, bool):
            if not isinstance(self.reconnect, Mapping):
                raise TypeError("reconnect must be True, False or a dict of settings")
            unknown = set(self.reconnect) - {"initial_delay", "max_delay", "max_attempts"}
            if unknown:
                raise ValueError(
                    f"unknown reconnect setting {sorted(unknown)[0]!r}: "
                    "use initial_delay, max_delay, max_attempts"
                )
            self.reconnect_policy  # noqa: B018 (validates the values)
        if self.client_script is not None and (
            not isinstance(self.client_script, str) or not self.client_script.startswith("/")
        ):
            raise ValueError(
                f"client_script must be a path such as '/wyre.js', not {self.client_script!r}"
            )
        if self.authenticate is not None and not callable(self.authenticate):
            raise TypeError("authenticate must be a function of a wyre.Handshake")
        if self.origins is not None:
            if isinstance(self.origins, str) or not all(
                o is None or isinstance(o, str) for o in self.origins
            ):
                raise TypeError("origins must be a list of strings (or None entries)")
            object.__setattr__(self, "origins", tuple(self.origins))

    @property
    def reconnect_policy(self) -> Reconnect | None:
        """``reconnect`` as a :class:`Reconnect`, or None when it is off."""
        if self.reconnect is False:
            return None
        if self.reconnect is True:
            return Reconnect()
        return Reconnect(**self.reconnect)  # type: ignore[arg-type]

    @property
    def level(self) -> int | None:
        """``log_level`` as a :mod:`logging` level, or None."""
        return None if self.log_level is None else log_level(self.log_level)

    @property
    def speaks_msgpack(self) -> bool:
        """Whether connections may agree on MessagePack (``wyre.v2.msgpack``) in the handshake."""
        return self.codec == "msgpack"

    def make_codec(self) -> Codec:
        """The codec of connections that did not agree on MessagePack: the JSON one.

        With ``codec="msgpack"`` that is the default JSON codec; the
        MessagePack one comes from :meth:`make_msgpack_codec`.

        Raises:
            ImportError: ``"orjson"`` was asked for and is not installed
                (the message says how to install it).
        """
        if isinstance(self.codec, Codec):
            return self.codec
        if self.codec == "json":
            return json_codec()
        if self.codec == "orjson":
            try:
                return orjson_codec()
            except ImportError as exc:
                raise ImportError(
                    "codec='orjson' needs the orjson package: pip install 'pywyre[fast]'",
                    name="orjson",
                ) from exc
        return default_codec()

    def make_msgpack_codec(self) -> Codec | None:
        """The codec of connections that agreed on MessagePack; None when it is not spoken.

        Raises:
            ImportError: ``"msgpack"`` was asked for and is not installed
                (the message says how to install it).
        """
        return msgpack_codec() if self.speaks_msgpack else None


@dataclass(frozen=True, slots=True)
class Reconnect:
    """How a client reconnects: the delay before attempt n is uniform in
    [0, min(max_delay, initial_delay * 2**(n-1))] ("full jitter", so that
    clients dropped together do not come back in step)."""

    initial_delay: float = 0.5
    max_delay: float = 30.0
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        _check_seconds("reconnect initial_delay", self.initial_delay)
        _check_seconds("reconnect max_delay", self.max_delay)
        if self.max_attempts is not None:
            _check_count("reconnect max_attempts", self.max_attempts)

    def delay(self, attempt: int) -> float:
        """The randomised delay before attempt ``attempt`` (from 1)."""
        ceiling = min(self.max_delay, self.initial_delay * 2 ** min(attempt - 1, 62))
        return random.uniform(0, ceiling)


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")


def _check_seconds(
    name: str, value: object, *, allow_none: bool = True, allow_zero: bool = False
) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero) or value != value:
        raise ValueError(f"{name} must be a positive number of seconds, not {value}")
