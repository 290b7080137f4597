"""The claim on SQLite: the rules of :mod:`statestore.farm.claim` in three statements (five with ``activate``).

The unit runs inline in the runner's ``BEGIN IMMEDIATE`` transaction (shared
by group commit with the process's other writers), so claims are serialised
by SQLite's write lock and two claimers can never take one task — nor two
claims of one worker take two tasks: the later one's lookup finds the task the
earlier one assigned (rule 2). What costs here is not the SQL but the calls
into it (~40 µs each through SQLAlchemy, against ~8 µs for sqlite3), so the
common path is three :class:`~statestore.core.direct.DirectStatement` calls:

1. one SELECT that checks the worker and finds both its active task and the
   best candidate (correlated subqueries on the worker's row);
2. for a worker that may get work, a primary-key UPDATE that marks it seen
   (``last_seen_at``: the claim counts as a heartbeat whether or not a task
   comes of it, as on the other backends);
3. one ``UPDATE … RETURNING`` that assigns (and activates) the candidate and
   returns it with its job's uuid, priority and type;

with ``activate``, before 3, two ``INSERT … SELECT`` that append the status
changes the claim is about to make to ``status_history`` and to the change
feed (``changes``, by uuid): the task's, and the job's if it is queued (the
old statuses are read there, in the same transaction, so they are the ones
the UPDATEs then change); plus, when activating a task of a queued job, a
primary-key UPDATE that makes the job active.

The candidate's conditions repeat ``tables.CLAIMABLE`` literally: SQLite uses
a partial index only when the query's WHERE contains the index's terms, and a
bound parameter (``status IN (?, ?)``) would not; ``INDEXED BY`` makes SQLite
refuse the query if they ever drift apart (a test runs it on every change).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Boolean,
    Integer,
    String,
    Uuid,
    bindparam,
    column,
    insert,
    literal_column,
    null,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import ScalarSelect

from statestore.changes.kinds import ChangeKind
from statestore.changes.tables import CHANGES
from statestore.core.direct import DirectStatement
from statestore.core.types import UTCDateTime
from statestore.errors import NotFound
from statestore.farm.claim.common import CLAIMED_REASON, CLAIMED_TASK, JOB_ACTIVATED_REASON, scheduled_from_row
from statestore.farm.records import ScheduledTask
from statestore.farm.statuses import JobStatus, TaskStatus
from statestore.farm.tables import JOBS, STATUS_HISTORY, TASKS, WORKERS

LOOKUP = DirectStatement(
    text(
        """
SELECT w.id,
       w.status = 'awake' AND w.status_requested = '' AND w.deleted_at IS NULL AS eligible,
       (SELECT t.id FROM tasks t JOIN jobs j ON j.id = t.job_id
        WHERE t.worker_id = w.id AND t.status = 'active' AND j.status IN ('active', 'queued')
        ORDER BY t.id LIMIT 1) AS current_id,
       CASE WHEN w.status = 'awake' AND w.status_requested = '' AND w.deleted_at IS NULL THEN
       (SELECT t.id FROM tasks t INDEXED BY ix_tasks_claimable JOIN jobs j ON j.id = t.job_id
        WHERE t.status IN ('queued', 'soft-failed') AND t.pending_dependencies = 0 AND t.job_schedulable
          AND j.status IN ('active', 'queued')
          AND instr(',' || w.supported_task_types || ',', ',' || t.type || ',') > 0
          AND (j.worker_tag_id IS NULL
               OR j.worker_tag_id IN (SELECT m.worker_tag_id FROM worker_tag_membership m WHERE m.worker_id = w.id))
          AND NOT EXISTS (SELECT 1 FROM task_failures f WHERE f.task_id = t.id AND f.worker_id = w.id)
          AND NOT EXISTS (SELECT 1 FROM job_blocks b
                          WHERE b.job_id = t.job_id AND b.worker_id = w.id AND b.task_type = t.type)
        ORDER BY t.job_priority DESC, t.priority DESC, t.id LIMIT 1)
       END AS candidate_id  -- only searched for a worker that may get work
