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
        driver: Any = None

        def heard(*_: object) -> None:
            seen()

        def closed(*_: object) -> None:
            lost.set()

        try:
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
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
            # Back to the pool only if it stops listening (UNLISTEN); otherwise it is discarded, so
            # no pooled connection keeps a callback of this store or the channel.
            if driver is not None:
                driver.remove_termination_listener(closed)
            await asyncio.shield(_release(connection, driver if not lost.is_set() else None, heard))

    return watch


async def _release(connection: AsyncConnection, driver: Any, heard: Callable[..., None]) -> None:
    if driver is not None:
        try:
            await asyncio.wait_for(driver.remove_listener(WORK_CHANNEL, heard), PING_EVERY)
        except Exception:
            driver = None
    if driver is None:
        with contextlib.suppress(Exception):
            await connection.invalidate()
    with contextlib.suppress(Exception):
        await connection.close()
