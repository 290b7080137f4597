"""Units for the job blocklist: workers barred from a task type on one job.

Which workers are left to run a type on a job follows Flamenco's
``WorkersLeftToRun`` — every worker not blocked for (job, type); when the job
is limited to a tag, only that tag's members — except that soft-deleted
workers are left out here: they can never run anything again, so counting
them would keep a job alive that no worker can finish.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import and_, bindparam, delete, exists, func, select
from sqlalchemy.engine import Connection

from statestore.core.types import utcnow
from statestore.errors import NotFound
from statestore.farm.insert_once import insert_once
from statestore.farm.records import BlocklistEntry
from statestore.farm.tables import BLOCKS, FAILURES, JOBS, MEMBERSHIP, TASKS, WORKERS
from statestore.farm.worker_codec import blocklist_entry_from_row
from statestore.farm.worker_loading import LIVE, live_worker_id

__all__ = [
    "add_block",
    "block",
    "clear_blocks",
    "count_failures",
    "count_task_failures_of_worker",
    "entries",
    "job_id_and_tag",
    "left_to_run",
    "remove_block",
    "workers_left_to_run",
]

_JOB = select(JOBS.c.id, JOBS.c.worker_tag_id).where(JOBS.c.uuid == bindparam("job_uuid"))
_JOB_ID = select(JOBS.c.id).where(JOBS.c.uuid == bindparam("job_uuid")).scalar_subquery()
_ANY_WORKER_ID = select(WORKERS.c.id).where(WORKERS.c.uuid == bindparam("worker_uuid")).scalar_subquery()
_ENTRIES = (
    select(
        BLOCKS.c.task_type,
        BLOCKS.c.created_at,
        JOBS.c.uuid.label("job_uuid"),
        WORKERS.c.uuid.label("worker_uuid"),
        WORKERS.c.name.label("worker_name"),
    )
    .join(JOBS, JOBS.c.id == BLOCKS.c.job_id)
    .join(WORKERS, WORKERS.c.id == BLOCKS.c.worker_id)
    .where(JOBS.c.uuid == bindparam("job_uuid"))
    .order_by(WORKERS.c.name, WORKERS.c.id, BLOCKS.c.task_type)
)
_CLEAR = delete(BLOCKS).where(BLOCKS.c.job_id == _JOB_ID)
_REMOVE = delete(BLOCKS).where(
    BLOCKS.c.job_id == _JOB_ID, BLOCKS.c.worker_id == _ANY_WORKER_ID, BLOCKS.c.task_type == bindparam("task_type")
)
_BLOCKED = exists().where(
    BLOCKS.c.worker_id == WORKERS.c.id,
    BLOCKS.c.job_id == bindparam("job_id"),
    BLOCKS.c.task_type == bindparam("task_type"),
)
_LEFT = select(WORKERS.c.uuid).where(LIVE, ~_BLOCKED)
_LEFT_IN_TAG = _LEFT.where(
    exists().where(MEMBERSHIP.c.worker_id == WORKERS.c.id, MEMBERSHIP.c.worker_tag_id == bindparam("tag_id"))
)
_FAILURES_OF_WORKER = (
    select(func.count())
    .select_from(FAILURES)
    .join(TASKS, TASKS.c.id == FAILURES.c.task_id)
    .where(
        and_(
            TASKS.c.job_id == bindparam("job_id"),
            TASKS.c.type == bindparam("task_type"),
            FAILURES.c.worker_id == bindparam("worker_id"),
        )
    )
)


def job_id_and_tag(connection: Connection, job_uuid: UUID) -> tuple[int, int | None] | None:
    """The job's primary key and worker tag id; None if there is no such job."""
    row = connection.execute(_JOB, {"job_uuid": job_uuid}).one_or_none()
    return None if row is None else (int(row.id), row.worker_tag_id)


def add_block(connection: Connection, job_uuid: UUID, worker_uuid: UUID, task_type: str) -> None:
    """Block a live worker from ``task_type`` on a job; a no-op if it already is."""
    job = job_id_and_tag(connection, job_uuid)
    if job is None:
        raise NotFound(f"job {job_uuid} not found")
    block(connection, job[0], live_worker_id(connection, worker_uuid), task_type)


def block(connection: Connection, job_id: int, worker_id: int, task_type: str) -> None:
    """Insert the block row (job, worker, type) unless it exists."""
    row = {"job_id": job_id, "worker_id": worker_id, "task_type": task_type, "created_at": utcnow()}
    connection.execute(insert_once(connection.dialect, BLOCKS), row)


def entries(connection: Connection, job_uuid: UUID) -> list[BlocklistEntry]:
    """The job's blocklist by worker name, worker id, task type (none for an unknown job)."""
    return [blocklist_entry_from_row(row) for row in connection.execute(_ENTRIES, {"job_uuid": job_uuid}).mappings()]


def clear_blocks(connection: Connection, job_uuid: UUID) -> int:
    """Remove the job's whole blocklist; how many entries went."""
    return int(connection.execute(_CLEAR, {"job_uuid": job_uuid}).rowcount)


def remove_block(connection: Connection, job_uuid: UUID, worker_uuid: UUID, task_type: str) -> None:
    """Remove one entry, if it is there."""
    connection.execute(_REMOVE, {"job_uuid": job_uuid, "worker_uuid": worker_uuid, "task_type": task_type})


def left_to_run(connection: Connection, job: tuple[int, int | None] | None, task_type: str) -> set[UUID]:
    """Live workers not blocked for (job, type), limited to the job's tag if it has one."""
    if job is None:  # Flamenco: an unknown job blocks nobody
        return set(connection.execute(select(WORKERS.c.uuid).where(LIVE)).scalars())
    job_id, tag_id = job
    params = {"job_id": job_id, "task_type": task_type, "tag_id": tag_id}
    return set(connection.execute(_LEFT if tag_id is None else _LEFT_IN_TAG, params).scalars())


def workers_left_to_run(connection: Connection, job_uuid: UUID, task_type: str) -> set[UUID]:
    """The uuids of the workers that may still run ``task_type`` on the job."""
    return left_to_run(connection, job_id_and_tag(connection, job_uuid), task_type)


def count_failures(connection: Connection, job_id: int, worker_id: int, task_type: str) -> int:
    """How many tasks of ``task_type`` on the job the worker has failed."""
    params = {"job_id": job_id, "worker_id": worker_id, "task_type": task_type}
    return int(connection.execute(_FAILURES_OF_WORKER, params).scalar_one())


def count_task_failures_of_worker(connection: Connection, job_uuid: UUID, worker_uuid: UUID, task_type: str) -> int:
    """:func:`count_failures` by uuids; 0 for an unknown job or worker."""
    job = job_id_and_tag(connection, job_uuid)
    worker_id = connection.execute(select(WORKERS.c.id).where(WORKERS.c.uuid == worker_uuid)).scalar_one_or_none()
    if job is None or worker_id is None:
        return 0
    return count_failures(connection, job[0], int(worker_id), task_type)
