"""Group commit on SQLite: writers that queue up together share one transaction.

``write()`` queues its unit and schedules a flush for the loop's next turn;
every unit queued meanwhile runs in the same ``BEGIN IMMEDIATE … COMMIT``. If
any unit of a batch fails, the batch is rolled back and each unit re-run in
its own transaction, so one caller's error never undoes another's write. A
write whose caller is cancelled before its transaction began is never run;
once begun it runs to its end before the caller sees CancelledError.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from functools import partial
from typing import Any, cast

from sqlalchemy.engine import Connection

from statestore.core.classify import is_sqlite_busy
from statestore.core.runner import T, Unit, current_transaction
from statestore.core.sqlite_lock_queue import WriteTurns, settle
from statestore.core.sqlite_transactions import (
    CLAIMED,
    DROPPED,
    QUEUED,
    Queued,
    finish,
    raw_driver,
    sqlite_failure,
    transact,
)
from statestore.core.sqlite_wal import WalKeeper
from statestore.core.wakeups import Wakeups

__all__ = ["GroupCommit"]


class GroupCommit(WriteTurns):
    """The SQLite runner's writes: queued, batched, committed together."""

    _queue: list[Queued]
    _flush_scheduled: bool
    _flusher: asyncio.Task[None] | None
    _claims: Any
    _wal: WalKeeper
    wakeups: Wakeups

    # Provided by the runner.
    def _write_lock(self) -> asyncio.Lock:
        raise NotImplementedError

    def _writer_connection(self) -> Connection:
        raise NotImplementedError

    async def in_writer_thread(self, unit: Unit[T], connection: Connection) -> T:
        raise NotImplementedError

    async def write(self, unit: Unit[T], *, offload: bool = False, single_statement: bool = False) -> T:
        joined_transaction = current_transaction(self)
        if joined_transaction is not None:
            return await joined_transaction.run(unit, offload=offload)
        loop = asyncio.get_running_loop()
        queued = Queued(unit, loop.create_future(), offload)
        self._queue.append(queued)
        if offload:
            self._ensure_flusher()
        elif not self._flush_scheduled:
            # Flush on the loop's next turn: writers that queue meanwhile
            # share the commit.
            self._flush_scheduled = True
            loop.call_soon(self._flush_soon)
        try:
            result = cast(T, await queued.future)
        except asyncio.CancelledError:
            await self._forget(queued)
            raise
        self.wakeups.changed()  # committed: it may have written changes someone follows
        return result

    async def _forget(self, queued: Queued) -> None:
        """Its caller was cancelled: a unit whose transaction has not begun
        is dropped (never run); one that has is let finish (committed, or
        rolled back by its own error) before the caller sees CancelledError."""
        with self._claims:
            if queued.state == QUEUED:
                queued.state = DROPPED
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
            results = transact(connection, lambda conn: [queued.unit(conn) for queued in batch])
        except Exception as error:
            self._release(fd)
            if len(batch) == 1 and not is_sqlite_busy(error):
                settle(batch[0].future, error=sqlite_failure(error))  # its own error: nothing to retry
                return
            self._queue[:0] = batch
            self._ensure_flusher()
            return
        self._release(fd)
        for queued, result in zip(batch, results, strict=True):
            settle(queued.future, result=result)
        self._wal.after_commit()

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
                        settle(queued.future, error=sqlite_failure(error))

    async def _commit_group(self, group: list[Queued]) -> None:
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
        ran: list[tuple[list[Queued], list[Any] | Exception]] = []

        def nobody_waits() -> bool:  # asked on the lock-waiter thread too
            return all(queued.state == DROPPED or queued.future.cancelled() for queued in group)

        try:
            connection = self._writer_connection()
            then = None if group[0].offload else lambda: ran.append(self._run_claimed(connection, group))
            fd = await self._begin_writing(connection, nobody_waits, then)
        except Exception as error:
            finished.set_result(None)
            for queued in group:
                settle(queued.future, error=sqlite_failure(error))
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
                settle(queued.future, result=result)
            if live:
                self._wal.after_commit(large=live[0].offload)
            return
        if len(live) == 1:
            settle(live[0].future, error=sqlite_failure(outcome))
            return
        # Someone's unit failed (or the commit did): all was rolled back. Give
        # each its own transaction so that only the failing caller sees an
        # error; a caller cancelled meanwhile is left out.
        with self._claims:
            for queued in live:
                queued.state = QUEUED
        for queued in live:
            if queued.state == QUEUED and not queued.future.cancelled():
                await self._commit_group([queued])

    def _claim(self, group: list[Queued]) -> list[Queued]:
        """The units of ``group`` whose callers still wait, now begun."""
        with self._claims:
            live = [queued for queued in group if queued.state == QUEUED and not queued.future.cancelled()]
            for queued in live:
                queued.state = CLAIMED
        return live

    def _run_claimed(self, connection: Connection, group: list[Queued]) -> tuple[list[Queued], list[Any] | Exception]:
        """In the transaction begun on ``connection`` (any thread): run the
        units still wanted and end it; their results, or the error."""
        live = self._claim(group)
        try:
            return live, finish(connection, lambda conn: [queued.unit(conn) for queued in live])
        except Exception as error:
            return live, error

    async def _run_here(
        self, connection: Connection, fd: int, group: list[Queued]
    ) -> tuple[list[Queued], list[Any] | Exception]:
        """The lock was had at once: run ``group`` inline, or its offloaded
        unit on the writer thread; then let go of the lock file."""
        try:
            if not group[0].offload:
                return self._run_claimed(connection, group)
            live = self._claim(group)
            if not live:
                raw_driver(connection).execute("ROLLBACK")
                return live, []
            try:
                return live, [await self.in_writer_thread(partial(finish, unit=live[0].unit), connection)]
            except Exception as error:
                return live, error
        finally:
            self._release(fd)
