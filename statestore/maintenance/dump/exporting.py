"""Export: a store as the dump's lines, streamed a keyset page at a time
(see :mod:`statestore.maintenance.dump` for the format and its order)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, exists, or_, select, true, tuple_
from sqlalchemy.engine import Connection

from statestore.core.validate import (
    aware_datetime,
)
from statestore.errors import InvalidInput
from statestore.farm.rows import JOB_COLUMNS, WORKER_COLUMNS
from statestore.farm.tables import (
    BLOCKS,
    DEPENDENCIES,
    FAILURES,
    JOBS,
    LAST_RENDERED,
    MEMBERSHIP,
    SLEEP_SCHEDULES,
    STATUS_HISTORY,
    TASKS,
    WORKER_TAGS,
    WORKERS,
)
from statestore.flows.tables import ATOMS, BOOKS, FLOWS
from statestore.maintenance.dump.format import FORMAT, FORMAT_VERSION, PAGE, PARENT_PAGE
from statestore.overview.json_values import plain
from statestore.store import Store

__all__ = ["export_lines"]


def _line(kind: str, values: Mapping[str, Any]) -> str:
    return json.dumps({"kind": kind, **plain(dict(values))}, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _stamps(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {"created_at": row["created_at"], "updated_at": row["updated_at"]}


def _tag_line(row: Mapping[Any, Any]) -> str:
    return _line(
        "worker_tag", {"uuid": row["uuid"], "name": row["name"], "description": row["description"], **_stamps(row)}
    )


def _worker_line(row: Mapping[str, Any], tags: Sequence[UUID]) -> str:
    types = row["supported_task_types"]
    return _line(
        "worker",
        {
            "uuid": row["uuid"],
            "name": row["name"],
            "address": row["address"],
            "platform": row["platform"],
            "software": row["software"],
            "status": row["status"],
            "last_seen_at": row["last_seen_at"],
            "status_requested": row["status_requested"],
            "lazy_status_request": bool(row["lazy_status_request"]),
            "supported_task_types": types.split(",") if types else [],
            "deleted_at": row["deleted_at"],
            "can_restart": bool(row["can_restart"]),
            "tags": list(tags),
            **_stamps(row),
        },
    )


def _schedule_line(row: Mapping[Any, Any]) -> str:
    return _line(
        "sleep_schedule",
        {
            "uuid": row["uuid"],
            "worker": row["worker_uuid"],
            "is_active": bool(row["is_active"]),
            "days_of_week": row["days_of_week"],
            "start_time": row["start_time"],
            "end_time": row["end_time"],
            "next_check": row["next_check"],
            **_stamps(row),
        },
    )


def _job_line(row: Mapping[Any, Any]) -> str:
    return _line(
        "job",
        {
            "uuid": row["uuid"],
            "name": row["name"],
            "type": row["job_type"],
            "priority": row["priority"],
            "status": row["status"],
            "activity": row["activity"],
            "settings": row["settings"],
            "metadata": row["metadata"],
            "delete_requested_at": row["delete_requested_at"],
            "storage_checkout_id": row["storage_checkout_id"],
            "worker_tag": row["worker_tag_uuid"],
            "steps_completed": row["steps_completed"],
            "steps_total": row["steps_total"],
            **_stamps(row),
        },
    )


def _task_line(row: Mapping[str, Any], dependencies: Sequence[UUID]) -> str:
    return _line(
        "task",
        {
            "uuid": row["uuid"],
            "job": row["job_uuid"],
            "index_in_job": row["index_in_job"],
            "name": row["name"],
            "type": row["type"],
            "priority": row["priority"],
            "status": row["status"],
            "worker": row["worker_uuid"],
            "last_touched_at": row["last_touched_at"],
            "commands": row["commands"],
            "activity": row["activity"],
            "steps_completed": row["steps_completed"],
            "steps_total": row["steps_total"],
            "dependencies": list(dependencies),
            **_stamps(row),
        },
    )


def _jobs_in_scope(since: datetime | None) -> ColumnElement[bool]:
    """A job whose own row, a task, a failure, a blocklist entry or a history
    entry was written at or after ``since``."""
    if since is None:
        return true()
    failed = (
        select(FAILURES.c.task_id)
        .join(TASKS, TASKS.c.id == FAILURES.c.task_id)
        .where(TASKS.c.job_id == JOBS.c.id, FAILURES.c.created_at >= since)
    )
    return or_(
        JOBS.c.updated_at >= since,
        exists().where(TASKS.c.job_id == JOBS.c.id, TASKS.c.updated_at >= since),
        exists(failed),
        exists().where(BLOCKS.c.job_id == JOBS.c.id, BLOCKS.c.created_at >= since),
        exists().where(STATUS_HISTORY.c.job_id == JOBS.c.id, STATUS_HISTORY.c.at >= since),
    )


def _books_in_scope(since: datetime | None) -> ColumnElement[bool]:
    """A logbook whose own row, a flow or an atom was updated at or after ``since``."""
    if since is None:
        return true()
    atoms = (
        select(ATOMS.c.id)
        .join(FLOWS, FLOWS.c.id == ATOMS.c.flow_detail_id)
        .where(FLOWS.c.logbook_id == BOOKS.c.id, ATOMS.c.updated_at >= since)
    )
    return or_(
        BOOKS.c.updated_at >= since,
        exists().where(FLOWS.c.logbook_id == BOOKS.c.id, FLOWS.c.updated_at >= since),
        exists(atoms),
    )


def _after(columns: Sequence[Any], last: tuple[Any, ...] | None) -> ColumnElement[bool]:
    """Keyset condition: rows after ``last`` in the order of ``columns``."""
    if last is None:
        return true()
    if len(columns) == 1:
        return columns[0] > last[0]  # type: ignore[no-any-return]
    return tuple_(*columns) > tuple_(*last)


def _rows_of(statement: Any) -> Callable[[Connection], list[Any]]:
    """A read unit: the rows of ``statement``."""
    return lambda connection: list(connection.execute(statement).all())


def _mappings_of(statement: Any) -> Callable[[Connection], list[Any]]:
    """A read unit: the rows of ``statement`` as mappings."""
    return lambda connection: list(connection.execute(statement).mappings())


async def _pages(
    store: Store,
    statement: Any,
    keys: Sequence[Any],
    names: Sequence[str],
    size: int = PAGE,
) -> AsyncIterator[list[Any]]:
    """Every row of ``statement`` in the order of ``keys`` (labelled
    ``names`` in its rows), ``size`` rows per read."""
    last: tuple[Any, ...] | None = None
    while True:
        query = statement.where(_after(keys, last)).order_by(*keys).limit(size)
        rows = await store.read(_mappings_of(query))
        if rows:
            yield rows
        if len(rows) < size:
            return
        last = tuple(rows[-1][name] for name in names)


async def _farm_lines(store: Store, since: datetime | None) -> AsyncIterator[str]:
    since_tags = true() if since is None else WORKER_TAGS.c.updated_at >= since
    async for rows in _pages(store, select(WORKER_TAGS).where(since_tags), [WORKER_TAGS.c.id], ["id"]):
        for row in rows:
            yield _tag_line(row)

    since_workers = true() if since is None else WORKERS.c.updated_at >= since
    async for rows in _pages(store, select(*WORKER_COLUMNS).where(since_workers), [WORKERS.c.id], ["id"]):
        memberships = (
            select(MEMBERSHIP.c.worker_id, WORKER_TAGS.c.uuid)
            .join(WORKER_TAGS, WORKER_TAGS.c.id == MEMBERSHIP.c.worker_tag_id)
            .where(MEMBERSHIP.c.worker_id.in_([row["id"] for row in rows]))
            .order_by(MEMBERSHIP.c.worker_id, WORKER_TAGS.c.id)
        )
        tags: dict[int, list[UUID]] = {}
        for worker_id, tag in await store.read(_rows_of(memberships)):
            tags.setdefault(worker_id, []).append(tag)
        for row in rows:
            yield _worker_line(row, tags.get(row["id"], []))

    since_schedules = true() if since is None else SLEEP_SCHEDULES.c.updated_at >= since
    schedules = (
        select(SLEEP_SCHEDULES, WORKERS.c.uuid.label("worker_uuid"))
        .join(WORKERS, WORKERS.c.id == SLEEP_SCHEDULES.c.worker_id)
        .where(since_schedules)
    )
    async for rows in _pages(store, schedules, [SLEEP_SCHEDULES.c.id], ["id"]):
        for row in rows:
            yield _schedule_line(row)

    jobs = select(*JOB_COLUMNS).where(_jobs_in_scope(since))
    async for rows in _pages(store, jobs, [JOBS.c.id], ["id"], PARENT_PAGE):
        for row in rows:
            yield _job_line(row)
        async for line in _job_children(store, [row["id"] for row in rows]):
            yield line

    since_rendered = true() if since is None else LAST_RENDERED.c.updated_at >= since
    rendered = await store.read(
        lambda connection: (
            connection.execute(
                select(LAST_RENDERED, JOBS.c.uuid.label("job_uuid"))
                .join(JOBS, JOBS.c.id == LAST_RENDERED.c.job_id)
                .where(since_rendered)
                .order_by(LAST_RENDERED.c.id)
            )
            .mappings()
            .all()
        )
    )
    for row in rendered:
        yield _line("last_rendered", {"uuid": row["uuid"], "job": row["job_uuid"], **_stamps(row)})


_DEPENDENCY = TASKS.alias("dependency")


async def _job_children(store: Store, job_ids: list[int]) -> AsyncIterator[str]:
    """The tasks, failures, blocklist and history of the jobs ``job_ids``."""
    tasks = (
        select(*TASKS.c, JOBS.c.uuid.label("job_uuid"), WORKERS.c.uuid.label("worker_uuid"))
        .select_from(
            TASKS.join(JOBS, JOBS.c.id == TASKS.c.job_id).outerjoin(WORKERS, WORKERS.c.id == TASKS.c.worker_id)
        )
        .where(TASKS.c.job_id.in_(job_ids))
    )
    async for rows in _pages(store, tasks, [TASKS.c.job_id, TASKS.c.index_in_job], ["job_id", "index_in_job"]):
        dependencies = (
            select(DEPENDENCIES.c.task_id, _DEPENDENCY.c.uuid)
            .join(_DEPENDENCY, _DEPENDENCY.c.id == DEPENDENCIES.c.dependency_id)
            .where(DEPENDENCIES.c.task_id.in_([row["id"] for row in rows]))
            .order_by(DEPENDENCIES.c.task_id, _DEPENDENCY.c.index_in_job)
        )
        depends: dict[int, list[UUID]] = {}
        for task_id, uuid in await store.read(_rows_of(dependencies)):
            depends.setdefault(task_id, []).append(uuid)
        for row in rows:
            yield _task_line(row, depends.get(row["id"], []))

    failures = (
        select(
            FAILURES.c.task_id,
            FAILURES.c.worker_id,
            FAILURES.c.created_at,
            TASKS.c.uuid.label("task_uuid"),
            WORKERS.c.uuid.label("worker_uuid"),
        )
        .select_from(
            FAILURES.join(TASKS, TASKS.c.id == FAILURES.c.task_id).join(WORKERS, WORKERS.c.id == FAILURES.c.worker_id)
        )
        .where(TASKS.c.job_id.in_(job_ids))
    )
    async for rows in _pages(store, failures, [FAILURES.c.task_id, FAILURES.c.worker_id], ["task_id", "worker_id"]):
        for row in rows:
            yield _line(
                "task_failure",
                {"task": row["task_uuid"], "worker": row["worker_uuid"], "created_at": row["created_at"]},
            )

    blocks = (
        select(BLOCKS, JOBS.c.uuid.label("job_uuid"), WORKERS.c.uuid.label("worker_uuid"))
        .select_from(BLOCKS.join(JOBS, JOBS.c.id == BLOCKS.c.job_id).join(WORKERS, WORKERS.c.id == BLOCKS.c.worker_id))
        .where(BLOCKS.c.job_id.in_(job_ids))
    )
    keys = [BLOCKS.c.job_id, BLOCKS.c.worker_id, BLOCKS.c.task_type]
    async for rows in _pages(store, blocks, keys, ["job_id", "worker_id", "task_type"]):
        for row in rows:
            yield _line(
                "job_block",
                {
                    "job": row["job_uuid"],
                    "worker": row["worker_uuid"],
                    "task_type": row["task_type"],
                    "created_at": row["created_at"],
                },
            )

    history = (
        select(STATUS_HISTORY, JOBS.c.uuid.label("job_uuid"), TASKS.c.uuid.label("task_uuid"))
        .select_from(
            STATUS_HISTORY.join(JOBS, JOBS.c.id == STATUS_HISTORY.c.job_id).outerjoin(
                TASKS, TASKS.c.id == STATUS_HISTORY.c.task_id
            )
        )
        .where(STATUS_HISTORY.c.job_id.in_(job_ids))
    )
    async for rows in _pages(store, history, [STATUS_HISTORY.c.id], ["id"]):
        for row in rows:
            yield _line(
                "status_history",
                {
                    "job": row["job_uuid"],
                    "task": row["task_uuid"],
                    "old_status": row["old_status"],
                    "new_status": row["new_status"],
                    "reason": row["reason"],
                    "who": row["who"],
                    "at": row["at"],
                },
            )


def _identity(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {"uuid": row["uuid"], "foreign_id": row["foreign_id"], "name": row["name"]}


async def _flow_lines(store: Store, since: datetime | None) -> AsyncIterator[str]:
    books = select(BOOKS).where(_books_in_scope(since))
    async for rows in _pages(store, books, [BOOKS.c.id], ["id"], PARENT_PAGE):
        for row in rows:
            yield _line("logbook", {**_identity(row), "meta": row["meta"], **_stamps(row)})
        book_ids = [row["id"] for row in rows]
        flows = (
            select(FLOWS, BOOKS.c.uuid.label("book_uuid"))
            .join(BOOKS, BOOKS.c.id == FLOWS.c.logbook_id)
            .where(FLOWS.c.logbook_id.in_(book_ids))
        )
        async for flow_rows in _pages(store, flows, [FLOWS.c.id], ["id"]):
            for row in flow_rows:
                yield _line(
                    "flow_detail",
                    {
                        **_identity(row),
                        "logbook": row["book_uuid"],
                        "state": row["state"],
                        "meta": row["meta"],
                        **_stamps(row),
                    },
                )
        atoms = (
            select(ATOMS, FLOWS.c.uuid.label("flow_uuid"))
            .join(FLOWS, FLOWS.c.id == ATOMS.c.flow_detail_id)
            .where(FLOWS.c.logbook_id.in_(book_ids))
        )
        async for atom_rows in _pages(store, atoms, [ATOMS.c.id], ["id"]):
            for row in atom_rows:
                yield _line(
                    "atom_detail",
                    {
                        **_identity(row),
                        "flow_detail": row["flow_uuid"],
                        "atom_kind": row["kind"],
                        "state": row["state"],
                        "intention": row["intention"],
                        "results": row["results"],
                        "failure": row["failure"],
                        "revert_results": row["revert_results"],
                        "revert_failure": row["revert_failure"],
                        "version": row["version"],
                        "meta": row["meta"],
                        **_stamps(row),
                    },
                )


async def export_lines(
    store: Store, *, jobs: bool = True, flows: bool = True, since: datetime | None = None
) -> AsyncIterator[str]:
    """The store as JSON Lines (without line ends): the header, then the
    farm's records if ``jobs``, the flow model's if ``flows``; with
    ``since`` (timezone-aware), only what was updated at or after it (see
    the module docstring). Streamed: a keyset page at a time."""
    if not isinstance(jobs, bool) or not isinstance(flows, bool):
        raise InvalidInput("jobs and flows must be bools")
    if not jobs and not flows:
        raise InvalidInput("nothing to export: jobs and flows are both False")
    cutoff = None if since is None else aware_datetime(since, "since").astimezone(UTC)
    yield json.dumps(
        {
            "kind": "header",
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "schema": await store.schema_revision(),
            "jobs": jobs,
            "flows": flows,
            "since": plain(cutoff),
        },
        separators=(",", ":"),
    )
    if jobs:
        async for line in _farm_lines(store, cutoff):
            yield line
    if flows:
        async for line in _flow_lines(store, cutoff):
            yield line
