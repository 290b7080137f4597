"""Write units of jobs: submission, saves, deletion, bulk task updates.

Values arrive validated by :mod:`statestore.farm.job_codec`. Submission is
the bulk path: the job is one INSERT, its tasks and then their dependencies
one bulk insert each on the DB-API cursor (:mod:`statestore.core.bulk_insert`:
an executemany, on PostgreSQL pipelined chunks of ``unnest`` arrays), and
the new tasks' ids one SELECT in numbering order, matched to the tasks by
position — never a statement per task.

``updated_at`` has an ``onupdate`` default; statements that must not count as
a change of the row (derived counters, Flamenco's storage info) set it to
itself explicitly.

A stored job is a change of the feed (``job.stored``, its status as
``new``). A job stored, or tasks added to a job, whose tasks may be handed
out at once (the job queued or active, a task with nothing pending)
announces work in its transaction (:mod:`statestore.farm.enabling`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.engine import Connection

from statestore.changes.kinds import ChangeKind
from statestore.changes.recording import change, record
from statestore.core.batches import chunks
from statestore.core.bulk_insert import BulkInsert
from statestore.core.direct import DirectStatement
from statestore.core.types import utcnow
from statestore.errors import InvalidReference, NotFound
from statestore.farm.authored import EncodedJob, EncodedTasks, resolve_names
from statestore.farm.derived import resum_steps, schedulable
from statestore.farm.enabling import WorkSignal, enable_work
from statestore.farm.lookups import tag_id_of
from statestore.farm.records import Job, Task
from statestore.farm.rows import job_from_row, task_from_row
from statestore.farm.statuses import TaskStatus
from statestore.farm.tables import DEPENDENCIES, JOBS, TASKS

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


# Not locked: the stored tasks found are then locked by uuid with the others
# (a locking read by name would lock every task of the job on MariaDB).
_STORED_NAMES = select(TASKS.c.name, TASKS.c.uuid).where(
    TASKS.c.job_id == bindparam("job_id"), TASKS.c.name.in_(bindparam("names", expanding=True))
)


def _stored_names(connection: Connection, job_id: int, tasks: EncodedTasks) -> dict[str, list[UUID]]:
    """The uuids of the job's stored tasks named as ``tasks.names`` name
    them, by name: one query (per IN-list chunk). Compared again in Python,
    so MariaDB's trailing-space-blind collation cannot match a longer name."""
    wanted = {reference.name for reference in tasks.names}
    found: dict[str, list[UUID]] = {}
    for chunk in chunks(sorted(wanted)):
        for name, uuid in connection.execute(_STORED_NAMES, {"job_id": job_id, "names": list(chunk)}):
            if name in wanted:
                found.setdefault(name, []).append(uuid)
    return found


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


def enables_work(job: EncodedJob) -> bool:
    """Whether storing ``job`` makes work claimable: its status lets its
    tasks be handed out and one of them depends on nothing."""
    return schedulable(job.values["status"]) and any(not deps for deps in job.tasks.dependencies)


def store_authored(connection: Connection, job: EncodedJob) -> Job:
    """Flamenco's StoreAuthoredJob: the job, its tasks and their
    dependencies; the feed's ``job.stored``; work announced if
    :func:`enables_work` (the repository wakes this process's waiters)."""
    now = utcnow()
    values = job.values
    tag_id = tag_id_of(connection, job.worker_tag, f"job {values['name']!r}")
    row = {**values, "worker_tag_id": tag_id, "created_at": now, "updated_at": now}
    inserted = connection.execute(_INSERT_JOB, row).inserted_primary_key
    assert inserted is not None
    job_id = int(inserted[0])
    _insert_tasks(connection, job_id, values["priority"], values["status"], job.tasks, 1, {}, now)
    record(connection, [change(ChangeKind.JOB_STORED, at=now, job=values["uuid"], new=values["status"])])
    if enables_work(job):
        enable_work(connection, None)
    return job_from_row({**row, "id": job_id, "worker_tag_uuid": job.worker_tag})


def add_tasks(
    connection: Connection, job_uuid: UUID, tasks: EncodedTasks, work: WorkSignal | None = None
) -> list[Task]:
    """Flamenco's StoreAuthoredJobTask: append tasks to a stored job; work
    announced if one of them may be handed out at once.

    The job row is locked first, so concurrent appends number their tasks one
    after the other; stored dependencies are locked so their status cannot
    change between being counted and the new dependency rows being written.
    Dependencies given by name are resolved first, against the job's stored
    tasks as well (:func:`statestore.farm.authored.resolve_names`).
    """
    now = utcnow()
    job = connection.execute(_JOB_LOCKED, {"uuid": job_uuid}).one_or_none()
    if job is None:
        raise NotFound(f"job {job_uuid} not found")
    job_id, job_priority = int(job.id), int(job.priority)
    if tasks.names:
        tasks = resolve_names(tasks, _stored_names(connection, job_id, tasks))
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
    shared, pending, ids = _insert_tasks(connection, job_id, job_priority, job.status, tasks, first_index, stored, now)
    if not tasks.rows:
        return []
    if shared["job_schedulable"] and 0 in pending:
        enable_work(connection, work)
    if ids is None:
        uuids = [row["uuid"] for row in tasks.rows]
        ids = dict(zip(uuids, _new_task_ids(connection, job_id, first_index, len(uuids)), strict=True))
    resum_steps(connection, job_id)
    known = {**shared, "job_uuid": job_uuid, "worker_uuid": None}
    return [
        task_from_row({**row, **known, "id": ids[row["uuid"]], "index_in_job": index})
        for index, row in enumerate(tasks.rows, start=first_index)
    ]
