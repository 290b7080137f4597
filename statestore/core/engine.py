"""URL → configured SQLAlchemy engine, one per store."""

from __future__ import annotations

import sqlite3
from typing import Any, cast

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

from statestore.core.types import dump_json
from statestore.core.urls import Target

__all__ = ["create_server_engine", "create_sqlite_engine", "set_busy_timeout"]


def set_busy_timeout(dbapi_connection: sqlite3.Connection, milliseconds: int) -> None:
    """How long SQLite itself waits for another connection's lock."""
    dbapi_connection.execute(f"PRAGMA busy_timeout = {int(milliseconds)}")


def create_sqlite_engine(
    target: Target, *, busy_timeout_ms: int, pool_size: int, echo: bool, journal_size_limit: int = 64 * 2**20
) -> Engine:
    """A stdlib-sqlite3 engine whose every connection is configured alike.

    * PRAGMAs are set in a ``connect`` listener, so every pooled connection
      gets them (set once on one connection, the others stay
      ``journal_mode=delete, foreign_keys=0``).
    * The driver's own transaction handling is switched off: it does not BEGIN
      before a SELECT, so a read-then-write could silently lose an update. We
      emit ``BEGIN IMMEDIATE`` ourselves (here in a ``begin`` listener, and
      in the runner), which takes the write lock up front and makes
      concurrent read-then-write transactions queue; readers begin DEFERRED.
    * In-memory databases get a pool of exactly one connection (not a
      StaticPool, whose one connection is shared by concurrent users, so that
      one's rollback undoes another's work).
    * ``journal_size_limit`` (bytes): whenever SQLite resets the WAL after a
      complete checkpoint, it truncates the file back to this size; without
      it (-1) a WAL grown during a long read keeps its size on disk.
    """
    memory = target.is_memory
    engine = create_engine(
        target.url,
        echo=echo,
        poolclass=QueuePool,
        pool_size=1 if memory else pool_size,
        max_overflow=0,
        pool_recycle=-1,
        json_serializer=dump_json,
        connect_args={"check_same_thread": False, "isolation_level": None},
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        # The timeout first: switching a file to WAL may wait for a lock.
        set_busy_timeout(dbapi_connection, busy_timeout_ms)
        if not memory:
            dbapi_connection.execute("PRAGMA journal_mode = WAL")
            dbapi_connection.execute(f"PRAGMA journal_size_limit = {int(journal_size_limit)}")
        dbapi_connection.execute("PRAGMA foreign_keys = ON")
        dbapi_connection.execute("PRAGMA synchronous = NORMAL")

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        driver = cast(sqlite3.Connection, connection.connection.driver_connection)
        if driver.in_transaction:  # the runner already began it (see sqlite_runner.transact)
            return
        driver.execute("BEGIN IMMEDIATE")

    return engine


def create_server_engine(target: Target, *, echo: bool, options: dict[str, Any]) -> AsyncEngine:
    """An asyncio engine for PostgreSQL (asyncpg) or MySQL/MariaDB (asyncmy).

    ``options`` pass through to :func:`create_async_engine` (``pool_size``,
    ``max_overflow``, ``pool_timeout``, ``pool_recycle``, ``connect_args`` …).
    """
    settings: dict[str, Any] = {"pool_pre_ping": False, "json_serializer": dump_json}
    if target.backend == "mysql":
        # PostgreSQL's default. Under MySQL's REPEATABLE READ a locking read
        # keeps every row it examined locked to the end of the transaction,
        # so a claimer that passed over a task would make every other claimer
        # SKIP it too; READ COMMITTED releases rows that did not match.
        settings["isolation_level"] = "READ COMMITTED"
    settings.update(options)
    return create_async_engine(target.url, echo=echo, **settings)
