"""Running units of work on SQLite: inline, one writer, group commit.

Why not SQLAlchemy's asyncio engine over aiosqlite? Each awaited call there is
a hand-off to aiosqlite's thread, and a committed one-row UPDATE makes 4–5 of
them: measured here at 10–65× the cost of the same UPDATE on raw sqlite3,
where the SQL itself takes ~20 µs and one hand-off ~150 µs.

So this runner:

* runs each unit *inline* on the event loop's thread over a held connection
  whose ``busy_timeout`` is 0: a write either gets the lock at once or finds
  that *another process* holds it. Then, and only then, a lock-waiter thread
  waits for the lock (below) without blocking the loop, and the units run
  inline once it is had; an offloaded unit runs on the writer thread. Units
  are functions of the connection, so re-running one is safe.
* serialises writers of this process with an :class:`asyncio.Lock` (SQLite has
  one writer anyway) and batches writers that queue up together into one
  ``BEGIN IMMEDIATE … COMMIT`` (group commit). If any unit of a batch fails,
  the batch is rolled back and each unit re-run alone, so one caller's error
  never undoes another's write.
* queues writers of *different processes* fairly: before ``BEGIN IMMEDIATE``
  a writer takes an ``flock`` on ``<database>-lock`` without waiting; one that
  cannot have it waits for it in the kernel on a lock-waiter thread, which
  wakes it the moment the holder lets go. SQLite's own busy handler sleeps 1,
  2, 5 … 100 ms between attempts, so whoever has waited longest waits longest
  and latency tails reach seconds; SQLite's lock is then attempted in fixed
  1 ms steps (only programs that do not use the file compete for it).
* cancellation: a write whose caller is cancelled before its transaction began
  is never run; once begun it runs to its end (COMMIT, or ROLLBACK on its own
  error) before the caller sees CancelledError. Either way the database holds
  all of the call's changes or none, and nothing of it is still in flight.
* keeps the WAL small: every connection has ``journal_size_limit``, and after
  commits (one look per 0.25 s at most) the size of ``<database>-wal`` is checked; past
  the limit a checkpoint runs on its own thread and connection — PASSIVE,
  which never blocks writers, then TRUNCATE once everything is copied —
  retried while a long reader still pins the log.
* reads inline on a second held connection in ``BEGIN DEFERRED`` (WAL lets it
  read while a writer writes), or on a reader thread when asked to offload.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: SQLite's lock alone orders writers
    fcntl = None  # type: ignore[assignment]

from sqlalchemy.engine import Connection, Dialect, Engine

from statestore.core.classify import is_sqlite_busy, reraise
from statestore.core.data_version_watch import data_version_watch
from statestore.core.dialect import DialectFacts, facts_of
from statestore.core.engine import create_sqlite_engine, set_busy_timeout
from statestore.core.runner import ActiveTransaction, T, Unit, current_transaction, joined, to_its_end
from statestore.core.sqlite_group_commit import GroupCommit
from statestore.core.sqlite_lock_queue import LockFile, Waiter
from statestore.core.sqlite_transactions import (
    Queued,
    SqliteTransaction,
    raw_driver,
    transact,
)
from statestore.core.sqlite_wal import DEFAULT_WAL_CHECKPOINT_BYTES, WalCheckpoint, WalKeeper
from statestore.core.urls import Target
from statestore.core.wakeups import Wakeups

__all__ = ["DEFAULT_WAL_CHECKPOINT_BYTES", "SqliteRunner", "WalCheckpoint"]

"""WAL size past which the store checkpoints, and every connection's ``journal_size_limit``."""


