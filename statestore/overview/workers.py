"""Workers as plain JSON-ready dicts: a row of the workers listing (with its
current task and tags) and one worker in detail (with its sleep schedule).

A listing costs four queries whatever its length: the page of workers, one
read of their active tasks, one of their tags and one of their sleep
schedules. A worker's secret and its
hash are never part of a shape (:class:`~statestore.farm.Worker` does not
hold them)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from statestore.farm.records import Worker
from statestore.farm.statuses import TaskStatus, WorkerStatus
from statestore.farm.tables import JOBS, MEMBERSHIP, SLEEP_SCHEDULES, TASKS, WORKER_TAGS
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
_SCHEDULES = select(
    SLEEP_SCHEDULES.c.worker_id,
    SLEEP_SCHEDULES.c.is_active,
    SLEEP_SCHEDULES.c.days_of_week,
    SLEEP_SCHEDULES.c.start_time,
    SLEEP_SCHEDULES.c.end_time,
    SLEEP_SCHEDULES.c.next_check,
).where(SLEEP_SCHEDULES.c.worker_id.in_(bindparam("ids", expanding=True)))


def worker_row(
    worker: Worker,
    *,
    current_task: dict[str, Any] | None = None,
    tags: Sequence[dict[str, Any]] = (),
    sleep_schedule: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One worker: identity, status and the status asked of it, when it was
    last seen, what it runs, its current task (if active), tags and sleep
    schedule (None without one)."""
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
            "sleep_schedule": sleep_schedule,
        }
    )
    return row


@dataclass
class _Links:
    """What a worker's row shows beyond the worker's own columns, by worker id."""

    current: dict[int, dict[str, Any]] = field(default_factory=dict)
    tags: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    schedules: dict[int, dict[str, Any]] = field(default_factory=dict)

    def row(self, worker: Worker) -> dict[str, Any]:
        return worker_row(
            worker,
            current_task=self.current.get(worker.id),
            tags=self.tags.get(worker.id, ()),
            sleep_schedule=self.schedules.get(worker.id),
        )


def _links(connection: Connection, ids: list[int]) -> _Links:
    """The current task, the tags and the sleep schedule of each of the workers ``ids``."""
    links = _Links()
    current, tags = links.current, links.tags
    if not ids:
        return links
    for row in connection.execute(_CURRENT_TASKS, {"ids": ids}):
        # A worker runs one task at a time; should it hold several, the oldest is shown.
        current.setdefault(
            int(row.worker_id),
            plain({"uuid": row.uuid, "name": row.name, "job": row.job_uuid, "job_name": row.job_name}),
        )
    for worker_id, uuid, name in connection.execute(_TAGS, {"ids": ids}):
        tags.setdefault(int(worker_id), []).append(plain({"uuid": uuid, "name": name}))
    for schedule in connection.execute(_SCHEDULES, {"ids": ids}).mappings():
        links.schedules[int(schedule["worker_id"])] = _schedule(schedule)
    return links


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
    links = await store.read(partial(_links, ids=[w.id for w in workers]))
    return [links.row(w) for w in workers]


def _schedule(columns: Mapping[Any, Any]) -> dict[str, Any]:
    """A sleep schedule's shape from its columns."""
    shape: dict[str, Any] = plain(
        {
            "is_active": bool(columns["is_active"]),
            "days_of_week": columns["days_of_week"],
            "start_time": columns["start_time"],
            "end_time": columns["end_time"],
            "next_check": columns["next_check"],
        }
    )
    return shape


async def worker_detail(store: Store, worker: UUID | str) -> dict[str, Any]:
    """One worker's row (NotFound if absent or soft-deleted)."""
    found = await store.workers.fetch(worker)
    links = await store.read(partial(_links, ids=[found.id]))
    return links.row(found)
