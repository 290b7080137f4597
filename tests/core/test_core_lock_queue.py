"""SQLite writers of different processes queue for the write lock.

Writers take an ``flock`` on ``<database>-lock`` before ``BEGIN IMMEDIATE``;
one that cannot have it waits in the kernel, which wakes it the moment the
holder lets go — instead of SQLite's busy handler, whose sleeps grow to 100 ms
so that whoever has waited longest waits longest (p99 of 0.5–0.9 s, max 3 s
with 8 processes × 8 coroutines). SQLite's own lock, held by programs that do
not use the file, is retried in 1 ms steps.

"Another process" here is a second open file and a raw sqlite3 connection of
this process: flock excludes other open files, SQLite other connections.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import statistics
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from statestore import Busy, Store, open_store
from tests.support.core_model import COUNTERS, counters_table


def _add(name: str) -> Callable[[Connection], object]:
    return lambda conn: conn.execute(insert(COUNTERS), {"name": name})


async def _names(store: Store) -> list[str]:
    return await store.read(lambda conn: sorted(conn.execute(select(COUNTERS.c.name)).scalars()))


@asynccontextmanager
async def _file_store(path: Path, busy_timeout: float = 30) -> AsyncIterator[Store]:
    async with open_store(f"sqlite:///{path}", create=True, busy_timeout=busy_timeout) as store, counters_table(store):
        yield store


@contextmanager
def _lock_file_held(path: Path) -> Iterator[Callable[[], None]]:
    """Hold ``<database>-lock`` as another statestore process would; yields
    the release."""
    fd = os.open(f"{path}-lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            fcntl.flock(fd, fcntl.LOCK_UN)
            released = True

    try:
        yield release
    finally:
        release()
        os.close(fd)


def _lock_file_free(path: Path) -> bool:
    fd = os.open(f"{path}-lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing the file lets go of its lock
    return True


async def test_a_transaction_holds_the_lock_file_and_lets_go(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    async with _file_store(path) as store:
        assert _lock_file_free(path)
        async with store.transaction():
            await store.write(_add("a"))
            assert not _lock_file_free(path)
        assert _lock_file_free(path)
        await store.write(_add("b"))
        assert _lock_file_free(path)
        assert await _names(store) == ["a", "b"]


@pytest.mark.parametrize("offload", [False, True], ids=["write", "offloaded-write"])
async def test_a_write_queues_behind_the_lock_file_then_commits(tmp_path: Path, offload: bool) -> None:
    path = tmp_path / "q.db"
    async with _file_store(path) as store:
        with _lock_file_held(path) as release:
            call = asyncio.create_task(store.write(_add("queued"), offload=offload))
            await asyncio.sleep(0.2)
            assert not call.done()
            assert await _names(store) == []  # reads go on meanwhile
            release()
            await asyncio.wait_for(call, 5)
        assert await _names(store) == ["queued"]


async def test_a_lock_file_held_past_busy_timeout_is_busy(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    async with _file_store(path, busy_timeout=0.3) as store:
        with _lock_file_held(path):
            started = time.monotonic()
            with pytest.raises(Busy) as raised:
                await store.write(_add("w"))
            assert 0.25 < time.monotonic() - started < 2
            assert raised.value.__cause__ is not None
            with pytest.raises(Busy):
                async with store.transaction():
                    pass
        # The waits given up let go of the lock file once they got it.
        await store.write(_add("after"))
        assert await _names(store) == ["after"]
        await asyncio.sleep(0.1)
        assert _lock_file_free(path)


async def test_a_transaction_cancelled_in_the_queue_leaves_at_once_and_holds_nothing(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    async with _file_store(path) as store:
        with _lock_file_held(path) as release:

            async def transaction() -> None:
                async with store.transaction():
                    await store.write(_add("cancelled"))

            call = asyncio.create_task(transaction())
            await asyncio.sleep(0.1)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(call, 0.5)  # not when the lock comes free
            release()
        await store.write(_add("after"))
        assert await _names(store) == ["after"]
        await asyncio.sleep(0.1)
        assert _lock_file_free(path)


@pytest.mark.parametrize("holder", ["statestore", "sqlite3"])
async def test_a_long_waiting_writer_gets_the_lock_as_soon_as_it_is_released(tmp_path: Path, holder: str) -> None:
    """After 0.6 s of waiting SQLite's busy handler sleeps 100 ms between
    attempts (~50 ms late on average). Queued on the lock file a writer is
    woken at once; behind a program that does not use the file it retries
    every millisecond."""
    path = tmp_path / "q.db"
    late: list[float] = []
    async with _file_store(path) as store:
        for trial in range(5):
            other = sqlite3.connect(path, isolation_level=None)
            with _lock_file_held(path) if holder == "statestore" else _nothing() as release:
                other.execute("BEGIN IMMEDIATE")
                call = asyncio.create_task(store.write(_add(f"w{trial}")))
                await asyncio.sleep(0.6)
                assert not call.done()
                released = time.perf_counter()
                other.execute("COMMIT")
                release()
                await call
                late.append(time.perf_counter() - released)
            other.close()
    assert statistics.median(late) < 0.025, [f"{seconds * 1000:.1f} ms" for seconds in late]


@contextmanager
def _nothing() -> Iterator[Callable[[], None]]:
    yield lambda: None


async def test_after_a_wait_a_failing_unit_fails_alone(tmp_path: Path) -> None:
    """The units that waited run together the moment the lock is had; one
    failing rolls that back and each is run alone: only its caller fails."""
    path = tmp_path / "q.db"
    async with _file_store(path) as store:

        def fails(conn: Connection) -> object:
            _add("undone")(conn)
            raise ZeroDivisionError

        with _lock_file_held(path) as release:
            calls = [asyncio.create_task(store.write(unit)) for unit in (_add("x"), fails, _add("y"))]
            await asyncio.sleep(0.1)
            release()
            outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)
        assert [type(outcome).__name__ for outcome in outcomes] == ["CursorResult", "ZeroDivisionError", "CursorResult"]
        assert await _names(store) == ["x", "y"]
