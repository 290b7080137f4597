"""SQLite: another connection (as if another process) holds the write lock.

The store must wait for it off the event loop, give up with ``Busy`` after
``busy_timeout``, and come out of a cancelled wait without a stray lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import event, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.pool import ConnectionPoolEntry

from statestore import Busy, Store, open_store
from statestore.store import open_store_unchecked
from tests.support import core_model
from tests.support.core_model import COUNTERS, counters_table

Attempt = Callable[[Store], Awaitable[object]]


def _add(name: str) -> Callable[..., object]:
    return lambda conn: conn.execute(insert(COUNTERS), {"name": name})


async def _write(store: Store) -> object:
    return await store.write(_add("w"))


async def _offloaded_write(store: Store) -> object:
    return await store.write(_add("w"), offload=True)


async def _transaction(store: Store) -> object:
    async with store.transaction():
        return await store.write(_add("w"))


ATTEMPTS = {"write": _write, "offloaded-write": _offloaded_write, "transaction": _transaction}


async def _names(store: Store) -> list[str]:
    return await store.read(lambda conn: sorted(conn.execute(select(COUNTERS.c.name)).scalars()))


@asynccontextmanager
async def _file_store(path: Path, busy_timeout: float) -> AsyncIterator[Store]:
    async with open_store(f"sqlite:///{path}", create=True, busy_timeout=busy_timeout) as store, counters_table(store):
        yield store


def _create_counters(connection: Connection) -> None:
    with connection.begin():
        core_model.TestBase.metadata.create_all(connection)


def _lock(path: Path) -> sqlite3.Connection:
    """Another connection holding SQLite's write lock until it commits."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


@pytest.mark.parametrize("attempt", ATTEMPTS.values(), ids=ATTEMPTS.keys())
async def test_waits_for_the_lock_without_blocking_the_loop(tmp_path: Path, attempt: Attempt) -> None:
    """The lock is released by a coroutine of this loop: if waiting blocked
    the loop, it could never run and the attempt would end in Busy."""
    async with _file_store(tmp_path / "l.db", busy_timeout=10) as store:
        other = _lock(tmp_path / "l.db")

        async def release() -> None:
            await asyncio.sleep(0.1)
            other.execute("COMMIT")

        await asyncio.gather(attempt(store), release())
        other.close()
        assert await _names(store) == ["w"]


@pytest.mark.parametrize("attempt", ATTEMPTS.values(), ids=ATTEMPTS.keys())
async def test_a_lock_held_past_busy_timeout_is_busy(tmp_path: Path, attempt: Attempt) -> None:
    """Nobody should ever see sqlite3's "database is locked"."""
    async with _file_store(tmp_path / "l.db", busy_timeout=0.2) as store:
        other = _lock(tmp_path / "l.db")
        try:
            with pytest.raises(Busy) as raised:
                await attempt(store)
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert raised.value.__cause__ is not None
        # The store is fine afterwards: writes commit, a failed transaction rolls back.
        await store.write(_add("after"))
        with pytest.raises(ZeroDivisionError):
            async with store.transaction():
                await store.write(_add("undone"))
                _ = 1 / 0
        assert await _names(store) == ["after"]


async def test_cancelling_a_transaction_waiting_for_the_lock_leaves_no_stray_lock(tmp_path: Path) -> None:
    """``asyncio.timeout`` around ``store.transaction()`` while another
    process holds the lock: once it lets go, nothing of the cancelled
    transaction may be left holding the database."""
    path = tmp_path / "l.db"
    async with open_store(f"sqlite:///{path}", create=True) as setup:
        await setup.runner.admin(_create_counters)
    loop_thread = threading.current_thread()
    waiting_in_thread = threading.Event()

    def trace(sql: str) -> None:
        if sql.startswith("BEGIN IMMEDIATE") and threading.current_thread() is not loop_thread:
            waiting_in_thread.set()

    async with open_store_unchecked(f"sqlite:///{path}", busy_timeout=30) as store:

        @event.listens_for(store.runner.sync_engine, "connect")
        def _traced(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
            dbapi_connection.set_trace_callback(trace)

        other = _lock(path)
        task = asyncio.create_task(_transaction(store))
        assert await asyncio.to_thread(waiting_in_thread.wait, 10), "the transaction never waited on a thread"
        task.cancel()
        other.execute("COMMIT")
        other.close()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Let the writer thread finish whatever it was still doing.
        await asyncio.get_running_loop().run_in_executor(store.runner._writer_thread, lambda: None)  # type: ignore[attr-defined]

        probe = sqlite3.connect(path, timeout=2, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")  # "database is locked" if a transaction was orphaned
            probe.execute("ROLLBACK")
        finally:
            probe.close()
        await store.write(_add("after"))
        assert await _names(store) == ["after"]
