"""Keepalive pings, the same for every driver.

A driver makes a :class:`Keepalive` for a connection when :func:`wanted` says
so, calls :meth:`Keepalive.pong` for every pong frame it reads,
:meth:`Keepalive.suspend` / :meth:`Keepalive.resume` when it pauses and
resumes reading, and :meth:`Keepalive.stop` when the socket closes. A pong late by more than
``ping_timeout`` calls ``dead``, after which the driver drops the socket and
reports :data:`~wyre.transport.KEEPALIVE_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..protocol.negotiation import extensions_agreed

if TYPE_CHECKING:
    from ..config import Options

__all__ = ["Keepalive", "wanted"]


def wanted(options: Options, subprotocol: str | None) -> bool:
    """Whether to ping a peer that agreed on ``subprotocol``.

    Peers speaking the original protocol are not pinged unless
    ``ping_base_peers`` is set: the original wyre on ``ws`` 0.8 crashes on an
    incoming ping. TCP keepalive and ``write_timeout`` still detect them dead.
    """
    if options.ping_interval is None:
        return False
    return extensions_agreed(subprotocol) or options.ping_base_peers


class Keepalive:
    """Sends a ping every ``interval`` seconds; calls ``dead`` when a pong is late."""

    __slots__ = (
        "_dead",
        "_interval",
        "_loop",
        "_ping",
        "_suspended",
        "_timeout",
        "_timer",
        "_waiting",
    )

    def __init__(
        self,
        interval: float,
        timeout: float | None,
        ping: Callable[[bytes], None],
        dead: Callable[[], None],
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._interval = interval
        self._timeout = timeout
        self._ping = ping
        self._dead = dead
        self._waiting: bytes | None = None  # payload of the ping awaiting its pong
        self._suspended = False  # reading is paused: a pong could not be read
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(interval, self._send)

    def _send(self) -> None:
        self._waiting = payload = os.urandom(4)
        try:
            self._ping(payload)
        except Exception:  # the socket is closing: the driver reports that
            self._timer = None
            return
        if self._timeout is None:
            self._timer = self._loop.call_later(self._interval, self._send)
        elif self._suspended:
            self._timer = None  # resume() starts the pong's deadline
        else:
            self._timer = self._loop.call_later(self._timeout, self._expire)

    def _expire(self) -> None:
        self._timer = None
        self._dead()

    def pong(self, payload: bytes) -> None:
        """A pong arrived; the one answering our ping schedules the next."""
        if self._waiting is None or bytes(payload) != self._waiting:
            return  # unsolicited, or an answer to an earlier ping
        self._waiting = None
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(self._interval, self._send)

    def suspend(self) -> None:
        """Reading is paused: a pong could not be read, so its deadline waits.

        A peer is never taken for dead because this side stopped reading it.
        """
        self._suspended = True
        if self._waiting is not None and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def resume(self) -> None:
        """Reading resumed: a ping still unanswered gets its full ``ping_timeout`` again."""
        if not self._suspended:
            return
        self._suspended = False
        if self._waiting is not None and self._timer is None and self._timeout is not None:
            self._timer = self._loop.call_later(self._timeout, self._expire)

    def stop(self) -> None:
        """No more pings (the socket is closing or closed)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
