"""Keyset pages of farm listings: a job's tasks, a worker's tasks, workers — by status.

The same pages as the flow model's (:mod:`statestore.core.pages`): a page
continues after the record whose uuid is ``after``, iteration continues after
the last row's position, so records deleted meanwhile neither end nor repeat
it. Each page is one SELECT; only an empty page costs one more query, which
says why when a parent or the cursor is gone (NotFound). Every argument is
checked before any SQL.

The repositories get these methods by inheriting :class:`TaskListings` and
:class:`WorkerListings`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from enum import Enum
from functools import partial
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import Column, ColumnElement, and_, select
from sqlalchemy.engine import Connection

from statestore.core.pages import (
    BY_ID,
    DEFAULT_PAGE,
    Cursor,
    Page,
    SortKey,
    check_anchors,
    cursor_value,
    keyset_after,
    last_position,
    page_limit,
    stream,
)
from statestore.core.runner import Runner
from statestore.core.validate import enum_value, uuid_value
from statestore.errors import InvalidInput
from statestore.farm.lookups import LIVE
from statestore.farm.records import Task, Worker
from statestore.farm.rows import WORKER_COLUMNS, task_from_row, worker_from_row
from statestore.farm.statuses import TaskStatus, WorkerStatus
from statestore.farm.tables import JOBS, TASKS, WORKERS

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "OFFLOAD_ROWS",
    "TaskListings",
    "WorkerListings",
    "in_statuses",
    "listing_limit",
    "page_tasks_of_job",
    "page_tasks_of_worker",
    "page_workers",
    "statuses_value",
]

DEFAULT_LIMIT = 100
"""Records per page unless a caller asks for another number."""

MAX_LIMIT = 10_000
"""The most records one page may hold."""

OFFLOAD_ROWS = 500
"""Pages that may hold more records than this are decoded off the event loop's thread."""

E = TypeVar("E", bound=Enum)


def statuses_value(enum: type[E], statuses: object, where: str) -> list[E] | None:
    """None (any status), or the distinct members of ``statuses``: a
    collection (not a string) of ``enum`` members or their values. An empty
    collection matches no record."""
    if statuses is None:
        return None
    if isinstance(statuses, (str, bytes)) or not isinstance(statuses, Collection):
        raise InvalidInput(f"{where}: expected a collection of {enum.__name__}, got {type(statuses).__name__}")
    return list(dict.fromkeys(enum_value(enum, status, where) for status in statuses))


def listing_limit(limit: object, where: str = "limit") -> int:
    """A page size: an integer from 1 to :data:`MAX_LIMIT`."""
    try:
        return page_limit(limit, MAX_LIMIT)
    except InvalidInput as error:
        raise InvalidInput(str(error).replace("limit", where, 1)) from None


def in_statuses(column: Column[Any], statuses: list[E] | None) -> list[ColumnElement[bool]]:
    """The WHERE terms limiting ``column`` to ``statuses`` (none for None)."""
    return [] if statuses is None else [column.in_([status.value for status in statuses])]


_TASK_COLUMNS = (*TASKS.c, JOBS.c.uuid.label("job_uuid"), WORKERS.c.uuid.label("worker_uuid"))
"""What :func:`task_from_row` reads: the task, its job's uuid, its worker's uuid."""

_BY_INDEX = SortKey("index_in_job")
"""A job's tasks in authoring order, as :meth:`Tasks.of_job` lists them; the
unique index on (job_id, index_in_job) serves it."""


def page_tasks_of_job(
    connection: Connection, *, job: UUID, statuses: list[TaskStatus] | None, after: Cursor, limit: int
) -> Page[Task]:
    """Up to ``limit`` tasks of job ``job`` in authoring order, after ``after``."""
    source = TASKS.join(JOBS, JOBS.c.id == TASKS.c.job_id).outerjoin(WORKERS, WORKERS.c.id == TASKS.c.worker_id)
    statement = (
        select(*_TASK_COLUMNS)
        .select_from(source)
        .where(JOBS.c.uuid == job, keyset_after(TASKS, after, _BY_INDEX), *in_statuses(TASKS.c.status, statuses))
        .order_by(*_BY_INDEX.order_by(TASKS))
        .limit(limit)
    )
    rows = connection.execute(statement).mappings().all()
    if not rows:
        check_anchors(connection, TASKS, after, "task", {f"job {job} not found": JOBS.c.uuid == job})
    return [task_from_row(row) for row in rows], last_position(rows, _BY_INDEX)


def page_tasks_of_worker(
    connection: Connection, *, worker: UUID, statuses: list[TaskStatus] | None, after: Cursor, limit: int
) -> Page[Task]:
    """Up to ``limit`` tasks of worker ``worker`` (not soft-deleted) by id, after ``after``."""
    source = TASKS.join(JOBS, JOBS.c.id == TASKS.c.job_id).join(WORKERS, WORKERS.c.id == TASKS.c.worker_id)
    statement = (
        select(*_TASK_COLUMNS)
        .select_from(source)
        .where(WORKERS.c.uuid == worker, LIVE, keyset_after(TASKS, after), *in_statuses(TASKS.c.status, statuses))
        .order_by(*BY_ID.order_by(TASKS))
        .limit(limit)
    )
    rows = connection.execute(statement).mappings().all()
    if not rows:
        parent = {f"worker {worker} not found": and_(WORKERS.c.uuid == worker, LIVE)}
        check_anchors(connection, TASKS, after, "task", parent)
    return [task_from_row(row) for row in rows], last_position(rows, BY_ID)


