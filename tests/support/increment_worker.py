"""Run as a separate process: read-then-write increments of one counter."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from statestore import open_store
from tests.support.core_model import COUNTERS


def set_counter(value: int) -> Callable[[Connection], object]:
    """A unit that stores ``value`` in the counter named "n"."""
    return lambda conn: conn.execute(update(COUNTERS).where(COUNTERS.c.name == "n").values(value=value))


async def increment(url: str, coroutines: int, times: int) -> None:
    async with open_store(url, busy_timeout=60) as store:

        async def one_worker() -> None:
            for _ in range(times):
                async with store.transaction():
                    value = await store.read(
                        lambda conn: conn.execute(select(COUNTERS.c.value).where(COUNTERS.c.name == "n")).scalar_one()
                    )
                    await asyncio.sleep(0)  # let the other coroutines interleave
                    await store.write(set_counter(value + 1))

        await asyncio.gather(*(one_worker() for _ in range(coroutines)))


if __name__ == "__main__":
    asyncio.run(increment(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
