"""Where failures and log lines go: the one path every part of wyre reports through.

:meth:`Reporter.report` decides, once, what happens to a failure: the
application's ``error`` handler gets it when there is one, otherwise it is
logged. A failure of the application's own code (a handler that raised) is
logged with its traceback either way, since it is a bug to fix.

Log lines a peer can provoke (bad frames, unknown types) are rate limited
per kind, so a hostile peer cannot fill a disk: past :data:`LOG_BURST` lines
of one kind in :data:`LOG_WINDOW` seconds, the rest are counted and one line
says how many were suppressed.

Each endpoint logs through its own :class:`Log`: its ``log_level`` applies to
that endpoint only (the shared ``wyre`` logger's level is never changed).
Records carry ``connection_id`` (see ``extra``) when they concern one
connection, so one connection's story can be found with grep.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from inspect import isawaitable
from typing import TYPE_CHECKING, Any

from .exceptions import WyreError
from .runner import close_unstarted

if TYPE_CHECKING:
    from .connection import Connection
    from .metrics import Counters

__all__ = ["LOG_BURST", "LOG_WINDOW", "MAX_ERROR_TASKS", "Log", "Reporter"]

LOG_BURST = 20
"""Log lines of one kind allowed per :data:`LOG_WINDOW`."""
LOG_WINDOW = 10.0
"""Seconds over which :data:`LOG_BURST` is counted."""
MAX_ERROR_TASKS = 64
"""Coroutine ``error`` handlers running at once per endpoint; past it errors are logged."""


class Log:
    """An endpoint's logging: its own level, rate limits per kind, the connection id.

    Args:
        logger: where records go (the ``wyre`` logger unless the ``logger``
            option names another).
        level: the endpoint's ``log_level`` as a :mod:`logging` level, or
            None to follow ``logger``'s own level.
    """

    __slots__ = ("_counts", "level", "logger")

    def __init__(self, logger: logging.Logger, level: int | None) -> None:
        self.logger = logger
        self.level = level
        self._counts: dict[str, list[float]] = {}  # kind -> [window start, lines, suppressed]

    def enabled(self, level: int) -> bool:
        """Whether a record at ``level`` would be emitted (cheap: check before formatting)."""
        if self.level is not None:
            return level >= self.level
        return self.logger.isEnabledFor(level)

    def log(
        self,
        level: int,
        msg: str,
        *args: Any,
        connection: Connection | None = None,
        exc: BaseException | None = None,
        kind: str | None = None,
        stacklevel: int = 1,
    ) -> None:
        """Emit one record; ``kind`` puts it under that kind's rate limit.

        ``connection`` puts its id in the record as ``connection_id``.
        ``stacklevel`` says whose line the record names, as in
        :meth:`logging.Logger.log` (1: the caller's).
        """
        if not self.enabled(level):
            return
        if kind is not None and not self._allow(kind, level):
            return
        exc_info = None if exc is None else (type(exc), exc, exc.__traceback__)
        extra = None if connection is None else {"connection_id": connection.id}
        if self.level is None:
            self.logger.log(
                level, msg, *args, exc_info=exc_info, extra=extra, stacklevel=stacklevel + 1
            )
            return
        # The endpoint's own level decided; the shared logger's level must not veto it.
        frame = sys._getframe(stacklevel)
        record = self.logger.makeRecord(
            self.logger.name, level, frame.f_code.co_filename, frame.f_lineno, msg, args,
            exc_info, frame.f_code.co_name, extra,
        )  # fmt: skip
        self.logger.handle(record)

    def debug(self, msg: str, *args: Any, connection: Connection | None = None) -> None:
        """:meth:`log` at DEBUG level."""
        if self.enabled(logging.DEBUG):
            self.log(logging.DEBUG, msg, *args, connection=connection, stacklevel=2)

    def _allow(self, kind: str, level: int) -> bool:
        now = time.monotonic()
        count = self._counts.get(kind)
        if count is None or now - count[0] >= LOG_WINDOW:
            suppressed = 0 if count is None else int(count[2])
            self._counts[kind] = [now, 1, 0]
            if suppressed:
                self.logger.log(
                    level, "%d more %r messages were suppressed in %g s", suppressed, kind,
                    LOG_WINDOW,
                )  # fmt: skip
            return True
        if count[1] < LOG_BURST:
            count[1] += 1
            return True
        count[2] += 1
        return False


class Reporter:
    """Reports failures: to the ``error`` handler when there is one, else to the log.

    Args:
        log: the endpoint's :class:`Log`.
        error_handler: returns the application's ``error`` handler, or None.
        spawn: runs a coroutine ``error`` handler in a task the endpoint tracks.
        counters: the endpoint's counts, where failures of the application's
            code are counted (``handler_errors``).
    """

    __slots__ = ("_counters", "_error_handler", "_running", "_spawn", "log")

    def __init__(
        self,
        log: Log,
        error_handler: Callable[[], Callable[..., Any] | None],
        spawn: Callable[[Any], asyncio.Future[Any]],
        counters: Counters,
    ) -> None:
        self.log = log
        self._error_handler = error_handler
        self._spawn = spawn
        self._counters = counters
        self._running = 0

    def report(
        self,
        error: BaseException,
        *,
        connection: Connection | None = None,
        kind: str = "error",
        raised_by: Callable[..., Any] | None = None,
    ) -> None:
        """Report ``error``: the single decision between the ``error`` event and the log.

        ``raised_by`` is the application handler that raised it: the error
        is then counted in ``handler_errors`` and logged with its traceback
        (and still goes to the ``error`` handler, unless that handler is the
        one that raised). ``kind`` is the rate-limit bucket of the log line.
        The log line names the connection: ``connection``, else the one a
        :class:`~wyre.WyreError` carries.
        """
        if isinstance(error, WyreError):
            if error.connection is None:
                error.connection = connection
            elif connection is None:
                connection = error.connection
        if raised_by is not None:
            self._counters.handler_errors += 1
            self.log.log(
                logging.ERROR, "handler %r raised", raised_by, connection=connection, exc=error,
                kind="handler raised",
            )  # fmt: skip
        handler = self._error_handler()
        if handler is None or handler is raised_by:
            if raised_by is None:
                self.log.log(
                    logging.WARNING, "%s: %s", type(error).__name__, error, connection=connection,
                    kind=kind,
                )  # fmt: skip
            return
        self.call(handler, error, connection=connection)

    def call(
        self, handler: Callable[..., Any], *args: Any, connection: Connection | None = None
    ) -> None:
        """Run an event handler (``connection``, ``close``, ``error``); never raises.

        A coroutine handler runs in a task. Coroutine ``error`` handlers are
        capped at :data:`MAX_ERROR_TASKS` at once, so a flood of bad frames
        cannot pile up tasks: past it, the error is logged instead.
        ``connection`` is the one the event is about, named in the log line
        should the handler raise.
        """
        try:
            result = handler(*args)
        except Exception as exc:
            self.report(exc, connection=connection, raised_by=handler)
            return
        if result is None or not isawaitable(result):
            return
        is_error = handler is self._error_handler()
        if is_error:
            if self._running >= MAX_ERROR_TASKS:
                close_unstarted(result)
                self.log.log(
                    logging.WARNING, "error handler busy; not reported to it: %s", args[0],
                    connection=connection, kind="error handler busy",
                )  # fmt: skip
                return
            self._running += 1
        task = self._spawn(self._await(handler, result, is_error, connection))
        del task

    async def _await(
        self,
        handler: Callable[..., Any],
        awaitable: Any,
        is_error: bool,
        connection: Connection | None,
    ) -> None:
        try:
            await awaitable
        except Exception as exc:
            self.report(exc, connection=connection, raised_by=handler)
        finally:
            if is_error:
                self._running -= 1
