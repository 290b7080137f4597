"""Tasks of the farm model one at a time: fetch, save, touch, time out.

Each method validates its input first (bad input raises InvalidInput before
any SQL), then runs one unit of work: its own transaction, or the caller's
``store.transaction()`` if one is open.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any
from uuid import UUID

from statestore.core.validate import INTEGER, ROW_ID, SMALLINT, aware_datetime, enum_value, integer, text, uuid_value
from statestore.errors import InvalidInput
from statestore.farm import task_loading, task_writing
from statestore.farm.job_codec import activity_value, encode_commands
from statestore.farm.records import Task, TimedOutTask
from statestore.farm.statuses import TaskStatus
from statestore.farm.tables import LENGTHS
from statestore.farm.worker_codec import task_type

if TYPE_CHECKING:
    from statestore.store import Store

__all__ = ["Tasks"]

_STEPS = (0, INTEGER[1])


def _uuid(uuid: object, what: str = "task uuid") -> UUID:
    return uuid_value(uuid, what)


def _status(status: object) -> str:
    return enum_value(TaskStatus, status, "task status").value


def _task_values(task: Task) -> dict[str, Any]:
    if not isinstance(task, Task):
        raise InvalidInput(f"expected a Task, got {type(task).__name__}")
    where = f"task {task.name!r}"
    commands, _ = encode_commands(task.commands, where)
    return {
        "name": text(task.name, LENGTHS["name"], f"{where}.name"),
        "type": task_type(task.type, f"{where}.type"),
        "priority": integer(task.priority, f"{where}.priority", SMALLINT),
        "status": enum_value(TaskStatus, task.status, f"{where}.status").value,
        "worker_id": None if task.worker_id is None else integer(task.worker_id, f"{where}.worker_id", ROW_ID),
        "last_touched_at": None
        if task.last_touched_at is None
        else aware_datetime(task.last_touched_at, f"{where}.last_touched_at"),
        "commands": commands,
        "activity": activity_value(task.activity, where),
        "steps_completed": integer(task.steps_completed, f"{where}.steps_completed", _STEPS),
        "steps_total": integer(task.steps_total, f"{where}.steps_total", _STEPS),
    }


class Tasks:
    """Tasks of the farm model one at a time: fetch, save, touch, time out."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- reading -----------------------------------------------------------------

    async def fetch(self, uuid: UUID) -> Task:
        """Task ``uuid`` with its job's and worker's uuids (NotFound if missing);
        a soft-deleted worker's uuid is still shown."""
        return await self._store.read(partial(task_loading.load_task, uuid=_uuid(uuid)), single_statement=True)

    async def job_uuid_of(self, uuid: UUID) -> UUID:
        """The uuid of the task's job (NotFound if the task is missing)."""
        return await self._store.read(partial(task_loading.job_uuid_of, uuid=_uuid(uuid)), single_statement=True)

    async def of_job(self, job_uuid: UUID) -> list[Task]:
        """The job's tasks in authoring order (NotFound if the job is missing)."""
        unit = partial(task_loading.of_job, job_uuid=_uuid(job_uuid, "job uuid"), statuses=None)
        return await self._store.read(unit, single_statement=True, offload=True)

    async def of_job_in_status(self, job_uuid: UUID, *statuses: TaskStatus) -> list[Task]:
        """The job's tasks in any of ``statuses``, by id (NotFound if the job is missing)."""
        wanted = [enum_value(TaskStatus, status, "task status") for status in statuses]
        unit = partial(task_loading.of_job, job_uuid=_uuid(job_uuid, "job uuid"), statuses=wanted)
        return await self._store.read(unit, single_statement=True)

    async def of_worker_in_status(self, worker_uuid: UUID, status: TaskStatus) -> list[Task]:
        """The worker's tasks in ``status``, by id (none for an unknown worker)."""
        unit = partial(
            task_loading.of_worker_in_status,
            worker_uuid=_uuid(worker_uuid, "worker uuid"),
            status=enum_value(TaskStatus, status, "task status"),
            job_uuid=None,
        )
        return await self._store.read(unit, single_statement=True)

    async def of_worker_in_status_of_job(self, worker_uuid: UUID, status: TaskStatus, job_uuid: UUID) -> list[Task]:
        """The worker's tasks in ``status`` of job ``job_uuid``, by id."""
        unit = partial(
            task_loading.of_worker_in_status,
            worker_uuid=_uuid(worker_uuid, "worker uuid"),
            status=enum_value(TaskStatus, status, "task status"),
            job_uuid=_uuid(job_uuid, "job uuid"),
        )
        return await self._store.read(unit, single_statement=True)

    async def dependencies(self, uuid: UUID) -> list[UUID]:
        """The uuids of the tasks this one depends on, by their id (NotFound if missing)."""
        return await self._store.read(partial(task_loading.dependencies, uuid=_uuid(uuid)), single_statement=True)

    async def current_of_worker(self, worker_uuid: UUID) -> Task | None:
        """The worker's current task (Flamenco's FetchWorkerTask): one that is
        active in an active job first, else the one updated last; None if the
        worker has no task."""
        unit = partial(task_loading.current_of_worker, worker_uuid=_uuid(worker_uuid, "worker uuid"))
        return await self._store.read(unit, single_statement=True)

    async def timed_out(self, untouched_since: datetime) -> list[TimedOutTask]:
        """Active tasks last touched at or before ``untouched_since``, by id."""
        cutoff = aware_datetime(untouched_since, "untouched_since")
        return await self._store.read(partial(task_loading.timed_out, untouched_since=cutoff), single_statement=True)

    # -- writing -----------------------------------------------------------------

    async def save(self, task: Task) -> Task:
        """Write every mutable field of ``task`` (name, type, priority, status,
        worker, last touched, commands, activity, steps); returns it as stored."""
        values = _task_values(task)
        unit = partial(task_writing.save_task, uuid=_uuid(task.uuid), values=values, steps_changed=True)
        return await self._store.write(unit)

    async def save_status(self, uuid: UUID, status: TaskStatus, activity: str | None = None) -> Task:
        """Write the task's status (and activity, unless None)."""
        values: dict[str, Any] = {"status": _status(status)}
        if activity is not None:
            values["activity"] = activity_value(activity, "task")
        return await self._store.write(partial(task_writing.save_task, uuid=_uuid(uuid), values=values))

    async def save_activity(self, uuid: UUID, activity: str) -> Task:
        """Write the task's activity only (its status is not saved)."""
        values = {"activity": activity_value(activity, "task")}
        return await self._store.write(partial(task_writing.save_task, uuid=_uuid(uuid), values=values))

    async def save_steps_completed(self, uuid: UUID, steps_completed: int) -> Task:
        """Write the task's completed steps, then re-sum its job's counters."""
        values = {"steps_completed": integer(steps_completed, "task steps_completed", _STEPS)}
        unit = partial(task_writing.save_task, uuid=_uuid(uuid), values=values, steps_changed=True)
        return await self._store.write(unit)

    async def assign_to_worker(self, uuid: UUID, worker_uuid: UUID) -> Task:
        """Assign the task to a worker (InvalidReference for an unknown or deleted worker)."""
        unit = partial(task_writing.assign_to_worker, uuid=_uuid(uuid), worker_uuid=_uuid(worker_uuid, "worker uuid"))
        return await self._store.write(unit)

    async def touched_by_worker(self, uuid: UUID) -> None:
        """The worker's heartbeat on its task: ``last_touched_at = updated_at = now``,
        one statement (NotFound if the task is missing)."""
        await self._store.write(partial(task_writing.touched_by_worker, uuid=_uuid(uuid)), single_statement=True)
