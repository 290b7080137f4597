"""Write units of jobs: submission, saves, deletion, bulk task updates.

Values arrive validated by :mod:`statestore.farm.job_codec`. Submission is
the bulk path: the job is one INSERT, its tasks and then their dependencies
one bulk insert each on the DB-API cursor (:mod:`statestore.farm.bulk_insert`:
an executemany, on PostgreSQL pipelined chunks of ``unnest`` arrays), and
the new tasks' ids one SELECT in numbering order, matched to the tasks by
position — never a statement per task.

``updated_at`` has an ``onupdate`` default; statements that must not count as
a change of the row (derived counters, Flamenco's storage info) set it to
itself explicitly.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any
from uuid import UUID

from sqlalchemy import Integer, bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from statestore.core.batches import chunks
from statestore.core.dialect import update_returning
from statestore.core.direct import DirectStatement
from statestore.core.types import utcnow
from statestore.errors import InvalidReference, NotFound
from statestore.farm import readiness
from statestore.farm.bulk_insert import BulkInsert
from statestore.farm.job_codec import EncodedJob, EncodedTasks, job_from_row, task_from_row
from statestore.farm.job_loading import job_id_of, load_job
from statestore.farm.records import Job, Task
from statestore.farm.statuses import SCHEDULABLE_JOB_STATUSES, TaskStatus
from statestore.farm.tables import DEPENDENCIES, JOBS, TASKS, WORKER_TAGS

__all__ = [
    "add_tasks",
    "delete_job",
    "request_deletion",
    "request_mass_deletion",
    "resum_steps",
    "save_job",
    "save_priority",
    "save_status",
    "save_worker_tag",
    "schedulable",
    "store_authored",
    "update_task_statuses",
    "update_task_step_counts",
]


_INSERT_JOB = insert(JOBS)
_AUTHORED_COLUMNS = ("uuid", "name", "type", "priority", "commands", "steps_total")
_AUTHORED_VALUES = itemgetter(*_AUTHORED_COLUMNS)
_INSERT_TASKS = BulkInsert(
    TASKS,
    (
        *_AUTHORED_COLUMNS,
        "index_in_job",
        "pending_dependencies",
        "job_id",
        "status",
        "worker_id",
        "last_touched_at",
        "activity",
        "steps_completed",
        "job_priority",
        "job_schedulable",
        "created_at",
        "updated_at",
    ),
)
_INSERT_DEPENDENCIES = BulkInsert(DEPENDENCIES, ("task_id", "dependency_id"))
_TAG_ID = select(WORKER_TAGS.c.id).where(WORKER_TAGS.c.uuid == bindparam("uuid"))
# Ids only, in numbering order (the unique index on job_id, index_in_job):
# matched to the tasks by position, no uuid is read back and converted.
_NEW_TASK_IDS = DirectStatement(
    select(TASKS.c.id)
    .where(TASKS.c.job_id == bindparam("job_id"), TASKS.c.index_in_job >= bindparam("first_index"))
    .order_by(TASKS.c.index_in_job)
)
_JOB_LOCKED = (
    select(JOBS.c.id, JOBS.c.priority, JOBS.c.status).where(JOBS.c.uuid == bindparam("uuid")).with_for_update()
)
_LAST_INDEX = select(func.coalesce(func.max(TASKS.c.index_in_job), 0)).where(TASKS.c.job_id == bindparam("job_id"))
_STORED_DEPENDENCIES = (
    select(TASKS.c.uuid, TASKS.c.id, TASKS.c.status)
    .where(TASKS.c.job_id == bindparam("job_id"), TASKS.c.uuid.in_(bindparam("uuids", expanding=True)))
    .with_for_update()
)


def _step_sum(column: Any) -> Any:
    return (
        select(func.coalesce(func.sum(column), 0, type_=Integer))
        .where(TASKS.c.job_id == JOBS.c.id)
        .correlate(JOBS)
        .scalar_subquery()
    )


_RESUM_STEPS = (
    update(JOBS)
    .where(JOBS.c.id == bindparam("job_id"))
    .values(
        steps_completed=_step_sum(TASKS.c.steps_completed),
        steps_total=_step_sum(TASKS.c.steps_total),
        updated_at=JOBS.c.updated_at,
    )
)
_JOB_BY_UUID = JOBS.c.uuid == bindparam("b_uuid")
_COPY_JOB_PRIORITY = (
    update(TASKS)
    .where(TASKS.c.job_id == bindparam("b_job_id"))
    .values(job_priority=bindparam("b_priority"), updated_at=TASKS.c.updated_at)
)
_COPY_SCHEDULABLE = (
    update(TASKS)
    .where(TASKS.c.job_id == bindparam("b_job_id"), TASKS.c.job_schedulable != bindparam("b_flag"))
    .values(job_schedulable=bindparam("b_flag"), updated_at=TASKS.c.updated_at)
)
_SCHEDULABLE_JOB = frozenset(status.value for status in SCHEDULABLE_JOB_STATUSES)
_MARK_DELETION = (
    update(JOBS)
    .where(JOBS.c.id.in_(bindparam("ids", expanding=True)))
    .values(delete_requested_at=bindparam("now"), updated_at=bindparam("now"))
)
_TO_DELETE = (
    select(JOBS.c.id, JOBS.c.uuid)
    .where(JOBS.c.updated_at <= bindparam("last_updated_max"))
    .order_by(JOBS.c.id)
    .with_for_update()
)
_DELETE_JOB = delete(JOBS).where(JOBS.c.uuid == bindparam("uuid"))
_STEPS_OF_COMPLETED = (
    update(TASKS)
    .where(TASKS.c.job_id == bindparam("b_job_id"), TASKS.c.status == TaskStatus.COMPLETED.value)
    .values(steps_completed=TASKS.c.steps_total, updated_at=TASKS.c.updated_at)
)
_STEPS_OF_QUEUED = (
    update(TASKS)
    .where(TASKS.c.job_id == bindparam("b_job_id"), TASKS.c.status == TaskStatus.QUEUED.value)
    .values(steps_completed=0, updated_at=TASKS.c.updated_at)
)


def _tag_id(connection: Connection, tag: UUID | None, where: str) -> int | None:
    if tag is None:
        return None
    tag_id = connection.execute(_TAG_ID, {"uuid": tag}).scalar_one_or_none()
    if tag_id is None:
        raise InvalidReference(f"{where}: no worker tag {tag} found")
    return int(tag_id)


def _new_task_ids(connection: Connection, job_id: int, first_index: int, count: int) -> list[int]:
    """Ids of the ``count`` tasks just stored as the job's tasks numbered
    from ``first_index`` on, in that order (one query)."""
    found = [
        task_id for (task_id,) in _NEW_TASK_IDS.execute(connection, {"job_id": job_id, "first_index": first_index}).rows
    ]
    assert len(found) == count, "the job's new tasks are numbered one after the other"
    return found


def _insert_tasks(
    connection: Connection,
    job_id: int,
    job_priority: int,
    job_status: str,
    tasks: EncodedTasks,
    first_index: int,
    stored: dict[UUID, tuple[int, str]],
    now: datetime,
) -> tuple[dict[str, Any], list[int], dict[UUID, int] | None]:
    """Insert ``tasks`` (and their dependencies) as queued tasks of ``job_id``.

    Returns the values all new tasks share, their pending counts and, if they
    were read, the new tasks' ids by uuid. ``stored`` gives id and status of
    the job's stored tasks that the new ones depend on; a task's pending count
    counts its stored dependencies not completed and all its new ones (new
    tasks are queued).
    """
    completed = TaskStatus.COMPLETED.value
    done = {uuid for uuid, (_, status) in stored.items() if status == completed}
    pending = [len(deps) - len(done.intersection(deps)) if done else len(deps) for deps in tasks.dependencies]
    shared = {
        "job_id": job_id,
        "status": TaskStatus.QUEUED.value,
        "worker_id": None,
        "last_touched_at": None,
        "activity": "",
        "steps_completed": 0,
        "job_priority": job_priority,
        "job_schedulable": schedulable(job_status),
        "created_at": now,
        "updated_at": now,
    }
    rows = tasks.rows
    if not rows:
        return shared, pending, None
    # Column-wise in one pass over the rows (10,000 dicts for a render job).
    columns: dict[str, Sequence[Any]] = dict(
        zip(_AUTHORED_COLUMNS, zip(*map(_AUTHORED_VALUES, rows), strict=True), strict=True)
    )
    columns["index_in_job"] = range(first_index, first_index + len(rows))
    columns["pending_dependencies"] = pending
    _INSERT_TASKS.execute(connection, columns, shared)
    if not any(tasks.dependencies) and not stored:
        return shared, pending, None
    new_ids = _new_task_ids(connection, job_id, first_index, len(rows))
    ids = dict(zip(columns["uuid"], new_ids, strict=True))
    for uuid, (task_id, _) in stored.items():
        ids[uuid] = task_id
    dependents: list[int] = []
    dependencies: list[int] = []
    for task_id, deps in zip(new_ids, tasks.dependencies, strict=True):
        if deps:
            dependents.extend([task_id] * len(deps))
            dependencies.extend([ids[dep] for dep in deps])
    _INSERT_DEPENDENCIES.execute(connection, {"task_id": dependents, "dependency_id": dependencies}, {})
    return shared, pending, ids


def store_authored(connection: Connection, job: EncodedJob) -> Job:
    """Flamenco's StoreAuthoredJob: the job, its tasks and their dependencies."""
    now = utcnow()
    values = job.values
    tag_id = _tag_id(connection, job.worker_tag, f"job {values['name']!r}")
    row = {**values, "worker_tag_id": tag_id, "created_at": now, "updated_at": now}
    inserted = connection.execute(_INSERT_JOB, row).inserted_primary_key
    assert inserted is not None
    job_id = int(inserted[0])
    _insert_tasks(connection, job_id, values["priority"], values["status"], job.tasks, 1, {}, now)
    return job_from_row({**row, "id": job_id})


