"""Per-job worker blocklists: a worker barred from a task type on one job.

Entries of soft-deleted workers stay listed (Flamenco's rows are not cleaned
up either) and can be removed, but such workers are never among the workers
left to run anything.
"""

from __future__ import annotations

import builtins
from functools import partial
from typing import TYPE_CHECKING
from uuid import UUID

from statestore.core.validate import text, uuid_value
from statestore.errors import InvalidInput
from statestore.farm import blocklist_units
from statestore.farm.records import BlocklistEntry
from statestore.farm.tables import LENGTHS

if TYPE_CHECKING:
    from statestore.store import Store

__all__ = ["JobBlocklist"]


def _task_type(value: object) -> str:
    checked = text(value, LENGTHS["type"], "task type")
    if not checked:
        raise InvalidInput("task type: must not be empty")
    return checked


class JobBlocklist:
    """Per-job worker blocklists: a worker barred from a task type on one job."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def add(self, job_uuid: UUID, worker_uuid: UUID, task_type: str) -> None:
        """Block the worker from ``task_type`` on the job (a no-op if it is
        already). NotFound for an unknown job or an unknown or soft-deleted worker."""
        uuid_value(job_uuid, "job uuid")
        uuid_value(worker_uuid, "worker uuid")
        checked = _task_type(task_type)
        await self._store.write(
            partial(blocklist_units.add_block, job_uuid=job_uuid, worker_uuid=worker_uuid, task_type=checked)
        )

    async def entries(self, job_uuid: UUID) -> builtins.list[BlocklistEntry]:
        """The job's blocklist, by worker name, then worker id, then task type
        (empty for an unknown job)."""
        uuid_value(job_uuid, "job uuid")
        return await self._store.read(partial(blocklist_units.entries, job_uuid=job_uuid), single_statement=True)

    async def clear(self, job_uuid: UUID) -> int:
        """Remove the job's whole blocklist; returns how many entries went."""
        uuid_value(job_uuid, "job uuid")
        return await self._store.write(partial(blocklist_units.clear_blocks, job_uuid=job_uuid), single_statement=True)

    async def remove(self, job_uuid: UUID, worker_uuid: UUID, task_type: str) -> None:
        """Remove one entry; nothing happens if it is not there (as in Flamenco)."""
        uuid_value(job_uuid, "job uuid")
        uuid_value(worker_uuid, "worker uuid")
        checked = _task_type(task_type)
        await self._store.write(
            partial(blocklist_units.remove_block, job_uuid=job_uuid, worker_uuid=worker_uuid, task_type=checked),
            single_statement=True,
        )

    async def workers_left_to_run(self, job_uuid: UUID, task_type: str) -> set[UUID]:
        """The uuids of the workers that may still run ``task_type`` on the job.

        Flamenco's semantics: every worker not blocked for (job, type), and,
        if the job is limited to a tag, only that tag's members; an unknown
        job blocks nobody. Whether a worker supports the type is not asked.
        One deviation: soft-deleted workers are left out (Flamenco counts
        them), since they can never run a task again.
        """
        uuid_value(job_uuid, "job uuid")
        checked = _task_type(task_type)
        return await self._store.read(
            partial(blocklist_units.workers_left_to_run, job_uuid=job_uuid, task_type=checked)
        )

    async def count_task_failures_of_worker(self, job_uuid: UUID, worker_uuid: UUID, task_type: str) -> int:
        """How many of the job's tasks of ``task_type`` the worker has failed
        (0 for an unknown job or worker)."""
        uuid_value(job_uuid, "job uuid")
        uuid_value(worker_uuid, "worker uuid")
        checked = _task_type(task_type)
        return await self._store.read(
            partial(
                blocklist_units.count_task_failures_of_worker,
                job_uuid=job_uuid,
                worker_uuid=worker_uuid,
                task_type=checked,
            )
        )
