"""PostgreSQL's watcher for wake-ups: LISTEN on one connection per store.

The connection comes from the store's pool and is held while anyone waits
(see :mod:`statestore.core.wakeups`). asyncpg delivers each notification to
a callback on the event loop, and tells when the connection is lost, after
which the watcher is run again on a new connection. A connection that dies
silently (a network cut) is found by a ping every
:data:`PING_EVERY` seconds of quiet.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection

from statestore.core.wakeups import WORK_CHANNEL, Watch

__all__ = ["PING_EVERY", "listener"]

PING_EVERY: Final = 30.0


def listener(connect: Callable[[], Awaitable[AsyncConnection]]) -> Watch:
    """A watcher that LISTENs for :data:`~statestore.core.wakeups.WORK_CHANNEL`
    on a connection from ``connect`` (autocommit)."""

    async def watch(ready: asyncio.Event, seen: Callable[[], None]) -> None:
        connection = await connect()
        lost = asyncio.Event()
        try:
            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection

            def heard(*_: object) -> None:
                seen()

            def closed(*_: object) -> None:
                lost.set()

            driver.add_termination_listener(closed)
            await driver.add_listener(WORK_CHANNEL, heard)
            ready.set()
            seen()
            while not lost.is_set():
                try:
                    await asyncio.wait_for(lost.wait(), PING_EVERY)
                except TimeoutError:
                    await asyncio.wait_for(driver.execute("SELECT 1"), PING_EVERY)
        finally:
            ready.clear()
            if lost.is_set():
                with contextlib.suppress(Exception):
                    await connection.invalidate()
            with contextlib.suppress(Exception):
                await asyncio.shield(connection.close())

    return watch