def add_tasks(connection: Connection, job_uuid: UUID, tasks: EncodedTasks) -> list[Task]:
    """Flamenco's StoreAuthoredJobTask: append tasks to a stored job.

    The job row is locked first, so concurrent appends number their tasks one
    after the other; stored dependencies are locked so their status cannot
    change between being counted and the new dependency rows being written.
    """
    now = utcnow()
    job = connection.execute(_JOB_LOCKED, {"uuid": job_uuid}).one_or_none()
    if job is None:
        raise NotFound(f"job {job_uuid} not found")
    job_id, job_priority = int(job.id), int(job.priority)
    stored: dict[UUID, tuple[int, str]] = {}
    for chunk in chunks(sorted(tasks.outside)):
        for uuid, task_id, status in connection.execute(_STORED_DEPENDENCIES, {"job_id": job_id, "uuids": list(chunk)}):
            stored[uuid] = (task_id, status)
    if len(stored) != len(tasks.outside):
        for row, deps in zip(tasks.rows, tasks.dependencies, strict=True):
            for dep in deps:
                if dep in tasks.outside and dep not in stored:
                    raise InvalidReference(f"task {row['name']!r}: dependency {dep} is not a task of job {job_uuid}")
    first_index = int(connection.execute(_LAST_INDEX, {"job_id": job_id}).scalar_one()) + 1
    shared, _, ids = _insert_tasks(connection, job_id, job_priority, job.status, tasks, first_index, stored, now)
    if not tasks.rows:
        return []
    if ids is None:
        uuids = [row["uuid"] for row in tasks.rows]
        ids = dict(zip(uuids, _new_task_ids(connection, job_id, first_index, len(uuids)), strict=True))
    resum_steps(connection, job_id)
    known = {**shared, "job_uuid": job_uuid, "worker_uuid": None}
    return [
        task_from_row({**row, **known, "id": ids[row["uuid"]], "index_in_job": index})
        for index, row in enumerate(tasks.rows, start=first_index)
    ]


