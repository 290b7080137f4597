"""Upkeep of ``tasks.pending_dependencies``: how many of a task's
dependencies are not completed.

The scheduler's partial index holds only tasks with a schedulable status and
no pending dependency, so every write that changes a task's status must keep
the count right in the same transaction. The count is *recomputed* from the
dependencies' current statuses, never incremented, so it is right whatever
the old status was and calling it twice is harmless.

The dependents are locked (``SELECT … FOR UPDATE``; SQLite has one writer
and needs none) *before* the status change, and recounted after it: on
PostgreSQL's READ COMMITTED, two transactions completing the two
dependencies of one task would otherwise each count the other's change as
not yet done, and the task would never become claimable. Behind the lock the
recount is a new statement, which sees what the other committed. Locking
first also keeps MariaDB out of a deadlock: its recount reads the
dependencies with shared locks, which would wait for the other writer's
dependency row while that writer waits for the dependent.

So: :func:`lock_dependents_of` (or :func:`lock_dependents`), change the
status, :func:`recount`; for a bulk change of a job's tasks :func:`lock_job`,
change them, :func:`recount_job`. :func:`refresh_dependents` and
:func:`refresh_job` lock and recount after the change, for callers that only
learn which tasks changed from the change itself (correct, but on MariaDB
two of them can deadlock: TransactionConflict, retry the unit).

Both are an index probe when nothing depends on the changed tasks (the common
case of a worker finishing a leaf task): ``ix_task_dependencies_dependency_id``
finds the dependents of a task.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from uuid import UUID

from sqlalchemy import Integer, bindparam, case, exists, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Subquery, Update

from statestore.farm.job_tables import DEPENDENCIES, TASKS
from statestore.farm.statuses import TaskStatus

__all__ = [
    "lock_dependents",
    "lock_dependents_of",
    "lock_job",
    "recount",
    "recount_job",
    "refresh_dependents",
    "refresh_job",
]

_CHUNK = 500  # ids per IN (…) list, well under every dialect's parameter limit

_DEPENDENCY = TASKS.alias("dependency")
_NOT_COMPLETED = case((_DEPENDENCY.c.status != TaskStatus.COMPLETED.value, 1), else_=0)


def _counts(task_ids: bool) -> Subquery:
    """``(task_id, n)``: the pending count of each task that has dependencies,
    limited to ``:ids`` (``task_ids``) or to the tasks of ``:job_id``."""
    counts = (
        select(DEPENDENCIES.c.task_id, func.sum(_NOT_COMPLETED, type_=Integer).label("n"))
        .select_from(DEPENDENCIES.join(_DEPENDENCY, _DEPENDENCY.c.id == DEPENDENCIES.c.dependency_id))
        .group_by(DEPENDENCIES.c.task_id)
    )
    if task_ids:
        counts = counts.where(DEPENDENCIES.c.task_id.in_(bindparam("b_ids", expanding=True)))
    else:
        owner = TASKS.alias("owner")
        counts = counts.join(owner, owner.c.id == DEPENDENCIES.c.task_id).where(owner.c.job_id == bindparam("b_job_id"))
    # A derived table with GROUP BY is materialised, which is also what lets
    # MySQL/MariaDB update ``tasks`` from a query that reads ``tasks``.
    return counts.subquery("counts")


def _recount(counts: Subquery) -> Update:
    # ``updated_at`` is kept: the count is derived state, not a change of the task.
    return (
        update(TASKS)
        .where(TASKS.c.id == counts.c.task_id, TASKS.c.pending_dependencies != counts.c.n)
        .values(pending_dependencies=counts.c.n, updated_at=TASKS.c.updated_at)
    )


_RECOUNT_TASKS = _recount(_counts(task_ids=True))
_RECOUNT_JOB = _recount(_counts(task_ids=False))

_LOCK_DEPENDENTS = (
    select(TASKS.c.id)
    .where(
        TASKS.c.id.in_(
            select(DEPENDENCIES.c.task_id).where(DEPENDENCIES.c.dependency_id.in_(bindparam("ids", expanding=True)))
        )
    )
    .order_by(TASKS.c.id)
    .with_for_update()
)
_LOCK_DEPENDENTS_OF_JOB = (
    select(TASKS.c.id)
    .where(
        TASKS.c.job_id == bindparam("b_job_id"),
        exists().where(DEPENDENCIES.c.task_id == TASKS.c.id),
    )
    .order_by(TASKS.c.id)
    .with_for_update()
)


_LOCK_DEPENDENTS_OF_UUID = (
    select(TASKS.c.id)
    .where(
        TASKS.c.id.in_(
            select(DEPENDENCIES.c.task_id)
            .join(_DEPENDENCY, _DEPENDENCY.c.id == DEPENDENCIES.c.dependency_id)
            .where(_DEPENDENCY.c.uuid == bindparam("uuid"))
        )
    )
    .order_by(TASKS.c.id)
    .with_for_update()
)


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def lock_dependents(connection: Connection, task_ids: Collection[int]) -> list[int]:
    """Lock the tasks depending on one of ``task_ids``; their ids, ascending."""
    dependents: set[int] = set()
    for chunk in _chunks(sorted(set(task_ids))):
        dependents.update(connection.execute(_LOCK_DEPENDENTS, {"ids": list(chunk)}).scalars())
    return sorted(dependents)


def lock_dependents_of(connection: Connection, uuid: UUID) -> list[int]:
    """Lock the tasks depending on task ``uuid``; their ids, ascending."""
    return list(connection.execute(_LOCK_DEPENDENTS_OF_UUID, {"uuid": uuid}).scalars())


def recount(connection: Connection, task_ids: Collection[int]) -> None:
    """Recount ``pending_dependencies`` of ``task_ids`` themselves (tasks
    locked by :func:`lock_dependents`, or whose dependencies were just inserted)."""
    for chunk in _chunks(sorted(set(task_ids))):
        connection.execute(_RECOUNT_TASKS, {"b_ids": list(chunk)})


def refresh_dependents(connection: Connection, task_ids: Collection[int]) -> None:
    """Recount ``pending_dependencies`` of every task depending on one of
    ``task_ids``, whose status was just changed. (Where the tasks are known
    before the change, prefer :func:`lock_dependents` first and
    :func:`recount` after: see the module docstring.)"""
    dependents = lock_dependents(connection, task_ids)
    if dependents:
        recount(connection, dependents)


def lock_job(connection: Connection, job_id: int) -> bool:
    """Lock the tasks of job ``job_id`` that have dependencies; whether there are any."""
    return bool(connection.execute(_LOCK_DEPENDENTS_OF_JOB, {"b_job_id": job_id}).all())


def recount_job(connection: Connection, job_id: int) -> None:
    """Recount ``pending_dependencies`` of every task of job ``job_id``
    (dependencies never cross jobs)."""
    connection.execute(_RECOUNT_JOB, {"b_job_id": job_id})


def refresh_job(connection: Connection, job_id: int) -> None:
    """:func:`lock_job` and :func:`recount_job`, after a bulk status change
    of the job's tasks."""
    if lock_job(connection, job_id):
        recount_job(connection, job_id)
