"""Per-job worker blocklists: a worker barred from a task type on one job.

Entries of soft-deleted workers stay listed (Flamenco's rows are not cleaned
up either) and can be removed, but such workers are never among the workers
left to run anything.

Removing entries gives workers back tasks they could not take: a removal
that removed something announces work in its transaction, and the
repository wakes this process's claim waiters after the commit (see
:mod:`statestore.farm.enabling`).
"""

from __future__ import annotations

import builtins
from functools import partial
from uuid import UUID

from sqlalchemy import bindparam, delete, exists, select
from sqlalchemy.engine import Connection

from statestore.core.dialect import facts_of
from statestore.core.runner import Runner
from statestore.core.types import utcnow
from statestore.core.validate import uuid_value
from statestore.errors import NotFound
from statestore.farm.enabling import enable_work, notify_splits
from statestore.farm.fields import task_type_value
from statestore.farm.lookups import LIVE, job_id_and_tag, live_worker_id
from statestore.farm.records import BlocklistEntry
from statestore.farm.rows import blocklist_entry_from_row
from statestore.farm.tables import BLOCKS, JOBS, MEMBERSHIP, WORKERS

_JOB_ID = select(JOBS.c.id).where(JOBS.c.uuid == bindparam("job_uuid")).scalar_subquery()


_ANY_WORKER_ID = select(WORKERS.c.id).where(WORKERS.c.uuid == bindparam("worker_uuid")).scalar_subquery()


# From the job, outer-joined: one row of NULLs when the job has no entries,
# none when there is no such job — one statement tells the two apart.
_ENTRIES = (
    select(
        BLOCKS.c.task_type,
        BLOCKS.c.created_at,
        JOBS.c.uuid.label("job_uuid"),
        WORKERS.c.uuid.label("worker_uuid"),
        WORKERS.c.name.label("worker_name"),
    )
    .select_from(
        JOBS.outerjoin(BLOCKS, BLOCKS.c.job_id == JOBS.c.id).outerjoin(WORKERS, WORKERS.c.id == BLOCKS.c.worker_id)
    )
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


def add_block(connection: Connection, job_uuid: UUID, worker_uuid: UUID, task_type: str) -> None:
    """Block a live worker from ``task_type`` on a job; a no-op if it already is."""
    job = job_id_and_tag(connection, job_uuid)
    if job is None:
        raise NotFound(f"job {job_uuid} not found")
    block(connection, job[0], live_worker_id(connection, worker_uuid), task_type)


def block(connection: Connection, job_id: int, worker_id: int, task_type: str) -> None:
    """Insert the block row (job, worker, type) unless it exists."""
    row = {"job_id": job_id, "worker_id": worker_id, "task_type": task_type, "created_at": utcnow()}
    connection.execute(facts_of(connection).insert_once(BLOCKS), row)


def entries(connection: Connection, job_uuid: UUID) -> list[BlocklistEntry]:
    """The job's blocklist by worker name, worker id, task type (NotFound for an unknown job)."""
    rows = connection.execute(_ENTRIES, {"job_uuid": job_uuid}).mappings().all()
    if not rows:
        raise NotFound(f"job {job_uuid} not found")
    return [blocklist_entry_from_row(row) for row in rows if row["task_type"] is not None]


def clear_blocks(connection: Connection, job_uuid: UUID) -> int:
    """Remove the job's whole blocklist; how many entries went (work announced if any)."""
    removed = int(connection.execute(_CLEAR, {"job_uuid": job_uuid}).rowcount)
    if removed:
        enable_work(connection, None)
    return removed


def remove_block(connection: Connection, job_uuid: UUID, worker_uuid: UUID, task_type: str) -> int:
    """Remove one entry, if it is there; how many went (work announced if one did)."""
    params = {"job_uuid": job_uuid, "worker_uuid": worker_uuid, "task_type": task_type}
    removed = int(connection.execute(_REMOVE, params).rowcount)
    if removed:
        enable_work(connection, None)
    return removed


def left_to_run(connection: Connection, job: tuple[int, int | None], task_type: str) -> set[UUID]:
    """Live workers not blocked for (job, type), limited to the job's tag if it has one."""
    job_id, tag_id = job
    params = {"job_id": job_id, "task_type": task_type, "tag_id": tag_id}
    return set(connection.execute(_LEFT if tag_id is None else _LEFT_IN_TAG, params).scalars())


def workers_left_to_run(connection: Connection, job_uuid: UUID, task_type: str) -> set[UUID]:
    """The uuids of the workers that may still run ``task_type`` on the job
    (NotFound for an unknown job)."""
    job = job_id_and_tag(connection, job_uuid)
    if job is None:
        raise NotFound(f"job {job_uuid} not found")
    return left_to_run(connection, job, task_type)


class JobBlocklist:
    """Per-job worker blocklists: a worker barred from a task type on one job."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    async def add(self, job_uuid: UUID | str, worker_uuid: UUID | str, task_type: str) -> None:
        """Block the worker from ``task_type`` on the job (a no-op if it is
        already). NotFound for an unknown job or an unknown or soft-deleted worker."""
        job = uuid_value(job_uuid, "job uuid")
        worker = uuid_value(worker_uuid, "worker uuid")
        checked = task_type_value(task_type, "task type")
        await self._runner.write(partial(add_block, job_uuid=job, worker_uuid=worker, task_type=checked))

    async def entries(self, job_uuid: UUID | str) -> builtins.list[BlocklistEntry]:
        """The job's blocklist, by worker name, then worker id, then task type
        (NotFound for an unknown job)."""
        job = uuid_value(job_uuid, "job uuid")
        return await self._runner.read(partial(entries, job_uuid=job), single_statement=True)

    async def clear(self, job_uuid: UUID | str) -> int:
        """Remove the job's whole blocklist; returns how many entries went."""
        job = uuid_value(job_uuid, "job uuid")
        unit = partial(clear_blocks, job_uuid=job)
        removed = await self._runner.write(unit, single_statement=not notify_splits(self._runner))
        if removed:
            self._runner.wakeups.work()
        return removed

    async def remove(self, job_uuid: UUID | str, worker_uuid: UUID | str, task_type: str) -> None:
        """Remove one entry; nothing happens if it is not there (as in Flamenco)."""
        job = uuid_value(job_uuid, "job uuid")
        worker = uuid_value(worker_uuid, "worker uuid")
        checked = task_type_value(task_type, "task type")
        removed = await self._runner.write(
            partial(remove_block, job_uuid=job, worker_uuid=worker, task_type=checked),
            single_statement=not notify_splits(self._runner),
        )
        if removed:
            self._runner.wakeups.work()

    async def workers_left_to_run(self, job_uuid: UUID | str, task_type: str) -> set[UUID]:
        """The uuids of the workers that may still run ``task_type`` on the job.

        Flamenco's semantics: every worker not blocked for (job, type), and,
        if the job is limited to a tag, only that tag's members. Whether a
        worker supports the type is not asked. Two deviations: soft-deleted
        workers are left out (Flamenco counts them), since they can never run
        a task again; and an unknown job is NotFound, as in every listing
        (Flamenco's unknown job blocks nobody, so a typo would list everyone).
        """
        job = uuid_value(job_uuid, "job uuid")
        checked = task_type_value(task_type, "task type")
        return await self._runner.read(partial(workers_left_to_run, job_uuid=job, task_type=checked))
