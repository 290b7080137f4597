"""Writers of several processes taking turns at one SQLite file, fairly.

Before ``BEGIN IMMEDIATE`` a writer takes an ``flock`` on ``<database>-lock``
without waiting; one that cannot have it waits for it in the kernel on a
lock-waiter thread, which wakes it the moment the holder lets go. SQLite's own
busy handler sleeps 1, 2, 5 … 100 ms between attempts, so whoever has waited
longest waits longest; behind the lock file, SQLite's lock is attempted in
fixed 1 ms steps (only programs that do not use the file compete for it). The
lock file orders statestore's writers; SQLite's lock still decides.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: SQLite's lock alone orders writers
    fcntl = None  # type: ignore[assignment]

from sqlalchemy.engine import Connection

from statestore.core.classify import is_sqlite_busy
from statestore.core.runner import T
from statestore.core.sqlite_transactions import raw_driver
from statestore.errors import Busy

_LOCK_POLL = 0.001  # seconds between attempts at SQLite's write lock while waiting for it

__all__ = ["BEGINNING", "ENDED", "NO_FD", "QUEUEING", "LockFile", "LockWait", "Waiter", "WriteTurns", "settle"]

NO_FD = -1  # "holding the write lock" where there is no lock file to hold
QUEUEING, BEGINNING, ENDED = 0, 1, 2  # a lock wait: in the lock file's queue, at SQLite's lock, over


class LockFile:
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
class LockWait:
    """One wait for the write lock on the lock-waiter thread, and what the
    event loop tells it (``abandoned``, ``give_up()``)."""

    deadline: float
    give_up: Callable[[], bool]
    fd: int | None
    """The lock file descriptor this wait holds; None while still queueing."""
    then: Callable[[], None] | None = None
    """Work to do on the thread once the lock is had, ending the transaction
    and letting go of the lock file there (see :meth:`SqliteRunner._commit_group`)."""
    phase: int = QUEUEING
    abandoned: bool = False
    guard: threading.Lock = field(default_factory=threading.Lock)


class Waiter:
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
                loop.call_soon_threadsafe(partial(settle, future, result=result, error=error))

    def close(self) -> None:
        self._jobs.put(None)


def settle(future: asyncio.Future[Any], *, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():  # the caller gave up (cancelled) while we worked
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class WriteTurns:
    """The SQLite runner's turns at the write lock: this process's writers
    already take turns on an ``asyncio.Lock``; these methods add the lock
    file's queue and SQLite's own lock, waited for on the lock-waiter thread."""

    _lock_file: LockFile | None
    _busy_timeout: float
    _waiter: Waiter
    _database_path: str | None

    def _take_turn_now(self) -> int | None:
        """The lock file's turn if free right now (a descriptor to release),
        ``NO_FD`` where there is no lock file, None when another holds it."""
        lock_file = self._lock_file
        if lock_file is None:
            return NO_FD
        try:
            return lock_file.try_take()
        except OSError:  # a file system without flock: SQLite's lock alone
            self._lock_file = None
            return NO_FD

    def _release(self, fd: int) -> None:
        if fd != NO_FD and self._lock_file is not None:
            self._lock_file.release(fd)

    async def _begin_writing(
        self, connection: Connection, give_up: Callable[[], bool], then: Callable[[], None] | None = None
    ) -> int | None:
        """Begin a write transaction (``BEGIN IMMEDIATE``) on ``connection``;
        the caller holds this process's write lock.

        Returns the lock-file descriptor to release once the transaction has
        ended (``NO_FD``: none), or None if ``give_up()`` turned true while
        waiting: then nothing is held. Raises Busy after ``busy_timeout``.
        If it had to wait and ``then`` is given, the lock-waiter thread runs
        ``then()`` the moment it has the lock — which must end the
        transaction — and lets go of the lock file: ``NO_FD`` is returned.
        """
        fd = self._take_turn_now()
        if fd is not None:
            try:
                raw_driver(connection).execute("BEGIN IMMEDIATE")
                return fd
            except Exception as error:
                if not is_sqlite_busy(error):
                    self._release(fd)
                    raise
        wait = LockWait(time.monotonic() + self._busy_timeout, give_up, fd, then)
        wait.phase = QUEUEING if fd is None else BEGINNING
        return await self._wait_for_lock(connection, wait)

    async def _wait_for_lock(self, connection: Connection, wait: LockWait) -> int | None:
        future = self._waiter.submit(partial(self._wait_in_thread, connection, wait))
        try:
            done, _ = await asyncio.wait({future}, timeout=self._busy_timeout + 0.05)
            if not done:
                with wait.guard:
                    queueing = wait.phase == QUEUEING
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

    def _wait_in_thread(self, connection: Connection, wait: LockWait) -> bool:
        """On the lock-waiter thread: the lock file's turn (waiting in the
        kernel's queue), then SQLite's lock in fixed short steps. True: the
        transaction is begun; False: given up, nothing is held."""
        if wait.fd is None:
            assert self._lock_file is not None
            taken = self._lock_file.take_waiting()
            with wait.guard:
                wait.fd = taken
                wanted = not (wait.abandoned or wait.give_up())
                wait.phase = BEGINNING if wanted else ENDED
            if not wanted:  # the connection was never touched
                self._release(taken)
                return False
        assert wait.fd is not None
        driver = raw_driver(connection)
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
                    wait.phase = ENDED
                    return False
                time.sleep(_LOCK_POLL)
        except BaseException:
            self._release(wait.fd)
            wait.phase = ENDED
            raise
        with wait.guard:
            wait.phase = ENDED
            abandoned = wait.abandoned
        if abandoned:
            driver.execute("ROLLBACK")
            self._release(wait.fd)
            return False
        if wait.then is not None:
            # Right here, holding the lock: waking the event loop's thread
            # first would keep every other process waiting for it too.
            held, wait.fd = wait.fd, NO_FD
            try:
                wait.then()
            finally:
                if driver.in_transaction:  # only if `then` failed unexpectedly
                    driver.execute("ROLLBACK")
                self._release(held)
        return True

    async def _abandon(self, wait: LockWait, future: asyncio.Future[bool], connection: Connection) -> None:
        """The waiting caller was cancelled: stop the wait and hold nothing."""
        with wait.guard:
            wait.abandoned = True
            queueing = wait.phase == QUEUEING
        if queueing:  # the thread lets go of the lock file once it gets it, never touching the connection
            return
        while not future.done():  # it is using the connection: at most one step more
            with suppress(asyncio.CancelledError):
                await asyncio.wait({future})
        if not future.cancelled() and future.exception() is None and future.result() and wait.then is None:
            # It had begun the transaction before it saw us give up.
            raw_driver(connection).execute("ROLLBACK")
            assert wait.fd is not None
            self._release(wait.fd)