def resum_steps(connection: Connection, job_id: int) -> None:
    """Set the job's step counters to the sums over its tasks."""
    connection.execute(_RESUM_STEPS, {"job_id": job_id})


def save_job(connection: Connection, uuid: UUID, values: dict[str, Any]) -> Job:
    """Write ``values`` (column → value; ``updated_at`` included or kept by
    the caller) to job ``uuid`` and return it (one statement where the
    dialect has UPDATE … RETURNING)."""
    statement = update(JOBS).where(_JOB_BY_UUID).values(**values)
    params = {"b_uuid": uuid}
    if update_returning(connection.dialect):
        row = connection.execute(statement.returning(*JOBS.c), params).mappings().one_or_none()
        if row is None:
            raise NotFound(f"job {uuid} not found")
        return job_from_row(row)
    if connection.execute(statement, params).rowcount == 0:
        raise NotFound(f"job {uuid} not found")
    return load_job(connection, uuid)


def schedulable(job_status: str) -> bool:
    """Whether tasks of a job in ``job_status`` may be handed out."""
    return job_status in _SCHEDULABLE_JOB


def save_status(connection: Connection, uuid: UUID, values: dict[str, Any]) -> Job:
    """The job's status (and activity), and whether its tasks may be handed
    out copied to them (the claim index's predicate): only the tasks whose
    copy changes are written, none when the job stays active or queued."""
    job = save_job(connection, uuid, values)
    connection.execute(_COPY_SCHEDULABLE, {"b_job_id": job.id, "b_flag": schedulable(job.status.value)})
    return job


