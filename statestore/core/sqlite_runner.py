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
import queue
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast
from urllib.parse import quote

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: SQLite's lock alone orders writers
    fcntl = None  # type: ignore[assignment]

from sqlalchemy.engine import Connection, Dialect, Engine

from statestore.core.classify import classify, is_sqlite_busy, reraise
from statestore.core.dialect import DialectFacts, facts_of
from statestore.core.engine import create_sqlite_engine, set_busy_timeout
from statestore.core.runner import ActiveTransaction, T, Unit, current_transaction, joined, savepoint_turn
from statestore.core.urls import Target
from statestore.errors import Busy

__all__ = ["DEFAULT_WAL_CHECKPOINT_BYTES", "SqliteRunner", "WalCheckpoint"]

DEFAULT_WAL_CHECKPOINT_BYTES = 64 * 2**20
"""WAL size past which the store checkpoints, and every connection's ``journal_size_limit``."""
_LOCK_POLL = 0.001  # seconds between attempts at SQLite's write lock while waiting for it
_WAL_CHECK_INTERVAL = 0.25  # seconds between looks at the WAL's size after commits
_WAL_RETRY_FIRST, _WAL_RETRY_LONGEST = 0.25, 2.0  # pauses between checkpoints while the WAL stays large
_NO_FD = -1  # "holding the write lock" where there is no lock file to hold
_QUEUED, _CLAIMED, _DROPPED = 0, 1, 2  # a queued write: waiting, its transaction begun, its caller gone
_QUEUEING, _BEGINNING, _ENDED = 0, 1, 2  # a lock wait: in the lock file's queue, at SQLite's lock, over


def _raw(connection: Connection) -> sqlite3.Connection:
    return cast(sqlite3.Connection, connection.connection.driver_connection)


def _transact(connection: Connection, unit: Unit[T], begin: str = "IMMEDIATE") -> T:
    """One transaction around ``unit``, begun and ended on the driver itself.

    SQLAlchemy's begin/commit cost ~16 µs against ~7 µs for the driver; a
    unit that executes through SQLAlchemy joins this transaction (the
    ``begin`` listener sees it open), and is then ended through SQLAlchemy so
    its bookkeeping stays right.
    """
    driver = _raw(connection)
    driver.execute(f"BEGIN {begin}")
    return _finish(connection, unit, driver)


def _finish(connection: Connection, unit: Unit[T], driver: sqlite3.Connection | None = None) -> T:
    """Run ``unit`` in the transaction begun on the driver and commit it; on
    any error (the unit's or the commit's) roll back, so the connection is
    never left inside a transaction."""
    if driver is None:
        driver = _raw(connection)
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


def _failure(error: BaseException) -> BaseException:
    """The statestore error for ``error``, chained to it as ``raise … from`` would."""
    classified = classify(error)
    if classified is not error:
        classified.__cause__ = error
    return classified


@dataclass(frozen=True)
class WalCheckpoint:
    """What a checkpoint of a SQLite file did (:meth:`Store.checkpoint`)."""

    busy: bool
    """True when a reader (or writer) still used the log, so it could not all
    be copied into the database and truncated; run it again later."""
    log_frames: int
    """Frames (pages) in the write-ahead log when the checkpoint began; -1
    when the database is not in WAL mode."""
    checkpointed_frames: int
    """How many of them are now copied into the database file."""
    wal_bytes: int
    """Size of the ``-wal`` file afterwards (0: truncated or absent)."""


