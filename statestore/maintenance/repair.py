"""Drift of the farm model's maintained columns, found and repaired.

Every writer keeps these right in its own transaction (see
:mod:`statestore.farm.derived`); they drift only when something bypasses
the writers: a hand-made UPDATE, a restore of part of a table, a bug. A
drifted ``pending_dependencies`` or ``job_schedulable`` keeps a task out of
the scheduler's index for good, so ``statestore check`` looks for drift and
``statestore check --repair`` fixes it.

The kinds of maintained column, each computed from its sources by one
set-based query over the whole store (never one query per row):

* ``tasks.pending_dependencies`` — the task's dependencies not completed;
* ``tasks.job_priority`` — the job's priority;
* ``tasks.job_schedulable`` — whether the job's status lets its tasks be
  handed out (:func:`~statestore.farm.derived.schedulable`);
* ``jobs.steps_completed`` and ``jobs.steps_total`` — the sums over the
  job's tasks.

:func:`find_drift` reads in one snapshot, so what writers commit together
never looks like drift. :func:`repair` works job by job, each in a short
transaction that takes the writers' locks first (:func:`lock_job`), finds
the job's drift again under them (a writer may have fixed it meanwhile)
and rewrites it with the writers' own functions, so it is safe while
workers run.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any
from uuid import UUID

from sqlalchemy import Integer, and_, bindparam, case, exists, func, or_, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql import ColumnElement, Select, Subquery
from sqlalchemy.sql.elements import BindParameter

from statestore.core.base import IdType
from statestore.core.validate import integer
from statestore.farm.derived import (
    copy_job_priority,
    copy_job_schedulable,
    lock_job,
    recount_job,
    resum_steps,
    schedulable,
)
from statestore.farm.enabling import WorkSignal, enable_work, write_enabling
from statestore.farm.statuses import SCHEDULABLE_JOB_STATUSES, TaskStatus
from statestore.farm.tables import DEPENDENCIES, JOBS, TASKS
from statestore.store import Store

__all__ = ["MAINTAINED_COLUMNS", "Drift", "find_drift", "repair"]

MAINTAINED_COLUMNS = (
    ("tasks", "pending_dependencies"),
    ("tasks", "job_priority"),
    ("tasks", "job_schedulable"),
    ("jobs", "steps_completed"),
    ("jobs", "steps_total"),
)
"""Every (table, column) the farm model maintains, in the order drift is reported."""

_MOST = 2**63 - 1


@dataclass(frozen=True)
class Drift:
    """One maintained column of one row that differs from what its sources say."""

    table: str
    """``tasks`` or ``jobs``."""
    uuid: UUID
    """The row's uuid."""
    column: str
    stored: object
    """The value in the row."""
    expected: object
    """The value computed from its sources."""

    def as_dict(self) -> dict[str, Any]:
        """As a plain JSON-ready dict."""
        return {
            "table": self.table,
            "uuid": str(self.uuid),
            "column": self.column,
            "stored": self.stored,
            "expected": self.expected,
        }


# -- the queries: one per kind of column, over the store or one job ----------------

_JOB: BindParameter[int] = bindparam("b_job_id", type_=IdType)
_DEPENDENCY = TASKS.alias("dependency")
_OWNER = TASKS.alias("owner")
_SCHEDULABLE_VALUES = sorted(status.value for status in SCHEDULABLE_JOB_STATUSES)


def _pending_counts(one_job: bool) -> Subquery:
    """``(task_id, n)``: dependencies not completed, of each task that has any."""
    counts = (
        select(
            DEPENDENCIES.c.task_id,
            func.sum(case((_DEPENDENCY.c.status != TaskStatus.COMPLETED.value, 1), else_=0), type_=Integer).label("n"),
        )
        .select_from(DEPENDENCIES.join(_DEPENDENCY, _DEPENDENCY.c.id == DEPENDENCIES.c.dependency_id))
        .group_by(DEPENDENCIES.c.task_id)
    )
    if one_job:
        counts = counts.join(_OWNER, _OWNER.c.id == DEPENDENCIES.c.task_id).where(_OWNER.c.job_id == _JOB)
    return counts.subquery("counts")


