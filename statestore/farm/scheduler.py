"""The task scheduler: hands the next runnable task to a worker, safely across
processes and hosts, at a cost that does not grow with history.

See :mod:`statestore.farm.claim` for the rules. How each backend makes a
claim safe:

* PostgreSQL — one statement in autocommit; the candidate row is locked
  ``FOR UPDATE SKIP LOCKED``, so concurrent claimers in any number of
  processes never block on one row and never get the same task. The
  statement first updates the worker's row, guarded by the row's version in
  its snapshot: concurrent claims of one worker take turns on that row, and
  one that finds it changed under it runs again with a fresh snapshot, in
  which the other claim's task is the worker's active task (see
  :mod:`statestore.farm.claim.postgresql`).
* SQLite — one ``BEGIN IMMEDIATE`` transaction per claim (batched with other
  writers of the process by group commit): claims are serialised by SQLite's
  write lock, which other processes wait for through ``busy_timeout``.
* MariaDB — one READ COMMITTED transaction that locks the worker's row first
  (claims of one worker take turns; the later one's reads see the earlier
  one's task); the candidate is locked ``FOR UPDATE SKIP LOCKED`` (MariaDB
  10.6+).

So concurrent claims of one worker, from any number of processes, hand it one
task: the first assigns it, the others return it with ``newly_claimed`` False.

A claim counts as a heartbeat: a worker that may get work has its
``last_seen_at`` set to the claim's time, whether or not a task comes of it,
so a worker that claimed a task and was never heard of again is timed out
(:meth:`Scheduler.time_out_workers`) like any other. A worker that may not
get work (asleep, status change pending, deleted) is not marked.

What each worker status gets: only ``awake`` workers with no pending status
change request are given work. ``starting``, ``asleep``, ``error``,
``testing``, ``offline`` and ``restart`` workers, workers with a requested
status change (Flamenco answers those 423) and soft-deleted workers get
``None``; an unknown worker uuid raises NotFound.

Giving a worker's active tasks back (it signed off, or timed out) answers
which tasks went back, as :class:`GivenBack` records, at a statement count
that does not grow with the tasks: where the dialect has ``UPDATE …
RETURNING`` (PostgreSQL, SQLite) one UPDATE per new status returns them;
on MariaDB the worker's active tasks are selected ``FOR UPDATE`` first, their
jobs read, and the tasks updated by id — all in the one transaction. Two
concurrent give-backs of one worker give each task back once: the second
waits for the first's row locks and then finds the tasks no longer active.

Give-backs and time-outs write no status history (that is the state
machine's) but go to the change feed, in their transaction: each task
given back (``task.status``, from active) and a worker timed out
(``worker.status``, from the status it had). A task queued again is work
for other workers: its transaction announces it, and the repository wakes
this process's claim waiters after the commit (see
:mod:`statestore.farm.enabling`).
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from operator import itemgetter
from uuid import UUID

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from statestore.changes.kinds import ChangeKind
from statestore.changes.recording import change, record
from statestore.core.batches import chunks
from statestore.core.dialect import facts_of
from statestore.core.runner import Runner
from statestore.core.types import utcnow
from statestore.core.validate import aware_datetime, seconds, text, uuid_value
from statestore.farm.claim import CLAIMS
from statestore.farm.claim_waiting import MOST_WAIT, claim_waiting
from statestore.farm.enabling import enable_work
from statestore.farm.fields import boolean
from statestore.farm.lookups import worker_id_of
from statestore.farm.records import GivenBack, ScheduledTask
from statestore.farm.statuses import JobStatus, TaskStatus, WorkerStatus
from statestore.farm.tables import JOBS, LENGTHS, TASKS, WORKERS
from statestore.farm.workers import timed_out as timed_out_workers

_PAUSING_JOBS = (JobStatus.PAUSE_REQUESTED.value, JobStatus.PAUSED.value)


_NOT_TIMING_OUT = (WorkerStatus.ERROR.value, WorkerStatus.OFFLINE.value)


_ACTIVE_OF_WORKER = (TASKS.c.worker_id == bindparam("b_worker_id"), TASKS.c.status == TaskStatus.ACTIVE.value)


_GIVE_BACK = ((TaskStatus.PAUSED, True), (TaskStatus.QUEUED, False))
"""What an active task becomes: paused if its job is pausing or paused (the
first statement), else queued."""


_JOB_UUID = select(JOBS.c.uuid).where(JOBS.c.id == TASKS.c.job_id).correlate(TASKS).scalar_subquery()


# MariaDB: the worker's active tasks, locked (only the task rows: the jobs are
# read apart, without locks, as the UPDATE's subquery reads them elsewhere).
_ACTIVE_LOCKED = (
    select(TASKS.c.id, TASKS.c.uuid, TASKS.c.job_id).where(*_ACTIVE_OF_WORKER).order_by(TASKS.c.id).with_for_update()
)


_JOBS_BY_ID = select(JOBS.c.id, JOBS.c.uuid, JOBS.c.status).where(JOBS.c.id.in_(bindparam("ids", expanding=True)))


_BY_ID = TASKS.c.id.in_(bindparam("ids", expanding=True))


_WORKER_STATUS_LOCKED = select(WORKERS.c.status).where(WORKERS.c.id == bindparam("id")).with_for_update()


def _activity(status: TaskStatus, reason: str) -> str:
    return f"Task was {status.value} by Manager because {reason}"


def _give_back(connection: Connection, worker_id: int, reason: str, now: datetime) -> list[GivenBack]:
    """Queue (or pause) the worker's active tasks again; return them, by id."""
    given: list[tuple[int, GivenBack]] = []
    if facts_of(connection).update_returning:
        for status, pausing in _GIVE_BACK:
            job_rule = JOBS.c.status.in_(_PAUSING_JOBS) if pausing else JOBS.c.status.not_in(_PAUSING_JOBS)
            statement = (
                update(TASKS)
                .where(*_ACTIVE_OF_WORKER, TASKS.c.job_id.in_(select(JOBS.c.id).where(job_rule)))
                .values(status=status.value, activity=_activity(status, reason), updated_at=now)
                .returning(TASKS.c.id, TASKS.c.uuid, _JOB_UUID)
            )
            for task_id, task_uuid, job_uuid in connection.execute(statement, {"b_worker_id": worker_id}):
                given.append((task_id, GivenBack(task_uuid, job_uuid, status)))
    else:
        active = connection.execute(_ACTIVE_LOCKED, {"b_worker_id": worker_id}).all()
        if not active:
            return []
        jobs: dict[int, tuple[UUID, str]] = {}
        for chunk in chunks(sorted({job_id for _, _, job_id in active})):
            for job_id, job_uuid, job_status in connection.execute(_JOBS_BY_ID, {"ids": list(chunk)}):
                jobs[job_id] = (job_uuid, job_status)
        ids: dict[TaskStatus, list[int]] = {status: [] for status, _ in _GIVE_BACK}
        for task_id, task_uuid, job_id in active:
            job_uuid, job_status = jobs[job_id]
            status = TaskStatus.PAUSED if job_status in _PAUSING_JOBS else TaskStatus.QUEUED
            ids[status].append(task_id)
            given.append((task_id, GivenBack(task_uuid, job_uuid, status)))
        for status, task_ids in ids.items():
            by_id = (
                update(TASKS)
                .where(_BY_ID)
                .values(status=status.value, activity=_activity(status, reason), updated_at=now)
            )
            for chunk in chunks(task_ids):
                connection.execute(by_id, {"ids": list(chunk)})
    given.sort(key=itemgetter(0))
    records = [given_back for _, given_back in given]
    record(
        connection,
        [
            change(
                ChangeKind.TASK_STATUS,
                at=now,
                job=back.job_uuid,
                task=back.task_uuid,
                old=TaskStatus.ACTIVE.value,
                new=back.status.value,
                reason=reason,
            )
            for back in records
        ],
    )
    if _requeued(records):
        enable_work(connection, None)
    return records


