"""``store.status_history``: every job and task status change the state
machine made, oldest first, in keyset pages.

An entry's ``cursor`` is its row id. Every state-machine change of a job is
made holding the job's row lock (see :mod:`statestore.farm.ripple`), and a
change of a task holding the task's, so within one task cursors follow
commit order: a page read after ``after=cursor`` never misses an entry of
the task committed later with a smaller cursor. Within a job the same holds
for the state machine's entries; a claim's entry is drawn holding the task's
and worker's rows but not the job's (claims of one job do not queue on its
row), so it may commit just after an entry of another task with a larger
cursor. Following a job's changes live, without that gap, is the change
feed's work (it orders by commit).
"""

from __future__ import annotations

from functools import partial
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from statestore.core.pages import page_limit
from statestore.core.runner import Runner
from statestore.core.validate import ROW_ID, integer, uuid_value
from statestore.errors import NotFound
from statestore.farm.records import HistoryEntry
from statestore.farm.tables import JOBS, STATUS_HISTORY, TASKS

__all__ = ["MAX_PAGE", "StatusHistory"]

MAX_PAGE = 10_000

_H = STATUS_HISTORY

_ENTRIES = (
    select(
        _H.c.id,
        JOBS.c.uuid.label("job_uuid"),
        TASKS.c.uuid.label("task_uuid"),
        _H.c.old_status,
        _H.c.new_status,
        _H.c.reason,
        _H.c.who,
        _H.c.at,
    )
    .select_from(_H.join(JOBS, JOBS.c.id == _H.c.job_id).outerjoin(TASKS, TASKS.c.id == _H.c.task_id))
    .where(_H.c.id > bindparam("after"))
    .order_by(_H.c.id)
    .limit(bindparam("limit"))
)

_OF_JOB = _ENTRIES.where(_H.c.job_id == select(JOBS.c.id).where(JOBS.c.uuid == bindparam("uuid")).scalar_subquery())

_OF_TASK = _ENTRIES.where(_H.c.task_id == select(TASKS.c.id).where(TASKS.c.uuid == bindparam("uuid")).scalar_subquery())

_JOB_EXISTS = select(JOBS.c.id).where(JOBS.c.uuid == bindparam("uuid"))

_TASK_EXISTS = select(TASKS.c.id).where(TASKS.c.uuid == bindparam("uuid"))


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def _entry(row: Any) -> HistoryEntry:
    return HistoryEntry(
        cursor=int(row.id),
        job_uuid=_uuid(row.job_uuid),
        task_uuid=None if row.task_uuid is None else _uuid(row.task_uuid),
        old_status=row.old_status,
        new_status=row.new_status,
        reason=row.reason,
        who=row.who,
        at=row.at,
    )


def history_page(connection: Connection, kind: str, uuid: UUID, after: int, limit: int) -> list[HistoryEntry]:
    """A page of the history of job or task ``uuid``; NotFound if it does not exist."""
    statement, exists = (_OF_JOB, _JOB_EXISTS) if kind == "job" else (_OF_TASK, _TASK_EXISTS)
    rows = connection.execute(statement, {"uuid": uuid, "after": after, "limit": limit}).all()
    if not rows and connection.execute(exists, {"uuid": uuid}).first() is None:
        raise NotFound(f"{kind} {uuid} not found")
    return [_entry(row) for row in rows]


class StatusHistory:
    """Every job and task status change the state machine made."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    async def of_job(self, job: UUID | str, *, after: int | None = None, limit: int = 100) -> list[HistoryEntry]:
        """The job's changes, its tasks' included, oldest first: at most
        ``limit`` after the entry whose cursor is ``after``. NotFound for an
        unknown job."""
        return await self._page("job", job, after, limit)

    async def of_task(self, task: UUID | str, *, after: int | None = None, limit: int = 100) -> list[HistoryEntry]:
        """The task's changes, oldest first, as :meth:`of_job` pages them."""
        return await self._page("task", task, after, limit)

    async def _page(self, kind: str, uuid: object, after: object, limit: object) -> list[HistoryEntry]:
        unit = partial(
            history_page,
            kind=kind,
            uuid=uuid_value(uuid, kind),
            after=0 if after is None else integer(after, "history cursor (after)", (0, ROW_ID[1])),
            limit=page_limit(limit, MAX_PAGE),
        )
        return await self._runner.read(unit)
