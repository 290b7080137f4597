"""Flamenco's status rules, applied inside one transaction: a task's change
ripples to its job (reference §3.3), a job's change to its tasks (§3.4), and
every change is appended to the status history.

A :class:`Ripple` works on jobs it holds: :meth:`Ripple.hold_job` locks the
job's row exclusively (``SELECT … FOR UPDATE``; SQLite's one writer needs no
lock) before anything of the job is read. Every state-machine call takes
that lock first, so two processes completing a job's last two tasks take
turns, and the second one's counts see the first one's task completed: the
rule that reads ("are all tasks completed?") and the write it decides are
never split by another writer of the same job. Locks are taken in one order,
jobs (by id) → tasks → workers, the order every state-machine call follows.

Every status change is also appended to the change feed (``changes``, see
:mod:`statestore.changes.recording`) by :meth:`Ripple.finish`, in the same
transaction as the history; and a call whose changes can make work
claimable — a task queued or soft-failed (a worker may claim it again), a
job back to queued or active from a status whose tasks are not handed out,
a completion that leaves a dependent with no pending dependency — announces
it there (:mod:`statestore.farm.enabling`).

The raw persistence calls (``tasks.save_status``, ``jobs.save_status``) do
not take part: they write what they are told, as Flamenco's persistence
layer does.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, exists, func, insert, literal_column, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from statestore.changes.kinds import ChangeKind
from statestore.changes.recording import change, record
from statestore.core.batches import chunks
from statestore.core.types import utcnow
from statestore.errors import Conflict, NotFound
from statestore.farm.derived import copy_job_schedulable, lock_dependents, recount, recount_job, resum_steps
from statestore.farm.enabling import WorkSignal, enable_work
from statestore.farm.records import StatusChange
from statestore.farm.statuses import SCHEDULABLE_JOB_STATUSES, SCHEDULABLE_TASK_STATUSES, JobStatus, TaskStatus
from statestore.farm.tables import BLOCKS, FAILURES, JOBS, LENGTHS, STATUS_HISTORY, TASKS
from statestore.farm.transitions import is_allowed

__all__ = ["DEFAULT_FAIL_PERCENTAGE", "TASK_COLUMNS", "HeldJob", "HeldTask", "Ripple", "in_statuses", "task_from"]

DEFAULT_FAIL_PERCENTAGE = 10
"""Flamenco's ``taskFailJobPercentage``: a job fails once this share of its
tasks (integer percent, rounded down) has failed."""

_T = TaskStatus
_J = JobStatus

_RUNNABLE = (_T.ACTIVE, _T.QUEUED, _T.SOFT_FAILED)
_UNFINISHED = tuple(status for status in TaskStatus if status is not _T.COMPLETED)
_REQUEUED_FROM = (_T.CANCELED, _T.FAILED, _T.PAUSED, _T.SOFT_FAILED)


@dataclass
class HeldJob:
    """A job whose row this transaction has locked, as it stands now."""

    id: int
    uuid: UUID
    status: JobStatus


@dataclass(frozen=True)
class HeldTask:
    """A task of a held job, read after the job's lock."""

    id: int
    uuid: UUID
    job_id: int
    status: TaskStatus
    worker_id: int | None
    type: str
    steps_completed: int
    steps_total: int


_JOB_ID_OF_TASK = select(TASKS.c.job_id).where(TASKS.c.uuid == bindparam("uuid"))

# FOR NO KEY UPDATE on PostgreSQL (FOR UPDATE elsewhere): the job's key does
# not change, so inserts that check a foreign key to the job need not wait.
_HOLD_JOB = (
    select(JOBS.c.id, JOBS.c.uuid, JOBS.c.status).where(JOBS.c.id == bindparam("id")).with_for_update(key_share=True)
)

TASK_COLUMNS = (  # what a HeldTask holds (task_from reads them)
    TASKS.c.id,
    TASKS.c.uuid,
    TASKS.c.job_id,
    TASKS.c.status,
    TASKS.c.worker_id,
    TASKS.c.type,
    TASKS.c.steps_completed,
    TASKS.c.steps_total,
)

_HOLD_TASK = select(*TASK_COLUMNS).where(TASKS.c.uuid == bindparam("uuid")).with_for_update()

_COUNTS = select(TASKS.c.status, func.count()).where(TASKS.c.job_id == bindparam("job_id")).group_by(TASKS.c.status)