def _requeued(given: list[GivenBack]) -> bool:
    """Whether a task given back is queued (work for other workers), not paused."""
    return any(back.status is TaskStatus.QUEUED for back in given)


def requeue_tasks_of_worker(connection: Connection, worker_uuid: UUID, reason: str) -> list[GivenBack]:
    """Give back the worker's active tasks; return them, by id."""
    return _give_back(connection, worker_id_of(connection, worker_uuid), reason, utcnow())


def time_out_worker(
    connection: Connection, worker_uuid: UUID, reason: str, now: datetime, unseen_since: datetime | None = None
) -> list[GivenBack] | None:
    """Mark the worker ``error``, clear its status request, give back its
    tasks; return them, by id (None: not timed out after all).

    With ``unseen_since`` this happens only if the worker is still timed out
    (not seen since then, not deleted, not already error or offline): a
    heartbeat that arrived after the timed-out workers were listed wins, and
    its running task is not taken away.
    """
    worker_id = worker_id_of(connection, worker_uuid)
    # Locked before the UPDATE (which would lock it anyway): the status it
    # replaces is the one the change feed reports.
    old = connection.execute(_WORKER_STATUS_LOCKED, {"id": worker_id}).scalar_one()
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
    if old != WorkerStatus.ERROR.value:
        timed_out = change(ChangeKind.WORKER_STATUS, at=now, worker=worker_uuid, old=old, new=WorkerStatus.ERROR.value)
        record(connection, [timed_out])
    return _give_back(connection, worker_id, reason, now)