def save_priority(connection: Connection, uuid: UUID, priority: int) -> Job:
    """The job's priority, and its copy on every task (the claim index's order)."""
    job = save_job(connection, uuid, {"priority": priority, "updated_at": utcnow()})
    connection.execute(_COPY_JOB_PRIORITY, {"b_job_id": job.id, "b_priority": priority})
    return job


def save_worker_tag(connection: Connection, uuid: UUID, tag: UUID | None) -> Job:
    """Limit the job to workers with tag ``tag`` (None: any worker)."""
    tag_id = _tag_id(connection, tag, f"job {uuid}")
    return save_job(connection, uuid, {"worker_tag_id": tag_id, "updated_at": utcnow()})


def request_deletion(connection: Connection, uuid: UUID) -> Job:
    """Mark the job for the job deleter."""
    now = utcnow()
    return save_job(connection, uuid, {"delete_requested_at": now, "updated_at": now})


def request_mass_deletion(connection: Connection, last_updated_max: datetime) -> list[UUID]:
    """Mark every job last updated at or before ``last_updated_max``; their
    uuids by id (NotFound if there is none)."""
    found = connection.execute(_TO_DELETE, {"last_updated_max": last_updated_max}).all()
    if not found:
        raise NotFound(f"no job was last updated at or before {last_updated_max.isoformat()}")
    now = utcnow()
    for chunk in chunks([row.id for row in found]):
        connection.execute(_MARK_DELETION, {"ids": list(chunk), "now": now})
    return [row.uuid for row in found]


def delete_job(connection: Connection, uuid: UUID) -> None:
    """Delete the job; its tasks, their dependencies and failure lists, its
    blocklist and last-rendered row go with it (ON DELETE CASCADE)."""
    if connection.execute(_DELETE_JOB, {"uuid": uuid}).rowcount == 0:
        raise NotFound(f"job {uuid} not found")


def update_task_statuses(
    connection: Connection,
    uuid: UUID,
    status: TaskStatus,
    activity: str,
    from_statuses: Collection[TaskStatus] | None,
) -> int:
    """Set status and activity of the job's tasks (only those in
    ``from_statuses`` unless None); return how many were set."""
    job_id = job_id_of(connection, uuid)
    conditions = [TASKS.c.job_id == job_id]
    if from_statuses is not None:
        if not from_statuses:
            return 0
        conditions.append(TASKS.c.status.in_([value.value for value in from_statuses]))
    completed = TaskStatus.COMPLETED
    may_cross = from_statuses is None or status is completed or completed in from_statuses
    # Dependents locked before the change, recounted after it (see readiness).
    has_dependents = may_cross and readiness.lock_job(connection, job_id)
    statement = update(TASKS).where(*conditions).values(status=status.value, activity=activity, updated_at=utcnow())
    count = int(connection.execute(statement).rowcount)
    if count and has_dependents:
        readiness.recount_job(connection, job_id)
    return count


def update_task_step_counts(connection: Connection, uuid: UUID) -> Job:
    """Completed tasks have done all their steps, queued ones none; then the
    job's counters are re-summed."""
    job_id = job_id_of(connection, uuid)
    params = {"b_job_id": job_id}
    connection.execute(_STEPS_OF_COMPLETED, params)
    connection.execute(_STEPS_OF_QUEUED, params)
    resum_steps(connection, job_id)
    return load_job(connection, uuid)