class _LockFile:
    """``<database>-lock``: a queue for SQLite's write lock across processes.

    Writers of every statestore process take an exclusive ``flock`` on it for
    the span of their write transaction — without waiting, on the event loop,
    through :attr:`fd`; a writer that cannot have it waits on a thread through
    a descriptor of its own (flock excludes other open files, even of the same
    process), and the kernel wakes it the moment the holder lets go. The file
    orders statestore's writers only: SQLite's lock still decides who writes,
    so a writer that ignores the file (another program, an older statestore)
    costs fairness, never correctness. It stays empty; deleting it while no
    process has the database open is harmless.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def try_take(self) -> int | None:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        return self.fd

    def take_waiting(self) -> int:
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def release(self, fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        if fd != self.fd:
            os.close(fd)


@dataclass
class _LockWait:
    """One wait for the write lock on the lock-waiter thread, and what the
    event loop tells it (``abandoned``, ``give_up()``)."""

    deadline: float
    give_up: Callable[[], bool]
    fd: int | None
    """The lock file descriptor this wait holds; None while still queueing."""
    then: Callable[[], None] | None = None
    """Work to do on the thread once the lock is had, ending the transaction
    and letting go of the lock file there (see :meth:`SqliteRunner._commit_group`)."""
    phase: int = _QUEUEING
    abandoned: bool = False
    guard: threading.Lock = field(default_factory=threading.Lock)


class _Waiter:
    """A daemon thread for lock waits: a wait stuck behind a hung process must
    not keep the interpreter from exiting (an executor's threads are joined
    at exit), and must not hold up the writer thread."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.AbstractEventLoop, asyncio.Future[Any]] | None]
        self._jobs = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, job: Callable[[], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="statestore-sqlite-lock-waiter", daemon=True)
            self._thread.start()
        self._jobs.put((job, loop, future))
        return future

    def _serve(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, loop, future = item
            try:
                result, error = job(), None
            except BaseException as raised:  # handed to the loop, raised there
                result, error = None, raised
            with suppress(RuntimeError):  # the loop is closed: nobody is waiting
                loop.call_soon_threadsafe(partial(_settle, future, result=result, error=error))

    def close(self) -> None:
        self._jobs.put(None)


@dataclass(slots=True)
class _Queued:
    unit: Unit[Any]
    future: asyncio.Future[Any]
    offload: bool = False
    state: int = _QUEUED
    finished: asyncio.Future[None] | None = None
    """Done once the transaction of a unit run off the event loop's thread has ended."""


@dataclass
class _SqliteTransaction:
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


class SqliteRunner:
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
        self._wal_limit = max(0, int(wal_checkpoint_bytes))
        self._engine: Engine = create_sqlite_engine(
            target,
            busy_timeout_ms=self._busy_timeout_ms,
            pool_size=readers + 2,
            echo=echo,
            journal_size_limit=self._wal_limit,
        )
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="statestore-sqlite-writer")
        self._reader_threads = ThreadPoolExecutor(max(1, readers), thread_name_prefix="statestore-sqlite-reader")
        self._checkpoint_thread = ThreadPoolExecutor(1, thread_name_prefix="statestore-sqlite-checkpoint")
        self._waiter = _Waiter()
        self._writer: Connection | None = None
        self._reader: Connection | None = None
        self._lock: asyncio.Lock | None = None
        self._queue: list[_Queued] = []
        self._flush_scheduled = False
        self._flusher: asyncio.Task[None] | None = None
        self._claims = threading.Lock()  # a unit's state, when the lock-waiter thread may claim it
        # Where the database lives (known once the writer connection is open).
        self._database_path: str | None = None
        self._wal_path: str | None = None
        self._lock_file: _LockFile | None = None
        # WAL upkeep.
        self._wal_look: asyncio.TimerHandle | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        self._checkpoint_turn: asyncio.Lock | None = None
        self._checkpoint_connection: sqlite3.Connection | None = None
        self._closing = False

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
            set_busy_timeout(_raw(self._writer), 0)
            if not self._memory:
                self._locate(_raw(self._writer))
        return self._writer

    def _locate(self, driver: sqlite3.Connection) -> None:
        """Find the database file: its WAL, and the lock file beside it."""
        path = next((str(row[2]) for row in driver.execute("PRAGMA database_list") if row[1] == "main"), "")
        if not path:  # a temporary database: no file, no WAL
            return
        self._database_path, self._wal_path = path, f"{path}-wal"
        if fcntl is not None:
            try:
                self._lock_file = _LockFile(f"{path}-lock")
            except OSError:  # a read-only directory: SQLite's lock alone orders writers
                self._lock_file = None

    def _reader_connection(self) -> Connection:
        if self._memory:  # one connection holds the whole database
            return self._writer_connection()
        if self._reader is None:
            self._reader = self._engine.connect()
            set_busy_timeout(_raw(self._reader), 0)
        return self._reader

    async def in_writer_thread(self, unit: Unit[T], connection: Connection) -> T:
        """Run ``unit`` on the writer thread, letting SQLite wait for locks."""

        def waiting(conn: Connection) -> T:
            set_busy_timeout(_raw(conn), self._busy_timeout_ms)
            try:
                return unit(conn)
            finally:
                set_busy_timeout(_raw(conn), 0)

        future = asyncio.get_running_loop().run_in_executor(self._writer_thread, waiting, connection)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # The thread still uses the connection: let it finish before the
            # caller releases the write lock, whatever its outcome.
            with suppress(BaseException):
                await future
            raise

    # -- the write lock: this process's, the lock file's, SQLite's ---------

    def _take_turn_now(self) -> int | None:
        """The lock file's turn if free right now (a descriptor to release),
        ``_NO_FD`` where there is no lock file, None when another holds it."""
        lock_file = self._lock_file
        if lock_file is None:
            return _NO_FD
        try:
            return lock_file.try_take()
        except OSError:  # a file system without flock: SQLite's lock alone
            self._lock_file = None
            return _NO_FD

    def _release(self, fd: int) -> None:
        if fd != _NO_FD and self._lock_file is not None:
            self._lock_file.release(fd)

    async def _begin_writing(
        self, connection: Connection, give_up: Callable[[], bool], then: Callable[[], None] | None = None
    ) -> int | None:
        """Begin a write transaction (``BEGIN IMMEDIATE``) on ``connection``;
        the caller holds this process's write lock.

        Returns the lock-file descriptor to release once the transaction has
        ended (``_NO_FD``: none), or None if ``give_up()`` turned true while
        waiting: then nothing is held. Raises Busy after ``busy_timeout``.
        If it had to wait and ``then`` is given, the lock-waiter thread runs
        ``then()`` the moment it has the lock — which must end the
        transaction — and lets go of the lock file: ``_NO_FD`` is returned.
        """
        fd = self._take_turn_now()
        if fd is not None:
            try:
                _raw(connection).execute("BEGIN IMMEDIATE")
                return fd
            except Exception as error:
                if not is_sqlite_busy(error):
                    self._release(fd)
                    raise
        wait = _LockWait(time.monotonic() + self._busy_timeout, give_up, fd, then)
        wait.phase = _QUEUEING if fd is None else _BEGINNING
        return await self._wait_for_lock(connection, wait)

    async def _wait_for_lock(self, connection: Connection, wait: _LockWait) -> int | None:
        future = self._waiter.submit(partial(self._wait_in_thread, connection, wait))
        try:
            done, _ = await asyncio.wait({future}, timeout=self._busy_timeout + 0.05)
            if not done:
                with wait.guard:
                    queueing = wait.phase == _QUEUEING
                    wait.abandoned = queueing
                if queueing:  # behind another statestore process all along
                    raise Busy(
                        f"another process held the write lock of {self._database_path} "
                        f"for longer than busy_timeout ({self._busy_timeout:g} s)"
                    ) from TimeoutError()
                await asyncio.wait({future})  # at SQLite's lock: it gives up at the deadline itself
        except asyncio.CancelledError:
            await self._abandon(wait, future, connection)
            raise
        return wait.fd if future.result() else None

    def _wait_in_thread(self, connection: Connection, wait: _LockWait) -> bool:
        """On the lock-waiter thread: the lock file's turn (waiting in the
        kernel's queue), then SQLite's lock in fixed short steps. True: the
        transaction is begun; False: given up, nothing is held."""
        if wait.fd is None:
            assert self._lock_file is not None
            taken = self._lock_file.take_waiting()
            with wait.guard:
                wait.fd = taken
                wanted = not (wait.abandoned or wait.give_up())
                wait.phase = _BEGINNING if wanted else _ENDED
            if not wanted:  # the connection was never touched
                self._release(taken)
                return False
        assert wait.fd is not None
        driver = _raw(connection)
        try:
            while True:
                try:
                    driver.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.OperationalError as error:
                    if not is_sqlite_busy(error) or time.monotonic() >= wait.deadline:
                        raise
                if wait.abandoned or wait.give_up():
                    self._release(wait.fd)
                    wait.phase = _ENDED
                    return False
                time.sleep(_LOCK_POLL)
        except BaseException:
            self._release(wait.fd)
            wait.phase = _ENDED
            raise
        with wait.guard:
            wait.phase = _ENDED
            abandoned = wait.abandoned
        if abandoned:
            driver.execute("ROLLBACK")
            self._release(wait.fd)
            return False
        if wait.then is not None:
            # Right here, holding the lock: waking the event loop's thread
            # first would keep every other process waiting for it too.
            held, wait.fd = wait.fd, _NO_FD
            try:
                wait.then()
            finally:
                if driver.in_transaction:  # only if `then` failed unexpectedly
                    driver.execute("ROLLBACK")
                self._release(held)
        return True

    async def _abandon(self, wait: _LockWait, future: asyncio.Future[bool], connection: Connection) -> None:
        """The waiting caller was cancelled: stop the wait and hold nothing."""
        with wait.guard:
            wait.abandoned = True
            queueing = wait.phase == _QUEUEING
        if queueing:  # the thread lets go of the lock file once it gets it, never touching the connection
            return
        while not future.done():  # it is using the connection: at most one step more
            with suppress(asyncio.CancelledError):
                await asyncio.wait({future})
        if not future.cancelled() and future.exception() is None and future.result() and wait.then is None:
            # It had begun the transaction before it saw us give up.
            _raw(connection).execute("ROLLBACK")
            assert wait.fd is not None
            self._release(wait.fd)

    # -- transactions of one unit -------------------------------------------

    async def _transact_writer(self, unit: Unit[T], *, offload: bool) -> T:
        """One write transaction on the writer connection; caller holds the lock."""
        connection = self._writer_connection()
        try:
            if not offload:
                try:
                    return _transact(connection, unit)
                except Exception as error:
                    if not is_sqlite_busy(error):
                        raise
            return await self.in_writer_thread(lambda conn: _transact(conn, unit), connection)
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
                    return _transact(self._reader_connection(), unit, "DEFERRED")
                except Exception as error:
                    if not is_sqlite_busy(error):
                        raise
            return await asyncio.get_running_loop().run_in_executor(self._reader_threads, self._read_pooled, unit)
        except Exception as error:
            reraise(error)

    def _read_pooled(self, unit: Unit[T]) -> T:
        with self._engine.connect() as connection:
            return _transact(connection, unit, "DEFERRED")

    # -- writes: group commit -----------------------------------------------

    async def write(self, unit: Unit[T], *, offload: bool = False, single_statement: bool = False) -> T:
        joined_transaction = current_transaction(self)
        if joined_transaction is not None:
            return await joined_transaction.run(unit, offload=offload)
        loop = asyncio.get_running_loop()
        queued = _Queued(unit, loop.create_future(), offload)
        self._queue.append(queued)
        if offload:
            self._ensure_flusher()
        elif not self._flush_scheduled:
            # Flush on the loop's next turn: writers that queue meanwhile
            # share the commit.
            self._flush_scheduled = True
            loop.call_soon(self._flush_soon)
        try:
            return cast(T, await queued.future)
        except asyncio.CancelledError:
            await self._forget(queued)
            raise

    async def _forget(self, queued: _Queued) -> None:
        """Its caller was cancelled: a unit whose transaction has not begun
        is dropped (never run); one that has is let finish (committed, or
        rolled back by its own error) before the caller sees CancelledError."""
        with self._claims:
            if queued.state == _QUEUED:
                queued.state = _DROPPED
                return
        finished = queued.finished  # set while its transaction may still run off the loop
        while finished is not None and not finished.done():
            with suppress(asyncio.CancelledError):
                await asyncio.wait({finished})

    def _flush_soon(self) -> None:
        """Commit the queued batch right here if nothing stands in the way.

        The common case (lock free, lock obtained at once, every unit fine)
        costs no task and no thread. Anything else — an explicit transaction
        holding the lock, another process holding the lock file or SQLite's
        lock, a failing unit — goes to :meth:`_flush`, which may wait; the
        inline attempt was rolled back, so it starts from scratch.
        """
        self._flush_scheduled = False
        slow_path_busy = self._flusher is not None and not self._flusher.done()
        if not self._queue or slow_path_busy or self._write_lock().locked():
            self._ensure_flusher()
            return
        batch, self._queue = self._queue, []
        batch = [queued for queued in batch if not queued.future.cancelled()]
        if not batch:
            return
        try:
            connection = self._writer_connection()
            fd = self._take_turn_now()
        except Exception:  # cannot open the database: the slow path reports it to each caller
            fd = None
        if fd is None:  # another process's turn: wait for it off the loop
            self._queue[:0] = batch
            self._ensure_flusher()
            return
        # No claim bookkeeping here: the batch runs and ends before any caller
        # can resume, so a cancelled caller finds its unit either not begun or
        # over (rolled back units go back to the queue, still not begun).
        try:
            results = _transact(connection, lambda conn: [queued.unit(conn) for queued in batch])
        except Exception as error:
            self._release(fd)
            if len(batch) == 1 and not is_sqlite_busy(error):
                _settle(batch[0].future, error=_failure(error))  # its own error: nothing to retry
                return
            self._queue[:0] = batch
            self._ensure_flusher()
            return
        self._release(fd)
        for queued, result in zip(batch, results, strict=True):
            _settle(queued.future, result=result)
        if self._wal_look is None and self._wal_path is not None:
            self._look_at_wal_soon()

    def _ensure_flusher(self) -> None:
        if self._queue and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._queue:
            async with self._write_lock():
                batch, self._queue = self._queue, []
                live = [queued for queued in batch if not queued.future.cancelled()]
                inline = [queued for queued in live if not queued.offload]
                try:
                    if inline:
                        await self._commit_group(inline)
                    for queued in live:
                        if queued.offload:
                            await self._commit_group([queued])
                except Exception as error:  # unforeseen: still, no caller may wait forever
                    for queued in live:
                        _settle(queued.future, error=_failure(error))

    async def _commit_group(self, group: list[_Queued]) -> None:
        """One transaction for ``group`` (inline units, or one offloaded
        unit), waiting for the lock if need be; the caller holds this
        process's write lock. Callers cancelled before it begins are left out.

        Inline units that had to wait run on the lock-waiter thread the
        moment it has the lock, and it lets go of the lock file right after
        the COMMIT: handing the lock to the event loop's thread first would
        keep it held, and every other process waiting, until that thread is
        scheduled and gets to it (under contention, measured: calls/s +10 to
        +38 %, write p50 halved). Units are functions of the connection, and
        an offloaded one runs off the loop anyway.
        """
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()
        for queued in group:
            queued.finished = finished
        ran: list[tuple[list[_Queued], list[Any] | Exception]] = []

        def nobody_waits() -> bool:  # asked on the lock-waiter thread too
            return all(queued.state == _DROPPED or queued.future.cancelled() for queued in group)

        try:
            connection = self._writer_connection()
            then = None if group[0].offload else lambda: ran.append(self._run_claimed(connection, group))
            fd = await self._begin_writing(connection, nobody_waits, then)
        except Exception as error:
            finished.set_result(None)
            for queued in group:
                _settle(queued.future, error=_failure(error))
            return
        try:
            if fd is None:  # everyone gave up while it waited
                return
            if ran:
                live, outcome = ran[0]
            else:
                live, outcome = await self._run_here(connection, fd, group)
        finally:
            finished.set_result(None)
        if not isinstance(outcome, Exception):
            for queued, result in zip(live, outcome, strict=True):
                _settle(queued.future, result=result)
            if self._wal_path is not None and live:
                if live[0].offload:
                    self._check_wal()  # after a large write at once
                elif self._wal_look is None:
                    self._look_at_wal_soon()
            return
        if len(live) == 1:
            _settle(live[0].future, error=_failure(outcome))
            return
        # Someone's unit failed (or the commit did): all was rolled back. Give
        # each its own transaction so that only the failing caller sees an
        # error; a caller cancelled meanwhile is left out.
        with self._claims:
            for queued in live:
                queued.state = _QUEUED
        for queued in live:
            if queued.state == _QUEUED and not queued.future.cancelled():
                await self._commit_group([queued])

    def _claim(self, group: list[_Queued]) -> list[_Queued]:
        """The units of ``group`` whose callers still wait, now begun."""
        with self._claims:
            live = [queued for queued in group if queued.state == _QUEUED and not queued.future.cancelled()]
            for queued in live:
                queued.state = _CLAIMED
        return live

    def _run_claimed(self, connection: Connection, group: list[_Queued]) -> tuple[list[_Queued], list[Any] | Exception]:
        """In the transaction begun on ``connection`` (any thread): run the
        units still wanted and end it; their results, or the error."""
        live = self._claim(group)
        try:
            return live, _finish(connection, lambda conn: [queued.unit(conn) for queued in live])
        except Exception as error:
            return live, error

    async def _run_here(
        self, connection: Connection, fd: int, group: list[_Queued]
    ) -> tuple[list[_Queued], list[Any] | Exception]:
        """The lock was had at once: run ``group`` inline, or its offloaded
        unit on the writer thread; then let go of the lock file."""
        try:
            if not group[0].offload:
                return self._run_claimed(connection, group)
            live = self._claim(group)
            if not live:
                _raw(connection).execute("ROLLBACK")
                return live, []
            try:
                return live, [await self.in_writer_thread(partial(_finish, unit=live[0].unit), connection)]
            except Exception as error:
                return live, error
        finally:
            self._release(fd)

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
                active = _SqliteTransaction(self, connection)
                try:
                    with joined(self, active):
                        yield active
                except BaseException:
                    transaction.rollback()
                    raise
                try:
                    transaction.commit()
                except Exception as error:
                    if _raw(connection).in_transaction:
                        transaction.rollback()
                    reraise(error)
            finally:
                if _raw(connection).in_transaction:  # connection.begin() itself failed
                    _raw(connection).execute("ROLLBACK")
                self._release(fd)

    async def admin(self, unit: Unit[T], *, foreign_keys_off: bool = False) -> T:
        async with self._write_lock():

            def administer(conn: Connection) -> T:
                if foreign_keys_off:  # a no-op inside a transaction, so set it here
                    _raw(conn).execute("PRAGMA foreign_keys = OFF")
                try:
                    return unit(conn)
                finally:
                    if conn.in_transaction():
                        conn.rollback()
                    if foreign_keys_off:
                        _raw(conn).execute("PRAGMA foreign_keys = ON")

            try:
                return await self.in_writer_thread(administer, self._writer_connection())
            except Exception as error:
                reraise(error)

    # -- the write-ahead log ---------------------------------------------------

    def _look_at_wal_soon(self) -> None:
        """After a commit: look at the WAL's size in a moment. One look per
        0.25 s at most, however many commits: the hot path pays for an
        attribute test, and a burst of commits is still looked at after."""
        self._wal_look = asyncio.get_running_loop().call_later(_WAL_CHECK_INTERVAL, self._check_wal)

    def _check_wal(self) -> None:
        """Past the limit, start checkpointing (unless it already runs)."""
        self._wal_look = None
        assert self._wal_path is not None
        try:
            size = os.stat(self._wal_path).st_size
        except OSError:
            return
        running = self._checkpointer is not None and not self._checkpointer.done()
        if size > self._wal_limit and not running and not self._closing:
            self._checkpointer = asyncio.get_running_loop().create_task(self._shrink_wal())

    async def _shrink_wal(self) -> None:
        """Checkpoint until the WAL is back under the limit: a long reader
        pins the log, so try again (0.25 s, 0.5 s … every 2 s) until it is gone."""
        pause = _WAL_RETRY_FIRST
        while not self._closing:
            try:
                done = await self.checkpoint()
            except Exception:  # e.g. the file went away; the next commit's check starts over
                return
            if done is None or done.wal_bytes <= self._wal_limit:
                return
            await asyncio.sleep(pause)
            pause = min(2 * pause, _WAL_RETRY_LONGEST)

    async def checkpoint(self) -> WalCheckpoint | None:
        """Copy the WAL into the database and truncate it, on a thread and a
        connection of its own: a PASSIVE checkpoint first (it never blocks
        writers or readers), then — only if that copied every frame, so that
        little is left to do while holding SQLite's write lock — TRUNCATE,
        which resets the log unless a reader still uses it (``busy``). Never
        waits for a lock. None for an in-memory database."""
        if self._memory:
            return None
        self._writer_connection()  # finds the file
        if self._database_path is None:
            return None
        if self._checkpoint_turn is None:
            self._checkpoint_turn = asyncio.Lock()
        async with self._checkpoint_turn:
            loop = asyncio.get_running_loop()
            try:
                return await loop.run_in_executor(self._checkpoint_thread, self._checkpoint_now)
            except Exception as error:
                reraise(error)

    def _checkpoint_now(self) -> WalCheckpoint:
        connection = self._checkpoint_connection
        if connection is None:
            assert self._database_path is not None
            uri = f"file:{quote(self._database_path)}?mode=rw"  # never create a database here
            connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA busy_timeout = 0")
            connection.execute(f"PRAGMA journal_size_limit = {self._wal_limit}")
            self._checkpoint_connection = connection
        busy, log, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if log >= 0 and copied == log:
            busy = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        elif log > copied:  # a reader still needs the frames it has not copied
            busy = 1
        assert self._wal_path is not None
        try:
            size = os.stat(self._wal_path).st_size
        except FileNotFoundError:
            size = 0
        return WalCheckpoint(busy=bool(busy), log_frames=log, checkpointed_frames=copied, wal_bytes=size)

    async def close(self) -> None:
        self._closing = True
        if self._wal_look is not None:
            self._wal_look.cancel()
            self._wal_look = None
        if self._checkpointer is not None and not self._checkpointer.done():
            self._checkpointer.cancel()
            with suppress(asyncio.CancelledError):
                await self._checkpointer
        if self._flusher is not None and not self._flusher.done():
            await self._flusher
        for connection in (self._reader, self._writer):
            if connection is not None:
                connection.close()
        self._reader = self._writer = None
        self._engine.dispose()
        self._writer_thread.shutdown(wait=True)
        self._reader_threads.shutdown(wait=True)
        self._checkpoint_thread.shutdown(wait=True)
        if self._checkpoint_connection is not None:
            self._checkpoint_connection.close()
            self._checkpoint_connection = None
        self._waiter.close()  # an abandoned wait may still sit in the kernel's queue: not joined
        if self._lock_file is not None:
            os.close(self._lock_file.fd)
            self._lock_file = None


def _never() -> bool:
    return False


def _settle(future: asyncio.Future[Any], *, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():  # the caller gave up (cancelled) while we worked
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
