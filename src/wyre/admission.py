"""Who may connect: the server's decision on each handshake, before a socket opens.

:class:`Admission` is the :class:`~wyre.transport.Gate` of a
:class:`~wyre.Server`; every transport (websockets, picows, ASGI) asks it
about every upgrade request, so the rules hold the same everywhere. In order:

1. a server that is shutting down refuses with 503;
2. ``origins``: an ``Origin`` not in the list gets 403 (a repeated one 400);
3. ``max_connections`` and ``max_connections_per_ip``: past them, 503;
4. ``authenticate(handshake)``: its return value is the connection's
   identity; :class:`~wyre.Reject` sends the status it carries; anything
   else it raises sends 500, and one that takes longer than
   ``open_timeout`` sends 503.

Refusals other than the application's own ``Reject`` are reported to the
``error`` event as :class:`~wyre.HandshakeRefused`: they are what an
operator needs to hear of (a misconfigured origin list, a full server, a
broken hook, malformed requests). Every refusal, ``Reject`` included, is
counted by status in :attr:`Admission.refused_by_status` for
:meth:`Server.stats() <wyre.Server.stats>`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any, NoReturn

from .exceptions import HandshakeRefused, Reject

if TYPE_CHECKING:
    from .config import Options
    from .connection import Connection
    from .handshake import Handshake
    from .reporting import Reporter

__all__ = ["Admission"]


class Admission:
    """The admission rules of one server, and its count of connections (open or opening).

    The server tells it of every connection that opens (:meth:`opened`) and
    closes (:meth:`closed`); a handshake being admitted counts against the
    limits too, so that a burst of handshakes cannot overshoot them.
    """

    __slots__ = (
        "_admitting",
        "_by_ip",
        "_open",
        "_options",
        "_origins",
        "_reporter",
        "closing",
        "refused_by_status",
    )

    def __init__(self, options: Options, reporter: Reporter) -> None:
        self._options = options
        self._reporter = reporter
        self._origins = None if options.origins is None else frozenset(options.origins)
        self._open = 0
        self._admitting = 0
        self._by_ip: Counter[str] = Counter()  # open and admitting, per remote host
        self.closing = False
        """Set while the server shuts down: every handshake gets 503."""
        self.refused_by_status: dict[int, int] = {}
        """Handshakes refused so far, by HTTP status (see :class:`~wyre.metrics.Stats`)."""

    # -- the Gate ----------------------------------------------------------

    async def admit(self, handshake: Handshake) -> Any:
        """Apply the rules to ``handshake``; returns the identity ``authenticate`` gave.

        Raises:
            Reject: refused, with the status and reason the client gets.
        """
        try:
            return await self._admit(handshake)
        except Reject as exc:
            self._count(exc.status)
            raise

    def refused(self, status: int, reason: str, remote_address: tuple[str, int] | None) -> None:
        """A transport refused a request it could not read (malformed, oversized...)."""
        self._count(status)
        self._reporter.report(
            HandshakeRefused(status, reason, remote_address=remote_address),
            kind="handshake refused",
        )

    async def _admit(self, handshake: Handshake) -> Any:
        if self.closing:
            raise Reject(503, "the server is shutting down")
        self._check_origin(handshake)
        options = self._options
        host = handshake.remote_address[0] if handshake.remote_address else None
        limit = options.max_connections
        if limit is not None and self._open + self._admitting >= limit:
            self._refuse(503, "too many connections", handshake)
        limit = options.max_connections_per_ip
        if limit is not None and host is not None and self._by_ip[host] >= limit:
            self._refuse(503, f"too many connections from {host}", handshake)
        hook = options.authenticate
        if hook is None:
            return None
        # Counted while the hook runs; the driver opens the connection in the
        # step this returns in, where opened() takes over the count.
        self._admitting += 1
        if host is not None:
            self._by_ip[host] += 1
        try:
            return await self._authenticate(hook, handshake)
        finally:
            self._admitting -= 1
            if host is not None:
                self._release(host)

    # -- bookkeeping ---------------------------------------------------------

    def opened(self, connection: Connection) -> None:
        """A connection opened: it counts against the limits until :meth:`closed`."""
        self._open += 1
        host = connection.remote_host
        if host is not None:
            self._by_ip[host] += 1

    def closed(self, connection: Connection) -> None:
        """A connection that :meth:`opened` is gone."""
        self._open -= 1
        host = connection.remote_host
        if host is not None:
            self._release(host)

    # -- inside --------------------------------------------------------------

    def _count(self, status: int) -> None:
        self.refused_by_status[status] = self.refused_by_status.get(status, 0) + 1

    def _release(self, host: str) -> None:
        count = self._by_ip[host] - 1
        if count > 0:
            self._by_ip[host] = count
        else:
            del self._by_ip[host]

    def _check_origin(self, handshake: Handshake) -> None:
        if self._origins is None:
            return
        values = handshake.headers.getall("origin")
        if len(values) > 1:
            self._refuse(400, "repeated Origin header", handshake)
        origin = values[0] if values else None
        if origin not in self._origins:
            self._refuse(403, "origin not allowed", handshake)

    async def _authenticate(self, hook: Any, handshake: Handshake) -> Any:
        timeout = self._options.open_timeout
        try:
            async with asyncio.timeout(timeout) as deadline:
                result = hook(handshake)
                if inspect.isawaitable(result):
                    result = await result
                return result
        except Reject as exc:
            self._reporter.log.log(
                logging.DEBUG, "handshake from %s rejected by authenticate: %s",
                handshake.remote_address, exc,
            )  # fmt: skip
            raise
        except TimeoutError as exc:
            if not deadline.expired():
                self._hook_failed(exc, handshake)
            self._refuse(503, f"authentication took longer than {timeout} s", handshake)
        except Exception as exc:
            self._hook_failed(exc, handshake)

    def _hook_failed(self, exc: Exception, handshake: Handshake) -> NoReturn:
        error = HandshakeRefused(
            500, "authentication failed", handshake=handshake,
            remote_address=handshake.remote_address,
        )  # fmt: skip
        error.__cause__ = exc
        # Logged with the hook's traceback (the cause), and to the error event.
        self._reporter.report(error, raised_by=self._options.authenticate)
        raise Reject(500, "authentication failed") from exc

    def _refuse(self, status: int, reason: str, handshake: Handshake) -> NoReturn:
        self._reporter.report(
            HandshakeRefused(
                status, reason, handshake=handshake, remote_address=handshake.remote_address
            ),
            kind="handshake refused",
        )
        raise Reject(status, reason)
