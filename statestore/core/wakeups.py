"""Wake-ups: who waits for work or for changes, and what wakes them.

One :class:`Wakeups` per store (``runner.wakeups``). Two kinds of sleeper:

* **Claim waiters** (``scheduler.claim(worker, wait=…)``) queue longest
  waiting first. A wake-up goes to the head of the queue only; a waiter that
  claims a task passes the wake-up on to the next two (more work may be
  there, and the chain doubles while it finds some); a waiter that finds
  nothing stops the chain and waits again in its place. So a commit that
  makes one task claimable costs about two claims, not one per waiter.
* **Followers** of the change feed (``store.changes()``): every wake-up
  wakes all of them; reading is not exclusive.

What wakes them:

* this process's commits: repositories call :meth:`Wakeups.work` after a
  commit that can make work claimable, and :meth:`Wakeups.changed` after
  one that wrote changes;
* other processes' commits, seen by a *watcher*, as the dialect decides
  (:attr:`~statestore.core.dialect.DialectFacts.wakeups`): PostgreSQL's
  LISTEN on one connection per store, for the NOTIFY that
  :func:`announce_work` sends in the enabling transaction; SQLite's
  ``PRAGMA data_version`` read every few milliseconds; on MariaDB/MySQL
  nothing, and the head waiter re-claims on an adaptive interval instead.

No wake-up is lost. A waiter is in the queue (and the watcher listening)
before its first claim, so a commit after that claim's snapshot wakes it: a
wake-up that arrives while it claims is kept and makes it claim again
before it sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from sqlalchemy import text
from sqlalchemy.engine import Connection

from statestore.core.dialect import facts_of
from statestore.errors import Unavailable

__all__ = ["WORK_CHANNEL", "Follower", "Turn", "Wakeups", "Watch", "announce_work"]

_log = logging.getLogger(__name__)

WORK_CHANNEL: Final = "statestore_work"
"""The PostgreSQL NOTIFY channel of commits that can make work claimable."""

_NOTIFY = text(f"SELECT pg_notify('{WORK_CHANNEL}', '')")

POLL_FIRST: Final = 0.01
"""Where a waiter polls (no watcher, or the watcher not listening), its
first interval in seconds; it doubles on every empty poll …"""
POLL_MOST: Final = 1.0
"""… up to this."""

Watch = Callable[[asyncio.Event, Callable[[], None]], Awaitable[None]]
"""A watcher: runs until cancelled, sets ``ready`` once it is listening and
then calls ``seen()`` once (commits made before it listened are then
claimed), and calls ``seen()`` for every other connection's commit it
hears of. It returns or raises when it stops listening; it is run again."""


def announce_work(connection: Connection) -> None:
    """In a transaction that can make work claimable: wake other processes'
    waiters when it commits (PostgreSQL's NOTIFY is delivered at commit, and
    not at all on rollback). Elsewhere nothing: SQLite's watcher sees every
    commit, and MariaDB's waiters poll. The caller still calls
    :meth:`Wakeups.work` after the commit for this process's waiters."""
    if facts_of(connection).wakeups == "notify":
        connection.execute(_NOTIFY)


class Turn:
    """A claim waiter's place in the queue (see :meth:`Wakeups.waiting`)."""

    __slots__ = ("_event", "_owner", "_poll", "claimed_task", "woken_claiming")

    def __init__(self, owner: Wakeups) -> None:
        self._owner = owner
        self._event = asyncio.Event()
        self._poll = POLL_FIRST
        self.woken_claiming = False
        """Woken, and claiming: a further wake-up goes to it (it claims
        again), not to another waiter."""
        self.claimed_task = False

    def wake(self) -> None:
        self._event.set()

    @property
    def woken(self) -> bool:
        return self._event.is_set()

    def claimed(self) -> None:
        """This waiter claimed a task after a wake-up: pass it on to the
        next two."""
        self._poll = POLL_FIRST
        self.claimed_task = True
        self._owner._pass_on(self)

    async def wait(self, seconds: float) -> bool:
        """Sleep until woken (True) or ``seconds`` pass (False). A wake-up
        that came while the last claim ran returns at once. Without a
        listening watcher the head of the queue wakes itself on an interval
        that doubles while its claims find nothing. Raises Unavailable once
        the store is closed."""
        self.woken_claiming = False
        self._owner.check_open()
        if self._event.is_set():
            self._event.clear()
            self.woken_claiming = True
            return True
        polling = not self._owner.listening and self._owner._is_head(self)
        limit = min(seconds, self._poll) if polling else seconds
        try:
            await asyncio.wait_for(self._event.wait(), limit)
        except TimeoutError:
            if not polling or limit >= seconds:
                return False
            self._poll = min(self._poll * 2, POLL_MOST)
            self.woken_claiming = True
            return True
        self._event.clear()
        self._owner.check_open()
        self.woken_claiming = True
        return True


