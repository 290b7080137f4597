"""Read units of jobs: one query each, every listing explicitly ordered.

Questions about the tasks of one job are asked ``FROM jobs LEFT JOIN
tasks``, so an unknown job is told apart from a job without (matching) tasks
in the same query: no row at all means the job does not exist.
"""

from __future__ import annotations

from collections.abc import Collection
from uuid import UUID

from sqlalchemy import Integer, bindparam, case, exists, func, select
from sqlalchemy.engine import Connection

from statestore.errors import NotFound
from statestore.farm.job_codec import job_from_row, summary_from_row
from statestore.farm.records import Job, TaskSummary
from statestore.farm.statuses import JobStatus, TaskStatus
from statestore.farm.tables import JOBS, TASKS, WORKERS

__all__ = [
    "count_tasks_in_status",
    "deletion_requested",
    "has_tasks_in_status",
    "job_id_of",
    "jobs_in_status",
    "list_jobs",
    "load_job",
    "load_job_by_id",
    "storage_checkout_id",
    "summarize_statuses",
    "task_summaries",
]

_JOB = select(JOBS).where(JOBS.c.uuid == bindparam("uuid"))
_JOB_BY_ID = select(JOBS).where(JOBS.c.id == bindparam("id"))
_JOB_ID = select(JOBS.c.id).where(JOBS.c.uuid == bindparam("uuid"))
_ALL = select(JOBS).order_by(JOBS.c.id)
_IN_STATUS = select(JOBS).where(JOBS.c.status.in_(bindparam("statuses", expanding=True))).order_by(JOBS.c.id)
_DELETION_REQUESTED = (
    select(JOBS.c.uuid).where(JOBS.c.delete_requested_at.is_not(None)).order_by(JOBS.c.delete_requested_at, JOBS.c.id)
)
_CHECKOUT = select(JOBS.c.storage_checkout_id).where(JOBS.c.uuid == bindparam("uuid"))
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
_SUMMARIZE = select(JOBS.c.status, func.count()).group_by(JOBS.c.status).order_by(JOBS.c.status)
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


def load_job(connection: Connection, uuid: UUID) -> Job:
    """Job ``uuid`` (NotFound if missing)."""
    row = connection.execute(_JOB, {"uuid": uuid}).mappings().one_or_none()
    if row is None:
        raise NotFound(f"job {uuid} not found")
    return job_from_row(row)


def load_job_by_id(connection: Connection, job_id: int) -> Job:
    """The job with primary key ``job_id`` (NotFound if missing)."""
    row = connection.execute(_JOB_BY_ID, {"id": job_id}).mappings().one_or_none()
    if row is None:
        raise NotFound(f"job with id {job_id} not found")
    return job_from_row(row)


def job_id_of(connection: Connection, uuid: UUID) -> int:
    """The primary key of job ``uuid`` (NotFound if missing)."""
    job_id = connection.execute(_JOB_ID, {"uuid": uuid}).scalar_one_or_none()
    if job_id is None:
        raise NotFound(f"job {uuid} not found")
    return int(job_id)


def list_jobs(connection: Connection) -> list[Job]:
    """Every job, by id."""
    return [job_from_row(row) for row in connection.execute(_ALL).mappings()]


def jobs_in_status(connection: Connection, statuses: Collection[JobStatus]) -> list[Job]:
    """The jobs in one of ``statuses``, by id."""
    if not statuses:
        return []
    params = {"statuses": [status.value for status in statuses]}
    return [job_from_row(row) for row in connection.execute(_IN_STATUS, params).mappings()]


def deletion_requested(connection: Connection) -> list[UUID]:
    """Jobs whose deletion was requested, oldest request first."""
    return list(connection.execute(_DELETION_REQUESTED).scalars())


def storage_checkout_id(connection: Connection, uuid: UUID) -> str:
    """The job's storage checkout id (NotFound if the job is missing)."""
    checkout = connection.execute(_CHECKOUT, {"uuid": uuid}).scalar_one_or_none()
    if checkout is None:
        raise NotFound(f"job {uuid} not found")
    return str(checkout)


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


def summarize_statuses(connection: Connection) -> dict[JobStatus, int]:
    """How many jobs are in each status (statuses without jobs are absent)."""
    return {JobStatus(status): int(count) for status, count in connection.execute(_SUMMARIZE)}


def task_summaries(connection: Connection, uuid: UUID) -> list[TaskSummary]:
    """The job's tasks as summaries, by index in the job."""
    rows = connection.execute(_SUMMARIES, {"uuid": uuid}).mappings().all()
    if not rows:
        raise NotFound(f"job {uuid} not found")
    return [summary_from_row(row) for row in rows if row["id"] is not None]
