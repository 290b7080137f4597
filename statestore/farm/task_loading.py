"""Read units of tasks: one query each, every listing explicitly ordered.

A task record carries its job's uuid and its worker's: ``tasks JOIN jobs
LEFT JOIN workers``, where the LEFT JOIN keeps showing a soft-deleted
worker's uuid (its row stays, Flamenco's FetchTask shows it too). Listings of
one job's tasks start ``FROM jobs`` so an unknown job raises NotFound from the
same query; listings by worker return nothing for an unknown worker.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, bindparam, case, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from statestore.errors import NotFound
from statestore.farm.job_codec import task_from_row
from statestore.farm.records import Task, TimedOutTask
from statestore.farm.statuses import JobStatus, TaskStatus
from statestore.farm.tables import DEPENDENCIES, JOBS, TASKS, WORKERS

__all__ = [
    "TIMED_OUT",
    "current_of_worker",
    "dependencies",
    "job_uuid_of",
    "load_task",
    "of_job",
    "of_worker_in_status",
    "timed_out",
]

_COLUMNS = (*TASKS.c, JOBS.c.uuid.label("job_uuid"), WORKERS.c.uuid.label("worker_uuid"))
_FROM = TASKS.join(JOBS, JOBS.c.id == TASKS.c.job_id).outerjoin(WORKERS, WORKERS.c.id == TASKS.c.worker_id)


def _tasks() -> Select[Any]:
    return select(*_COLUMNS).select_from(_FROM)


_TASK = _tasks().where(TASKS.c.uuid == bindparam("uuid"))
_JOB_UUID = select(JOBS.c.uuid).join(TASKS, TASKS.c.job_id == JOBS.c.id).where(TASKS.c.uuid == bindparam("uuid"))


def _of_job(in_status: bool) -> Select[Any]:
    joined = TASKS.c.job_id == JOBS.c.id
    if in_status:
        joined = and_(joined, TASKS.c.status.in_(bindparam("statuses", expanding=True)))
    source = JOBS.outerjoin(TASKS, joined).outerjoin(WORKERS, WORKERS.c.id == TASKS.c.worker_id)
    statement = select(*_COLUMNS).select_from(source).where(JOBS.c.uuid == bindparam("job_uuid"))
    # Flamenco lists a job's tasks in authoring order, but those in given statuses by id.
    return statement.order_by(TASKS.c.id if in_status else TASKS.c.index_in_job)


_OF_JOB = _of_job(in_status=False)
_OF_JOB_IN_STATUS = _of_job(in_status=True)
_OF_WORKER = (
    select(*_COLUMNS)
    .select_from(TASKS.join(JOBS, JOBS.c.id == TASKS.c.job_id).join(WORKERS, WORKERS.c.id == TASKS.c.worker_id))
    .where(WORKERS.c.uuid == bindparam("worker_uuid"), TASKS.c.status == bindparam("status"))
    .order_by(TASKS.c.id)
)
_OF_WORKER_OF_JOB = _OF_WORKER.where(JOBS.c.uuid == bindparam("job_uuid"))
_DEPENDENCY = TASKS.alias("dependency")
_DEPENDENCIES = (
    select(_DEPENDENCY.c.uuid)
    .select_from(
        TASKS.outerjoin(DEPENDENCIES, DEPENDENCIES.c.task_id == TASKS.c.id).outerjoin(
            _DEPENDENCY, _DEPENDENCY.c.id == DEPENDENCIES.c.dependency_id
        )
    )
    .where(TASKS.c.uuid == bindparam("uuid"))
    .order_by(DEPENDENCIES.c.dependency_id)
)
_RUNNING = case((and_(TASKS.c.status == TaskStatus.ACTIVE.value, JOBS.c.status == JobStatus.ACTIVE.value), 1), else_=0)
_CURRENT_OF_WORKER = (
    select(*_COLUMNS)
    .select_from(TASKS.join(JOBS, JOBS.c.id == TASKS.c.job_id).join(WORKERS, WORKERS.c.id == TASKS.c.worker_id))
    .where(WORKERS.c.uuid == bindparam("worker_uuid"))
    .order_by(_RUNNING.desc(), TASKS.c.updated_at.desc(), TASKS.c.id.desc())
    .limit(1)
)
TIMED_OUT = (
    select(*_COLUMNS, WORKERS.c.name.label("worker_name"))
    .select_from(_FROM)
    .where(TASKS.c.status == TaskStatus.ACTIVE.value, TASKS.c.last_touched_at <= bindparam("untouched_since"))
    .order_by(TASKS.c.id)
)
"""status = 'active' AND last_touched_at <= t: a range scan of ix_tasks_status_last_touched_at."""


def load_task(connection: Connection, uuid: UUID) -> Task:
    """Task ``uuid`` (NotFound if missing)."""
    row = connection.execute(_TASK, {"uuid": uuid}).mappings().one_or_none()
    if row is None:
        raise NotFound(f"task {uuid} not found")
    return task_from_row(row)


def job_uuid_of(connection: Connection, uuid: UUID) -> UUID:
    """The uuid of the job of task ``uuid`` (NotFound if missing)."""
    job_uuid = connection.execute(_JOB_UUID, {"uuid": uuid}).scalar_one_or_none()
    if job_uuid is None:
        raise NotFound(f"task {uuid} not found")
    return UUID(str(job_uuid)) if not isinstance(job_uuid, UUID) else job_uuid


def of_job(connection: Connection, job_uuid: UUID, statuses: Collection[TaskStatus] | None) -> list[Task]:
    """The job's tasks: all in authoring order, or those in ``statuses`` by id."""
    if statuses is None:
        rows = connection.execute(_OF_JOB, {"job_uuid": job_uuid}).mappings().all()
    else:
        params = {"job_uuid": job_uuid, "statuses": [status.value for status in statuses] or [""]}
        rows = connection.execute(_OF_JOB_IN_STATUS, params).mappings().all()
    if not rows:
        raise NotFound(f"job {job_uuid} not found")
    return [task_from_row(row) for row in rows if row["id"] is not None]


