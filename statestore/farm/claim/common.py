"""What every claim strategy shares: the claimed task's columns and its record, worker eligibility,
the reasons of its history entries."""

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


# The reasons of a claim's status history entries (postgresql.sql spells them too).
CLAIMED_REASON = "claimed by the worker"
"""The task's entry: queued or soft-failed → active."""

JOB_ACTIVATED_REASON = "a task became active"
"""The job's entry, when the claim makes a queued job active."""


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
