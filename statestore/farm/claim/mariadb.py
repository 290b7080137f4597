"""The claim on MariaDB: the rules of :mod:`statestore.farm.claim` as a few statements of one transaction.

The transaction runs at READ COMMITTED. It first locks the worker's row
(``FOR UPDATE``), so claims of one worker take turns: one that waited for the
lock reads, in the statements after it (each of which sees what was committed
before it started), the task the other claim assigned, and rule 2 returns it.
A worker that may get work is then marked seen (``last_seen_at``, the claim
counts as a heartbeat), whether or not a task comes of it. No new lock-order
cycle: the writers that lock a worker's row and then task rows (time-outs,
failure records) take the worker's first as well; heartbeats and other
worker updates are single statements; a task update that names the worker
(its foreign-key check waits for the worker's row) holds no lock the claim
then waits for — the claim skips locked tasks. A deadlock victim is re-run
by the runner in any case.

The best few candidates are read without a lock, then the first of them no
other claimer holds is locked ``FOR UPDATE SKIP LOCKED`` by primary key, one
at a time in claim order, and re-checked: a lock on task rows alone, since MariaDB has no ``FOR UPDATE OF`` and would
otherwise lock the jobs its subqueries read, making every other claimer skip
every task of those jobs.

Status history: with ``activate`` the claim appends the changes it makes to
``status_history`` in its transaction, in one INSERT after the job's UPDATE:
the task's (the old status as the locked row has it) and the job's only when
that UPDATE's ``WHERE status = 'queued'`` matched (its row count), so under
the row lock that UPDATE took and holds to the commit. The task's entry is
written under the task's row lock, so a task's entries and a job's own
entries are in commit order; across the tasks of a job (the state machine
appends those holding the job's row, a claim does not) a claim's entry may
commit after one with a larger cursor. ``status_history`` has no foreign key
to check, so the INSERT does not wait for a state-machine call holding the
job's row. The same changes go to the change feed (``changes``, by uuid: the
claimed task's row, read back before the INSERTs, has both) right after;
``changes`` has no foreign key either.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, exists, insert, literal, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from statestore.changes.kinds import ChangeKind
from statestore.changes.recording import change, record
from statestore.errors import NotFound
from statestore.farm.claim.common import (
    CLAIMED_REASON,
    CLAIMED_TASK,
    JOB_ACTIVATED_REASON,
    SCHEDULABLE_JOB_VALUES,
    SCHEDULABLE_TASK_VALUES,
    TASK_AND_JOB_COLUMNS,
    scheduled_from_row,
    worker_is_eligible,
)
from statestore.farm.records import ScheduledTask
from statestore.farm.rows import split_task_types
from statestore.farm.statuses import JobStatus, TaskStatus
from statestore.farm.tables import BLOCKS, FAILURES, JOBS, MEMBERSHIP, STATUS_HISTORY, TASKS, WORKERS

# Locked: claims of one worker take turns (see the module doc).
_WORKER = (
    select(
        WORKERS.c.id,
        WORKERS.c.status,
        WORKERS.c.status_requested,
        WORKERS.c.deleted_at,
        WORKERS.c.supported_task_types,
    )
    .where(WORKERS.c.uuid == bindparam("worker_uuid"))
    .with_for_update()
)


_SEEN = (
    update(WORKERS)
    .where(WORKERS.c.id == bindparam("worker_id"))
    .values(last_seen_at=bindparam("now"), updated_at=bindparam("now"))
)


_CURRENT = (
    select(*TASK_AND_JOB_COLUMNS)
    .join(JOBS, JOBS.c.id == TASKS.c.job_id)
    .where(
        TASKS.c.worker_id == bindparam("worker_id"),
        TASKS.c.status == TaskStatus.ACTIVE.value,
        JOBS.c.status.in_(SCHEDULABLE_JOB_VALUES),
    )
    .order_by(TASKS.c.id)
    .limit(1)
)


def _candidate_query(with_tags: bool) -> Any:
    worker_id: BindParameter[int] = bindparam("worker_id")
    tag_rule: ColumnElement[bool] = JOBS.c.worker_tag_id.is_(None)
    if with_tags:
        tag_rule = or_(
            tag_rule,
            JOBS.c.worker_tag_id.in_(select(MEMBERSHIP.c.worker_tag_id).where(MEMBERSHIP.c.worker_id == worker_id)),
        )
    # A plain read (no lock): MariaDB has no FOR UPDATE OF and would lock
    # the rows its subqueries read (the job's) as well, making every other
    # claimer skip every task of that job. The lock is taken afterwards, on
    # task rows alone (_LOCK_IF_FREE).
    return (
        select(TASKS.c.id, TASKS.c.job_id)
        .where(
            TASKS.c.status.in_(SCHEDULABLE_TASK_VALUES),
            TASKS.c.pending_dependencies == 0,
            TASKS.c.job_schedulable.is_(True),
            exists().where(JOBS.c.id == TASKS.c.job_id, JOBS.c.status.in_(SCHEDULABLE_JOB_VALUES), tag_rule),
            TASKS.c.type.in_(bindparam("task_types", expanding=True)),
            ~exists().where(FAILURES.c.task_id == TASKS.c.id, FAILURES.c.worker_id == worker_id),
            ~exists().where(
                BLOCKS.c.job_id == TASKS.c.job_id, BLOCKS.c.worker_id == worker_id, BLOCKS.c.task_type == TASKS.c.type
            ),
        )
        .order_by(TASKS.c.job_priority.desc(), TASKS.c.priority.desc(), TASKS.c.id)
        .limit(bindparam("candidates"))
        .with_hint(TASKS, "FORCE INDEX (ix_tasks_claimable)", dialect_name="mysql")
    )


_CANDIDATE = _candidate_query(with_tags=True)


_HAS_TAGS = select(literal(1)).where(MEMBERSHIP.c.worker_id == bindparam("worker_id")).limit(1)


_CANDIDATE_UNTAGGED = _candidate_query(with_tags=False)


# One candidate, by primary key, unless another claimer holds it; re-checked
# under its lock (a claim committed meanwhile has made it active); its status
# as locked is the old status of the claim's history entry. One row at a
# time, in the order read: a single ``IN (…) ORDER BY … LIMIT 1 FOR UPDATE
# SKIP LOCKED`` sorts after reading, and InnoDB keeps every matching row it
# read locked, so a second claimer skipped every candidate and got nothing.
_LOCK_IF_FREE = (
    select(TASKS.c.id, TASKS.c.job_id, TASKS.c.status)
    .where(TASKS.c.id == bindparam("id"), TASKS.c.status.in_(SCHEDULABLE_TASK_VALUES))
    .with_for_update(skip_locked=True)
)


_FIRST_CANDIDATES = 8


_ASSIGN = (
    update(TASKS)
    .where(TASKS.c.id == bindparam("task_id"), TASKS.c.status.in_(SCHEDULABLE_TASK_VALUES))
    .values(
        worker_id=bindparam("worker_id"),
        last_touched_at=bindparam("now"),
        updated_at=bindparam("now"),
    )
)


_ASSIGN_AND_ACTIVATE = _ASSIGN.values(status=TaskStatus.ACTIVE.value)


_ACTIVATE_JOB = (
    update(JOBS)
    .where(JOBS.c.id == bindparam("job_id"), JOBS.c.status == JobStatus.QUEUED.value)
    .values(status=JobStatus.ACTIVE.value, updated_at=bindparam("now"))
)


def _lock_candidate(
    connection: Connection, candidates: Any, worker_id: int, task_types: list[str]
) -> tuple[int, int, str] | None:
    """Read the best few candidates, then lock the first one free; read more
    when every one read is held by another claimer."""
    wanted = _FIRST_CANDIDATES
    while True:
        ids = list(
            connection.execute(
                candidates, {"worker_id": worker_id, "task_types": task_types, "candidates": wanted}
            ).scalars()
        )
        if not ids:
            return None
        for task_id in ids:
            locked = connection.execute(_LOCK_IF_FREE, {"id": task_id}).first()
            if locked is not None:
                return (locked[0], locked[1], locked[2])
        if len(ids) < wanted:
            return None  # every candidate there is, is being claimed by someone else
        wanted *= 4


def _history(
    task_id: int, job_id: int, old_status: str, job_activated: bool, worker_uuid: UUID, now: datetime
) -> list[dict[str, Any]]:
    """The claim's entries: the task's, then the job's if the claim made it active."""
    entry = {"job_id": job_id, "new_status": TaskStatus.ACTIVE.value, "who": str(worker_uuid), "at": now}
    entries = [{**entry, "task_id": task_id, "old_status": old_status, "reason": CLAIMED_REASON}]
    if job_activated:
        entries.append({**entry, "task_id": None, "old_status": JobStatus.QUEUED.value, "reason": JOB_ACTIVATED_REASON})
    return entries