class SqliteRunner(GroupCommit):
    """The :class:`~statestore.core.runner.Runner` for SQLite files and memory."""

    def __init__(
        self,
        target: Target,
        *,
        busy_timeout: float,
        readers: int,
        echo: bool,
        wal_checkpoint_bytes: int = DEFAULT_WAL_CHECKPOINT_BYTES,
    ) -> None:
        self.target = target
        self._busy_timeout = max(0.0, busy_timeout)
        self._busy_timeout_ms = max(0, int(busy_timeout * 1000))
        self._memory = target.is_memory
        self._wal = WalKeeper(wal_checkpoint_bytes, memory=self._memory)
        self._engine: Engine = create_sqlite_engine(
            target,
            busy_timeout_ms=self._busy_timeout_ms,
            pool_size=readers + 2,
            echo=echo,
            journal_size_limit=self._wal.limit,
        )
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="statestore-sqlite-writer")
        self._reader_threads = ThreadPoolExecutor(max(1, readers), thread_name_prefix="statestore-sqlite-reader")
        self._waiter = Waiter()
        self._writer: Connection | None = None
        self._reader: Connection | None = None
        self._lock: asyncio.Lock | None = None
        self._queue: list[Queued] = []
        self._flush_scheduled = False
        self._flusher: asyncio.Task[None] | None = None
        self._claims = threading.Lock()  # a unit's state, when the lock-waiter thread may claim it
        # Where the database lives (known once the writer connection is open).
        self._database_path: str | None = None
        self._lock_file: LockFile | None = None
        # A database in memory is this process's alone: its commits wake sleepers directly.
        self.wakeups = Wakeups(None if self._memory else data_version_watch(self._file_path, self._foreign_version))

    @property
    def dialect(self) -> Dialect:
        return self._engine.dialect

    @property
    def facts(self) -> DialectFacts:
        return facts_of(self._engine.dialect)

    @property
    def sync_engine(self) -> Engine:
        return self._engine

    # -- connections ---------------------------------------------------------

    def _write_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def _writer_connection(self) -> Connection:
        if self._writer is None:
            self._writer = self._engine.connect()
            set_busy_timeout(raw_driver(self._writer), 0)
            if not self._memory:
                self._locate(raw_driver(self._writer))
        return self._writer

    def _locate(self, driver: sqlite3.Connection) -> None:
        """Find the database file: its WAL, and the lock file beside it."""
        path = next((str(row[2]) for row in driver.execute("PRAGMA database_list") if row[1] == "main"), "")
        if not path:  # a temporary database: no file, no WAL
            return
        self._database_path = path
        self._wal.locate(path)
        if fcntl is not None:
            try:
                self._lock_file = LockFile(f"{path}-lock")
            except OSError:  # a read-only directory: SQLite's lock alone orders writers
                self._lock_file = None

    def _file_path(self) -> str | None:
        """The database file's path (None for a temporary database)."""
        self._writer_connection()
        return self._database_path

    def _foreign_version(self) -> int | None:
        """``PRAGMA data_version`` of the writer connection — it changes
        only when another connection commits — or None while a write runs
        (on the loop's thread a write's inline flush never interleaves with
        this; the slow path and the lock-waiter thread hold the write lock)."""
        if self._write_lock().locked():
            return None
        try:
            row = raw_driver(self._writer_connection()).execute("PRAGMA data_version").fetchone()
        except sqlite3.Error:
            return None
        return None if row is None else int(row[0])

    def _reader_connection(self) -> Connection:
        if self._memory:  # one connection holds the whole database
            return self._writer_connection()
        if self._reader is None:
            self._reader = self._engine.connect()
            set_busy_timeout(raw_driver(self._reader), 0)
        return self._reader

    async def in_writer_thread(self, unit: Unit[T], connection: Connection) -> T:
        """Run ``unit`` on the writer thread, letting SQLite wait for locks."""

        def waiting(conn: Connection) -> T:
            set_busy_timeout(raw_driver(conn), self._busy_timeout_ms)
            try:
                return unit(conn)
            finally:
                set_busy_timeout(raw_driver(conn), 0)

        # The thread still uses the connection if the caller is cancelled:
        # let it finish before the caller releases the write lock.
        return await to_its_end(asyncio.get_running_loop().run_in_executor(self._writer_thread, waiting, connection))

    # -- transactions of one unit -------------------------------------------

    async def _transact_writer(self, unit: Unit[T], *, offload: bool) -> T:
        """One write transaction on the writer connection; caller holds the lock."""
        connection = self._writer_connection()
        try:
            if not offload:
                try:
                    return transact(connection, unit)
                except Exception as error:
                    if not is_sqlite_busy(error):
                        raise
            return await self.in_writer_thread(lambda conn: transact(conn, unit), connection)
        except Exception as error:
            reraise(error)

    async def read(self, unit: Unit[T], *, offload: bool = False, single_statement: bool = False) -> T:
        joined_transaction = current_transaction(self)
        if joined_transaction is not None:
            return await joined_transaction.run(unit, offload=offload)
        if self._memory:
            async with self._write_lock():
                return await self._transact_writer(unit, offload=offload)
        try:
            if not offload:
                try:
                    return transact(self._reader_connection(), unit, "DEFERRED")
                except Exception as error:
                    if not is_sqlite_busy(error):
                        raise
            return await asyncio.get_running_loop().run_in_executor(self._reader_threads, self._read_pooled, unit)
        except Exception as error:
            reraise(error)

    def _read_pooled(self, unit: Unit[T]) -> T:
        with self._engine.connect() as connection:
            return transact(connection, unit, "DEFERRED")

    # -- explicit transactions and administration ---------------------------

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[ActiveTransaction]:
        outer = current_transaction(self)
        if outer is not None:
            async with outer.savepoint():
                yield outer
            return
        async with self._write_lock():
            try:
                connection = self._writer_connection()
                fd = await self._begin_writing(connection, _never)
                assert fd is not None  # only a wait that may give up returns None
            except Exception as error:
                reraise(error)
            try:
                transaction = connection.begin()  # joins the transaction begun on the driver
                active = SqliteTransaction(self, connection)
                try:
                    with joined(self, active):
                        yield active
                except BaseException:
                    transaction.rollback()
                    raise
                try:
                    transaction.commit()
                except Exception as error:
                    if raw_driver(connection).in_transaction:
                        transaction.rollback()
                    reraise(error)
            finally:
                if raw_driver(connection).in_transaction:  # connection.begin() itself failed
                    raw_driver(connection).execute("ROLLBACK")
                self._release(fd)
        # Taking a free lock does not yield and the statements run inline, so a
        # loop of transactions would never let the rest of the process run
        # (its group commits included): yield once between them.
        await asyncio.sleep(0)

    async def admin(self, unit: Unit[T], *, foreign_keys_off: bool = False) -> T:
        async with self._write_lock():

            def administer(conn: Connection) -> T:
                if foreign_keys_off:  # a no-op inside a transaction, so set it here
                    raw_driver(conn).execute("PRAGMA foreign_keys = OFF")
                try:
                    return unit(conn)
                finally:
                    if conn.in_transaction():
                        conn.rollback()
                    if foreign_keys_off:
                        raw_driver(conn).execute("PRAGMA foreign_keys = ON")

            try:
                return await self.in_writer_thread(administer, self._writer_connection())
            except Exception as error:
                reraise(error)

    async def checkpoint(self) -> WalCheckpoint | None:
        """Copy the WAL into the database and truncate it (see
        :meth:`WalKeeper.checkpoint`); None for an in-memory database."""
        if not self._memory:
            self._writer_connection()  # finds the file
        try:
            return await self._wal.checkpoint()
        except Exception as error:
            reraise(error)

    async def close(self) -> None:
        await self.wakeups.close()
        await self._wal.stop()
        if self._flusher is not None and not self._flusher.done():
            await self._flusher
        for connection in (self._reader, self._writer):
            if connection is not None:
                connection.close()
        self._reader = self._writer = None
        self._engine.dispose()
        self._writer_thread.shutdown(wait=True)
        self._reader_threads.shutdown(wait=True)
        self._wal.close()
        self._waiter.close()  # an abandoned wait may still sit in the kernel's queue: not joined
        if self._lock_file is not None:
            os.close(self._lock_file.fd)
            self._lock_file = None


def _never() -> bool:
    return False
