"""SQLite PRAGMAs: every connection the store opens is configured alike.

Complements ``test_core_sqlite.py``: besides pooled connections, the held
connections keep their settings after a lock wait and after a migration
(which switches foreign keys off for its duration).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Table, insert
from sqlalchemy.engine import Connection, Engine

from statestore import InvalidReference, Store, open_store
from statestore.schema.metadata import FlowDetailRow

FLOWS = cast(Table, FlowDetailRow.__table__)


def _driver(connection: Connection) -> sqlite3.Connection:
    driver = connection.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver


def _pragma(connection: Connection, name: str) -> str:
    """Asked of the driver itself: through SQLAlchemy the statement would
    autobegin (BEGIN IMMEDIATE) and the connections would queue for the lock."""
    return str(_driver(connection).execute(f"PRAGMA {name}").fetchone()[0])


def _settings(connection: Connection) -> tuple[str, str, str, str]:
    return (
        _pragma(connection, "journal_mode"),
        _pragma(connection, "foreign_keys"),
        _pragma(connection, "synchronous"),
        _pragma(connection, "busy_timeout"),
    )


def _engine(store: Store) -> Engine:
    return store.runner.sync_engine


async def _in_transaction(store: Store, name: str) -> str:
    """A PRAGMA as the writer connection (the one units run on) reports it."""
    async with store.transaction() as active:
        return await active.run(lambda conn: _pragma(conn, name))


async def test_three_pooled_connections_are_configured(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'p.db'}", create=True, busy_timeout=2.5) as store:
        connections = [_engine(store).connect() for _ in range(3)]
        try:
            assert [_settings(connection) for connection in connections] == [("wal", "1", "1", "2500")] * 3
        finally:
            for connection in connections:
                connection.close()


async def test_concurrent_offloaded_reads_see_configured_connections(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'p.db'}", create=True, busy_timeout=2.5, readers=3) as store:
        seen = await asyncio.gather(*(store.read(_settings, offload=True) for _ in range(9)))
        assert set(seen) == {("wal", "1", "1", "2500")}


async def test_default_busy_timeout_is_thirty_seconds(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'p.db'}", create=True) as store:
        with _engine(store).connect() as connection:
            assert _pragma(connection, "busy_timeout") == "30000"


async def test_held_connections_do_not_wait_even_after_a_lock_wait(tmp_path: Path) -> None:
    """Inline connections keep busy_timeout 0 after a write fell back to the
    writer thread (which waits with the configured timeout, then resets it)."""
    path = tmp_path / "p.db"
    async with open_store(f"sqlite:///{path}", create=True, busy_timeout=5) as store:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")

        async def release() -> None:
            await asyncio.sleep(0.05)
            other.execute("COMMIT")

        await asyncio.gather(
            store.write(lambda conn: _driver(conn).execute("PRAGMA user_version = 7")),
            release(),
        )
        other.close()
        assert await store.read(lambda conn: _pragma(conn, "user_version")) == "7"
        assert await _in_transaction(store, "busy_timeout") == "0"
        assert await store.read(lambda conn: _pragma(conn, "busy_timeout")) == "0"


@pytest.mark.parametrize("kind", ["file", "memory"])
async def test_foreign_keys_are_back_on_after_a_migration(tmp_path: Path, kind: str) -> None:
    """Migrations run with foreign keys off; the writer must get them back."""
    url = f"sqlite:///{tmp_path / 'p.db'}" if kind == "file" else "sqlite+aiosqlite://"
    orphan: dict[str, object] = {"name": "f", "meta": {}, "state": None, "logbook_id": 424242}
    async with open_store(url, create=True) as store:
        await store.upgrade()  # again: a no-op migration, still toggles the PRAGMA
        assert await _in_transaction(store, "foreign_keys") == "1"
        with pytest.raises(InvalidReference):
            await store.write(lambda conn: conn.execute(insert(FLOWS), orphan))


async def test_memory_store_has_foreign_keys_and_no_wal() -> None:
    async with open_store("sqlite+aiosqlite://", create=True) as store:
        assert await store.read(lambda conn: _pragma(conn, "foreign_keys")) == "1"
        assert await store.read(lambda conn: _pragma(conn, "journal_mode")) == "memory"