def of_worker_in_status(
    connection: Connection, worker_uuid: UUID, status: TaskStatus, job_uuid: UUID | None
) -> list[Task]:
    """The worker's tasks in ``status`` (of job ``job_uuid`` only, if given), by id."""
    params = {"worker_uuid": worker_uuid, "status": status.value}
    if job_uuid is None:
        rows = connection.execute(_OF_WORKER, params).mappings()
    else:
        rows = connection.execute(_OF_WORKER_OF_JOB, {**params, "job_uuid": job_uuid}).mappings()
    return [task_from_row(row) for row in rows]


def dependencies(connection: Connection, uuid: UUID) -> list[UUID]:
    """The uuids of the tasks task ``uuid`` depends on, by their id."""
    found = connection.execute(_DEPENDENCIES, {"uuid": uuid}).scalars().all()
    if not found:
        raise NotFound(f"task {uuid} not found")
    return [dependency for dependency in found if dependency is not None]


def current_of_worker(connection: Connection, worker_uuid: UUID) -> Task | None:
    """Flamenco's FetchWorkerTask: the worker's running task (task and job
    active) if any, else the task it was given last; None if it has none."""
    row = connection.execute(_CURRENT_OF_WORKER, {"worker_uuid": worker_uuid}).mappings().one_or_none()
    return None if row is None else task_from_row(row)


def timed_out(connection: Connection, untouched_since: datetime) -> list[TimedOutTask]:
    """Active tasks not touched since ``untouched_since`` (inclusive), by id."""
    rows = connection.execute(TIMED_OUT, {"untouched_since": untouched_since}).mappings()
    return [TimedOutTask(task=task_from_row(row), worker_name=row["worker_name"]) for row in rows]