_SET_JOB = (
    update(JOBS)
    .where(JOBS.c.id == bindparam("b_id"))
    .values(status=bindparam("b_status"), activity=bindparam("b_activity"), updated_at=bindparam("b_now"))
)

_ADD_STEPS = (
    update(JOBS)
    .where(JOBS.c.id == bindparam("b_id"))
    .values(steps_completed=JOBS.c.steps_completed + bindparam("b_delta"), updated_at=JOBS.c.updated_at)
)

CLEAR_TASK_FAILURES = FAILURES.delete().where(FAILURES.c.task_id == bindparam("task_id"))
"""Empty one task's failure list (``task_id``)."""

CLEAR_JOB_BLOCKS = BLOCKS.delete().where(BLOCKS.c.job_id == bindparam("job_id"))
"""Empty one job's blocklist (``job_id``)."""

CLEAR_JOB_FAILURES = FAILURES.delete().where(
    FAILURES.c.task_id.in_(select(TASKS.c.id).where(TASKS.c.job_id == bindparam("job_id")))
)
"""Empty the failure lists of one job's tasks (``job_id``)."""


def in_statuses(column: ColumnElement[Any], statuses: Iterable[TaskStatus | JobStatus]) -> ColumnElement[bool]:
    """``column IN ('a', 'b', …)`` with the statuses written into the SQL,
    not bound. A reused prepared statement gets a generic plan that cannot
    see bound values: at 100k tasks PostgreSQL then read a job's unfinished
    tasks by a sequential scan (7–10 ms per completion, see bench/README.md)
    where ``ix_tasks_job_id_status`` answers in 0.06 ms. Only enum values
    are written in, never a caller's text."""
    written: list[ColumnElement[Any]] = []
    for status in statuses:
        if not isinstance(status, TaskStatus | JobStatus):  # never anything but the enums' own values
            raise TypeError(f"not a status: {status!r}")
        written.append(literal_column(f"'{status.value}'"))
    return column.in_(written)


# Whether any of the dependents (locked, just recounted) may be claimed now.
_ANY_READY = select(
    exists().where(
        TASKS.c.id.in_(bindparam("ids", expanding=True)),
        TASKS.c.pending_dependencies == 0,
        in_statuses(TASKS.c.status, SCHEDULABLE_TASK_STATUSES),
    )
)


def _cut(text: str, length: int = LENGTHS["activity"]) -> str:
    """Text built from a caller's reason, kept within its column."""
    return text if len(text) <= length else text[: length - 1] + "…"


def job_id_of_task(connection: Connection, task_uuid: UUID) -> int:
    """The id of the task's job, by a plain read (tasks never change job)."""
    job_id = connection.execute(_JOB_ID_OF_TASK, {"uuid": task_uuid}).scalar_one_or_none()
    if job_id is None:
        raise NotFound(f"task {task_uuid} not found")
    return int(job_id)


def task_from(row: Any) -> HeldTask:
    """A HeldTask from a row of the task's columns."""
    return HeldTask(
        id=int(row.id),
        uuid=row.uuid if isinstance(row.uuid, UUID) else UUID(str(row.uuid)),
        job_id=int(row.job_id),
        status=TaskStatus(row.status),
        worker_id=row.worker_id,
        type=str(row.type),
        steps_completed=int(row.steps_completed),
        steps_total=int(row.steps_total),
    )


