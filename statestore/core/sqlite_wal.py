"""Keeping a SQLite file's write-ahead log small: checkpoints after commits, and on demand.

A reader holding one snapshot for a long time lets the log grow while it
reads (SQLite cannot reset a log a reader uses), and nothing shrinks it again
until the store closes unless someone checkpoints. So after commits the
keeper looks at the size of ``<database>-wal`` (one ``stat`` per 0.25 s at
most) and, past the limit, checkpoints on a thread and a connection of its
own until the log is back under it, never waiting for a lock.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from urllib.parse import quote

__all__ = ["DEFAULT_WAL_CHECKPOINT_BYTES", "WalCheckpoint", "WalKeeper"]

DEFAULT_WAL_CHECKPOINT_BYTES = 64 * 2**20
_CHECK_INTERVAL = 0.25  # seconds between looks at the WAL's size after commits
_RETRY_FIRST, _RETRY_LONGEST = 0.25, 2.0  # pauses between checkpoints while the WAL stays large


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


class WalKeeper:
    """The WAL upkeep of one SQLite runner."""

    def __init__(self, limit: int, *, memory: bool) -> None:
        self.limit = max(0, int(limit))
        """Bytes: the ``journal_size_limit`` of every connection, and the size past which to checkpoint."""
        self._memory = memory
        self._database_path: str | None = None
        self._wal_path: str | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="statestore-sqlite-checkpoint")
        self._connection: sqlite3.Connection | None = None
        self._look: asyncio.TimerHandle | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        self._checkpoint_turn: asyncio.Lock | None = None
        self._closing = False

    def locate(self, database_path: str) -> None:
        """The database file, once the runner has found it."""
        self._database_path, self._wal_path = database_path, f"{database_path}-wal"

    def after_commit(self, *, large: bool = False) -> None:
        """A commit happened: look at the WAL in a moment (at once after a large write)."""
        if self._wal_path is None:
            return
        if large:
            self._check()
        elif self._look is None:
            self._look_soon()

    def _look_soon(self) -> None:
        """After a commit: look at the WAL's size in a moment. One look per
        0.25 s at most, however many commits: the hot path pays for an
        attribute test, and a burst of commits is still looked at after."""
        self._look = asyncio.get_running_loop().call_later(_CHECK_INTERVAL, self._check)

    def _check(self) -> None:
        """Past the limit, start checkpointing (unless it already runs)."""
        self._look = None
        assert self._wal_path is not None
        try:
            size = os.stat(self._wal_path).st_size
        except OSError:
            return
        running = self._checkpointer is not None and not self._checkpointer.done()
        if size > self.limit and not running and not self._closing:
            self._checkpointer = asyncio.get_running_loop().create_task(self._shrink())

    async def _shrink(self) -> None:
        """Checkpoint until the WAL is back under the limit: a long reader
        pins the log, so try again (0.25 s, 0.5 s … every 2 s) until it is gone."""
        pause = _RETRY_FIRST
        while not self._closing:
            try:
                done = await self.checkpoint()
            except Exception:  # e.g. the file went away; the next commit's check starts over
                return
            if done is None or done.wal_bytes <= self.limit:
                return
            await asyncio.sleep(pause)
            pause = min(2 * pause, _RETRY_LONGEST)

    async def checkpoint(self) -> WalCheckpoint | None:
        """Copy the WAL into the database and truncate it, on a thread and a
        connection of its own: a PASSIVE checkpoint first (it never blocks
        writers or readers), then — only if that copied every frame, so that
        little is left to do while holding SQLite's write lock — TRUNCATE,
        which resets the log unless a reader still uses it (``busy``). Never
        waits for a lock. None for an in-memory database."""
        if self._memory or self._database_path is None:
            return None
        if self._checkpoint_turn is None:
            self._checkpoint_turn = asyncio.Lock()
        async with self._checkpoint_turn:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._thread, self._checkpoint_now)

    def _checkpoint_now(self) -> WalCheckpoint:
        connection = self._connection
        if connection is None:
            assert self._database_path is not None
            uri = f"file:{quote(self._database_path)}?mode=rw"  # never create a database here
            connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA busy_timeout = 0")
            connection.execute(f"PRAGMA journal_size_limit = {self.limit}")
            self._connection = connection
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

    async def stop(self) -> None:
        """No more checkpoints: cancel a pending look and a running checkpoint loop."""
        self._closing = True
        if self._look is not None:
            self._look.cancel()
            self._look = None
        if self._checkpointer is not None and not self._checkpointer.done():
            self._checkpointer.cancel()
            with suppress(asyncio.CancelledError):
                await self._checkpointer

    def close(self) -> None:
        """Release the thread and the connection (after :meth:`stop`)."""
        self._thread.shutdown(wait=True)
        if self._connection is not None:
            self._connection.close()
            self._connection = None
