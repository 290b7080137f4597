"""Running units of work on PostgreSQL (asyncpg) and MySQL/MariaDB (asyncmy).

Units are synchronous functions; ``AsyncConnection.run_sync`` runs them in a
greenlet, so each ``conn.execute`` inside is one awaited round trip on the
asyncio driver with no thread involved. A unit that promises to be a single
statement runs in AUTOCOMMIT: the statement is atomic by itself, and skipping
BEGIN and COMMIT saves two of its three round trips (measured: 2.8–3.6× raw
asyncpg with them, 1.1–1.4× without). Those units also run on connections the
runner keeps checked out: checking a connection out of SQLAlchemy's pool and
back in for every statement measured another +0.4–0.6× of raw asyncpg.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from statestore.core.classify import reraise
from statestore.core.engine import create_server_engine
from statestore.core.dialect import DialectFacts, facts_of
from statestore.core.runner import ActiveTransaction, T, Unit, current_transaction, joined, savepoint_turn
from statestore.core.urls import Target
from statestore.errors import StoreError, TransactionConflict

__all__ = ["ServerRunner"]

_ATTEMPTS = 5
_BACKOFF = 0.01  # seconds; the n-th retry waits up to n × this, at random


def _transact(unit: Unit[T]) -> Unit[T]:
    def in_transaction(connection: Connection) -> T:
        with connection.begin():
            return unit(connection)

    return in_transaction


class _HeldConnections:
    """AUTOCOMMIT connections kept checked out for single-statement units.

    At most ``limit`` are held (the rest of the pool stays available to
    transactions); a connection that saw a driver error is returned to the
    pool, which resets or discards it, rather than reused.
    """

    def __init__(self, engine: AsyncEngine, limit: int) -> None:
        self._engine = engine
        self._idle: list[AsyncConnection] = []
        self._limit = limit
        self._slots: asyncio.Semaphore | None = None

    async def run(self, unit: Unit[T]) -> T:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._limit)
        async with self._slots:
            connection = self._idle.pop() if self._idle else await self._engine.connect()
            try:
                result = await connection.run_sync(_ending_autobegin(unit))
            except StoreError:
                self._idle.append(connection)  # the unit's own verdict; the connection is fine
                raise
            except BaseException:
                await connection.close()
                raise
            self._idle.append(connection)
            return result

    async def close(self) -> None:
        while self._idle:
            await self._idle.pop().close()


def _ending_autobegin(unit: Unit[T]) -> Unit[T]:
    """Run ``unit`` and end SQLAlchemy's implicit transaction (a no-op on the
    server in AUTOCOMMIT) so the held connection is clean for the next unit."""

    def clean(connection: Connection) -> T:
        try:
            return unit(connection)
        finally:
            if connection.in_transaction():
                connection.commit()

    return clean


@dataclass
class _ServerTransaction:
    connection: AsyncConnection
    guard: asyncio.Lock = field(default_factory=asyncio.Lock)
    turns: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def run(self, unit: Unit[T], *, offload: bool = False) -> T:
        # One connection serves one statement at a time, even if several
        # tasks share the transaction.
        async with self.guard:
            try:
                return await self.connection.run_sync(unit)
            except Exception as error:
                reraise(error)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        async with savepoint_turn(self, self.turns), self._savepoint():
            yield

    @asynccontextmanager
    async def _savepoint(self) -> AsyncIterator[None]:
        try:
            nested = await self.connection.begin_nested()
        except Exception as error:
            reraise(error)
        try:
            yield
        except BaseException:
            await nested.rollback()
            raise
        else:
            await nested.commit()


async def _retrying_conflicts(attempt: Callable[[], Awaitable[T]]) -> T:
    """Run a unit in its own transaction (or statement), again if the
    database rolled it back as a deadlock victim or a serialisation failure.

    Such a transaction was undone whole and a unit is a function of its
    connection, so running it again is safe. Inside a caller's
    ``transaction()`` this is not done: the caller's whole block would have
    to be re-run, so it gets the TransactionConflict.
    """
    for tries in range(1, _ATTEMPTS + 1):
        try:
            try:
                return await attempt()
            except Exception as error:
                reraise(error)
        except TransactionConflict:
            if tries == _ATTEMPTS:
                raise
            await asyncio.sleep(random.uniform(0, _BACKOFF * tries))
    raise AssertionError("unreachable")


class ServerRunner:
    """The :class:`~statestore.core.runner.Runner` for database servers."""

    def __init__(self, target: Target, *, echo: bool, options: dict[str, Any]) -> None:
        self.target = target
        self._engine: AsyncEngine = create_server_engine(target, echo=echo, options=options)
        pool_size = int(options.get("pool_size", 5))
        self._held = _HeldConnections(
            self._engine.execution_options(isolation_level="AUTOCOMMIT"), limit=max(1, pool_size // 2)
        )
        # Reads see one snapshot across their statements (a logbook loaded
        # in three queries must not mix two versions of it).
        self._snapshot = self._engine.execution_options(isolation_level="REPEATABLE READ")

    @property
    def dialect(self) -> Dialect:
        return self._engine.dialect

    @property
    def facts(self) -> DialectFacts:
        return facts_of(self._engine.dialect)

    @property
    def sync_engine(self) -> Engine:
        return self._engine.sync_engine

    async def _run(self, engine: AsyncEngine, unit: Unit[T]) -> T:
        async def once() -> T:
            async with engine.connect() as connection:
                return await connection.run_sync(unit)

        return await _retrying_conflicts(once)

    async def _run_held(self, unit: Unit[T]) -> T:
        return await _retrying_conflicts(lambda: self._held.run(unit))

    async def read(self, unit: Unit[T], *, offload: bool = False, single_statement: bool = False) -> T:
        joined_transaction = current_transaction(self)
        if joined_transaction is not None:
            return await joined_transaction.run(unit)
        if single_statement:  # one SELECT sees one snapshot by itself
            return await self._run_held(unit)
        return await self._run(self._snapshot, _transact(unit))

    async def write(self, unit: Unit[T], *, offload: bool = False, single_statement: bool = False) -> T:
        joined_transaction = current_transaction(self)
        if joined_transaction is not None:
            return await joined_transaction.run(unit)
        if single_statement:
            return await self._run_held(unit)
        return await self._run(self._engine, _transact(unit))

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[ActiveTransaction]:
        outer = current_transaction(self)
        if outer is not None:
            async with outer.savepoint():
                yield outer
            return
        try:
            connection = await self._engine.connect()
        except Exception as error:
            reraise(error)
        try:
            transaction = await connection.begin()
        except Exception as error:
            await connection.close()
            reraise(error)
        try:
            active = _ServerTransaction(connection)
            try:
                with joined(self, active):
                    yield active
            except BaseException:
                await transaction.rollback()
                raise
            try:
                await transaction.commit()
            except Exception as error:
                reraise(error)
        finally:
            await connection.close()

    async def admin(self, unit: Unit[T], *, foreign_keys_off: bool = False) -> T:
        # Server backends keep foreign keys on during migrations: their ALTERs
        # do not rebuild tables, so no cascade can fire by accident.
        return await self._run(self._engine, unit)

    async def close(self) -> None:
        await self._held.close()
        await self._engine.dispose()
