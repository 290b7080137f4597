"""Units for task failure lists, and the whole bookkeeping of one failure.

:func:`record_failure` is Flamenco's ``onTaskFailed`` persistence in one
transaction: add the worker to the task's failure list, count the worker's
failed tasks of that type on the job — the current one once, where Flamenco
counts it twice (it adds it to the list, then adds 1 again) and so blocks a
worker after 2 failed tasks when the threshold is 3 — block it at the
threshold, and say which workers are left to run the type.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.engine import Connection

from statestore.core.types import utcnow
from statestore.errors import NotFound
from statestore.farm import blocklist_units
from statestore.farm.insert_once import insert_once
from statestore.farm.records import Worker
from statestore.farm.tables import FAILURES, JOBS, TASKS, WORKERS
from statestore.farm.worker_codec import worker_from_row
from statestore.farm.worker_loading import RECORD_COLUMNS, live_worker_id

__all__ = [
    "FailureRecorded",
    "add_failure",
    "clear_for_job",
    "clear_for_task",
    "failed_workers",
    "record_failure",
]


@dataclass(frozen=True, slots=True)
class FailureRecorded:
    """What recording one task failure found (:meth:`TaskFailures.record`)."""

    failed_workers: int
    """Distinct workers in the task's failure list, this one included."""
    worker_failures_on_job: int
    """This worker's failed tasks of this job and task type, the current one counted once."""
    blocklisted: bool
    """Whether the worker is now blocked from the type on the job, because
    ``worker_failures_on_job`` reached the threshold."""
    workers_left: frozenset[UUID]
    """Live workers still able to run the type on the job (not blocked, in
    the job's tag if it has one), minus those that failed this task."""


_TASK = (
    select(TASKS.c.id, TASKS.c.job_id, TASKS.c.type, JOBS.c.worker_tag_id)
    .join(JOBS, JOBS.c.id == TASKS.c.job_id)
    .where(TASKS.c.uuid == bindparam("task_uuid"))
)
_COUNT = select(func.count()).select_from(FAILURES).where(FAILURES.c.task_id == bindparam("task_id"))
_FAILED_UUIDS = (
    select(WORKERS.c.uuid)
    .join(FAILURES, FAILURES.c.worker_id == WORKERS.c.id)
    .where(FAILURES.c.task_id == bindparam("task_id"))
)
_FAILED_WORKERS = (
    select(*RECORD_COLUMNS)
    .join(FAILURES, FAILURES.c.worker_id == WORKERS.c.id)
    .join(TASKS, TASKS.c.id == FAILURES.c.task_id)
    .where(TASKS.c.uuid == bindparam("task_uuid"))
    .order_by(WORKERS.c.id)
)
_TASK_ID = select(TASKS.c.id).where(TASKS.c.uuid == bindparam("task_uuid")).scalar_subquery()
_CLEAR_TASK = delete(FAILURES).where(FAILURES.c.task_id == _TASK_ID)
_TASKS_OF_JOB = select(TASKS.c.id).join(JOBS, JOBS.c.id == TASKS.c.job_id).where(JOBS.c.uuid == bindparam("job_uuid"))
_CLEAR_JOB = delete(FAILURES).where(FAILURES.c.task_id.in_(_TASKS_OF_JOB))


def _task(connection: Connection, task_uuid: UUID) -> tuple[int, tuple[int, int | None], str]:
    """The task's id, its job's (id, worker tag id), its type."""
    row = connection.execute(_TASK, {"task_uuid": task_uuid}).one_or_none()
    if row is None:
        raise NotFound(f"task {task_uuid} not found")
    return int(row.id), (int(row.job_id), row.worker_tag_id), str(row.type)


def _add(connection: Connection, task_id: int, worker_id: int) -> int:
    row = {"task_id": task_id, "worker_id": worker_id, "created_at": utcnow()}
    connection.execute(insert_once(connection.dialect, FAILURES), row)
    return int(connection.execute(_COUNT, {"task_id": task_id}).scalar_one())


def add_failure(connection: Connection, task_uuid: UUID, worker_uuid: UUID) -> int:
    """Put a live worker on the task's failure list (once); how many workers are on it."""
    task_id, _, _ = _task(connection, task_uuid)
    return _add(connection, task_id, live_worker_id(connection, worker_uuid))


def failed_workers(connection: Connection, task_uuid: UUID) -> list[Worker]:
    """The workers on the task's failure list by id, soft-deleted ones included
    (they did fail it); none for an unknown task."""
    return [worker_from_row(row) for row in connection.execute(_FAILED_WORKERS, {"task_uuid": task_uuid}).mappings()]


def clear_for_task(connection: Connection, task_uuid: UUID) -> int:
    """Empty the task's failure list; how many entries went."""
    return int(connection.execute(_CLEAR_TASK, {"task_uuid": task_uuid}).rowcount)


def clear_for_job(connection: Connection, job_uuid: UUID) -> int:
    """Empty the failure lists of every task of the job; how many entries went."""
    return int(connection.execute(_CLEAR_JOB, {"job_uuid": job_uuid}).rowcount)


def record_failure(connection: Connection, task_uuid: UUID, worker_uuid: UUID, threshold: int) -> FailureRecorded:
    """Record that the worker failed the task, blocking it from the task's
    type on the job once it has failed ``threshold`` tasks of that type there."""
    # The worker's row is locked before anything is read, so that concurrent
    # failures of one worker take turns and each counts the others' (MySQL's
    # snapshot starts at the first plain read: it must come after the lock).
    worker_id = live_worker_id(connection, worker_uuid, lock=True)
    task_id, job, task_type = _task(connection, task_uuid)
    job_id = job[0]
    on_list = _add(connection, task_id, worker_id)
    failures_on_job = blocklist_units.count_failures(connection, job_id, worker_id, task_type)
    blocklisted = failures_on_job >= threshold
    if blocklisted:
        blocklist_units.block(connection, job_id, worker_id, task_type)
    left = blocklist_units.left_to_run(connection, job, task_type)
    left -= set(connection.execute(_FAILED_UUIDS, {"task_id": task_id}).scalars())
    return FailureRecorded(on_list, failures_on_job, blocklisted, frozenset(left))