class Follower:
    """A change-feed reader's wake-up (see :meth:`Wakeups.following`)."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> bool:
        """Sleep until woken (True) or ``seconds`` pass (False); a wake-up
        since the last wait returns at once."""
        if not self._event.is_set():
            try:
                await asyncio.wait_for(self._event.wait(), seconds)
            except TimeoutError:
                return False
        self._event.clear()
        return True


class Wakeups:
    """The sleepers of one store and what wakes them (module docstring)."""

    def __init__(self, watch: Watch | None, *, polls: bool = False) -> None:
        """``watch``: the dialect's watcher of other processes' commits.
        Without one, ``polls`` says whether waiters must poll (MariaDB) or
        need not (SQLite in memory: every commit is this process's)."""
        self._watch = watch
        self._polls = polls
        self._closed = False
        self._turns: deque[Turn] = deque()
        self._followers: set[Follower] = set()
        self._ready: asyncio.Event | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._users = 0

    def check_open(self) -> None:
        """Unavailable once the store is closing: sleepers must not outlive it."""
        if self._closed:
            raise Unavailable("the store is closed")

    # -- what this process's commits call --------------------------------------

    def work(self) -> None:
        """A commit may have made work claimable: wake the longest waiter
        and every follower. A waiter already woken (waking, or claiming
        after a wake-up) takes it instead — it claims again if its claim
        finds nothing — so one commit heard twice (this process's own call,
        then its NOTIFY) still wakes one waiter."""
        for turn in self._turns:
            if turn.woken or turn.woken_claiming:
                turn.wake()
                break
        else:
            if self._turns:
                self._turns[0].wake()
        self.changed()

    def changed(self) -> None:
        """A commit wrote changes: wake every follower."""
        for follower in self._followers:
            follower.wake()

    # -- sleepers ----------------------------------------------------------------

    @property
    def listening(self) -> bool:
        """Other processes' commits wake this store's sleepers (a watcher
        is listening, or none is needed); otherwise waiters poll."""
        if self._watch is None:
            return not self._polls
        return self._ready is not None and self._ready.is_set()

    @contextlib.asynccontextmanager
    async def waiting(self, ready_within: float) -> AsyncIterator[Turn]:
        """Queue a claim waiter for the block; the watcher is listening
        (waited for up to ``ready_within`` seconds) before the block runs."""
        self.check_open()
        await self._start(ready_within)
        turn = Turn(self)
        self._turns.append(turn)
        try:
            yield turn
        finally:
            was_head = self._is_head(turn)
            self._turns.remove(turn)
            if turn.woken and not turn.claimed_task:  # a wake-up it took but did not use goes on
                self._pass_on(turn, count=1)
            elif was_head and not self.listening and self._turns:
                # Only the head polls: the new head must start, or it sleeps out its wait.
                self._turns[0].wake()
            await self._stop()

    @contextlib.asynccontextmanager
    async def following(self, ready_within: float) -> AsyncIterator[Follower]:
        """Register a change-feed follower for the block."""
        self.check_open()
        await self._start(ready_within)
        follower = Follower()
        self._followers.add(follower)
        try:
            yield follower
        finally:
            self._followers.discard(follower)
            await self._stop()

    def _is_head(self, turn: Turn) -> bool:
        return bool(self._turns) and self._turns[0] is turn

    def _pass_on(self, turn: Turn, count: int = 2) -> None:
        for other in self._turns:
            if count == 0:
                break
            if other is not turn and not other.woken:
                other.wake()
                count -= 1

    # -- the watcher ----------------------------------------------------------------

    async def _start(self, ready_within: float) -> None:
        self._users += 1
        if self._watch is None:
            return
        if self._watcher is None or self._watcher.done():
            self._ready = asyncio.Event()
            self._watcher = asyncio.create_task(self._watching(self._ready), name="statestore-wakeups")
        if not self._ready.is_set():  # type: ignore[union-attr]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), max(0.0, ready_within))  # type: ignore[union-attr]

    async def _stop(self) -> None:
        self._users -= 1
        if self._users == 0 and self._watcher is not None:
            watcher, self._watcher = self._watcher, None
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher

    async def _watching(self, ready: asyncio.Event) -> None:
        """Run the watcher, again after it fails (backing off), waking every
        sleeper whenever it (re)starts listening: commits made while it was
        not listening are then claimed or read."""
        assert self._watch is not None
        delay = 0.05
        while True:
            try:
                await self._watch(ready, self._seen)
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.warning("wake-up watcher failed; waiters poll until it is back", exc_info=True)
            ready.clear()
            self._seen()
            await asyncio.sleep(delay)
            delay = min(delay * 2, POLL_MOST)

    def _seen(self) -> None:
        self.work()

    async def close(self) -> None:
        """The store is closing: wake every sleeper (each raises
        Unavailable) and stop the watcher."""
        self._closed = True
        for turn in self._turns:
            turn.wake()
        self.changed()
        if self._watcher is not None:
            watcher, self._watcher = self._watcher, None
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