class Scheduler:
    """The task scheduler: hands the next runnable task to a worker."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self._claim = CLAIMS[runner.facts.claim]

    async def claim(
        self, worker: UUID | str, *, activate: bool = True, wait: float | None = None
    ) -> ScheduledTask | None:
        """The task ``worker`` should run now, or None when there is none.

        With ``wait`` (seconds, up to an hour) a claim that finds nothing
        waits for a commit that can make work claimable — a job stored or
        queued, a task requeued, a dependency completed, … — and claims
        again, until a task comes or the time is up (None). Waiters of one
        store are served longest waiting first; other processes' commits
        wake them too (see :mod:`statestore.core.wakeups`).

        With ``activate`` (what a manager wants) the task is assigned, marked
        active and touched, and a queued job becomes active, all in the same
        transaction: no other claimer can take it between assignment and
        activation. Those status changes are appended to the status history
        in that transaction (see :mod:`statestore.farm.claim`). Without it
        the task is only assigned and stays queued, as in Flamenco's
        persistence layer, where a later claim may reassign it.
        """
        worker = uuid_value(worker, "worker")
        activate = boolean(activate, "activate")
        waiting = None if wait is None else seconds(wait, "wait", MOST_WAIT)
        if not waiting:
            return await self._claim_once(worker, activate)
        return await claim_waiting(self._runner.wakeups, partial(self._claim_once, worker, activate), waiting)

    async def _claim_once(self, worker: UUID, activate: bool) -> ScheduledTask | None:
        unit = partial(self._claim.run, worker_uuid=worker, activate=activate, now=utcnow())
        return await self._runner.write(unit, single_statement=self._claim.single_statement)

    async def requeue_tasks_of_worker(self, worker: UUID | str, reason: str) -> list[GivenBack]:
        """Give back every active task of ``worker`` (it signed off or
        vanished): queued again, or paused where the job is pausing or
        paused, with the reason in the activity. One transaction; returns
        the tasks given back (task, job, new status), by id; NotFound for an
        unknown worker."""
        worker = uuid_value(worker, "worker")
        reason = text(reason, LENGTHS["activity"] // 2, "reason")
        given_back = await self._runner.write(partial(requeue_tasks_of_worker, worker_uuid=worker, reason=reason))
        if _requeued(given_back):
            self._runner.wakeups.work()
        return given_back

    async def time_out_worker(self, worker: UUID | str, reason: str = "the worker timed out") -> list[GivenBack]:
        """Flamenco's worker timeout: status ``error``, status request
        cleared, and its active tasks given back — one transaction. Returns
        the tasks given back, by id."""
        worker = uuid_value(worker, "worker")
        reason = text(reason, LENGTHS["activity"] // 2, "reason")
        given_back = await self._runner.write(partial(time_out_worker, worker_uuid=worker, reason=reason, now=utcnow()))
        assert given_back is not None  # unconditional without unseen_since
        if _requeued(given_back):
            self._runner.wakeups.work()
        return given_back

    async def time_out_workers(
        self, last_seen_before: datetime, reason: str = "the worker timed out"
    ) -> dict[UUID, list[GivenBack]]:
        """Time out every worker not seen since ``last_seen_before`` (each in
        its own transaction, re-checked there: a worker whose heartbeat came
        in meanwhile is left alone); returns, for each worker timed out (in
        the order of their ids), the tasks given back (an empty list for a
        worker that had none)."""
        last_seen_before = aware_datetime(last_seen_before, "last_seen_before")
        reason = text(reason, LENGTHS["activity"] // 2, "reason")
        timed_out: dict[UUID, list[GivenBack]] = {}
        for worker in await self._runner.read(
            partial(timed_out_workers, before=last_seen_before), single_statement=True
        ):
            unit = partial(
                time_out_worker, worker_uuid=worker.uuid, reason=reason, now=utcnow(), unseen_since=last_seen_before
            )
            given_back = await self._runner.write(unit)
            if given_back is not None:
                timed_out[worker.uuid] = given_back
                if _requeued(given_back):
                    self._runner.wakeups.work()
        return timed_out