FROM workers w WHERE w.uuid = :worker_uuid
"""
    )
    .bindparams(bindparam("worker_uuid", type_=Uuid()))
    .columns(
        column("id", Integer()),
        column("eligible", Boolean()),
        column("current_id", Integer()),
        column("candidate_id", Integer()),
    )
)


_JOB = JOBS.alias("job_of_task")


def _of_job(value: ColumnElement[Any]) -> ScalarSelect[Any]:
    return select(value).where(_JOB.c.id == TASKS.c.job_id).scalar_subquery()


def _quoted(value: str) -> ColumnElement[Any]:
    """A constant rendered in the SQL: DirectStatement binds only named parameters."""
    return literal_column(f"'{value}'")


def _assign(activate: bool) -> DirectStatement:
    values: dict[str, Any] = {
        "worker_id": bindparam("worker_id"),
        "last_touched_at": bindparam("now"),
        "updated_at": bindparam("now"),
    }
    if activate:
        values["status"] = _quoted(TaskStatus.ACTIVE.value)
    return DirectStatement(
        update(TASKS)
        .where(TASKS.c.id == bindparam("task_id"), text("tasks.status IN ('queued', 'soft-failed')"))
        .values(values)
        .returning(
            *TASKS.c,
            _of_job(_JOB.c.uuid).label("job_uuid"),
            _of_job(_JOB.c.priority).label("job_priority_now"),
            _of_job(_JOB.c.job_type).label("job_type"),
            _of_job(_JOB.c.status).label("job_status"),
        )
    )


_ASSIGN_AND_ACTIVATE = _assign(activate=True)


_ASSIGN_ONLY = _assign(activate=False)


_ACTIVATE_JOB = DirectStatement(
    update(JOBS)
    .where(JOBS.c.id == bindparam("job_id"), JOBS.c.status == _quoted(JobStatus.QUEUED.value))
    .values(status=_quoted(JobStatus.ACTIVE.value), updated_at=bindparam("now"))
)


def _history() -> DirectStatement:
    """The claim's entries, read before its UPDATEs: the task's (queued or
    soft-failed → active), then its job's if the job is queued (→ active,
    as :data:`_ACTIVATE_JOB` then makes it)."""
    task_id = bindparam("task_id", type_=Integer())
    who = bindparam("who", type_=String())
    now = bindparam("now", type_=UTCDateTime())
    active = _quoted(TaskStatus.ACTIVE.value)
    task_entry = select(TASKS.c.job_id, TASKS.c.id, TASKS.c.status, active, _quoted(CLAIMED_REASON), who, now).where(
        TASKS.c.id == task_id
    )
    job_entry = (
        select(JOBS.c.id, null(), JOBS.c.status, active, _quoted(JOB_ACTIVATED_REASON), who, now)
        .select_from(TASKS.join(JOBS, JOBS.c.id == TASKS.c.job_id))
        .where(TASKS.c.id == task_id, JOBS.c.status == _quoted(JobStatus.QUEUED.value))
    )
    columns = ["job_id", "task_id", "old_status", "new_status", "reason", "who", "at"]
    return DirectStatement(insert(STATUS_HISTORY).from_select(columns, union_all(task_entry, job_entry)))


_HISTORY = _history()


def _feed() -> DirectStatement:
    """The claim's changes for the change feed, as :func:`_history` reads
    them, by uuid; ``tx`` 0 (SQLite's, see ``DialectFacts.change_tx``),
    written into the SQL: a DirectStatement binds only named parameters."""
    task_id = bindparam("task_id", type_=Integer())
    who = bindparam("who", type_=String())
    now = bindparam("now", type_=UTCDateTime())
    active = _quoted(TaskStatus.ACTIVE.value)
    tx: ColumnElement[Any] = literal_column("0")
    source = TASKS.join(JOBS, JOBS.c.id == TASKS.c.job_id)
    task_entry = (
        select(
            tx,
            _quoted(ChangeKind.TASK_STATUS.value),
            JOBS.c.uuid,
            TASKS.c.uuid,
            TASKS.c.status,
            active,
            _quoted(CLAIMED_REASON),
            who,
            now,
        )
        .select_from(source)
        .where(TASKS.c.id == task_id)
    )
    job_entry = (
        select(
            tx,
            _quoted(ChangeKind.JOB_STATUS.value),
            JOBS.c.uuid,
            null(),
            JOBS.c.status,
            active,
            _quoted(JOB_ACTIVATED_REASON),
            who,
            now,
        )
        .select_from(source)
        .where(TASKS.c.id == task_id, JOBS.c.status == _quoted(JobStatus.QUEUED.value))
    )
    columns = ["tx", "kind", "job_uuid", "task_uuid", "old_value", "new_value", "reason", "who", "at"]
    return DirectStatement(insert(CHANGES).from_select(columns, union_all(task_entry, job_entry)))


_FEED = _feed()


_SEEN = DirectStatement(
    update(WORKERS)
    .where(WORKERS.c.id == bindparam("worker_id"))
    .values(last_seen_at=bindparam("now"), updated_at=bindparam("now"))
)


_COLUMNS = [*(column.name for column in TASKS.c), "job_uuid", "job_priority_now", "job_type", "job_status"]


def claim_sqlite(connection: Connection, worker_uuid: UUID, activate: bool, now: datetime) -> ScheduledTask | None:
    """Claim in three statements (five with ``activate``, six when a queued
    job becomes active; one when the worker may get no work)."""
    found = LOOKUP.execute(connection, {"worker_uuid": worker_uuid}).rows
    if not found:
        raise NotFound(f"worker {worker_uuid} not found")
    worker_id, eligible, current_id, candidate_id = found[0]
    if not eligible:
        return None
    _SEEN.execute(connection, {"worker_id": worker_id, "now": now})
    if current_id is not None:
        current = connection.execute(CLAIMED_TASK, {"task_id": current_id}).mappings().one()
        return scheduled_from_row(current, worker_uuid, newly_claimed=False)
    if candidate_id is None:
        return None
    params = {"task_id": candidate_id, "worker_id": worker_id, "now": now}
    if activate:
        entries = {"task_id": candidate_id, "who": str(worker_uuid), "now": now}
        _HISTORY.execute(connection, entries)
        _FEED.execute(connection, entries)
    rows = (_ASSIGN_AND_ACTIVATE if activate else _ASSIGN_ONLY).execute(connection, params).rows
    row = dict(zip(_COLUMNS, rows[0], strict=True))
    if activate and row["job_status"] == JobStatus.QUEUED.value:
        _ACTIVATE_JOB.execute(connection, {"job_id": row["job_id"], "now": now})
    return scheduled_from_row(row, worker_uuid, newly_claimed=True)
