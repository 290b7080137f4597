"""Jobs as plain JSON-ready dicts: a row of the jobs listing, and one job
in detail with its tasks, failures, blocklist and status history.

:func:`job_detail` costs a fixed number of queries whatever the job's size:
the job, its task counts, one keyset page of its listed tasks, one set-based
read of those tasks' dependencies, failures and workers (in IN-list chunks),
the blocklist and a page of the history. Only ``task_limit`` tasks are ever
in memory; the rest are counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection

from statestore.core.batches import chunks
from statestore.core.validate import integer, uuid_value
from statestore.farm.listings import MAX_LIMIT
from statestore.farm.records import BlocklistEntry, HistoryEntry, Job, StatusChange, Task
from statestore.farm.tables import DEPENDENCIES, FAILURES, JOBS, TASKS, WORKERS
from statestore.overview.json_values import plain
from statestore.store import Store

__all__ = [
    "DEFAULT_HISTORY_LIMIT",
    "DEFAULT_TASK_LIMIT",
    "TaskLinks",
    "job_detail",
    "job_row",
    "status_change_row",
    "task_counts",
    "task_links",
    "task_row",
]

DEFAULT_TASK_LIMIT = 100
"""Tasks a job's detail lists unless asked for another number."""

DEFAULT_HISTORY_LIMIT = 100
"""Status changes a job's detail lists (the oldest first)."""


def job_row(job: Job) -> dict[str, Any]:
    """One job as the jobs listing shows it."""
    return {
        "uuid": plain(job.uuid),
        "name": job.name,
        "type": job.job_type,
        "status": plain(job.status),
        "priority": job.priority,
        "activity": job.activity,
        "created_at": plain(job.created_at),
        "updated_at": plain(job.updated_at),
        "steps_completed": job.steps_completed,
        "steps_total": job.steps_total,
        "worker_tag": plain(job.worker_tag_uuid),
        "delete_requested": job.delete_requested,
        "delete_requested_at": plain(job.delete_requested_at),
    }


def status_change_row(change: StatusChange) -> dict[str, Any]:
    """One status change the state machine made for a steering command."""
    return {
        "job": plain(change.job_uuid),
        "task": plain(change.task_uuid),
        "old_status": change.old_status,
        "new_status": change.new_status,
        "reason": change.reason,
        "who": change.who,
    }


@dataclass
class TaskLinks:
    """What a job's detail shows about its listed tasks beyond their own rows."""

    dependencies: dict[UUID, list[UUID]] = field(default_factory=dict)
    """Each task's dependencies, by uuid."""
    failed_by: dict[UUID, list[dict[str, Any]]] = field(default_factory=dict)
    """Each task's failure list: the workers (uuid, name) that failed it."""
    worker_names: dict[UUID, str] = field(default_factory=dict)
    """The names of the tasks' workers."""


_DEPENDENCY = TASKS.alias("dependency")

_DEPENDENCIES = (
    select(TASKS.c.uuid.label("task"), _DEPENDENCY.c.uuid.label("dependency"))
    .select_from(
        TASKS.join(DEPENDENCIES, DEPENDENCIES.c.task_id == TASKS.c.id).join(
            _DEPENDENCY, _DEPENDENCY.c.id == DEPENDENCIES.c.dependency_id
        )
    )
    .where(TASKS.c.uuid.in_(bindparam("tasks", expanding=True)))
    .order_by(TASKS.c.id, _DEPENDENCY.c.index_in_job)
)

_FAILED_BY = (
    select(TASKS.c.uuid.label("task"), WORKERS.c.uuid.label("worker"), WORKERS.c.name)
    .select_from(
        TASKS.join(FAILURES, FAILURES.c.task_id == TASKS.c.id).join(WORKERS, WORKERS.c.id == FAILURES.c.worker_id)
    )
    .where(TASKS.c.uuid.in_(bindparam("tasks", expanding=True)))
    .order_by(TASKS.c.id, WORKERS.c.id)
)

_WORKER_NAMES = select(WORKERS.c.uuid, WORKERS.c.name).where(WORKERS.c.uuid.in_(bindparam("workers", expanding=True)))

