"""Claiming the next runnable task for a worker, as one unit of work.

The rules are Flamenco's (reference §5), made explicit:

1. A worker that is unknown → NotFound. A worker that is soft-deleted, not
   ``awake``, or has a status change pending gets nothing.
2. If the worker already runs an ``active`` task of an active or queued job,
   that task is returned unchanged.
3. Otherwise the next task is one that is queued or soft-failed with every
   dependency completed, in an active or queued job, of a type the worker
   supports, not failed by this worker, whose type is not blocklisted for this
   worker on this job, and whose job is untagged or carries one of the
   worker's tags — in the order job priority DESC, task priority DESC, id.
4. The claim assigns it and, with ``activate``, marks it active, touches it
   and makes a queued job active, in the same transaction.

This module is the portable form (MariaDB): a few statements in one
transaction at READ COMMITTED. The best few candidates are read without a
lock, then the first of them no other claimer holds is locked ``FOR UPDATE
SKIP LOCKED`` and re-checked — a lock on task rows alone, since MariaDB has no
``FOR UPDATE OF`` and would otherwise lock the jobs its subqueries read.
SQLite runs :mod:`statestore.farm.claim_sqlite` (two statements in ``BEGIN
IMMEDIATE``).
PostgreSQL runs :mod:`statestore.farm.claim_postgresql`, the same rules as one
statement.

Candidates come from the partial index ``ix_tasks_claimable``, which holds only
claimable tasks already in claim order, so the cost of a claim does not grow
with the number of finished tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, select
from sqlalchemy.engine import RowMapping

from statestore.farm.records import ScheduledTask
from statestore.farm.rows import task_from_row
from statestore.farm.statuses import SCHEDULABLE_JOB_STATUSES, SCHEDULABLE_TASK_STATUSES, WorkerStatus
from statestore.farm.tables import JOBS, TASKS

SCHEDULABLE_TASK_VALUES = [status.value for status in SCHEDULABLE_TASK_STATUSES]


SCHEDULABLE_JOB_VALUES = [status.value for status in SCHEDULABLE_JOB_STATUSES]


# Columns of a claimed task's record, with its job's; the worker is the claimer.
TASK_AND_JOB_COLUMNS = (
    *TASKS.c,
    JOBS.c.uuid.label("job_uuid"),
    JOBS.c.priority.label("job_priority_now"),
    JOBS.c.job_type.label("job_type"),
)


# A task with its job's uuid, priority and type, by id.
CLAIMED_TASK = (
    select(*TASK_AND_JOB_COLUMNS).join(JOBS, JOBS.c.id == TASKS.c.job_id).where(TASKS.c.id == bindparam("task_id"))
)


def worker_is_eligible(row: RowMapping) -> bool:
    """Only an awake, not deleted worker with no status change pending gets work."""
    return row["deleted_at"] is None and row["status"] == WorkerStatus.AWAKE.value and not row["status_requested"]


def scheduled_from_row(row: Mapping[Any, Any], worker_uuid: UUID, *, newly_claimed: bool) -> ScheduledTask:
    """A claim's result from a row of task columns plus job uuid, priority and type."""
    task = task_from_row({**row, "worker_uuid": worker_uuid})
    return ScheduledTask(task, row["job_priority_now"], row["job_type"], newly_claimed)