@dataclass
class Ripple:
    """The status changes of one state-machine call, made in its transaction.

    Changes are collected as :class:`StatusChange` records and appended to
    the history and to the change feed by :meth:`finish`, which also
    announces work if a change can make some claimable (``work`` then says
    so to the repository, see :mod:`statestore.farm.enabling`).
    """

    connection: Connection
    who: str
    fail_percentage: int = DEFAULT_FAIL_PERCENTAGE
    now: datetime = field(default_factory=utcnow)
    changes: list[StatusChange] = field(default_factory=list)
    work: WorkSignal | None = None
    _history: list[dict[str, Any]] = field(default_factory=list)
    _feed: list[dict[str, Any]] = field(default_factory=list)
    _enables_work: bool = False
    _jobs: dict[int, HeldJob] = field(default_factory=dict)

    # -- holding -------------------------------------------------------------------

    def hold_job(self, job_id: int) -> HeldJob:
        """Lock job ``job_id``'s row for the rest of the transaction; the job as it is now."""
        held = self._jobs.get(job_id)
        if held is not None:
            return held
        row = self.connection.execute(_HOLD_JOB, {"id": job_id}).one_or_none()
        if row is None:
            raise NotFound(f"job {job_id} not found")
        uuid = row.uuid if isinstance(row.uuid, UUID) else UUID(str(row.uuid))
        held = HeldJob(int(row.id), uuid, JobStatus(row.status))
        self._jobs[job_id] = held
        return held

    def hold_jobs(self, job_ids: Iterable[int]) -> list[HeldJob]:
        """Lock several jobs, in id order (the one lock order of every writer)."""
        return [self.hold_job(job_id) for job_id in sorted(set(job_ids))]

    def hold_task(self, task_uuid: UUID) -> tuple[HeldJob, HeldTask]:
        """Lock the task's job, then the task; both as they are now."""
        job = self.hold_job(job_id_of_task(self.connection, task_uuid))
        row = self.connection.execute(_HOLD_TASK, {"uuid": task_uuid}).one_or_none()
        if row is None:  # deleted between the two reads, with its job
            raise NotFound(f"task {task_uuid} not found")
        return job, task_from(row)

    def held(self, job_id: int) -> HeldJob:
        return self._jobs[job_id]

    # -- counting ------------------------------------------------------------------

    def counts(self, job: HeldJob) -> dict[TaskStatus, int]:
        """The job's tasks by status, read under the job's lock."""
        rows = self.connection.execute(_COUNTS, {"job_id": job.id}).all()
        counts = dict.fromkeys(TaskStatus, 0)
        for status, number in rows:
            counts[TaskStatus(status)] = int(number)
        return counts

    def has(self, job: HeldJob, statuses: Collection[TaskStatus]) -> bool:
        """Whether a task of the job is in one of ``statuses``, read under the
        job's lock: probes of ``ix_tasks_job_id_status``, not a count of
        every task (the worker's completion asks this of every job)."""
        return bool(
            self.connection.execute(
                select(exists().where(TASKS.c.job_id == job.id, in_statuses(TASKS.c.status, statuses)))
            ).scalar()
        )

    # -- tasks ---------------------------------------------------------------------

    def task_to(
        self,
        task: HeldTask,
        status: TaskStatus,
        reason: str,
        *,
        activity: str | None = None,
        check: bool = True,
        reset_steps: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> bool:
        """Change a held task's status with its side effects, then ripple to
        the job. With ``check`` a transition :mod:`~statestore.farm.transitions`
        does not allow raises Conflict before anything is written. False
        (nothing written) when the task already has ``status``."""
        if task.status is status:
            return False
        if check and not is_allowed("task", task.status, status):
            raise Conflict(f"task {task.uuid}: {task.status.value} → {status.value} is not an allowed transition")
        values: dict[str, Any] = {"status": status.value, "updated_at": self.now, **(extra or {})}
        if activity is not None:
            values["activity"] = _cut(activity)
        steps = task.steps_completed
        if status is _T.COMPLETED:
            steps = task.steps_total
        elif status is _T.QUEUED or reset_steps:
            steps = 0
        if steps != task.steps_completed:
            values["steps_completed"] = steps
        crosses = _T.COMPLETED in (task.status, status)
        # Dependents are locked before the change and recounted after it (see derived).
        dependents = lock_dependents(self.connection, task.uuid) if crosses else []
        self.connection.execute(update(TASKS).where(TASKS.c.id == task.id).values(**values))
        if dependents:
            recount(self.connection, dependents)
            if status is _T.COMPLETED and not self._enables_work:
                self._enables_work = self._any_ready(dependents)
        if status in SCHEDULABLE_TASK_STATUSES and task.status not in SCHEDULABLE_TASK_STATUSES:
            self._enables_work = True  # queued again, or soft-failed: another worker may take it
        if steps != task.steps_completed or crosses:
            # Written even when no step changes if the task crosses completed:
            # every state-machine change of a task's completion writes its
            # job's row (see farm.completion, which relies on the row version).
            self.connection.execute(_ADD_STEPS, {"b_id": task.job_id, "b_delta": steps - task.steps_completed})
        job = self.held(task.job_id)
        self._record(job, task.id, task.uuid, task.status, status, reason)
        self._after_task(job, status)
        return True

    def _any_ready(self, task_ids: list[int]) -> bool:
        """Whether a worker may claim one of ``task_ids`` now (their
        dependencies allow it and their status does)."""
        return any(self.connection.execute(_ANY_READY, {"ids": list(chunk)}).scalar() for chunk in chunks(task_ids))

    def tasks_to(
        self,
        job: HeldJob,
        status: TaskStatus,
        activity: str,
        reason: str,
        *,
        from_statuses: Collection[TaskStatus] | None,
        reset_steps: bool = False,
    ) -> int:
        """Change the job's tasks in ``from_statuses`` (None: every other
        status) to ``status``, without a ripple to the job (the caller is
        the job's own change); how many changed."""
        statuses = [s.value for s in (from_statuses if from_statuses is not None else TaskStatus) if s is not status]
        if not statuses:
            return 0
        selected = (
            select(TASKS.c.id, TASKS.c.uuid, TASKS.c.status)
            .where(TASKS.c.job_id == job.id, TASKS.c.status.in_(statuses))
            .order_by(TASKS.c.id)
            .with_for_update()
        )
        rows = self.connection.execute(selected).all()
        if not rows:
            return 0
        values: dict[str, Any] = {"status": status.value, "activity": _cut(activity), "updated_at": self.now}
        if reset_steps:
            values["steps_completed"] = 0
        for chunk in chunks([row.id for row in rows]):
            self.connection.execute(update(TASKS).where(TASKS.c.id.in_(list(chunk))).values(**values))
        if any(row.status == _T.COMPLETED.value for row in rows) or status is _T.COMPLETED:
            recount_job(self.connection, job.id)
        if reset_steps:
            resum_steps(self.connection, job.id)
        if status in SCHEDULABLE_TASK_STATUSES:
            self._enables_work = True
        for row in rows:
            uuid = row.uuid if isinstance(row.uuid, UUID) else UUID(str(row.uuid))
            self._record(job, int(row.id), uuid, TaskStatus(row.status), status, reason)
        return len(rows)

    # -- jobs ----------------------------------------------------------------------

    def job_to(self, job: HeldJob, status: JobStatus, reason: str, *, check: bool = True) -> bool:
        """Change a held job's status and follow the changes it makes to its
        tasks until the job's status settles (Flamenco's JobStatusChange).
        With ``check`` a disallowed transition raises Conflict first. False
        when the job already has ``status``."""
        if job.status is status:
            return False
        if check and not is_allowed("job", job.status, status):
            raise Conflict(f"job {job.uuid}: {job.status.value} → {status.value} is not an allowed transition")
        following: JobStatus | None = status
        while following is not None and following is not job.status:
            old = job.status
            self._set_job(job, following, reason)
            following = self._after_job(job, old)
        return True

    def reapply(self, job: HeldJob, reason: str) -> None:
        """Act as if the job had just got its current status (Flamenco's
        jobStatusReenforce, for jobs stuck half-way)."""
        following = self._after_job(job, job.status)
        if following is not None:
            self.job_to(job, following, reason, check=False)

    def _set_job(self, job: HeldJob, status: JobStatus, reason: str) -> None:
        activity = _cut(f'Changed to status "{status.value}": {reason}')
        self.connection.execute(
            _SET_JOB, {"b_id": job.id, "b_status": status.value, "b_activity": activity, "b_now": self.now}
        )
        copy_job_schedulable(self.connection, job.id, status.value)
        if status in SCHEDULABLE_JOB_STATUSES and job.status not in SCHEDULABLE_JOB_STATUSES:
            self._enables_work = True  # its tasks may be handed out again (queued, resumed)
        self._record(job, None, None, job.status, status, reason)
        job.status = status

    def _after_job(self, job: HeldJob, old: JobStatus) -> JobStatus | None:
        """§3.4: what the job's new status does to its tasks; the status
        the job goes to next, if any."""
        status = job.status
        if status in (_J.CANCEL_REQUESTED, _J.FAILED):
            activity = f'Manager cancelled this task because the job got status "{status.value}".'
            self.tasks_to(job, _T.CANCELED, activity, f"job {status.value}", from_statuses=_RUNNABLE)
            return _J.CANCELED if status is _J.CANCEL_REQUESTED else None
        if status is _J.PAUSE_REQUESTED:
            activity = f'Manager paused this task because the job got status "{status.value}".'
            self.tasks_to(job, _T.PAUSED, activity, "job pause-requested", from_statuses=(_T.QUEUED, _T.SOFT_FAILED))
            return None if self.has(job, (_T.ACTIVE,)) else _J.PAUSED
        if status is _J.REQUEUEING:
            if old is _J.UNDER_CONSTRUCTION:
                return _J.QUEUED
            activity = f'Manager queued this task because the job got status "{status.value}".'
            from_statuses = None if old is _J.COMPLETED else _REQUEUED_FROM
            self.tasks_to(job, _T.QUEUED, activity, "job requeued", from_statuses=from_statuses, reset_steps=True)
            return _J.QUEUED
        if status is _J.QUEUED:
            return None if self.has(job, _UNFINISHED) else _J.COMPLETED
        return None

    def _after_task(self, job: HeldJob, status: TaskStatus) -> None:
        """§3.3: what a task's new status does to its job."""
        following: JobStatus | None = None
        reason = ""
        if status is _T.QUEUED:
            if job.status is _J.COMPLETED:
                following, reason = _J.REQUEUEING, "task was queued"
        elif status is _T.PAUSED:
            following, reason = self._paused_if_idle(job)
        elif status is _T.CANCELED:
            if not self.has(job, _RUNNABLE):
                following, reason = _J.CANCELED, "canceled task was last runnable task of job, canceling job"
            else:
                following, reason = self._paused_if_idle(job)
        elif status is _T.FAILED:
            counts = self.counts(job)
            total = sum(counts.values())
            if total and counts[_T.FAILED] * 100 // total >= self.fail_percentage:
                following, reason = _J.FAILED, "too many tasks failed"
            else:
                following, reason = self._paused_if_idle(job, counts[_T.ACTIVE])
                if following is None and job.status is _J.QUEUED:
                    following, reason = _J.ACTIVE, "task failed, but not enough to fail the job"
        elif status in (_T.ACTIVE, _T.SOFT_FAILED):
            if job.status not in (_J.ACTIVE, _J.CANCEL_REQUESTED):
                following, reason = _J.ACTIVE, f"task became {status.value}"
        elif status is _T.COMPLETED:
            if not self.has(job, _UNFINISHED):
                following, reason = _J.COMPLETED, "all tasks completed"
            else:
                following, reason = self._paused_if_idle(job)
                if following is None and job.status is _J.QUEUED:
                    following, reason = _J.ACTIVE, "a task completed, there are more to do"
        # A ripple the transition table does not allow leaves the job as it is
        # (the task's own change stands): it only happens to jobs that raw
        # persistence calls put in an odd state.
        if following is not None and is_allowed("job", job.status, following):
            self.job_to(job, following, reason, check=False)

    def settle(self, job: HeldJob, status: TaskStatus) -> None:
        """Apply to a held job what a task's change to ``status``, made by a
        statement of its own (see farm.completion), does to it."""
        self._after_task(job, status)

    def _paused_if_idle(self, job: HeldJob, active: int | None = None) -> tuple[JobStatus | None, str]:
        """A pause-requested job with no active task left becomes paused
        (``active``: the count, if the caller has it)."""
        if job.status is not _J.PAUSE_REQUESTED:
            return None, ""
        if self.has(job, (_T.ACTIVE,)) if active is None else active > 0:
            return None, ""
        return _J.PAUSED, "no more active tasks, the job is paused"

    # -- history and change feed ---------------------------------------------------

    def _record(
        self, job: HeldJob, task_id: int | None, task_uuid: UUID | None, old: str, new: str, reason: str
    ) -> None:
        reason = _cut(reason)
        self.changes.append(StatusChange(job.uuid, task_uuid, str(old), str(new), reason, self.who))
        kind = ChangeKind.JOB_STATUS if task_uuid is None else ChangeKind.TASK_STATUS
        self._feed.append(
            change(
                kind, at=self.now, job=job.uuid, task=task_uuid, old=str(old), new=str(new), reason=reason, who=self.who
            )
        )
        self._history.append(
            {
                "job_id": job.id,
                "task_id": task_id,
                "old_status": str(old),
                "new_status": str(new),
                "reason": reason,
                "who": self.who,
                "at": self.now,
            }
        )

    def feed(self, row: dict[str, Any]) -> None:
        """Append another change (a row of :func:`~statestore.changes.recording.change`)
        to the feed, in order with the status changes."""
        self._feed.append(row)

    def finish(self) -> tuple[StatusChange, ...]:
        """Append the collected changes to the history and to the change
        feed, and announce work if they can make some claimable; the
        changes, in order."""
        for chunk in chunks(self._history):
            self.connection.execute(insert(STATUS_HISTORY), list(chunk))
        self._history.clear()
        record(self.connection, self._feed)
        self._feed.clear()
        if self._enables_work:
            enable_work(self.connection, self.work)
        return tuple(self.changes)
