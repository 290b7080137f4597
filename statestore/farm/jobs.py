"""Jobs of the farm model, with their tasks as a whole: store, fetch, save, delete, count.

Each method validates its input first (bad input raises InvalidInput before
any SQL), then runs one unit of work: its own transaction, or the caller's
``store.transaction()`` if one is open.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Sequence
from contextlib import nullcontext
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING
from uuid import UUID

from statestore.core.dialect import update_returning
from statestore.core.types import utcnow
from statestore.core.validate import ROW_ID, SMALLINT, aware_datetime, enum_value, integer, text, uuid_value
from statestore.errors import InvalidInput
from statestore.farm import job_loading, job_writing
from statestore.farm.gc_pause import collection_paused, without_collection
from statestore.farm.job_codec import activity_value, encode_authored_job, encode_authored_tasks
from statestore.farm.records import AuthoredJob, AuthoredTask, Job, Task, TaskSummary
from statestore.farm.statuses import JobStatus, TaskStatus
from statestore.farm.tables import JOBS, LENGTHS

if TYPE_CHECKING:
    from statestore.store import Store

__all__ = ["Jobs"]

OFFLOAD_TASKS = 500
"""Submissions with more tasks than this run off the event loop's thread."""


def _uuid(uuid: object) -> UUID:
    return uuid_value(uuid, "job uuid")


def _task_statuses(statuses: Collection[object], where: str) -> builtins.list[TaskStatus]:
    if isinstance(statuses, (str, bytes)) or not isinstance(statuses, Collection):
        raise InvalidInput(f"{where}: expected a collection of TaskStatus")
    return [enum_value(TaskStatus, status, where) for status in statuses]


