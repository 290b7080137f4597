"""The pieces of a SQLite write: the driver connection under SQLAlchemy's,
running a unit in its own transaction, a queued write of group commit, and an
explicit transaction that repository calls join.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy.engine import Connection

from statestore.core.classify import classify, reraise
from statestore.core.runner import T, Unit, savepoint_turn

if TYPE_CHECKING:  # a transaction runs offloaded units on its runner's writer thread
    from statestore.core.sqlite_runner import SqliteRunner

__all__ = [
    "CLAIMED",
    "DROPPED",
    "QUEUED",
    "Queued",
    "SqliteTransaction",
    "finish",
    "raw_driver",
    "sqlite_failure",
    "transact",
]

QUEUED, CLAIMED, DROPPED = 0, 1, 2  # a queued write: waiting, its transaction begun, its caller gone


def raw_driver(connection: Connection) -> sqlite3.Connection:
    return cast(sqlite3.Connection, connection.connection.driver_connection)


def transact(connection: Connection, unit: Unit[T], begin: str = "IMMEDIATE") -> T:
    """One transaction around ``unit``, begun and ended on the driver itself.

    SQLAlchemy's begin/commit cost ~16 µs against ~7 µs for the driver; a
    unit that executes through SQLAlchemy joins this transaction (the
    ``begin`` listener sees it open), and is then ended through SQLAlchemy so
    its bookkeeping stays right.
    """
    driver = raw_driver(connection)
    driver.execute(f"BEGIN {begin}")
    return finish(connection, unit, driver)


def finish(connection: Connection, unit: Unit[T], driver: sqlite3.Connection | None = None) -> T:
    """Run ``unit`` in the transaction begun on the driver and commit it; on
    any error (the unit's or the commit's) roll back, so the connection is
    never left inside a transaction."""
    if driver is None:
        driver = raw_driver(connection)
    try:
        result = unit(connection)
        if connection.in_transaction():
            connection.commit()
        else:
            driver.execute("COMMIT")
    except BaseException:
        if connection.in_transaction():
            connection.rollback()
        elif driver.in_transaction:
            driver.execute("ROLLBACK")
        raise
    return result


def sqlite_failure(error: BaseException) -> BaseException:
    """The statestore error for ``error``, chained to it as ``raise … from`` would."""
    classified = classify(error)
    if classified is not error:
        classified.__cause__ = error
    return classified


@dataclass(slots=True)
class Queued:
    unit: Unit[Any]
    future: asyncio.Future[Any]
    offload: bool = False
    state: int = QUEUED
    finished: asyncio.Future[None] | None = None
    """Done once the transaction of a unit run off the event loop's thread has ended."""


@dataclass
class SqliteTransaction:
    """An explicit transaction holding the writer connection (and the lock)."""

    runner: SqliteRunner
    connection: Connection
    guard: asyncio.Lock = field(default_factory=asyncio.Lock)
    turns: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def run(self, unit: Unit[T], *, offload: bool = False) -> T:
        # Concurrent tasks may share one transaction; the connection is not.
        async with self.guard:
            try:
                if offload:
                    return await self.runner.in_writer_thread(unit, self.connection)
                return unit(self.connection)
            except Exception as error:
                reraise(error)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        async with savepoint_turn(self, self.turns), self._savepoint():
            yield

    @asynccontextmanager
    async def _savepoint(self) -> AsyncIterator[None]:
        nested = self.connection.begin_nested()
        try:
            yield
        except BaseException:
            nested.rollback()
            raise
        else:
            nested.commit()
