"""Task failure lists: which workers failed which task.

:meth:`TaskFailures.record` does all the bookkeeping of one failure in one
transaction (failure list, blocklist, workers left), counting the current
failure once: Flamenco counts it twice and blocks a worker one failure early.

Clearing failure lists gives workers back tasks they failed: a clear that
removed something announces work in its transaction, and the repository
wakes this process's claim waiters after the commit (see
:mod:`statestore.farm.enabling`).
"""

from __future__ import annotations

import builtins
from functools import partial
from uuid import UUID

from sqlalchemy import and_, bindparam, delete, func, select
from sqlalchemy.engine import Connection

from statestore.core.dialect import facts_of
from statestore.core.runner import Runner
from statestore.core.types import utcnow
from statestore.core.validate import integer, uuid_value
from statestore.errors import NotFound
from statestore.farm.blocklist import block, left_to_run
from statestore.farm.enabling import enable_work, notify_splits
from statestore.farm.fields import task_type_value
from statestore.farm.lookups import job_id_and_tag, live_worker_id
from statestore.farm.records import FailureRecorded, Worker
from statestore.farm.rows import WORKER_COLUMNS, worker_from_row
from statestore.farm.tables import FAILURES, JOBS, TASKS, WORKERS

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


# From the task, outer-joined: one row of NULLs when nobody failed it, none
# when there is no such task — one statement tells the two apart.
_FAILED_WORKERS = (
    select(*WORKER_COLUMNS)
    .select_from(
        TASKS.outerjoin(FAILURES, FAILURES.c.task_id == TASKS.c.id).outerjoin(
            WORKERS, WORKERS.c.id == FAILURES.c.worker_id
        )
    )
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
    connection.execute(facts_of(connection).insert_once(FAILURES), row)
    return int(connection.execute(_COUNT, {"task_id": task_id}).scalar_one())


def add_failure(connection: Connection, task_uuid: UUID, worker_uuid: UUID) -> int:
    """Put a live worker on the task's failure list (once); how many workers are on it."""
    task_id, _, _ = _task(connection, task_uuid)
    return _add(connection, task_id, live_worker_id(connection, worker_uuid))


def failed_workers(connection: Connection, task_uuid: UUID) -> list[Worker]:
    """The workers on the task's failure list by id, soft-deleted ones included
    (they did fail it); NotFound for an unknown task."""
    rows = connection.execute(_FAILED_WORKERS, {"task_uuid": task_uuid}).mappings().all()
    if not rows:
        raise NotFound(f"task {task_uuid} not found")
    return [worker_from_row(row) for row in rows if row["uuid"] is not None]


def clear_for_task(connection: Connection, task_uuid: UUID) -> int:
    """Empty the task's failure list; how many entries went (work announced if any)."""
    return _announced(connection, int(connection.execute(_CLEAR_TASK, {"task_uuid": task_uuid}).rowcount))


def clear_for_job(connection: Connection, job_uuid: UUID) -> int:
    """Empty the failure lists of every task of the job; how many entries went (work announced if any)."""
    return _announced(connection, int(connection.execute(_CLEAR_JOB, {"job_uuid": job_uuid}).rowcount))


def _announced(connection: Connection, removed: int) -> int:
    if removed:
        enable_work(connection, None)
    return removed


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
    failures_on_job = count_failures(connection, job_id, worker_id, task_type)
    blocklisted = failures_on_job >= threshold
    if blocklisted:
        block(connection, job_id, worker_id, task_type)
    left = left_to_run(connection, job, task_type)
    left -= set(connection.execute(_FAILED_UUIDS, {"task_id": task_id}).scalars())
    return FailureRecorded(on_list, failures_on_job, blocklisted, frozenset(left))


_THRESHOLDS = (1, 2**31 - 1)


class TaskFailures:
    """Task failure lists: which workers failed which task."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    async def add(self, task_uuid: UUID | str, worker_uuid: UUID | str) -> int:
        """Put the worker on the task's failure list (a no-op if it is on it)
        and return how many distinct workers have failed the task. NotFound
        for an unknown task or an unknown or soft-deleted worker."""
        task = uuid_value(task_uuid, "task uuid")
        worker = uuid_value(worker_uuid, "worker uuid")
        return await self._runner.write(partial(add_failure, task_uuid=task, worker_uuid=worker))

    async def workers(self, task_uuid: UUID | str) -> builtins.list[Worker]:
        """The workers that failed the task, by worker id; soft-deleted ones
        included (as in Flamenco). NotFound for an unknown task."""
        task = uuid_value(task_uuid, "task uuid")
        return await self._runner.read(partial(failed_workers, task_uuid=task), single_statement=True)

    async def clear_for_task(self, task_uuid: UUID | str) -> int:
        """Empty the task's failure list; returns how many entries were removed
        (0 for an unknown task)."""
        task = uuid_value(task_uuid, "task uuid")
        return await self._cleared(partial(clear_for_task, task_uuid=task))

    async def clear_for_job(self, job_uuid: UUID | str) -> int:
        """Empty the failure lists of all the job's tasks; returns how many
        entries were removed (0 for an unknown job)."""
        job = uuid_value(job_uuid, "job uuid")
        return await self._cleared(partial(clear_for_job, job_uuid=job))

    async def _cleared(self, unit: partial[int]) -> int:
        removed = await self._runner.write(unit, single_statement=not notify_splits(self._runner))
        if removed:
            self._runner.wakeups.work()
        return removed

    async def record(
        self, task_uuid: UUID | str, worker_uuid: UUID | str, *, blocklist_threshold: int = 3
    ) -> FailureRecorded:
        """Record that the worker failed the task, in one transaction.

        The worker goes on the task's failure list; its failed tasks of the
        task's type on the job are counted, the current one once; at
        ``blocklist_threshold`` or more it is blocked from that type on the
        job. The result also says which workers are left to run the type
        (see :meth:`JobBlocklist.workers_left_to_run`), minus those on the
        task's failure list. What to do with the task and the job (soft-fail,
        fail, requeue the worker's other failed tasks) is the caller's choice.

        Flamenco counts the current failure twice (it is already on the list
        when it adds 1), blocking a worker after 2 failed tasks with the
        default threshold of 3; here it takes 3.
        """
        task = uuid_value(task_uuid, "task uuid")
        worker = uuid_value(worker_uuid, "worker uuid")
        threshold = integer(blocklist_threshold, "blocklist_threshold", _THRESHOLDS)
        unit = partial(record_failure, task_uuid=task, worker_uuid=worker, threshold=threshold)
        return await self._runner.write(unit)

    async def count_task_failures_of_worker(self, job_uuid: UUID | str, worker_uuid: UUID | str, task_type: str) -> int:
        """How many of the job's tasks of ``task_type`` the worker has failed
        (0 for an unknown job or worker)."""
        job = uuid_value(job_uuid, "job uuid")
        worker = uuid_value(worker_uuid, "worker uuid")
        checked = task_type_value(task_type, "task type")
        return await self._runner.read(
            partial(count_task_failures_of_worker, job_uuid=job, worker_uuid=worker, task_type=checked)
        )
