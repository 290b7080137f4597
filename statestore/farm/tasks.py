"""Tasks of the farm model one at a time: fetch, save, touch, time out.

Each method validates its input first (bad input raises InvalidInput before
any SQL), then runs one unit of work: its own transaction, or the caller's
``store.transaction()`` if one is open.

A save that changes a task's status writes no status history (that is the
state machine's) but goes to the change feed (``task.status``); if it
makes work claimable (the task queued or soft-failed again, or completed
and a dependent left with nothing pending) it announces it
(:mod:`statestore.farm.enabling`).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from functools import partial
from typing import Any
from uuid import UUID

from sqlalchemy import and_, bindparam, case, exists, or_, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql import Select

from statestore.changes.kinds import ChangeKind
from statestore.changes.recording import change, record
from statestore.core.batches import chunks
from statestore.core.direct import DirectStatement
from statestore.core.runner import Runner
from statestore.core.types import utcnow
from statestore.core.validate import INTEGER, SMALLINT, aware_datetime, enum_value, integer, shown, text, uuid_value
from statestore.errors import InvalidInput, InvalidReference, NotFound
from statestore.farm.derived import lock_dependents_of, recount, resum_steps
from statestore.farm.enabling import WorkSignal, enable_work, write_enabling
from statestore.farm.fields import activity_value, encode_commands, task_type_value
from statestore.farm.listings import TaskListings
from statestore.farm.lookups import LIVE, job_id_of, live_worker_id
from statestore.farm.records import Task, TimedOutTask
from statestore.farm.rows import task_from_row
from statestore.farm.statuses import SCHEDULABLE_TASK_STATUSES, JobStatus, TaskStatus
from statestore.farm.tables import DEPENDENCIES, JOBS, LENGTHS, TASKS, WORKERS

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


# From the worker, outer-joined: a row of NULLs (but the worker's) when it has
# no task, none when there is no such live worker — one statement.
_CURRENT_OF_WORKER = (
    select(*_COLUMNS)
    .select_from(
        WORKERS.outerjoin(TASKS, TASKS.c.worker_id == WORKERS.c.id).outerjoin(JOBS, JOBS.c.id == TASKS.c.job_id)
    )
    .where(WORKERS.c.uuid == bindparam("worker_uuid"), LIVE)
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


def _task_row(connection: Connection, uuid: UUID) -> RowMapping:
    row = connection.execute(_TASK, {"uuid": uuid}).mappings().one_or_none()
    if row is None:
        raise NotFound(f"task {uuid} not found")
    return row


def load_task(connection: Connection, uuid: UUID) -> Task:
    """Task ``uuid`` (NotFound if missing)."""
    return task_from_row(_task_row(connection, uuid))


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
        rows = connection.execute(_OF_WORKER, params).mappings().all()
    else:
        rows = connection.execute(_OF_WORKER_OF_JOB, {**params, "job_uuid": job_uuid}).mappings().all()
    if not rows:  # no tasks, or no such parent: only then is it worth a second look
        live_worker_id(connection, worker_uuid)
        if job_uuid is not None:
            job_id_of(connection, job_uuid)
    return [task_from_row(row) for row in rows]


def dependencies(connection: Connection, uuid: UUID) -> list[UUID]:
    """The uuids of the tasks task ``uuid`` depends on, by their id."""
    found = connection.execute(_DEPENDENCIES, {"uuid": uuid}).scalars().all()
    if not found:
        raise NotFound(f"task {uuid} not found")
    return [dependency for dependency in found if dependency is not None]


def current_of_worker(connection: Connection, worker_uuid: UUID) -> Task | None:
    """Flamenco's FetchWorkerTask: the worker's running task (task and job
    active) if any, else the task it was given last; None if it has none
    (NotFound if the worker is absent or soft-deleted)."""
    row = connection.execute(_CURRENT_OF_WORKER, {"worker_uuid": worker_uuid}).mappings().one_or_none()
    if row is None:
        raise NotFound(f"worker {worker_uuid} not found")
    return None if row["uuid"] is None else task_from_row(row)


def timed_out(connection: Connection, untouched_since: datetime) -> list[TimedOutTask]:
    """Active tasks not touched since ``untouched_since`` (inclusive), by id."""
    rows = connection.execute(TIMED_OUT, {"untouched_since": untouched_since}).mappings()
    return [TimedOutTask(task=task_from_row(row), worker_name=row["worker_name"]) for row in rows]


_TOUCH = DirectStatement(
    update(TASKS)
    .where(TASKS.c.uuid == bindparam("b_uuid"))
    .values(last_touched_at=bindparam("last_touched_at"), updated_at=bindparam("updated_at"))
)


# The task's status, locked (after its dependents, the order of derived):
# what a save replaces is what the change feed reports.
_STATUS_LOCKED = select(TASKS.c.status).where(TASKS.c.uuid == bindparam("uuid")).with_for_update()


_SCHEDULABLE = [status.value for status in SCHEDULABLE_TASK_STATUSES]


# Whether any of the dependents (locked, just recounted) may be claimed now.
_ANY_READY = select(
    exists().where(
        TASKS.c.id.in_(bindparam("ids", expanding=True)),
        TASKS.c.pending_dependencies == 0,
        TASKS.c.status.in_(_SCHEDULABLE),
    )
)


def save_task(
    connection: Connection,
    uuid: UUID,
    values: dict[str, Any],
    *,
    steps_changed: bool = False,
    work: WorkSignal | None = None,
) -> Task:
    """Write ``values`` (column → value) and ``updated_at`` to task ``uuid``.

    With a ``status`` among the values the dependents are recounted, a
    change of status goes to the feed (the activity, if given, as its
    reason) and work is announced if it makes some claimable; with
    ``steps_changed`` the job's step counters are re-summed.
    """
    # Dependents are locked before the change and recounted after it (see
    # readiness); the recount is right whatever the old status was.
    dependents = lock_dependents_of(connection, uuid) if "status" in values else []
    old = connection.execute(_STATUS_LOCKED, {"uuid": uuid}).scalar() if "status" in values else None
    now = utcnow()
    statement = update(TASKS).where(TASKS.c.uuid == bindparam("b_uuid")).values(**values, updated_at=now)
    if connection.execute(statement, {"b_uuid": uuid}).rowcount == 0:
        raise NotFound(f"task {uuid} not found")
    row = _task_row(connection, uuid)
    if dependents:
        recount(connection, dependents)
    if steps_changed:
        resum_steps(connection, row["job_id"])
    new = values.get("status")
    if old is not None and new != old:
        reason = str(values.get("activity") or "")
        record(
            connection,
            [change(ChangeKind.TASK_STATUS, at=now, job=row["job_uuid"], task=uuid, old=old, new=new, reason=reason)],
        )
        if _enables_work(connection, str(old), str(new), dependents):
            enable_work(connection, work)
    return task_from_row(row)


def _enables_work(connection: Connection, old: str, new: str, dependents: list[int]) -> bool:
    """Whether a task's change from ``old`` to ``new`` can make work
    claimable: it is queued or soft-failed again, or it completed and a
    dependent may be claimed now."""
    if new in _SCHEDULABLE:
        return old not in _SCHEDULABLE
    if new == TaskStatus.COMPLETED.value and dependents:
        found = (connection.execute(_ANY_READY, {"ids": list(chunk)}).scalar() for chunk in chunks(dependents))
        return any(found)
    return False


# A live worker, or the one the task already names even if soft-deleted since.
_WORKER_FOR_TASK = select(WORKERS.c.id).where(
    WORKERS.c.uuid == bindparam("worker_uuid"),
    or_(LIVE, WORKERS.c.id == select(TASKS.c.worker_id).where(TASKS.c.uuid == bindparam("uuid")).scalar_subquery()),
)


def save_whole_task(
    connection: Connection,
    uuid: UUID,
    values: dict[str, Any],
    worker_uuid: UUID | None,
    work: WorkSignal | None = None,
) -> Task:
    """Write ``values`` and the worker ``worker_uuid`` (None: unassigned) to
    task ``uuid``. The worker is resolved first, so an unknown or
    soft-deleted one is InvalidReference and nothing is written; the
    soft-deleted worker the task already names may stay."""
    worker_id = None
    if worker_uuid is not None:
        worker_id = connection.execute(_WORKER_FOR_TASK, {"worker_uuid": worker_uuid, "uuid": uuid}).scalar()
        if worker_id is None:
            raise InvalidReference(f"task {uuid}: no worker {worker_uuid} found")
    return save_task(connection, uuid, {**values, "worker_id": worker_id}, steps_changed=True, work=work)


def assign_to_worker(connection: Connection, uuid: UUID, worker_uuid: UUID) -> Task:
    """Record that worker ``worker_uuid`` (not deleted) runs task ``uuid``."""
    try:
        worker_id = live_worker_id(connection, worker_uuid)
    except NotFound:
        raise InvalidReference(f"task {uuid}: no worker {worker_uuid} found") from None
    return save_task(connection, uuid, {"worker_id": worker_id})


def touched_by_worker(connection: Connection, uuid: UUID) -> None:
    """The worker reported progress: ``last_touched_at = updated_at = now``."""
    now = utcnow()
    if _TOUCH.execute(connection, {"b_uuid": uuid, "last_touched_at": now, "updated_at": now}).rowcount == 0:
        raise NotFound(f"task {uuid} not found")


_STEPS = (0, INTEGER[1])


def _uuid(uuid: object, what: str = "task uuid") -> UUID:
    return uuid_value(uuid, what)


def _status(status: object) -> str:
    return enum_value(TaskStatus, status, "task status").value


def _task_values(task: Task) -> dict[str, Any]:
    if not isinstance(task, Task):
        raise InvalidInput(f"expected a Task, got {type(task).__name__}")
    where = f"task {shown(task.name)}"
    commands, _ = encode_commands(task.commands, where)
    return {
        "name": text(task.name, LENGTHS["name"], f"{where}.name"),
        "type": task_type_value(task.type, f"{where}.type"),
        "priority": integer(task.priority, f"{where}.priority", SMALLINT),
        "status": enum_value(TaskStatus, task.status, f"{where}.status").value,
        "last_touched_at": None
        if task.last_touched_at is None
        else aware_datetime(task.last_touched_at, f"{where}.last_touched_at"),
        "commands": commands,
        "activity": activity_value(task.activity, where),
        "steps_completed": integer(task.steps_completed, f"{where}.steps_completed", _STEPS),
        "steps_total": integer(task.steps_total, f"{where}.steps_total", _STEPS),
    }


class Tasks(TaskListings):
    """Tasks of the farm model one at a time: fetch, save, touch, time out."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    # -- reading -----------------------------------------------------------------

    async def fetch(self, uuid: UUID | str) -> Task:
        """Task ``uuid`` with its job's and worker's uuids (NotFound if missing);
        a soft-deleted worker's uuid is still shown."""
        return await self._runner.read(partial(load_task, uuid=_uuid(uuid)), single_statement=True)

    async def job_uuid_of(self, uuid: UUID | str) -> UUID:
        """The uuid of the task's job (NotFound if the task is missing)."""
        return await self._runner.read(partial(job_uuid_of, uuid=_uuid(uuid)), single_statement=True)

    async def of_job(self, job_uuid: UUID | str) -> list[Task]:
        """The job's tasks in authoring order (NotFound if the job is missing)."""
        unit = partial(of_job, job_uuid=_uuid(job_uuid, "job uuid"), statuses=None)
        return await self._runner.read(unit, single_statement=True, offload=True)

    async def of_job_in_status(self, job_uuid: UUID | str, *statuses: TaskStatus) -> list[Task]:
        """The job's tasks in any of ``statuses``, by id (NotFound if the job is missing)."""
        wanted = [enum_value(TaskStatus, status, "task status") for status in statuses]
        unit = partial(of_job, job_uuid=_uuid(job_uuid, "job uuid"), statuses=wanted)
        return await self._runner.read(unit, single_statement=True)

    async def of_worker_in_status(self, worker_uuid: UUID | str, status: TaskStatus) -> list[Task]:
        """The worker's tasks in ``status``, by id (none for an unknown worker)."""
        unit = partial(
            of_worker_in_status,
            worker_uuid=_uuid(worker_uuid, "worker uuid"),
            status=enum_value(TaskStatus, status, "task status"),
            job_uuid=None,
        )
        return await self._runner.read(unit, single_statement=True)

    async def of_worker_in_status_of_job(
        self, worker_uuid: UUID | str, status: TaskStatus, job_uuid: UUID | str
    ) -> list[Task]:
        """The worker's tasks in ``status`` of job ``job_uuid``, by id."""
        unit = partial(
            of_worker_in_status,
            worker_uuid=_uuid(worker_uuid, "worker uuid"),
            status=enum_value(TaskStatus, status, "task status"),
            job_uuid=_uuid(job_uuid, "job uuid"),
        )
        return await self._runner.read(unit, single_statement=True)

    async def dependencies(self, uuid: UUID | str) -> list[UUID]:
        """The uuids of the tasks this one depends on, by their id (NotFound if missing)."""
        return await self._runner.read(partial(dependencies, uuid=_uuid(uuid)), single_statement=True)

    async def current_of_worker(self, worker_uuid: UUID | str) -> Task | None:
        """The worker's current task (Flamenco's FetchWorkerTask): one that is
        active in an active job first, else the one updated last; None if the
        worker has no task. NotFound for an unknown or soft-deleted worker."""
        unit = partial(current_of_worker, worker_uuid=_uuid(worker_uuid, "worker uuid"))
        return await self._runner.read(unit, single_statement=True)

    async def timed_out(self, untouched_since: datetime) -> list[TimedOutTask]:
        """Active tasks last touched at or before ``untouched_since``, by id."""
        cutoff = aware_datetime(untouched_since, "untouched_since")
        return await self._runner.read(partial(timed_out, untouched_since=cutoff), single_statement=True)

    # -- writing -----------------------------------------------------------------

    async def save(self, task: Task) -> Task:
        """Write every mutable field of ``task`` (name, type, priority, status,
        worker, last touched, commands, activity, steps); returns it as stored.

        The worker is ``task.worker_uuid`` (None: unassigned): InvalidReference
        for an unknown or soft-deleted worker, unless it is the one the task
        already names; nothing is written then."""
        values = _task_values(task)
        worker = None if task.worker_uuid is None else _uuid(task.worker_uuid, f"task {shown(task.name)}.worker_uuid")
        unit = partial(save_whole_task, uuid=_uuid(task.uuid), values=values, worker_uuid=worker)
        return await write_enabling(self._runner, unit)

    async def save_status(self, uuid: UUID | str, status: TaskStatus, activity: str | None = None) -> Task:
        """Write the task's status (and activity, unless None)."""
        values: dict[str, Any] = {"status": _status(status)}
        if activity is not None:
            values["activity"] = activity_value(activity, "task")
        return await write_enabling(self._runner, partial(save_task, uuid=_uuid(uuid), values=values))

    async def save_activity(self, uuid: UUID | str, activity: str) -> Task:
        """Write the task's activity only (its status is not saved)."""
        values = {"activity": activity_value(activity, "task")}
        return await self._runner.write(partial(save_task, uuid=_uuid(uuid), values=values))

    async def save_steps_completed(self, uuid: UUID | str, steps_completed: int) -> Task:
        """Write the task's completed steps, then re-sum its job's counters."""
        values = {"steps_completed": integer(steps_completed, "task steps_completed", _STEPS)}
        unit = partial(save_task, uuid=_uuid(uuid), values=values, steps_changed=True)
        return await self._runner.write(unit)

    async def assign_to_worker(self, uuid: UUID | str, worker_uuid: UUID | str) -> Task:
        """Assign the task to a worker (InvalidReference for an unknown or deleted worker)."""
        unit = partial(assign_to_worker, uuid=_uuid(uuid), worker_uuid=_uuid(worker_uuid, "worker uuid"))
        return await self._runner.write(unit)

    async def touched_by_worker(self, uuid: UUID | str) -> None:
        """The worker's heartbeat on its task: ``last_touched_at = updated_at = now``,
        one statement (NotFound if the task is missing)."""
        await self._runner.write(partial(touched_by_worker, uuid=_uuid(uuid)), single_statement=True)
