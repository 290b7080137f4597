"""Running units of work on PostgreSQL (asyncpg) and MySQL/MariaDB (asyncmy).

Units are synchronous functions; ``AsyncConnection.run_sync`` runs them in a
greenlet, so each ``conn.execute`` inside is one awaited round trip on the
asyncio driver with no thread involved. A unit that promises to be a single
statement runs in AUTOCOMMIT: the statement is atomic by itself, and skipping
BEGIN and COMMIT saves two of its three round trips (measured: 2.8–3.6× raw
asyncpg with them, 1.1–1.4× without). Those units also run on connections the
runner keeps checked out: checking a connection out of SQLAlchemy's pool and
back in for every statement measured another +0.4–0.6× of raw asyncpg.

Failures:

* A connection is reused only after an error the database reported about the
  statement (or a StoreError of the unit's own) and only if the driver says
  it is open and outside any transaction; after anything else — a
  cancellation, an encoding failure, a lost connection — it is closed at
  once and dropped from the pool. Every check-out and every reuse of a held
  connection first asks the driver, without a round trip, whether it is
  still open (the event loop has read the server's goodbye by then), so a
  connection the server dropped while idle is never used.
* A read that loses its connection runs once more on a fresh one; a write
  does only if it provably was not committed (it failed before its COMMIT,
  or the driver refused to send its statement at all). Otherwise the caller
  gets Unavailable: the write may or may not have been committed.
* A cancelled call raises CancelledError, whatever the driver made of it.
* Held connections come from the pool and go back to it whenever someone is
  waiting for a connection of a full pool, so they never starve others.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from statestore.core.classify import connection_lost, unsent
from statestore.core.dialect import DialectFacts, facts_of
from statestore.core.engine import create_server_engine
from statestore.core.held_connections import HeldConnections
from statestore.core.notify_listener import listener
from statestore.core.runner import ActiveTransaction, T, Unit, current_transaction, joined, savepoint_turn
from statestore.core.server_connections import (
    PING_AFTER_IDLE,
    PROBES,
    PoolGate,
    Probe,
    Progress,
    always,
    background,
    cancel_requests,
    discard,
    driver_of,
    raise_failure,
    release,
    reusable,
    store_failure,
    transact,
)
from statestore.core.urls import Target
from statestore.core.wakeups import Wakeups
from statestore.errors import TransactionConflict, Unavailable

__all__ = ["ServerRunner"]

_ATTEMPTS = 5
_BACKOFF = 0.01  # seconds; the n-th retry waits up to n × this, at random


@dataclass
class _ServerTransaction:
    """The connection of an open ``store.transaction()`` block.

    A lost connection, or a call in the block cancelled half-way through a
    statement, *breaks* it: later calls in the block raise Unavailable at
    once, and the block's end discards the connection (the server rolls the
    transaction back) instead of sending anything more on it.
    """

    connection: AsyncConnection
    driver: Any
    alive: Probe
    guard: asyncio.Lock = field(default_factory=asyncio.Lock)
    turns: asyncio.Lock = field(default_factory=asyncio.Lock)
    broken: BaseException | None = None

    async def run(self, unit: Unit[T], *, offload: bool = False) -> T:
        # One connection serves one statement at a time, even if several
        # tasks share the transaction.
        async with self.guard:
            return await self._io(lambda: self.connection.run_sync(unit))

    async def _io(self, step: Callable[[], Awaitable[T]]) -> T:
        if self.broken is not None:
            raise Unavailable(
                "this transaction lost its connection (or a call in it was cancelled); nothing in it is committed"
            ) from self.broken
        cancels_before = cancel_requests()
        try:
            return await step()
        except BaseException as error:
            if not isinstance(error, Exception) or connection_lost(error) or not self.alive(self.driver):
                self.broken = error
            if isinstance(error, Exception):
                raise_failure(error, cancels_before, lost=self.broken is not None)
            raise

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        async with savepoint_turn(self, self.turns), self._savepoint():
            yield

    @asynccontextmanager
    async def _savepoint(self) -> AsyncIterator[None]:
        nested = await self._io(self.connection.begin_nested)
        try:
            yield
        except BaseException:
            try:
                await self._io(nested.rollback)
            except Exception:
                # The block's own error is the one to report; if the savepoint
                # could not be rolled back, the transaction cannot go on.
                if self.broken is None:
                    self.broken = Unavailable("a savepoint could not be rolled back")
            raise
        else:
            await self._io(nested.commit)

    async def end(self, *, commit: bool) -> None:
        """Commit (or roll back) and return the connection to the pool; a
        broken transaction's connection is discarded instead, and committing
        it raises Unavailable."""
        if self.broken is None:
            try:
                if commit:
                    await self._io(self.connection.commit)
                else:
                    await self.connection.rollback()
            except BaseException as error:
                await discard(self.connection)
                if commit or not isinstance(error, Exception):
                    raise
                return
            await release(self.connection)
            return
        await discard(self.connection)
        if commit:
            raise Unavailable(
                "this transaction lost its connection (or a call in it was cancelled); nothing in it was committed"
            ) from self.broken


async def _attempts(attempt: Callable[[Progress], Awaitable[T]], *, idempotent: bool, autocommit: bool) -> T:
    """Run a unit in its own transaction (or statement), again if that is safe.

    * The database rolled it back as a deadlock victim or a serialisation
      failure: such a transaction was undone whole and a unit is a function
      of its connection, so it runs again (up to ``_ATTEMPTS`` times).
    * Its connection was lost: it runs once more, on a fresh connection, if
      it is ``idempotent`` (a read) or provably not committed — the loss came
      before its COMMIT, or the driver refused to send it at all. A write in
      AUTOCOMMIT (``autocommit``) commits with its one statement, so only the
      latter applies to it. Otherwise the caller gets Unavailable.

    Inside a caller's ``transaction()`` none of this is done: the caller's
    whole block would have to be re-run, so it gets the error.
    """
    cancels_before = cancel_requests()
    conflicts = 0
    rerun_after_loss = False
    while True:
        progress = Progress(committing=autocommit)
        try:
            return await attempt(progress)
        except Exception as error:
            if cancel_requests() > cancels_before:
                raise asyncio.CancelledError() from error
            failure = store_failure(error, lost=progress.lost)
            if isinstance(failure, TransactionConflict) and conflicts < _ATTEMPTS - 1:
                conflicts += 1
                await asyncio.sleep(random.uniform(0, _BACKOFF * conflicts))
                continue
            if progress.lost and not rerun_after_loss and (idempotent or not progress.committing or unsent(error)):
                rerun_after_loss = True
                continue
            if failure is error:
                raise
            raise failure from error


class ServerRunner:
    """The :class:`~statestore.core.runner.Runner` for database servers.

    ``options`` go to SQLAlchemy's engine, except ``pre_ping``: with it the
    pool pings every connection it hands out (``pool_pre_ping``) and a held
    connection idle for ``PING_AFTER_IDLE`` seconds is pinged before reuse —
    one round trip more, which finds connections that died without the
    server closing them (a network cut, a firewall dropping idle
    connections). Without it only the driver is asked, which finds those the
    server closed.
    """

    def __init__(self, target: Target, *, echo: bool, options: dict[str, Any]) -> None:
        self.target = target
        options = dict(options)
        pre_ping = bool(options.pop("pre_ping", False))
        if pre_ping:
            options["pool_pre_ping"] = True
        pre_ping = pre_ping or bool(options.get("pool_pre_ping", False))
        self._engine: AsyncEngine = create_server_engine(target, echo=echo, options=options)
        self._alive, self._clean = PROBES.get(target.backend, (always, always))
        event.listen(self._engine.sync_engine, "checkout", self._refuse_unusable)
        pool_size = int(options.get("pool_size", 5))
        max_overflow = int(options.get("max_overflow", 10))
        bounded = "poolclass" not in options and pool_size > 0 and max_overflow >= 0
        capacity = pool_size + max_overflow if bounded else None
        self._gate = PoolGate(self._engine, capacity)
        self._held = HeldConnections(
            self._engine.execution_options(isolation_level="AUTOCOMMIT"),
            self._gate,
            limit=max(1, pool_size // 2),
            probes=(self._alive, self._clean),
            ping_after=PING_AFTER_IDLE if pre_ping else None,
        )
        self._gate.lender = self._held
        # Reads see one snapshot across their statements (a logbook loaded
        # in three queries must not mix two versions of it).
        self._snapshot = self._engine.execution_options(isolation_level="REPEATABLE READ")
        autocommit = self._engine.execution_options(isolation_level="AUTOCOMMIT")
        notify = self.facts.wakeups == "notify"
        self.wakeups = Wakeups(
            listener(lambda: self._gate.connect(autocommit)) if notify else None,
            polls=self.facts.wakeups == "polling",
        )

    def _refuse_unusable(
        self, dbapi_connection: Any, _record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        """Pool check-out: a connection the server closed while it sat in the
        pool (or one left in a transaction) is replaced by a new one."""
        if not self._clean(dbapi_connection.driver_connection):
            raise sa_exc.DisconnectionError("connection closed by the server or left in a transaction")

    @property
    def dialect(self) -> Dialect:
        return self._engine.dialect

    @property
    def facts(self) -> DialectFacts:
        return facts_of(self._engine.dialect)

    @property
    def sync_engine(self) -> Engine:
        return self._engine.sync_engine

    async def _connect(self, engine: AsyncEngine) -> AsyncConnection:
        return await self._gate.connect(engine)

    async def _pooled(self, engine: AsyncEngine, unit: Unit[T], progress: Progress) -> T:
        """Run ``unit`` on a connection checked out for it."""
        connection = await self._connect(engine)
        driver = driver_of(connection)
        try:
            result = await connection.run_sync(unit)
        except BaseException as error:
            progress.lost = await self._settle(connection, driver, error)
            raise
        await release(connection)
        return result

    async def _settle(self, connection: AsyncConnection, driver: Any, error: BaseException) -> bool:
        """Return ``connection`` to the pool, rolled back, or discard it, after
        ``error``; whether the connection was lost."""
        lost = connection_lost(error) or not self._alive(driver)
        if not lost and reusable(error) and not connection.invalidated:
            await release(connection)  # rolls back
            return False
        await discard(connection)
        return lost

    async def read(self, unit: Unit[T], *, offload: bool = False, single_statement: bool = False) -> T:
        joined_transaction = current_transaction(self)
        if joined_transaction is not None:
            return await joined_transaction.run(unit)
        if single_statement:  # one SELECT sees one snapshot by itself
            return await _attempts(lambda progress: self._held.run(unit, progress), idempotent=True, autocommit=True)
        return await _attempts(
            lambda progress: self._pooled(self._snapshot, transact(unit, progress), progress),
            idempotent=True,
            autocommit=False,
        )

    async def write(self, unit: Unit[T], *, offload: bool = False, single_statement: bool = False) -> T:
        joined_transaction = current_transaction(self)
        if joined_transaction is not None:
            return await joined_transaction.run(unit)
        if single_statement:
            result = await _attempts(lambda progress: self._held.run(unit, progress), idempotent=False, autocommit=True)
        else:
            result = await _attempts(
                lambda progress: self._pooled(self._engine, transact(unit, progress), progress),
                idempotent=False,
                autocommit=False,
            )
        self.wakeups.changed()  # committed: it may have written changes someone follows
        return result

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[ActiveTransaction]:
        outer = current_transaction(self)
        if outer is not None:
            async with outer.savepoint():
                yield outer
            return
        cancels_before = cancel_requests()
        try:
            connection = await self._connect(self._engine)
        except Exception as error:
            raise_failure(error, cancels_before)
        active = _ServerTransaction(connection, driver_of(connection), self._alive)
        try:
            await connection.begin()  # SQLAlchemy's; BEGIN goes out with the first statement
        except BaseException as error:
            await discard(connection)
            if isinstance(error, Exception):
                raise_failure(error, cancels_before)
            raise
        try:
            with joined(self, active):
                yield active
        except BaseException as error:
            await active.end(commit=False)
            if isinstance(error, Exception) and cancel_requests() > cancels_before:
                raise asyncio.CancelledError() from error
            raise
        try:
            await active.end(commit=True)
        except Exception as error:
            raise_failure(error, cancels_before)

    async def admin(self, unit: Unit[T], *, foreign_keys_off: bool = False) -> T:
        # Server backends keep foreign keys on during migrations: their ALTERs
        # do not rebuild tables, so no cascade can fire by accident. What the
        # unit commits is its own business, so a lost connection is not re-run.
        return await _attempts(
            lambda progress: self._pooled(self._engine, unit, progress), idempotent=False, autocommit=True
        )

    async def close(self) -> None:
        await self.wakeups.close()
        await self._held.close()
        loop = asyncio.get_running_loop()
        # Connections being returned or discarded in the background.
        await asyncio.gather(*(task for task in background if task.get_loop() is loop), return_exceptions=True)
        await self._engine.dispose()
