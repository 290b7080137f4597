"""Upkeep of ``tasks.pending_dependencies``: how many of a task's
dependencies are not completed.

The scheduler's partial index holds only tasks with a schedulable status and
no pending dependency, so every write that changes a task's status must keep
the count right in the same transaction. The count is *recomputed* from the
dependencies' current statuses, never incremented, so it is right whatever
the old status was and calling it twice is harmless.

Locks, in one order for every writer (SQLite has one writer and needs none):

1. the job's row — shared by a single task's status change
   (:func:`lock_dependents_of`), exclusive for a bulk change of the job's
   tasks (:func:`lock_job`) and for adding tasks to the job. So a status
   change waits for tasks being added to commit, and then sees the new
   dependents; a bulk change and a single one never interleave.
2. the dependents (``SELECT … FOR UPDATE``), *before* the status change:
   on PostgreSQL's READ COMMITTED, two transactions completing the two
   dependencies of one task would otherwise each count the other's change
   as not yet done, and the task would never become claimable.
3. the changed task itself, by the status change; then the recount, a new
   statement, which sees what others committed.

On MariaDB the recount reads the dependencies' statuses with a plain read and
writes the counts by primary key: an UPDATE that reads ``tasks`` in a
subquery takes shared locks on every row it reads there, which deadlocked
with claimers and other completions. Behind the dependents' locks the plain
read is as good as a locked one.

So: :func:`lock_dependents_of`, change the status, :func:`recount`; for a bulk
change of a job's tasks :func:`lock_job`, change them, :func:`recount_job`.

Both are an index probe when nothing depends on the changed tasks (the common
case of a worker finishing a leaf task): ``ix_task_dependencies_dependency_id``
finds the dependents of a task.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from uuid import UUID

from sqlalchemy import Integer, bindparam, case, exists, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select, Subquery, Update

from statestore.core.batches import chunks
from statestore.core.dialect import facts_of
from statestore.farm.statuses import SCHEDULABLE_JOB_STATUSES, TaskStatus
from statestore.farm.tables import DEPENDENCIES, JOBS, TASKS

_DEPENDENCY = TASKS.alias("dependency")


_NOT_COMPLETED = case((_DEPENDENCY.c.status != TaskStatus.COMPLETED.value, 1), else_=0)


def _count_query(task_ids: bool) -> Select[Any]:
    """``(task_id, n)``: the pending count of each task that has dependencies,
    limited to ``:b_ids`` (``task_ids``) or to the tasks of ``:b_job_id``."""
    counts = (
        select(DEPENDENCIES.c.task_id, func.sum(_NOT_COMPLETED, type_=Integer).label("n"))
        .select_from(DEPENDENCIES.join(_DEPENDENCY, _DEPENDENCY.c.id == DEPENDENCIES.c.dependency_id))
        .group_by(DEPENDENCIES.c.task_id)
    )
    if task_ids:
        return counts.where(DEPENDENCIES.c.task_id.in_(bindparam("b_ids", expanding=True)))
    owner = TASKS.alias("owner")
    return counts.join(owner, owner.c.id == DEPENDENCIES.c.task_id).where(owner.c.job_id == bindparam("b_job_id"))


def _recount(counts: Subquery) -> Update:
    # ``updated_at`` is kept: the count is derived state, not a change of the task.
    # A derived table with GROUP BY is materialised, which is also what lets
    # MySQL/MariaDB update ``tasks`` from a query that reads ``tasks``.
    return (
        update(TASKS)
        .where(TASKS.c.id == counts.c.task_id, TASKS.c.pending_dependencies != counts.c.n)
        .values(pending_dependencies=counts.c.n, updated_at=TASKS.c.updated_at)
    )


_COUNTS_OF_TASKS = _count_query(task_ids=True)


_RECOUNT_TASKS = _recount(_COUNTS_OF_TASKS.subquery("counts"))


_RECOUNT_JOB = _recount(_count_query(task_ids=False).subquery("counts"))


_SET_COUNT = (
    update(TASKS)
    .where(TASKS.c.id == bindparam("b_id"), TASKS.c.pending_dependencies != bindparam("b_n"))
    .values(pending_dependencies=bindparam("b_n"), updated_at=TASKS.c.updated_at)
)


_JOB_OF_TASK_SHARED = (
    select(JOBS.c.id)
    .join(TASKS, TASKS.c.job_id == JOBS.c.id)
    .where(TASKS.c.uuid == bindparam("uuid"))
    .with_for_update(read=True, of=JOBS)
)


_JOB_EXCLUSIVE = select(JOBS.c.id).where(JOBS.c.id == bindparam("b_job_id")).with_for_update()


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


def lock_dependents_of(connection: Connection, uuid: UUID) -> list[int]:
    """Before changing task ``uuid``'s status: share-lock its job, lock the
    tasks depending on it; their ids, ascending."""
    if not facts_of(connection).one_writer:
        connection.execute(_JOB_OF_TASK_SHARED, {"uuid": uuid})
    return lock_dependents(connection, uuid)


def lock_dependents(connection: Connection, uuid: UUID) -> list[int]:
    """Lock the tasks depending on task ``uuid`` (its job already locked by
    the caller); their ids, ascending."""
    return list(connection.execute(_LOCK_DEPENDENTS_OF_UUID, {"uuid": uuid}).scalars())


def recount(connection: Connection, task_ids: Collection[int]) -> None:
    """Recount ``pending_dependencies`` of ``task_ids`` themselves (tasks
    locked by :func:`lock_dependents_of`, or whose dependencies were just inserted)."""
    for chunk in chunks(sorted(set(task_ids))):
        if facts_of(connection).recount_by_key:
            counts = connection.execute(_COUNTS_OF_TASKS, {"b_ids": list(chunk)}).all()
            if counts:
                connection.execute(_SET_COUNT, [{"b_id": task_id, "b_n": n} for task_id, n in counts])
        else:
            connection.execute(_RECOUNT_TASKS, {"b_ids": list(chunk)})


def lock_job(connection: Connection, job_id: int) -> bool:
    """Before a bulk status change of job ``job_id``'s tasks: lock the job,
    then its tasks that have dependencies; whether there are any."""
    if not facts_of(connection).one_writer:
        connection.execute(_JOB_EXCLUSIVE, {"b_job_id": job_id})
    return bool(connection.execute(_LOCK_DEPENDENTS_OF_JOB, {"b_job_id": job_id}).all())


def recount_job(connection: Connection, job_id: int) -> None:
    """Recount ``pending_dependencies`` of every task of job ``job_id``
    (dependencies never cross jobs)."""
    connection.execute(_RECOUNT_JOB, {"b_job_id": job_id})


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


def resum_steps(connection: Connection, job_id: int) -> None:
    """Set the job's step counters to the sums over its tasks."""
    connection.execute(_RESUM_STEPS, {"job_id": job_id})


def copy_job_schedulable(connection: Connection, job_id: int, job_status: str) -> None:
    """Copy whether the job's tasks may be handed out to them (the claim
    index's predicate); only the tasks whose copy changes are written, none
    when the job stays active or queued."""
    connection.execute(_COPY_SCHEDULABLE, {"b_job_id": job_id, "b_flag": schedulable(job_status)})


def copy_job_priority(connection: Connection, job_id: int, priority: int) -> None:
    """Copy the job's priority to every task (the claim index's order)."""
    connection.execute(_COPY_JOB_PRIORITY, {"b_job_id": job_id, "b_priority": priority})


def schedulable(job_status: str) -> bool:
    """Whether tasks of a job in ``job_status`` may be handed out."""
    return job_status in _SCHEDULABLE_JOB
