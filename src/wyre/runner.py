"""Coroutine handlers of one connection: how many run, and what waits its turn.

Plain-function handlers run inline as their frame is read and never come
here. A coroutine handler's awaitable is handed to :meth:`Runner.submit`:

* below ``max_running_handlers`` it starts at once, in a task of its own;
* otherwise it waits in a FIFO queue, still unstarted, and starts when a
  running one finishes;
* past ``max_queued_handlers`` waiting, the runner asks its connection to
  stop reading the socket (``on_full(True)``) until the queue is half empty:
  the last resort, since answers and control frames wait behind it too.

Reading never stops merely because handlers are running, so the replies and
CANCELs that running handlers wait for arrive (a handler may await a request
back to its own peer). While reading is paused, keepalive waits too (the
drivers suspend the pong deadline), so a pause never passes for a dead peer.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from types import CoroutineType
from typing import Any

__all__ = ["Job", "Runner", "close_unstarted"]

Job = Callable[[], Coroutine[Any, Any, None]]
"""Makes the coroutine that runs one handler (called when its turn comes)."""


class _Entry:
    """One submitted handler: its job, the awaitable it runs, and its task once started."""

    __slots__ = ("awaitable", "job", "key", "task")

    def __init__(self, key: Any, job: Job, awaitable: Awaitable[Any]) -> None:
        self.key = key
        self.job = job
        self.awaitable = awaitable
        self.task: asyncio.Task[None] | None = None


class Runner:
    """Runs one connection's coroutine handlers within its limits (module docstring)."""

    __slots__ = ("_by_key", "_full", "_limit", "_loop", "_max_queued", "_on_full", "_running",
                 "_waiting")  # fmt: skip

    def __init__(self, limit: int, max_queued: int, on_full: Callable[[bool], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._limit = limit
        self._max_queued = max_queued
        self._on_full = on_full
        self._running: set[asyncio.Task[None]] = set()
        self._waiting: deque[_Entry] = deque()
        self._by_key: dict[Any, _Entry] = {}
        self._full = False

    def submit(self, key: Any, job: Job, awaitable: Awaitable[Any]) -> None:
        """Run ``job()`` now or when a slot frees; ``key`` (or None) lets :meth:`cancel` find it.

        ``awaitable`` is what the job awaits (the handler's coroutine); it is
        closed if the job never starts, so Python does not warn that it was
        never awaited.
        """
        entry = _Entry(key, job, awaitable)
        if key is not None:
            self._by_key[key] = entry
        if len(self._running) < self._limit:
            self._start(entry)
            return
        self._waiting.append(entry)
        if not self._full and len(self._waiting) > self._max_queued:
            self._full = True
            self._on_full(True)

    def cancel(self, key: Any) -> None:
        """Stop the handler submitted with ``key``: cancel its task, or drop it unstarted."""
        entry = self._by_key.pop(key, None)
        if entry is None:
            return
        if entry.task is not None:
            entry.task.cancel()
        else:
            self._waiting.remove(entry)
            close_unstarted(entry.awaitable)
            self._check_room()

    def cancel_all(self) -> None:
        """Cancel every running handler and drop the waiting ones (the connection closed)."""
        waiting, self._waiting = self._waiting, deque()
        for entry in waiting:
            close_unstarted(entry.awaitable)
        self._by_key.clear()
        for task in list(self._running):
            task.cancel()

    def tasks(self) -> list[asyncio.Task[None]]:
        """The running handlers' tasks (for a shutdown to wait on)."""
        return list(self._running)

    def _start(self, entry: _Entry) -> None:
        task = entry.task = self._loop.create_task(entry.job())
        self._running.add(task)
        task.add_done_callback(lambda done: self._finished(entry, done))

    def _finished(self, entry: _Entry, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if entry.key is not None and self._by_key.get(entry.key) is entry:
            del self._by_key[entry.key]
        if task.cancelled():
            close_unstarted(entry.awaitable)  # cancelled before it started: never awaited
        while self._waiting and len(self._running) < self._limit:
            self._start(self._waiting.popleft())
        self._check_room()

    def _check_room(self) -> None:
        if self._full and len(self._waiting) <= self._max_queued // 2:
            self._full = False
            self._on_full(False)


def close_unstarted(awaitable: Awaitable[Any]) -> None:
    """Close a coroutine that will never run, so Python does not warn it was never awaited."""
    if isinstance(awaitable, CoroutineType):
        awaitable.close()
