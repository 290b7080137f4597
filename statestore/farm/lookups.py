"""Finding rows by uuid: the ids (and the job record) other aggregates' units start from.

Soft-deleted workers are invisible to :func:`live_worker_id`, as in
Flamenco; :func:`worker_id_of` finds any worker.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from statestore.errors import InvalidReference, NotFound
from statestore.farm.records import Job
from statestore.farm.rows import JOB_COLUMNS, job_from_row
from statestore.farm.tables import JOBS, WORKER_TAGS, WORKERS

LIVE = WORKERS.c.deleted_at.is_(None)
"""Not soft-deleted."""


_ID = select(WORKERS.c.id).where(WORKERS.c.uuid == bindparam("uuid"), LIVE)


_ID_LOCKED = _ID.with_for_update()


def live_worker_id(connection: Connection, uuid: UUID, *, lock: bool = False) -> int:
    """The primary key of worker ``uuid`` (NotFound if absent or soft-deleted);
    with ``lock``, its row stays locked until the transaction ends (SQLite's
    write transactions are serial anyway), so writers of the worker's rows
    elsewhere take turns."""
    worker_id = connection.execute(_ID_LOCKED if lock else _ID, {"uuid": uuid}).scalar_one_or_none()
    if worker_id is None:
        raise NotFound(f"worker {uuid} not found")
    return int(worker_id)


_WORKER_ID = select(WORKERS.c.id).where(WORKERS.c.uuid == bindparam("worker_uuid"))


def worker_id_of(connection: Connection, worker_uuid: UUID) -> int:
    worker_id = connection.execute(_WORKER_ID, {"worker_uuid": worker_uuid}).scalar_one_or_none()
    if worker_id is None:
        raise NotFound(f"worker {worker_uuid} not found")
    return int(worker_id)


_JOB_ID = select(JOBS.c.id).where(JOBS.c.uuid == bindparam("uuid"))


def job_id_of(connection: Connection, uuid: UUID) -> int:
    """The primary key of job ``uuid`` (NotFound if missing)."""
    job_id = connection.execute(_JOB_ID, {"uuid": uuid}).scalar_one_or_none()
    if job_id is None:
        raise NotFound(f"job {uuid} not found")
    return int(job_id)


_JOB = select(*JOB_COLUMNS).where(JOBS.c.uuid == bindparam("uuid"))


def load_job(connection: Connection, uuid: UUID) -> Job:
    """Job ``uuid`` (NotFound if missing)."""
    row = connection.execute(_JOB, {"uuid": uuid}).mappings().one_or_none()
    if row is None:
        raise NotFound(f"job {uuid} not found")
    return job_from_row(row)


_JOB_ID_AND_TAG = select(JOBS.c.id, JOBS.c.worker_tag_id).where(JOBS.c.uuid == bindparam("job_uuid"))


def job_id_and_tag(connection: Connection, job_uuid: UUID) -> tuple[int, int | None] | None:
    """The job's primary key and worker tag id; None if there is no such job."""
    row = connection.execute(_JOB_ID_AND_TAG, {"job_uuid": job_uuid}).one_or_none()
    return None if row is None else (int(row.id), row.worker_tag_id)


_TAG_ID = select(WORKER_TAGS.c.id).where(WORKER_TAGS.c.uuid == bindparam("uuid"))


def tag_id_of(connection: Connection, tag: UUID | None, where: str) -> int | None:
    if tag is None:
        return None
    tag_id = connection.execute(_TAG_ID, {"uuid": tag}).scalar_one_or_none()
    if tag_id is None:
        raise InvalidReference(f"{where}: no worker tag {tag} found")
    return int(tag_id)
