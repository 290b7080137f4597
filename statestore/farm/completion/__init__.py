"""A worker's completion of its task: the hot path of every worker loop.

Where a round trip costs more than the SQL (PostgreSQL), the common case is
one statement in autocommit (``postgresql.sql``): the task is active on this
worker and its job is active. That statement locks the job's row first, as
every state-machine call does, completes the task (steps done, touched),
takes one off each dependent's count of pending dependencies, marks the
worker seen, adds the task's steps to the job's, and appends the change to
the status history and to the change feed (``changes``). No lock outlives
the statement.

If a dependent is left with no pending dependency (and may be claimed), the
statement also NOTIFYs claim waiters of other processes (delivered at its
commit; see :mod:`statestore.core.wakeups`) and says so (``work``), and the
caller wakes this process's waiters. Only then: a NOTIFY takes a
database-wide lock at commit, and most completions (of tasks nothing
depends on, or on which a dependent still waits for others) enable nothing.

Only the job's completion can follow (the statement runs only for an
active job, read under its lock, so a pause or cancel is never missed: a
manager's call holding the job before the statement is seen, one after it
counts this task completed). Whether the job is now complete is known from
the same statement when no state-machine writer of the job committed
between the statement's snapshot and its lock (``exact``): they all hold the
job's row lock and write its row, so the row's version tells. Otherwise a
plain read after the commit asks whether any task is unfinished: of
completions committed one after another, the last one's read sees all of
them. Only when the job is done does a short transaction follow that holds
the job and completes it (reference §3.3) — so two workers completing a
job's last two tasks at once leave it completed, whichever commits first.
A crash between the two (or a cancellation while the statement runs: the
statement may still commit) leaves a job active with every task completed;
:meth:`~statestore.farm.state_machine.StateMachine.check_stuck` (run by the
housekeeper every round) completes such jobs.

When the common case does not hold (the task is not active on this worker,
its job is pausing or queued, …) the statement changes nothing and the state
machine's transaction decides: a Conflict, or the full ripple.
"""

from __future__ import annotations

from datetime import datetime
from importlib.resources import files
from typing import Any, NamedTuple
from uuid import UUID

from sqlalchemy import Boolean, String, Uuid, bindparam, column, exists, select, text
from sqlalchemy.engine import Connection

from statestore.core.direct import DirectStatement
from statestore.core.types import UTCDateTime
from statestore.farm.enabling import WorkSignal
from statestore.farm.records import StatusChange
from statestore.farm.ripple import Ripple, in_statuses
from statestore.farm.statuses import TaskStatus
from statestore.farm.tables import TASKS

__all__ = ["COMPLETION_SQL", "Completed", "any_unfinished", "complete_in_one_statement", "settle_completed"]

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
        column("work", Boolean()),
    )
)


class Completed(NamedTuple):
    """What the statement did: the task's change, and what it knows of the job."""

    change: StatusChange
    job_id: int
    exact: bool
    """No state-machine writer of the job committed between the statement's
    snapshot and its lock: ``all_done`` is the truth."""
    all_done: bool
    """No other task of the job was unfinished in the statement's snapshot."""
    work: bool
    """A dependent may be claimed now; the statement has notified other
    processes' claim waiters, this process's are the caller's to wake."""


_UNFINISHED = select(
    exists().where(
        TASKS.c.job_id == bindparam("job_id"),
        in_statuses(TASKS.c.status, [status for status in TaskStatus if status is not TaskStatus.COMPLETED]),
    )
)


def any_unfinished(connection: Connection, job_id: int) -> bool:
    """Whether a task of the job is not completed, read after the
    completion's commit without a lock (index probes of
    ``ix_tasks_job_id_status``). Of two completions committed one after the
    other, the later one's read sees the earlier one's task: so when a job's
    last tasks complete at once, at least the last to commit finds none."""
    return bool(connection.execute(_UNFINISHED, {"job_id": job_id}).scalar())


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
    _, job_id, job_uuid, exact, all_done, work = rows[0]
    job_uuid = job_uuid if isinstance(job_uuid, UUID) else UUID(str(job_uuid))
    change = StatusChange(job_uuid, task_uuid, TaskStatus.ACTIVE.value, TaskStatus.COMPLETED.value, reason, who)
    return Completed(change, int(job_id), bool(exact), bool(all_done), bool(work))


def settle_completed(
    connection: Connection, job_id: int, who: str, fail_percentage: int, work: WorkSignal | None = None
) -> tuple[StatusChange, ...]:
    """Hold the job and apply what a task's completion does to it, as the
    state machine's own transaction would have (the job completes when
    every task is, a pause-requested job with nothing active pauses, …),
    its changes appended to the history and the change feed."""
    ripple = Ripple(connection, who, fail_percentage, work=work)
    ripple.settle(ripple.hold_job(job_id), TaskStatus.COMPLETED)
    return ripple.finish()
