"""A worker's completion of its task: the hot path of every worker loop.

Where a round trip costs more than the SQL (PostgreSQL), the common case is
one statement in autocommit (``postgresql.sql``): the task is active on this
worker and its job is active. That statement locks the job's row first, as
every state-machine call does, completes the task (steps done, touched),
takes one off each dependent's count of pending dependencies, marks the
worker seen, adds the task's steps to the job's and appends the history
entry. No lock outlives the statement.

Whether the job is now complete (or, generally, whether its status must
follow) is known from the same statement in the common case: every
state-machine writer of a job holds the job's row lock and writes the job's
row, so a statement that finds the job's row version unchanged since its
snapshot knows its snapshot saw every other task's last status (``exact``).
Only when the job may be done (``all_done``), or another writer committed
between snapshot and lock (not ``exact``), does a short transaction follow
that holds the job and applies the completion's ripple (reference §3.3) —
so two workers completing a job's last two tasks at once leave it completed,
whichever commits first. A crash between the two leaves a job active with
every task completed; :meth:`~statestore.farm.state_machine.StateMachine.check_stuck`
(run by the housekeeper every round) completes such jobs.

When the common case does not hold (the task is not active on this worker,
its job is pausing or queued, …) the statement changes nothing and the state
machine's transaction decides: a Conflict, or the full ripple.
"""

from __future__ import annotations

from datetime import datetime
from importlib.resources import files
from typing import Any
from uuid import UUID

from sqlalchemy import Boolean, String, Uuid, bindparam, column, text
from sqlalchemy.engine import Connection

from statestore.core.direct import DirectStatement
from statestore.core.types import UTCDateTime
from statestore.farm.records import StatusChange
from statestore.farm.ripple import Ripple
from statestore.farm.statuses import TaskStatus
from statestore.farm.tables import TASKS

__all__ = ["COMPLETION_SQL", "Completed", "complete_in_one_statement", "settle_completed"]

COMPLETION_SQL = (files(__package__) / "postgresql.sql").read_text(encoding="utf-8")
"""The completion's text (``:name`` parameters), as benchmarks and ``EXPLAIN`` read it too."""

_COMPLETE = DirectStatement(
    text(COMPLETION_SQL)
    .bindparams(
        bindparam("task_uuid", type_=Uuid()),
        bindparam("worker_uuid", type_=Uuid()),
        bindparam("now", type_=UTCDateTime()),
        bindparam("activity", type_=String()),
        bindparam("reason", type_=String()),
        bindparam("who", type_=String()),
    )
    .columns(
        column("task_id", TASKS.c.id.type),
        column("job_id", TASKS.c.job_id.type),
        column("job_uuid", Uuid()),
        column("exact", Boolean()),
        column("all_done", Boolean()),
    )
)

Completed = tuple[StatusChange, int, bool]
"""The task's change, its job's id, and whether the job's status must be settled."""


def complete_in_one_statement(
    connection: Connection,
    worker_uuid: UUID,
    task_uuid: UUID,
    activity: str | None,
    reason: str,
    now: datetime,
) -> Completed | None:
    """Complete the task in one statement if the common case holds; None
    (nothing written) if it does not."""
    who = str(worker_uuid)
    params: dict[str, Any] = {
        "task_uuid": task_uuid,
        "worker_uuid": worker_uuid,
        "now": now,
        "activity": activity,
        "reason": reason,
        "who": who,
    }
    rows = _COMPLETE.execute(connection, params).rows
    if not rows:
        return None
    _, job_id, job_uuid, exact, all_done = rows[0]
    job_uuid = job_uuid if isinstance(job_uuid, UUID) else UUID(str(job_uuid))
    change = StatusChange(job_uuid, task_uuid, TaskStatus.ACTIVE.value, TaskStatus.COMPLETED.value, reason, who)
    return change, int(job_id), bool(all_done) or not exact


def settle_completed(connection: Connection, job_id: int, who: str, fail_percentage: int) -> tuple[StatusChange, ...]:
    """Hold the job and apply what a task's completion does to it, as the
    state machine's own transaction would have (the job completes when
    every task is, a pause-requested job with nothing active pauses, …)."""
    ripple = Ripple(connection, who, fail_percentage)
    ripple.settle(ripple.hold_job(job_id), TaskStatus.COMPLETED)
    return ripple.finish()
