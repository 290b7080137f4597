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
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from statestore.core.runner import Runner
from statestore.core.types import utcnow
from statestore.core.validate import aware_datetime, text, uuid_value
from statestore.farm.claim import CLAIMS
from statestore.farm.lookups import worker_id_of
from statestore.farm.records import ScheduledTask
from statestore.farm.statuses import JobStatus, TaskStatus, WorkerStatus
from statestore.farm.tables import JOBS, LENGTHS, TASKS, WORKERS
from statestore.farm.workers import timed_out as timed_out_workers

_PAUSING_JOBS = (JobStatus.PAUSE_REQUESTED.value, JobStatus.PAUSED.value)


_NOT_TIMING_OUT = (WorkerStatus.ERROR.value, WorkerStatus.OFFLINE.value)


def _give_back(connection: Connection, worker_id: int, reason: str, now: datetime) -> int:
    given_back = 0
    for status, pausing in ((TaskStatus.PAUSED, True), (TaskStatus.QUEUED, False)):
        job_rule = JOBS.c.status.in_(_PAUSING_JOBS) if pausing else JOBS.c.status.not_in(_PAUSING_JOBS)
        statement = (
            update(TASKS)
            .where(
                TASKS.c.worker_id == worker_id,
                TASKS.c.status == TaskStatus.ACTIVE.value,
                TASKS.c.job_id.in_(select(JOBS.c.id).where(job_rule)),
            )
            .values(
                status=status.value, activity=f"Task was {status.value} by Manager because {reason}", updated_at=now
            )
        )
        given_back += connection.execute(statement).rowcount
    return given_back


def requeue_tasks_of_worker(connection: Connection, worker_uuid: UUID, reason: str) -> int:
    """Give back the worker's active tasks; return how many."""
    return _give_back(connection, worker_id_of(connection, worker_uuid), reason, utcnow())


def time_out_worker(
    connection: Connection, worker_uuid: UUID, reason: str, now: datetime, unseen_since: datetime | None = None
) -> int | None:
    """Mark the worker ``error``, clear its status request, give back its
    tasks; return how many (None: not timed out after all).

    With ``unseen_since`` this happens only if the worker is still timed out
    (not seen since then, not deleted, not already error or offline): a
    heartbeat that arrived after the timed-out workers were listed wins, and
    its running task is not taken away.
    """
    worker_id = worker_id_of(connection, worker_uuid)
    statement = update(WORKERS).where(WORKERS.c.id == worker_id)
    if unseen_since is not None:
        statement = statement.where(
            WORKERS.c.last_seen_at <= unseen_since,
            WORKERS.c.deleted_at.is_(None),
            WORKERS.c.status.not_in(_NOT_TIMING_OUT),
        )
    changed = connection.execute(
        statement.values(
            status=WorkerStatus.ERROR.value, status_requested="", lazy_status_request=False, updated_at=now
        )
    ).rowcount
    if not changed:
        return None
    return _give_back(connection, worker_id, reason, now)


class Scheduler:
    """The task scheduler: hands the next runnable task to a worker."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self._claim = CLAIMS[runner.facts.claim]

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
        unit = partial(self._claim.run, worker_uuid=worker, activate=activate, now=now)
        return await self._runner.write(unit, single_statement=self._claim.single_statement)

    async def requeue_tasks_of_worker(self, worker: UUID, reason: str) -> int:
        """Give back every active task of ``worker`` (it signed off or
        vanished): queued again, or paused where the job is pausing or
        paused, with the reason in the activity. One transaction; returns
        how many tasks were given back."""
        worker = uuid_value(worker, "worker")
        reason = text(reason, LENGTHS["activity"] // 2, "reason")
        return await self._runner.write(partial(requeue_tasks_of_worker, worker_uuid=worker, reason=reason))

    async def time_out_worker(self, worker: UUID, reason: str = "the worker timed out") -> int:
        """Flamenco's worker timeout: status ``error``, status request
        cleared, and its active tasks given back — one transaction. Returns
        how many tasks were given back."""
        worker = uuid_value(worker, "worker")
        reason = text(reason, LENGTHS["activity"] // 2, "reason")
        given_back = await self._runner.write(partial(time_out_worker, worker_uuid=worker, reason=reason, now=utcnow()))
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
        for worker in await self._runner.read(
            partial(timed_out_workers, before=last_seen_before), single_statement=True
        ):
            unit = partial(
                time_out_worker, worker_uuid=worker.uuid, reason=reason, now=utcnow(), unseen_since=last_seen_before
            )
            if await self._runner.write(unit) is not None:
                timed_out.append(worker.uuid)
        return timed_out
