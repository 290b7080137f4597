"""Units over one job's tasks as a whole: counts, summaries, bulk status changes, step counts.

The :class:`~statestore.farm.jobs.Jobs` repository runs them; a bulk status
change locks the job and its tasks with dependencies first and recounts
pending dependencies after (see :mod:`statestore.farm.derived`). It writes
no status history (that is the state machine's), but every task whose
status it changes goes to the change feed (``task.status``); and if tasks
become claimable (queued or soft-failed, or a completion leaves a
dependent with nothing pending) it announces work
(:mod:`statestore.farm.enabling`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from uuid import UUID

from sqlalchemy import Integer, bindparam, case, exists, func, select, update
from sqlalchemy.engine import Connection

from statestore.changes.kinds import ChangeKind
from statestore.changes.recording import change, record
from statestore.core.batches import chunks
from statestore.core.types import utcnow
from statestore.errors import NotFound
from statestore.farm.derived import lock_job, recount_job, resum_steps
from statestore.farm.enabling import WorkSignal, enable_work
from statestore.farm.lookups import job_id_of, load_job
from statestore.farm.records import Job, TaskSummary
from statestore.farm.rows import summary_from_row
from statestore.farm.statuses import SCHEDULABLE_TASK_STATUSES, TaskStatus
from statestore.farm.tables import DEPENDENCIES, JOBS, TASKS, WORKERS

_HAS_TASKS = select(
    exists().where(TASKS.c.job_id == JOBS.c.id, TASKS.c.status == bindparam("status")).correlate(JOBS)
).where(JOBS.c.uuid == bindparam("uuid"))


_COUNT_TASKS = (
    select(
        func.coalesce(
            func.sum(case((TASKS.c.status.in_(bindparam("statuses", expanding=True)), 1), else_=0), type_=Integer), 0
        ),
        func.count(TASKS.c.id),
    )
    .select_from(JOBS.outerjoin(TASKS, TASKS.c.job_id == JOBS.c.id))
    .where(JOBS.c.uuid == bindparam("uuid"))
    .group_by(JOBS.c.id)
)


_SUMMARIES = (
    select(
        TASKS.c.id,
        TASKS.c.uuid,
        TASKS.c.name,
        TASKS.c.index_in_job,
        TASKS.c.priority,
        TASKS.c.status,
        TASKS.c.type,
        TASKS.c.updated_at,
        TASKS.c.steps_completed,
        TASKS.c.steps_total,
        WORKERS.c.uuid.label("worker_uuid"),
    )
    .select_from(
        JOBS.outerjoin(TASKS, TASKS.c.job_id == JOBS.c.id).outerjoin(WORKERS, WORKERS.c.id == TASKS.c.worker_id)
    )
    .where(JOBS.c.uuid == bindparam("uuid"))
    .order_by(TASKS.c.index_in_job)
)


def has_tasks_in_status(connection: Connection, uuid: UUID, status: TaskStatus) -> bool:
    """Whether a task of the job has ``status`` (NotFound if the job is missing)."""
    found = connection.execute(_HAS_TASKS, {"uuid": uuid, "status": status.value}).scalar_one_or_none()
    if found is None:
        raise NotFound(f"job {uuid} not found")
    return bool(found)


def count_tasks_in_status(connection: Connection, uuid: UUID, statuses: Collection[TaskStatus]) -> tuple[int, int]:
    """(tasks of the job in one of ``statuses``, all its tasks)."""
    params = {"uuid": uuid, "statuses": [status.value for status in statuses] or [""]}
    row = connection.execute(_COUNT_TASKS, params).one_or_none()
    if row is None:
        raise NotFound(f"job {uuid} not found")
    return int(row[0]), int(row[1])


def task_summaries(connection: Connection, uuid: UUID) -> list[TaskSummary]:
    """The job's tasks as summaries, by index in the job."""
    rows = connection.execute(_SUMMARIES, {"uuid": uuid}).mappings().all()
    if not rows:
        raise NotFound(f"job {uuid} not found")
    return [summary_from_row(row) for row in rows if row["id"] is not None]


