"""Task failure lists: which workers failed which task.

:meth:`TaskFailures.record` does all the bookkeeping of one failure in one
transaction (failure list, blocklist, workers left), counting the current
failure once: Flamenco counts it twice and blocks a worker one failure early.
"""

from __future__ import annotations

import builtins
from functools import partial
from typing import TYPE_CHECKING
from uuid import UUID

from statestore.core.validate import integer, uuid_value
from statestore.farm import failure_units
from statestore.farm.failure_units import FailureRecorded
from statestore.farm.records import Worker

if TYPE_CHECKING:
    from statestore.store import Store

__all__ = ["FailureRecorded", "TaskFailures"]

_THRESHOLDS = (1, 2**31 - 1)


class TaskFailures:
    """Task failure lists: which workers failed which task."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def add(self, task_uuid: UUID, worker_uuid: UUID) -> int:
        """Put the worker on the task's failure list (a no-op if it is on it)
        and return how many distinct workers have failed the task. NotFound
        for an unknown task or an unknown or soft-deleted worker."""
        uuid_value(task_uuid, "task uuid")
        uuid_value(worker_uuid, "worker uuid")
        return await self._store.write(partial(failure_units.add_failure, task_uuid=task_uuid, worker_uuid=worker_uuid))

    async def workers(self, task_uuid: UUID) -> builtins.list[Worker]:
        """The workers that failed the task, by worker id; soft-deleted ones
        included (as in Flamenco), an unknown task has none."""
        uuid_value(task_uuid, "task uuid")
        return await self._store.read(partial(failure_units.failed_workers, task_uuid=task_uuid), single_statement=True)

    async def clear_for_task(self, task_uuid: UUID) -> int:
        """Empty the task's failure list; returns how many entries were removed
        (0 for an unknown task)."""
        uuid_value(task_uuid, "task uuid")
        return await self._store.write(
            partial(failure_units.clear_for_task, task_uuid=task_uuid), single_statement=True
        )

    async def clear_for_job(self, job_uuid: UUID) -> int:
        """Empty the failure lists of all the job's tasks; returns how many
        entries were removed (0 for an unknown job)."""
        uuid_value(job_uuid, "job uuid")
        return await self._store.write(partial(failure_units.clear_for_job, job_uuid=job_uuid), single_statement=True)

    async def record(self, task_uuid: UUID, worker_uuid: UUID, *, blocklist_threshold: int = 3) -> FailureRecorded:
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
        uuid_value(task_uuid, "task uuid")
        uuid_value(worker_uuid, "worker uuid")
        threshold = integer(blocklist_threshold, "blocklist_threshold", _THRESHOLDS)
        return await self._store.write(
            partial(failure_units.record_failure, task_uuid=task_uuid, worker_uuid=worker_uuid, threshold=threshold)
        )