def page_workers(
    connection: Connection, *, statuses: list[WorkerStatus] | None, after: Cursor, limit: int
) -> Page[Worker]:
    """Up to ``limit`` workers (not soft-deleted) by id, after ``after``."""
    statement = (
        select(*WORKER_COLUMNS)
        .where(LIVE, keyset_after(WORKERS, after), *in_statuses(WORKERS.c.status, statuses))
        .order_by(*BY_ID.order_by(WORKERS))
        .limit(limit)
    )
    rows = connection.execute(statement).mappings().all()
    if not rows:
        check_anchors(connection, WORKERS, after, "worker")
    return [worker_from_row(row) for row in rows], last_position(rows, BY_ID)


class TaskListings:
    """Keyset pages of a job's or a worker's tasks (methods of ``store.tasks``)."""

    _runner: Runner

    async def page_of_job(
        self,
        job: UUID | str,
        *,
        statuses: Collection[TaskStatus | str] | None = None,
        after: UUID | str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[Task]:
        """Up to ``limit`` tasks of job ``job`` in authoring order (index in
        the job), only those in ``statuses`` if given, after task ``after``.
        NotFound if the job or the task ``after`` does not exist."""
        unit = partial(
            page_tasks_of_job,
            job=uuid_value(job, "job uuid"),
            statuses=statuses_value(TaskStatus, statuses, "task statuses"),
            after=cursor_value(after),
            limit=listing_limit(limit),
        )
        return (await self._runner.read(unit, offload=limit > OFFLOAD_ROWS))[0]

    def iterate_of_job(
        self,
        job: UUID | str,
        *,
        statuses: Collection[TaskStatus | str] | None = None,
        page_size: int = DEFAULT_PAGE,
    ) -> AsyncIterator[Task]:
        """Every task of job ``job`` in authoring order (those in ``statuses``
        if given), fetched ``page_size`` at a time. Arguments are checked
        here; NotFound (an unknown job) comes with the first page."""
        unit = partial(
            page_tasks_of_job,
            job=uuid_value(job, "job uuid"),
            statuses=statuses_value(TaskStatus, statuses, "task statuses"),
            limit=listing_limit(page_size, "page_size"),
        )
        return stream(lambda after: self._runner.read(partial(unit, after=after), offload=page_size > OFFLOAD_ROWS))

    async def page_of_worker(
        self,
        worker: UUID | str,
        *,
        statuses: Collection[TaskStatus | str] | None = None,
        after: UUID | str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[Task]:
        """Up to ``limit`` tasks assigned to worker ``worker``, oldest (by id)
        first, only those in ``statuses`` if given, after task ``after``.
        NotFound if the worker is absent or soft-deleted, or the task
        ``after`` does not exist."""
        unit = partial(
            page_tasks_of_worker,
            worker=uuid_value(worker, "worker uuid"),
            statuses=statuses_value(TaskStatus, statuses, "task statuses"),
            after=cursor_value(after),
            limit=listing_limit(limit),
        )
        return (await self._runner.read(unit, offload=limit > OFFLOAD_ROWS))[0]

    def iterate_of_worker(
        self,
        worker: UUID | str,
        *,
        statuses: Collection[TaskStatus | str] | None = None,
        page_size: int = DEFAULT_PAGE,
    ) -> AsyncIterator[Task]:
        """Every task assigned to worker ``worker`` by id (those in
        ``statuses`` if given), fetched ``page_size`` at a time."""
        unit = partial(
            page_tasks_of_worker,
            worker=uuid_value(worker, "worker uuid"),
            statuses=statuses_value(TaskStatus, statuses, "task statuses"),
            limit=listing_limit(page_size, "page_size"),
        )
        return stream(lambda after: self._runner.read(partial(unit, after=after), offload=page_size > OFFLOAD_ROWS))


class WorkerListings:
    """Keyset pages of workers (methods of ``store.workers``)."""

    _runner: Runner

    async def page(
        self,
        *,
        statuses: Collection[WorkerStatus | str] | None = None,
        after: UUID | str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[Worker]:
        """Up to ``limit`` workers (not soft-deleted) in creation (id) order,
        only those in ``statuses`` if given, after worker ``after``
        (NotFound if no worker has that uuid)."""
        unit = partial(
            page_workers,
            statuses=statuses_value(WorkerStatus, statuses, "worker statuses"),
            after=cursor_value(after),
            limit=listing_limit(limit),
        )
        return (await self._runner.read(unit))[0]

    def iterate(
        self, *, statuses: Collection[WorkerStatus | str] | None = None, page_size: int = DEFAULT_PAGE
    ) -> AsyncIterator[Worker]:
        """Every worker (not soft-deleted) in creation order, those in
        ``statuses`` if given, fetched ``page_size`` at a time."""
        unit = partial(
            page_workers,
            statuses=statuses_value(WorkerStatus, statuses, "worker statuses"),
            limit=listing_limit(page_size, "page_size"),
        )
        return stream(lambda after: self._runner.read(partial(unit, after=after)))