_STEPS_OF_COMPLETED = (
    update(TASKS)
    .where(TASKS.c.job_id == bindparam("b_job_id"), TASKS.c.status == TaskStatus.COMPLETED.value)
    .values(steps_completed=TASKS.c.steps_total, updated_at=TASKS.c.updated_at)
)


_STEPS_OF_QUEUED = (
    update(TASKS)
    .where(TASKS.c.job_id == bindparam("b_job_id"), TASKS.c.status == TaskStatus.QUEUED.value)
    .values(steps_completed=0, updated_at=TASKS.c.updated_at)
)


_READY_IN_JOB = select(
    exists().where(
        TASKS.c.job_id == bindparam("job_id"),
        TASKS.c.pending_dependencies == 0,
        TASKS.c.status.in_([value.value for value in SCHEDULABLE_TASK_STATUSES]),
        exists().where(DEPENDENCIES.c.task_id == TASKS.c.id),
    )
)
"""Whether a task of the job that has dependencies may be claimed now."""


def update_task_statuses(
    connection: Connection,
    uuid: UUID,
    status: TaskStatus,
    activity: str,
    from_statuses: Collection[TaskStatus] | None,
    work: WorkSignal | None = None,
) -> int:
    """Set status and activity of the job's tasks (only those in
    ``from_statuses`` unless None); return how many were set. The tasks
    are read and locked first, then updated by id: what the feed reports is
    what was changed."""
    job_id = job_id_of(connection, uuid)
    conditions = [TASKS.c.job_id == job_id]
    if from_statuses is not None:
        if not from_statuses:
            return 0
        conditions.append(TASKS.c.status.in_([value.value for value in from_statuses]))
    completed = TaskStatus.COMPLETED
    may_cross = from_statuses is None or status is completed or completed in from_statuses
    # Dependents locked before the change, recounted after it (see readiness).
    has_dependents = may_cross and lock_job(connection, job_id)
    selected = select(TASKS.c.id, TASKS.c.uuid, TASKS.c.status).where(*conditions).order_by(TASKS.c.id)
    rows = connection.execute(selected.with_for_update()).all()
    now = utcnow()
    values: dict[str, Any] = {"status": status.value, "activity": activity, "updated_at": now}
    for chunk in chunks([row.id for row in rows]):
        connection.execute(update(TASKS).where(TASKS.c.id.in_(list(chunk))).values(**values))
    if rows and has_dependents:
        recount_job(connection, job_id)
    changed = [row for row in rows if row.status != status.value]
    feed = [
        change(
            ChangeKind.TASK_STATUS, at=now, job=uuid, task=row.uuid, old=row.status, new=status.value, reason=activity
        )
        for row in changed
    ]
    record(connection, feed)
    if changed and _enables_work(connection, job_id, status, has_dependents):
        enable_work(connection, work)
    return len(rows)


def _enables_work(connection: Connection, job_id: int, status: TaskStatus, has_dependents: bool) -> bool:
    """Whether the job's tasks, just changed to ``status``, may be claimed:
    they are queued or soft-failed, or completed and a dependent may be."""
    if status in SCHEDULABLE_TASK_STATUSES:
        return True
    if status is TaskStatus.COMPLETED and has_dependents:
        return bool(connection.execute(_READY_IN_JOB, {"job_id": job_id}).scalar())
    return False


def update_task_step_counts(connection: Connection, uuid: UUID) -> Job:
    """Completed tasks have done all their steps, queued ones none; then the
    job's counters are re-summed."""
    job_id = job_id_of(connection, uuid)
    params = {"b_job_id": job_id}
    connection.execute(_STEPS_OF_COMPLETED, params)
    connection.execute(_STEPS_OF_QUEUED, params)
    resum_steps(connection, job_id)
    return load_job(connection, uuid)