def _feed(task_uuid: UUID, job_uuid: UUID, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The history entries of :func:`_history` as changes for the feed."""
    return [
        change(
            ChangeKind.JOB_STATUS if entry["task_id"] is None else ChangeKind.TASK_STATUS,
            at=entry["at"],
            job=job_uuid,
            task=None if entry["task_id"] is None else task_uuid,
            old=entry["old_status"],
            new=entry["new_status"],
            reason=entry["reason"],
            who=entry["who"],
        )
        for entry in history
    ]


def claim_mariadb(connection: Connection, worker_uuid: UUID, activate: bool, now: datetime) -> ScheduledTask | None:
    """The claim as a few statements of one transaction (see the module doc)."""
    worker = connection.execute(_WORKER, {"worker_uuid": worker_uuid}).mappings().one_or_none()
    if worker is None:
        raise NotFound(f"worker {worker_uuid} not found")
    if not worker_is_eligible(worker):
        return None
    worker_id = worker["id"]
    connection.execute(_SEEN, {"worker_id": worker_id, "now": now})
    current = connection.execute(_CURRENT, {"worker_id": worker_id}).mappings().one_or_none()
    if current is not None:
        return scheduled_from_row(current, worker_uuid, newly_claimed=False)
    task_types = list(split_task_types(worker["supported_task_types"]))
    if not task_types:
        return None
    has_tags = connection.execute(_HAS_TAGS, {"worker_id": worker_id}).first() is not None
    candidate = _lock_candidate(connection, _CANDIDATE if has_tags else _CANDIDATE_UNTAGGED, worker_id, task_types)
    if candidate is None:
        return None
    task_id, job_id, old_status = candidate
    params = {"task_id": task_id, "worker_id": worker_id, "now": now, "job_id": job_id}
    connection.execute(_ASSIGN_AND_ACTIVATE if activate else _ASSIGN, params)
    job_activated = False
    if activate:
        # rowcount counts matched rows (the dialect's FOUND_ROWS), and only a
        # queued job matches: 1 exactly when this claim made the job active.
        job_activated = connection.execute(_ACTIVATE_JOB, params).rowcount == 1
    claimed = connection.execute(CLAIMED_TASK, params).mappings().one()
    if activate:
        history = _history(task_id, job_id, old_status, job_activated, worker_uuid, now)
        connection.execute(insert(STATUS_HISTORY), history)
        record(connection, _feed(claimed["uuid"], claimed["job_uuid"], history))
    return scheduled_from_row(claimed, worker_uuid, newly_claimed=True)
