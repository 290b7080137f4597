"""Real concurrent writers: coroutines and processes doing read-then-write."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from sqlalchemy import insert, select

from statestore import Store, open_store
from tests.support.core_model import COUNTERS, counters_table
from tests.support.increment_worker import increment, set_counter

ROOT = Path(__file__).resolve().parents[2]


async def _value(store: Store) -> int:
    return int(
        await store.read(lambda conn: conn.execute(select(COUNTERS.c.value).where(COUNTERS.c.name == "n")).scalar_one())
    )


async def test_16_coroutines_lose_no_increment_on_a_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    async with open_store(url, create=True) as store, counters_table(store):
        await store.write(lambda conn: conn.execute(insert(COUNTERS), {"name": "n", "value": 0}))
        await increment(url, coroutines=16, times=25)
        assert await _value(store) == 16 * 25


async def test_3_processes_lose_no_increment_and_never_see_locked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    async with open_store(url, create=True) as store, counters_table(store):
        await store.write(lambda conn: conn.execute(insert(COUNTERS), {"name": "n", "value": 0}))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.support.increment_worker",
                url,
                "4",
                "25",
                cwd=ROOT,
                env=env,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(3)
        ]
        outcomes = [await process.communicate() for process in processes]
        for process, (_, stderr) in zip(processes, outcomes, strict=True):
            assert process.returncode == 0, stderr.decode()
            assert b"locked" not in stderr
        assert await _value(store) == 3 * 4 * 25


async def test_coroutines_with_row_locks_lose_nothing_on_every_backend(store: Store) -> None:
    """On servers a read-then-write needs a row lock (FOR UPDATE); on SQLite
    the transaction's BEGIN IMMEDIATE already serialises writers."""
    async with counters_table(store):
        await store.write(lambda conn: conn.execute(insert(COUNTERS), {"name": "n", "value": 0}))
        locked = select(COUNTERS.c.value).where(COUNTERS.c.name == "n").with_for_update()

        async def worker() -> None:
            for _ in range(10):
                async with store.transaction():
                    value = await store.read(lambda conn: conn.execute(locked).scalar_one())
                    await asyncio.sleep(0)
                    await store.write(set_counter(value + 1))

        await asyncio.gather(*(worker() for _ in range(8)))
        assert await _value(store) == 80
