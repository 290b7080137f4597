"""SQLite's watcher for wake-ups: ``PRAGMA data_version``, read often.

SQLite has no notifications. ``PRAGMA data_version`` on a connection changes
whenever *another* connection — of this process or another — commits to the
database; reading it costs a few microseconds and no I/O, so the watcher
reads it on the event loop's thread, on a connection of its own held while
anyone waits: every :data:`INTERVAL_BUSY` seconds for a second after a
commit, backing off to every :data:`INTERVAL_QUIET` seconds while nothing
commits (each wake-up of the event loop costs CPU even when nothing
changed: ~0.2 ms on a small VM, so 200 a second is several per cent of a
core).

That connection also sees this store's own commits, which wake this
process's sleepers directly already — and a waiter's own empty claim
commits (it marks the worker seen), so taking every change as a wake-up
would have idle waiters wake each other every few milliseconds for ever.
So when it changes, the watcher asks the store's writer connection, whose
``data_version`` changes only with other connections' commits, whether any
came (``foreign_version``); while the writer is in use it cannot ask, and
takes the change as a wake-up (a spare claim, never a lost wake-up).

A database in memory is this process's alone, and its commits wake
sleepers directly: no watcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from typing import Final

from statestore.core.wakeups import Watch

__all__ = ["INTERVAL_BUSY", "INTERVAL_QUIET", "data_version_watch"]

INTERVAL_BUSY: Final = 0.005
INTERVAL_QUIET: Final = 0.05
_BUSY_FOR: Final = 1.0


def data_version_watch(path: Callable[[], str | None], foreign_version: Callable[[], int | None]) -> Watch:
    """A watcher reading ``PRAGMA data_version`` on a connection of its own
    to the database file at ``path()`` — not one of the store's pool, whose
    check-out could block the event loop while the pool is busy;
    ``foreign_version`` is the writer's (None while it is busy)."""

    async def watch(ready: asyncio.Event, seen: Callable[[], None]) -> None:
        where = path()
        while where is None:  # a temporary database: nobody else can commit to it
            ready.set()
            await asyncio.Event().wait()
        with contextlib.closing(sqlite3.connect(where, isolation_level=None)) as driver:
            version = driver.execute("PRAGMA data_version").fetchone()
            foreign = foreign_version()
            ready.set()
            seen()
            loop = asyncio.get_running_loop()
            last_change = loop.time()
            interval = INTERVAL_BUSY
            while True:
                await asyncio.sleep(interval)
                now = driver.execute("PRAGMA data_version").fetchone()
                if now == version:
                    if loop.time() - last_change > _BUSY_FOR:
                        interval = min(interval * 2, INTERVAL_QUIET)
                    continue
                version, last_change, interval = now, loop.time(), INTERVAL_BUSY
                writer = foreign_version()
                if writer is None or writer != foreign:
                    seen()
                foreign = writer

    return watch