class Jobs:
    """Jobs of the farm model, with their tasks as a whole: store, fetch, save, delete, count."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _one_statement(self) -> bool:
        return update_returning(self._store.runner.dialect)

    # -- storing -----------------------------------------------------------------

    async def store_authored(self, job: AuthoredJob) -> Job:
        """Store a submitted job with its tasks and their dependencies, in one
        transaction (Flamenco's StoreAuthoredJob).

        Tasks are stored ``queued``, numbered 1… in authoring order. Refused
        before any SQL: dependencies outside the job (InvalidReference),
        duplicate task uuids, a task listing one dependency twice, a task
        depending on itself, cycles, over-long texts, out-of-range numbers and
        values JSON cannot store. An unknown worker tag is InvalidReference, a
        stored job uuid AlreadyExists; nothing is written then either.
        """
        large = isinstance(job, AuthoredJob) and isinstance(job.tasks, (list, tuple)) and len(job.tasks) > OFFLOAD_TASKS
        # A large job runs off the event loop's thread, and without the cyclic
        # collector sweeping the heap over its many short-lived rows
        # (gc_pause) — while it is encoded and while its unit runs, but not
        # while it waits for its turn: the pause is process-wide.
        with collection_paused() if large else nullcontext():
            encoded = encode_authored_job(job)
        unit = partial(job_writing.store_authored, job=encoded)
        return await self._store.write(without_collection(unit) if large else unit, offload=large)

    async def add_tasks(self, job_uuid: UUID, tasks: Sequence[AuthoredTask]) -> builtins.list[Task]:
        """Append tasks to a stored job (Flamenco's StoreAuthoredJobTask);
        their dependencies may be the job's stored tasks or each other."""
        uuid = _uuid(job_uuid)
        encoded = encode_authored_tasks(tasks)
        return await self._store.write(
            partial(job_writing.add_tasks, job_uuid=uuid, tasks=encoded), offload=len(encoded.rows) > OFFLOAD_TASKS
        )

    # -- reading -----------------------------------------------------------------

    async def fetch(self, uuid: UUID) -> Job:
        """Job ``uuid`` (NotFound if missing)."""
        return await self._store.read(partial(job_loading.load_job, uuid=_uuid(uuid)), single_statement=True)

    async def fetch_by_id(self, id: int) -> Job:
        """The job with primary key ``id`` (NotFound if missing)."""
        job_id = integer(id, "job id", ROW_ID)
        return await self._store.read(partial(job_loading.load_job_by_id, job_id=job_id), single_statement=True)

    async def list(self) -> builtins.list[Job]:
        """Every job, by id."""
        return await self._store.read(job_loading.list_jobs, single_statement=True)

    async def in_status(self, *statuses: JobStatus) -> builtins.list[Job]:
        """The jobs in any of ``statuses``, by id."""
        wanted = [enum_value(JobStatus, status, "job status") for status in statuses]
        return await self._store.read(partial(job_loading.jobs_in_status, statuses=wanted), single_statement=True)

    async def deletion_requested(self) -> builtins.list[UUID]:
        """Jobs whose deletion was requested, oldest request first (then by id)."""
        return await self._store.read(job_loading.deletion_requested, single_statement=True)

    async def storage_checkout_id(self, uuid: UUID) -> str:
        """The job's storage (Shaman) checkout id; "" if none (NotFound if no job)."""
        return await self._store.read(partial(job_loading.storage_checkout_id, uuid=_uuid(uuid)), single_statement=True)

    # -- saving ------------------------------------------------------------------

    async def save_status(self, uuid: UUID, status: JobStatus, activity: str) -> Job:
        """Write the job's status and activity (and updated_at); its tasks
        learn whether they may be handed out."""
        values = {
            "status": enum_value(JobStatus, status, "job status").value,
            "activity": activity_value(activity, "job"),
            "updated_at": utcnow(),
        }
        return await self._store.write(partial(job_writing.save_status, uuid=_uuid(uuid), values=values))

    async def save_priority(self, uuid: UUID, priority: int) -> Job:
        """Write the job's priority (and updated_at), copied to its tasks for
        the scheduler."""
        value = integer(priority, "job priority", SMALLINT)
        return await self._store.write(partial(job_writing.save_priority, uuid=_uuid(uuid), priority=value))

    async def save_worker_tag(self, uuid: UUID, tag: UUID | None) -> Job:
        """Limit the job to workers with tag ``tag``, or None for any worker
        (InvalidReference for an unknown tag)."""
        tag_uuid = None if tag is None else uuid_value(tag, "worker tag uuid")
        return await self._store.write(partial(job_writing.save_worker_tag, uuid=_uuid(uuid), tag=tag_uuid))

    async def save_storage_info(self, uuid: UUID, checkout_id: str) -> Job:
        """Write the job's storage checkout id. Like Flamenco, this does not
        count as an update: ``updated_at`` is kept."""
        value = text(checkout_id, LENGTHS["storage_checkout_id"], "job storage_checkout_id")
        return await self._save(uuid, {"storage_checkout_id": value, "updated_at": JOBS.c.updated_at})

    async def _save(self, uuid: UUID, values: dict[str, object]) -> Job:
        return await self._store.write(
            partial(job_writing.save_job, uuid=_uuid(uuid), values=values), single_statement=self._one_statement()
        )

    # -- deleting ----------------------------------------------------------------

    async def request_deletion(self, uuid: UUID) -> Job:
        """Mark the job for deletion: ``delete_requested_at = updated_at = now``."""
        return await self._store.write(
            partial(job_writing.request_deletion, uuid=_uuid(uuid)), single_statement=self._one_statement()
        )

    async def request_mass_deletion(self, last_updated_max: datetime) -> builtins.list[UUID]:
        """Mark every job last updated at or before ``last_updated_max``
        (already marked ones again, as Flamenco does); their uuids by id.
        NotFound if no job qualifies."""
        cutoff = aware_datetime(last_updated_max, "last_updated_max")
        return await self._store.write(partial(job_writing.request_mass_deletion, last_updated_max=cutoff))

    async def delete(self, uuid: UUID) -> None:
        """Delete the job with its tasks, their dependencies and failure
        lists, its blocklist and last-rendered mark (NotFound if missing)."""
        await self._store.write(partial(job_writing.delete_job, uuid=_uuid(uuid)), single_statement=True)

    # -- the job's tasks ---------------------------------------------------------

    async def has_tasks_in_status(self, uuid: UUID, status: TaskStatus) -> bool:
        """Whether any task of the job has ``status``."""
        value = enum_value(TaskStatus, status, "task status")
        return await self._store.read(
            partial(job_loading.has_tasks_in_status, uuid=_uuid(uuid), status=value), single_statement=True
        )

    async def count_tasks_in_status(self, uuid: UUID, *statuses: TaskStatus) -> tuple[int, int]:
        """(the job's tasks in any of ``statuses``, all the job's tasks), in one query."""
        wanted = _task_statuses(statuses, "task status")
        return await self._store.read(
            partial(job_loading.count_tasks_in_status, uuid=_uuid(uuid), statuses=wanted), single_statement=True
        )

    async def summarize_statuses(self) -> dict[JobStatus, int]:
        """How many jobs are in each status; statuses without jobs are absent."""
        return await self._store.read(job_loading.summarize_statuses, single_statement=True)

    async def task_summaries(self, uuid: UUID) -> builtins.list[TaskSummary]:
        """The job's tasks as summaries, by index in the job."""
        return await self._store.read(
            partial(job_loading.task_summaries, uuid=_uuid(uuid)), single_statement=True, offload=True
        )

    async def update_task_statuses(self, uuid: UUID, status: TaskStatus, activity: str) -> int:
        """Set status and activity of all the job's tasks; how many there are."""
        return await self._update_task_statuses(uuid, None, status, activity)

    async def update_task_statuses_conditional(
        self, uuid: UUID, from_statuses: Collection[TaskStatus], status: TaskStatus, activity: str
    ) -> int:
        """Set status and activity of the job's tasks now in ``from_statuses``;
        how many were set."""
        return await self._update_task_statuses(uuid, _task_statuses(from_statuses, "from_statuses"), status, activity)

    async def _update_task_statuses(
        self, uuid: UUID, from_statuses: builtins.list[TaskStatus] | None, status: TaskStatus, activity: str
    ) -> int:
        unit = partial(
            job_writing.update_task_statuses,
            uuid=_uuid(uuid),
            status=enum_value(TaskStatus, status, "task status"),
            activity=activity_value(activity, "task"),
            from_statuses=from_statuses,
        )
        return await self._store.write(unit)

    async def update_task_step_counts(self, uuid: UUID) -> Job:
        """Completed tasks: all steps done; queued tasks: none; then re-sum
        the job's step counters (Flamenco's UpdateJobsTaskStepCounts)."""
        return await self._store.write(partial(job_writing.update_task_step_counts, uuid=_uuid(uuid)))