def _pending_query(one_job: bool) -> Select[Any]:
    counts = _pending_counts(one_job)
    # A task without dependencies has no row in ``counts``: it expects 0.
    expected = func.coalesce(counts.c.n, 0)
    query = (
        select(TASKS.c.job_id, TASKS.c.uuid, TASKS.c.pending_dependencies, expected.label("expected"))
        .select_from(TASKS.outerjoin(counts, counts.c.task_id == TASKS.c.id))
        .where(TASKS.c.pending_dependencies != expected)
        .order_by(TASKS.c.id)
    )
    return query.where(TASKS.c.job_id == _JOB) if one_job else query


def _priority_query(one_job: bool) -> Select[Any]:
    query = (
        select(TASKS.c.job_id, TASKS.c.uuid, TASKS.c.job_priority, JOBS.c.priority)
        .select_from(TASKS.join(JOBS, JOBS.c.id == TASKS.c.job_id))
        .where(TASKS.c.job_priority != JOBS.c.priority)
        .order_by(TASKS.c.id)
    )
    return query.where(TASKS.c.job_id == _JOB) if one_job else query


def _schedulable_query(one_job: bool) -> Select[Any]:
    runs: ColumnElement[bool] = JOBS.c.status.in_(_SCHEDULABLE_VALUES)
    # Spelled as two cases, not ``job_schedulable <> (status IN …)``: every
    # dialect compares a boolean column with a predicate its own way.
    differs = or_(and_(TASKS.c.job_schedulable, ~runs), and_(~TASKS.c.job_schedulable, runs))
    query = (
        select(TASKS.c.job_id, TASKS.c.uuid, TASKS.c.job_schedulable, JOBS.c.status)
        .select_from(TASKS.join(JOBS, JOBS.c.id == TASKS.c.job_id))
        .where(differs)
        .order_by(TASKS.c.id)
    )
    return query.where(TASKS.c.job_id == _JOB) if one_job else query


def _steps_query(one_job: bool) -> Select[Any]:
    sums = select(
        TASKS.c.job_id,
        func.sum(TASKS.c.steps_completed, type_=Integer).label("done"),
        func.sum(TASKS.c.steps_total, type_=Integer).label("total"),
    ).group_by(TASKS.c.job_id)
    if one_job:
        sums = sums.where(TASKS.c.job_id == _JOB)
    summed = sums.subquery("sums")
    # A job without tasks has no row in ``sums``: it expects 0 and 0.
    done, total = func.coalesce(summed.c.done, 0), func.coalesce(summed.c.total, 0)
    query = (
        select(
            JOBS.c.id, JOBS.c.uuid, JOBS.c.steps_completed, done.label("done"), JOBS.c.steps_total, total.label("total")
        )
        .select_from(JOBS.outerjoin(summed, summed.c.job_id == JOBS.c.id))
        .where(or_(JOBS.c.steps_completed != done, JOBS.c.steps_total != total))
        .order_by(JOBS.c.id)
    )
    return query.where(JOBS.c.id == _JOB) if one_job else query


def _uuid(value: object) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def _pending_drift(row: Row[Any]) -> list[Drift]:
    # int(): MariaDB's SUM is a DECIMAL.
    return [Drift("tasks", _uuid(row.uuid), "pending_dependencies", int(row.pending_dependencies), int(row.expected))]


def _priority_drift(row: Row[Any]) -> list[Drift]:
    return [Drift("tasks", _uuid(row.uuid), "job_priority", int(row.job_priority), int(row.priority))]


def _schedulable_drift(row: Row[Any]) -> list[Drift]:
    return [Drift("tasks", _uuid(row.uuid), "job_schedulable", bool(row.job_schedulable), schedulable(row.status))]


def _steps_drift(row: Row[Any]) -> list[Drift]:
    found = []
    if int(row.steps_completed) != int(row.done):
        found.append(Drift("jobs", _uuid(row.uuid), "steps_completed", int(row.steps_completed), int(row.done)))
    if int(row.steps_total) != int(row.total):
        found.append(Drift("jobs", _uuid(row.uuid), "steps_total", int(row.steps_total), int(row.total)))
    return found


