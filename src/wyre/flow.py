"""Flow control of one connection: when it stops reading, and waiting for a slow peer.

A connection stops reading its socket for any of a few reasons, each a flag
held in :class:`Flow` (reading resumes when none is left):

* ``CONGESTED``: answers to the peer filled the write buffer above
  ``write_limit``: it must read them before it may send more. A peer that
  reads nothing for ``write_timeout`` is dropped. Sends made meanwhile wait
  (their awaitable is :meth:`Flow.waiter`), whoever filled the buffer.
* ``QUEUE_FULL``: more coroutine handlers wait for a slot than
  ``max_queued_handlers`` (see :mod:`wyre.runner`).
* ``OPENING``: the ``connection`` handler has not finished yet and more
  new work is waiting for it than ``max_queued_handlers``.
* ``BACKLOG``: a request's partials are being read, but more than
  ``max_buffered_partials`` wait unread (see :class:`~wyre.Request`).

Running handlers alone never stop reading: their answers and the peer's
CANCELs must get through. Drivers stop keepalive's pong deadline while
reading is paused, so a pause is never mistaken for a dead peer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .transport import Transport

__all__ = ["BACKLOG", "CONGESTED", "DONE", "OPENING", "QUEUE_FULL", "YIELD", "YIELD_EVERY", "Flow"]

CONGESTED = 1
QUEUE_FULL = 2
OPENING = 4
BACKLOG = 8


class _Done:
    """An awaitable that is already complete: what a send returns when no wait is needed."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # pragma: no cover - makes this a generator

    def done(self) -> bool:
        return True


DONE = _Done()


class _YieldOnce:
    """An awaitable that lets the event loop run once (like ``asyncio.sleep(0)``)."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        yield  # a bare yield: the task is rescheduled after the loop's other work

    def done(self) -> bool:
        return False


YIELD = _YieldOnce()
"""What every ``YIELD_EVERY``-th plain send returns when nothing else would wait."""

YIELD_EVERY = 64
"""A plain send whose buffer has room completes without suspending; a loop of
them would never let the event loop run (timers, reads, other tasks), so one
in this many yields once."""


class Flow:
    """Pauses and resumes reading for one connection; waits out a full write buffer.

    Args:
        transport: the connection's transport.
        write_timeout: how long the buffer may stay full; None: no limit.
        stalled: called when the peer read nothing for ``write_timeout``
            (the connection drops it), or when draining failed.
    """

    __slots__ = ("_closed", "_drained", "_loop", "_paused", "_reasons", "_stalled", "_transport",
                 "_write_timeout")  # fmt: skip

    def __init__(
        self,
        transport: Transport,
        write_timeout: float | None,
        stalled: Callable[[str], None],
    ) -> None:
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._write_timeout = write_timeout
        self._stalled = stalled
        self._reasons = 0
        self._paused = False
        self._closed = False
        self._drained: asyncio.Future[None] | None = None

    def hold(self, reason: int, on: bool) -> None:
        """Set or clear one reason to stop reading; pause or resume as the result says."""
        if self._closed:
            return
        self._reasons = self._reasons | reason if on else self._reasons & ~reason
        pause = self._reasons != 0
        if pause != self._paused:
            self._paused = pause
            if pause:
                self._transport.pause_reading()
            else:
                self._transport.resume_reading()

    def congested(self, stop_reading: bool) -> None:
        """The write buffer went above ``write_limit``: wait for the peer to read.

        The connection checks the buffer after each write (cheaper there than
        a call here per frame) and calls this when it is above the limit;
        ``stop_reading`` when the write answered the peer (see
        ``Connection._write``). Both end when the buffer drained.
        """
        if stop_reading:
            self.hold(CONGESTED, True)
        if self._drained is None:
            self._drained = self._loop.create_future()
            self._loop.create_task(self._drain(self._drained))

    def waiter(self) -> Awaitable[None]:
        """What a send returns: done, or an awaitable resolved when the buffer drained.

        Shielded: every send waiting meanwhile shares the one future, and a
        caller that stops waiting (cancelled, timed out) must not cancel it
        for the others.
        """
        return DONE if self._drained is None else asyncio.shield(self._drained)

    async def _drain(self, drained: asyncio.Future[None]) -> None:
        try:
            async with asyncio.timeout(self._write_timeout):
                await self._transport.drain()
        except TimeoutError:
            self._stalled(f"peer read nothing for {self._write_timeout} s")
        except Exception:
            self._stalled("write failed")
        else:
            if not drained.done():
                drained.set_result(None)
        finally:
            self._drained = None
            self.hold(CONGESTED, False)

    def lost(self, error: BaseException) -> None:
        """The connection closed: sends waiting for the buffer fail with ``error``."""
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_exception(error)
            drained.exception()  # retrieved: whoever awaits it sees it; nobody else must
        self._closed = True
