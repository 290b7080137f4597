"""Workers as plain JSON-ready dicts: a row of the workers listing (with its
current task and tags) and one worker in detail (with its sleep schedule).

A listing costs three queries whatever its length: the page of workers, one
read of their active tasks and one of their tags. A worker's secret and its
hash are never part of a shape (:class:`~statestore.farm.Worker` does not
hold them)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from functools import partial
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from statestore.farm.records import SleepSchedule, Worker
from statestore.farm.statuses import TaskStatus, WorkerStatus
from statestore.farm.tables import JOBS, MEMBERSHIP, TASKS, WORKER_TAGS
from statestore.overview.json_values import plain
from statestore.store import Store

__all__ = ["worker_detail", "worker_page", "worker_row"]

_CURRENT_TASKS = (
    select(TASKS.c.worker_id, TASKS.c.uuid, TASKS.c.name, JOBS.c.uuid.label("job_uuid"), JOBS.c.name.label("job_name"))
    .join(JOBS, JOBS.c.id == TASKS.c.job_id)
    .where(TASKS.c.worker_id.in_(bindparam("ids", expanding=True)), TASKS.c.status == TaskStatus.ACTIVE.value)
    .order_by(TASKS.c.worker_id, TASKS.c.id)
)
_TAGS = (
    select(MEMBERSHIP.c.worker_id, WORKER_TAGS.c.uuid, WORKER_TAGS.c.name)
    .join(WORKER_TAGS, WORKER_TAGS.c.id == MEMBERSHIP.c.worker_tag_id)
    .where(MEMBERSHIP.c.worker_id.in_(bindparam("ids", expanding=True)))
    .order_by(MEMBERSHIP.c.worker_id, WORKER_TAGS.c.name)
)


def worker_row(
    worker: Worker, *, current_task: dict[str, Any] | None = None, tags: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """One worker: identity, status and the status asked of it, when it was
    last seen, what it runs, its current task (if active) and tags."""
    row: dict[str, Any] = plain(
        {
            "uuid": worker.uuid,
            "name": worker.name,
            "status": worker.status,
            "status_requested": worker.status_requested,
            "lazy_status_request": worker.lazy_status_request,
            "last_seen_at": worker.last_seen_at,
            "address": worker.address,
            "platform": worker.platform,
            "software": worker.software,
            "supported_task_types": list(worker.supported_task_types),
            "can_restart": worker.can_restart,
            "created_at": worker.created_at,
            "updated_at": worker.updated_at,
            "current_task": current_task,
            "tags": list(tags),
        }
    )
    return row


def _links(connection: Connection, ids: list[int]) -> tuple[dict[int, dict[str, Any]], dict[int, list[dict[str, Any]]]]:
    """The current task and the tags of each of the workers ``ids``."""
    current: dict[int, dict[str, Any]] = {}
    tags: dict[int, list[dict[str, Any]]] = {}
    if not ids:
        return current, tags
    for row in connection.execute(_CURRENT_TASKS, {"ids": ids}):
        # A worker runs one task at a time; should it hold several, the oldest is shown.
        current.setdefault(
            int(row.worker_id),
            plain({"uuid": row.uuid, "name": row.name, "job": row.job_uuid, "job_name": row.job_name}),
        )
    for worker_id, uuid, name in connection.execute(_TAGS, {"ids": ids}):
        tags.setdefault(int(worker_id), []).append(plain({"uuid": uuid, "name": name}))
    return current, tags


async def worker_page(
    store: Store,
    *,
    statuses: Collection[WorkerStatus | str] | None = None,
    after: UUID | str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """A keyset page of workers (``store.workers.page``'s arguments, checked
    there) as rows with their current tasks and tags."""
    workers = await store.workers.page(statuses=statuses, after=after, limit=limit)
    current, tags = await store.read(partial(_links, ids=[w.id for w in workers]))
    return [worker_row(w, current_task=current.get(w.id), tags=tags.get(w.id, ())) for w in workers]


def _schedule(schedule: SleepSchedule | None) -> dict[str, Any] | None:
    if schedule is None:
        return None
    shape: dict[str, Any] = plain(
        {
            "is_active": schedule.is_active,
            "days_of_week": schedule.days_of_week,
            "start_time": schedule.start_time,
            "end_time": schedule.end_time,
            "next_check": schedule.next_check,
        }
    )
    return shape


async def worker_detail(store: Store, worker: UUID | str) -> dict[str, Any]:
    """One worker's row with its sleep schedule (NotFound if absent or
    soft-deleted)."""
    found = await store.workers.fetch(worker)
    current, tags = await store.read(partial(_links, ids=[found.id]))
    row = worker_row(found, current_task=current.get(found.id), tags=tags.get(found.id, ()))
    row["sleep_schedule"] = _schedule(await store.sleep_schedules.fetch(found.uuid))
    return row
