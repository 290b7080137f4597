"""The task scheduler: hands the next runnable task to a worker, safely across
processes and hosts, at a cost that does not grow with history.

See :mod:`statestore.farm.claim` for the rules. How each backend makes a
claim safe:

* PostgreSQL — one statement in autocommit; the candidate row is locked
  ``FOR UPDATE SKIP LOCKED``, so concurrent claimers in any number of
  processes never block on one row and never get the same task.
* SQLite — one ``BEGIN IMMEDIATE`` transaction per claim (batched with other
  writers of the process by group commit): claims are serialised by SQLite's
  write lock, which other processes wait for through ``busy_timeout``.
* MariaDB — one transaction; the candidate is locked ``FOR UPDATE SKIP LOCKED``
  (MariaDB 10.6+).

What each worker status gets: only ``awake`` workers with no pending status
change request are given work. ``starting``, ``asleep``, ``error``,
``testing``, ``offline`` and ``restart`` workers, workers with a requested
status change (Flamenco answers those 423) and soft-deleted workers get
``None``; an unknown worker uuid raises NotFound.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING
from uuid import UUID

from statestore.core.types import utcnow
from statestore.core.validate import aware_datetime, text, uuid_value
from statestore.farm.claim import ScheduledTask, claim_portable
from statestore.farm.claim_postgresql import claim_postgresql
from statestore.farm.claim_sqlite import claim_sqlite
from statestore.farm.requeue import requeue_tasks_of_worker, time_out_worker
from statestore.farm.tables import LENGTHS

if TYPE_CHECKING:
    from statestore.store import Store

__all__ = ["Scheduler"]


class Scheduler:
    """The task scheduler: hands the next runnable task to a worker."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._dialect = store.runner.dialect.name

    async def claim(self, worker: UUID, *, activate: bool = True) -> ScheduledTask | None:
        """The task ``worker`` should run now, or None when there is none.

        With ``activate`` (what a manager wants) the task is assigned, marked
        active and touched, and a queued job becomes active, all in the same
        transaction: no other claimer can take it between assignment and
        activation. Without it the task is only assigned and stays queued, as
        in Flamenco's persistence layer, where a later claim may reassign it.
        """
        worker = uuid_value(worker, "worker")
        now = utcnow()
        if self._dialect == "postgresql":
            return await self._store.write(
                partial(claim_postgresql, worker_uuid=worker, activate=activate, now=now), single_statement=True
            )
        claim = claim_sqlite if self._dialect == "sqlite" else claim_portable
        return await self._store.write(partial(claim, worker_uuid=worker, activate=activate, now=now))

    async def requeue_tasks_of_worker(self, worker: UUID, reason: str) -> int:
        """Give back every active task of ``worker`` (it signed off or
        vanished): queued again, or paused where the job is pausing or
        paused, with the reason in the activity. One transaction; returns
        how many tasks were given back."""
        worker = uuid_value(worker, "worker")
        reason = text(reason, LENGTHS["activity"] // 2, "reason")
        return await self._store.write(partial(requeue_tasks_of_worker, worker_uuid=worker, reason=reason))

    async def time_out_worker(self, worker: UUID, reason: str = "the worker timed out") -> int:
        """Flamenco's worker timeout: status ``error``, status request
        cleared, and its active tasks given back — one transaction. Returns
        how many tasks were given back."""
        worker = uuid_value(worker, "worker")
        reason = text(reason, LENGTHS["activity"] // 2, "reason")
        given_back = await self._store.write(partial(time_out_worker, worker_uuid=worker, reason=reason, now=utcnow()))
        assert given_back is not None  # unconditional without unseen_since
        return given_back

    async def time_out_workers(self, last_seen_before: datetime, reason: str = "the worker timed out") -> list[UUID]:
        """Time out every worker not seen since ``last_seen_before`` (each in
        its own transaction, re-checked there: a worker whose heartbeat came
        in meanwhile is left alone); returns the uuids of those timed out,
        by id."""
        last_seen_before = aware_datetime(last_seen_before, "last_seen_before")
        reason = text(reason, LENGTHS["activity"] // 2, "reason")
        timed_out = []
        for worker in await self._store.workers.timed_out(last_seen_before):
            unit = partial(
                time_out_worker, worker_uuid=worker.uuid, reason=reason, now=utcnow(), unseen_since=last_seen_before
            )
            if await self._store.write(unit) is not None:
                timed_out.append(worker.uuid)
        return timed_out
