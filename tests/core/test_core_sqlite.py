"""SQLite specifics: PRAGMAs on every pooled connection, the memory pool."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from statestore import Store, open_store
from tests.support.core_model import COUNTERS, counters_table


def _pragmas(connection: Connection) -> tuple[str, int, int, int]:
    driver = connection.connection.driver_connection
    assert driver is not None

    def pragma(name: str) -> object:
        return driver.execute(f"PRAGMA {name}").fetchone()[0]

    return (
        str(pragma("journal_mode")),
        int(str(pragma("foreign_keys"))),
        int(str(pragma("synchronous"))),
        int(str(pragma("busy_timeout"))),
    )


async def test_every_pooled_connection_is_configured(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'p.db'}", create=True, busy_timeout=2.5, readers=3) as store:
        engine = store.runner._engine  # type: ignore[attr-defined]
        connections = [engine.connect() for _ in range(4)]
        try:
            for connection in connections:
                assert _pragmas(connection) == ("wal", 1, 1, 2500)
        finally:
            for connection in connections:
                connection.close()
        # Offloaded reads run on reader threads with pooled connections.
        seen = await asyncio.gather(*(store.read(_pragmas, offload=True) for _ in range(6)))
        assert all(pragmas == ("wal", 1, 1, 2500) for pragmas in seen)


async def test_inline_connections_wait_on_a_thread_not_the_loop(tmp_path: Path) -> None:
    """The connections used on the event loop's thread never wait for a lock
    (busy_timeout 0); only the thread fallback waits."""
    async with open_store(f"sqlite:///{tmp_path / 'p.db'}", create=True, busy_timeout=2.5) as store:
        journal, foreign_keys, synchronous, busy = await store.read(_pragmas)
        assert (journal, foreign_keys, synchronous, busy) == ("wal", 1, 1, 0)


async def test_memory_store_has_foreign_keys_and_one_connection() -> None:
    async with open_store("sqlite+aiosqlite://", create=True) as store:
        _, foreign_keys, _, _ = await store.read(_pragmas)
        assert foreign_keys == 1
        assert store.runner._engine.pool.size() == 1  # type: ignore[attr-defined]


async def test_memory_rollback_does_not_undo_a_concurrent_commit() -> None:
    """The StaticPool trap: with one shared connection, one session's rollback
    undid another's work. Here transactions queue for the one connection."""

    class Boom(Exception):
        pass

    async with open_store("sqlite+aiosqlite://", create=True) as store, counters_table(store):
        started = asyncio.Event()

        async def failing() -> None:
            with pytest.raises(Boom):
                async with store.transaction():
                    await store.write(lambda conn: conn.execute(insert(COUNTERS), {"name": "doomed"}))
                    started.set()
                    await asyncio.sleep(0.05)
                    raise Boom

        async def committing() -> None:
            await started.wait()
            await store.write(lambda conn: conn.execute(insert(COUNTERS), {"name": "kept"}))

        await asyncio.gather(failing(), committing())
        names = await store.read(lambda conn: list(conn.execute(select(COUNTERS.c.name)).scalars()))
        assert names == ["kept"]


async def test_group_commit_isolates_a_failing_writer(store: Store) -> None:
    """64 concurrent writes share commits; the one that fails fails alone."""
    async with counters_table(store):
        from uuid import uuid4

        taken = uuid4()
        await store.write(lambda conn: conn.execute(insert(COUNTERS), {"name": "first", "uuid": taken}))

        async def add(index: int) -> None:
            values = {"name": f"w{index}", "uuid": taken if index == 17 else uuid4()}
            await store.write(lambda conn: conn.execute(insert(COUNTERS), values))

        outcomes = await asyncio.gather(*(add(index) for index in range(64)), return_exceptions=True)
        failures = {index: outcome for index, outcome in enumerate(outcomes) if outcome is not None}
        from statestore import AlreadyExists

        assert list(failures) == [17]
        assert isinstance(failures[17], AlreadyExists)
        names = await store.read(lambda conn: set(conn.execute(select(COUNTERS.c.name)).scalars()))
        assert names == {"first"} | {f"w{index}" for index in range(64) if index != 17}


async def test_a_loop_of_transactions_lets_other_coroutines_run(tmp_path: Path) -> None:
    """Taking a free write lock does not yield, and the statements run inline:
    without a yield between transactions, a coroutine looping over
    ``store.transaction()`` starved every other coroutine of the process."""
    async with open_store(f"sqlite:///{tmp_path / 'loop.db'}", create=True) as store, counters_table(store):
        other_done = asyncio.Event()
        loops_before_other = 0

        async def looping() -> None:
            nonlocal loops_before_other
            for index in range(200):
                async with store.transaction():
                    await store.write(lambda conn, i=index: conn.execute(insert(COUNTERS), {"name": f"loop{i}"}))
                if not other_done.is_set():
                    loops_before_other += 1

        async def other() -> None:
            await store.write(lambda conn: conn.execute(insert(COUNTERS), {"name": "other"}))
            other_done.set()

        await asyncio.gather(looping(), other())
        assert other_done.is_set()
        assert loops_before_other < 50