_TASK_COUNTS = (
    select(TASKS.c.status, func.count())
    .select_from(TASKS.join(JOBS, JOBS.c.id == TASKS.c.job_id))
    .where(JOBS.c.uuid == bindparam("job"))
    .group_by(TASKS.c.status)
)


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def task_links(connection: Connection, tasks: Sequence[Task]) -> TaskLinks:
    """The dependencies, failure lists and worker names of ``tasks``, read
    set-based: a few queries per chunk of tasks, never one per task."""
    links = TaskLinks()
    uuids = [task.uuid for task in tasks]
    for chunk in chunks(uuids):
        for row in connection.execute(_DEPENDENCIES, {"tasks": list(chunk)}):
            links.dependencies.setdefault(_uuid(row.task), []).append(_uuid(row.dependency))
        for failed in connection.execute(_FAILED_BY, {"tasks": list(chunk)}):
            worker = {"uuid": str(_uuid(failed.worker)), "name": failed.name}
            links.failed_by.setdefault(_uuid(failed.task), []).append(worker)
    workers = sorted({task.worker_uuid for task in tasks if task.worker_uuid is not None})
    for chunk in chunks(workers):
        for named in connection.execute(_WORKER_NAMES, {"workers": list(chunk)}):
            links.worker_names[_uuid(named.uuid)] = str(named.name)
    return links


def task_counts(connection: Connection, job: UUID) -> dict[str, int]:
    """How many of the job's tasks are in each status (absent: none)."""
    return {str(status): int(count) for status, count in connection.execute(_TASK_COUNTS, {"job": job})}


def task_row(task: Task, links: TaskLinks) -> dict[str, Any]:
    """One task of a job's detail."""
    worker = task.worker_uuid
    return {
        "uuid": plain(task.uuid),
        "name": task.name,
        "type": task.type,
        "status": plain(task.status),
        "priority": task.priority,
        "worker": None if worker is None else {"uuid": plain(worker), "name": links.worker_names.get(worker)},
        "steps_completed": task.steps_completed,
        "steps_total": task.steps_total,
        "activity": task.activity,
        "updated_at": plain(task.updated_at),
        "dependencies": plain(links.dependencies.get(task.uuid, [])),
        "failed_by": links.failed_by.get(task.uuid, []),
    }


def _block_row(entry: BlocklistEntry) -> dict[str, Any]:
    return {
        "worker": {"uuid": plain(entry.worker_uuid), "name": entry.worker_name},
        "task_type": entry.task_type,
        "created_at": plain(entry.created_at),
    }


def _history_row(entry: HistoryEntry) -> dict[str, Any]:
    return {
        "cursor": entry.cursor,
        "task": plain(entry.task_uuid),
        "old_status": entry.old_status,
        "new_status": entry.new_status,
        "reason": entry.reason,
        "who": entry.who,
        "at": plain(entry.at),
    }


async def _listed_tasks(store: Store, job: UUID, limit: int) -> list[Task]:
    """The job's first ``limit`` tasks in authoring order, a keyset page at a time."""
    listed: list[Task] = []
    after: UUID | None = None
    while len(listed) < limit:
        wanted = min(limit - len(listed), MAX_LIMIT)
        page = await store.tasks.page_of_job(job, after=after, limit=wanted)
        listed += page
        if len(page) < wanted:
            break
        after = page[-1].uuid
    return listed


async def job_detail(
    store: Store,
    job_uuid: UUID | str,
    *,
    task_limit: int = DEFAULT_TASK_LIMIT,
    history_limit: int = DEFAULT_HISTORY_LIMIT,
) -> dict[str, Any]:
    """One job with its first ``task_limit`` tasks (authoring order; 0 lists
    none), their workers, dependencies and failure lists, the job's task
    counts by status, its blocklist and its first ``history_limit`` status
    changes. ``tasks_not_listed`` says how many tasks were left out.
    NotFound for an unknown job; InvalidInput for a bad argument."""
    job_id = uuid_value(job_uuid, "job")
    limit = integer(task_limit, "task_limit", (0, 10 * MAX_LIMIT))
    history = integer(history_limit, "history_limit", (1, MAX_LIMIT))
    job = await store.jobs.fetch(job_id)
    counts = await store.read(partial(task_counts, job=job_id))
    tasks = await _listed_tasks(store, job_id, limit) if limit else []
    links = await store.read(partial(task_links, tasks=tasks))
    blocklist = await store.blocklist.entries(job_id)
    changes = await store.status_history.of_job(job_id, limit=history + 1)
    total = sum(counts.values())
    return {
        **job_row(job),
        "settings": job.settings,
        "metadata": job.metadata,
        "task_counts": counts,
        "tasks_total": total,
        "tasks": [task_row(task, links) for task in tasks],
        "tasks_not_listed": total - len(tasks),
        "blocklist": [_block_row(entry) for entry in blocklist],
        "history": [_history_row(entry) for entry in changes[:history]],
        "history_more": len(changes) > history,
    }