_KINDS = (
    (_pending_query, _pending_drift),
    (_priority_query, _priority_drift),
    (_schedulable_query, _schedulable_drift),
    (_steps_query, _steps_drift),
)

_WHOLE = [(query(False), drift_of) for query, drift_of in _KINDS]
_OF_JOB = [(query(True), drift_of) for query, drift_of in _KINDS]


def _drift(connection: Connection, *, job_id: int | None, limit: int | None) -> list[tuple[int, Drift]]:
    """``(job id, drift)`` of the store, or of job ``job_id``; at most ``limit``."""
    found: list[tuple[int, Drift]] = []
    params = {} if job_id is None else {"b_job_id": job_id}
    for query, drift_of in _WHOLE if job_id is None else _OF_JOB:
        if limit is not None:
            if len(found) >= limit:
                break
            query = query.limit(limit - len(found))
        for row in connection.execute(query, params):
            found.extend((int(row[0]), drift) for drift in drift_of(row))
    return found if limit is None else found[:limit]


async def find_drift(store: Store, *, limit: int | None = None) -> list[Drift]:
    """Every maintained column whose stored value differs from the one
    computed from its sources (at most ``limit``), in the order of
    :data:`MAINTAINED_COLUMNS`, then by row. Reads one snapshot; writes nothing."""
    if limit is not None:
        limit = integer(limit, "limit", (1, _MOST))
    found = await store.read(partial(_drift, job_id=None, limit=limit))
    return [drift for _, drift in found]


# -- the repair: job by job, under the writers' locks ------------------------------

_JOB_ROW = select(JOBS.c.priority, JOBS.c.status).where(JOBS.c.id == _JOB)

# recount_job recounts the tasks that have dependencies; a task without any
# that has a count (the hand-edited case) is set to 0 here.
_ZERO_WITHOUT_DEPENDENCIES = (
    update(TASKS)
    .where(
        TASKS.c.job_id == _JOB,
        TASKS.c.pending_dependencies != 0,
        ~exists().where(DEPENDENCIES.c.task_id == TASKS.c.id),
    )
    .values(pending_dependencies=0, updated_at=TASKS.c.updated_at)
)

_CLAIM_COLUMNS = frozenset({"pending_dependencies", "job_priority", "job_schedulable"})
"""Columns of the scheduler's index: fixing one may let a task be claimed."""


def _repair_job(connection: Connection, job_id: int, work: WorkSignal | None = None) -> list[Drift]:
    """Lock job ``job_id`` as a bulk change of its tasks does, find its drift
    under the lock and rewrite what drifted; the drift found."""
    lock_job(connection, job_id)
    job = connection.execute(_JOB_ROW, {"b_job_id": job_id}).first()
    if job is None:  # deleted since the drift was found
        return []
    found = [drift for _, drift in _drift(connection, job_id=job_id, limit=None)]
    columns = {drift.column for drift in found}
    if "pending_dependencies" in columns:
        recount_job(connection, job_id)
        connection.execute(_ZERO_WITHOUT_DEPENDENCIES, {"b_job_id": job_id})
    if "job_priority" in columns:
        copy_job_priority(connection, job_id, int(job.priority))
    if "job_schedulable" in columns:
        copy_job_schedulable(connection, job_id, str(job.status))
    if columns & {"steps_completed", "steps_total"}:
        resum_steps(connection, job_id)
    if columns & _CLAIM_COLUMNS:
        enable_work(connection, work)
    return found


def _drifted_jobs(connection: Connection) -> list[int]:
    return sorted({job_id for job_id, _ in _drift(connection, job_id=None, limit=None)})


async def repair(store: Store) -> list[Drift]:
    """Fix every drifted maintained column; the drift fixed, job by job.

    One short transaction per drifted job, taking the locks the writers
    take, so it may run while workers claim and report. Drift a writer
    fixed in the meantime is not reported; running it again finds nothing
    to do. Wakes claim waiters when a task may have become claimable."""
    fixed: list[Drift] = []
    for job_id in await store.read(_drifted_jobs):
        fixed.extend(await write_enabling(store.runner, partial(_repair_job, job_id=job_id)))
    return fixed
