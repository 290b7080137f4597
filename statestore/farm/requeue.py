"""Giving a worker's tasks back: on sign-off and on worker timeout.

Flamenco (``worker_requeue.go``): each active task of the worker goes back to
``queued`` — or to ``paused`` when its job is pause-requested or paused — with
the activity ``Task was <status> by Manager because <reason>``. A timed-out
worker also gets status ``error`` and its status request cleared. Here both
are one transaction each, two statements for the tasks (one per target
status) whatever their number, found through ``ix_tasks_worker_id_status``.

No task crosses ``completed`` (they were active), so no dependent's
``pending_dependencies`` changes.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from statestore.core.types import utcnow
from statestore.errors import NotFound
from statestore.farm.statuses import JobStatus, TaskStatus, WorkerStatus
from statestore.farm.tables import JOBS, TASKS, WORKERS

__all__ = ["requeue_tasks_of_worker", "time_out_worker"]

_PAUSING_JOBS = (JobStatus.PAUSE_REQUESTED.value, JobStatus.PAUSED.value)
_NOT_TIMING_OUT = (WorkerStatus.ERROR.value, WorkerStatus.OFFLINE.value)
_WORKER_ID = select(WORKERS.c.id).where(WORKERS.c.uuid == bindparam("worker_uuid"))


def _give_back(connection: Connection, worker_id: int, reason: str, now: datetime) -> int:
    given_back = 0
    for status, pausing in ((TaskStatus.PAUSED, True), (TaskStatus.QUEUED, False)):
        job_rule = JOBS.c.status.in_(_PAUSING_JOBS) if pausing else JOBS.c.status.not_in(_PAUSING_JOBS)
        statement = (
            update(TASKS)
            .where(
                TASKS.c.worker_id == worker_id,
                TASKS.c.status == TaskStatus.ACTIVE.value,
                TASKS.c.job_id.in_(select(JOBS.c.id).where(job_rule)),
            )
            .values(
                status=status.value, activity=f"Task was {status.value} by Manager because {reason}", updated_at=now
            )
        )
        given_back += connection.execute(statement).rowcount
    return given_back


def _worker_id(connection: Connection, worker_uuid: UUID) -> int:
    worker_id = connection.execute(_WORKER_ID, {"worker_uuid": worker_uuid}).scalar_one_or_none()
    if worker_id is None:
        raise NotFound(f"worker {worker_uuid} not found")
    return int(worker_id)


def requeue_tasks_of_worker(connection: Connection, worker_uuid: UUID, reason: str) -> int:
    """Give back the worker's active tasks; return how many."""
    return _give_back(connection, _worker_id(connection, worker_uuid), reason, utcnow())


def time_out_worker(
    connection: Connection, worker_uuid: UUID, reason: str, now: datetime, unseen_since: datetime | None = None
) -> int | None:
    """Mark the worker ``error``, clear its status request, give back its
    tasks; return how many (None: not timed out after all).

    With ``unseen_since`` this happens only if the worker is still timed out
    (not seen since then, not deleted, not already error or offline): a
    heartbeat that arrived after the timed-out workers were listed wins, and
    its running task is not taken away.
    """
    worker_id = _worker_id(connection, worker_uuid)
    statement = update(WORKERS).where(WORKERS.c.id == worker_id)
    if unseen_since is not None:
        statement = statement.where(
            WORKERS.c.last_seen_at <= unseen_since,
            WORKERS.c.deleted_at.is_(None),
            WORKERS.c.status.not_in(_NOT_TIMING_OUT),
        )
    changed = connection.execute(
        statement.values(
            status=WorkerStatus.ERROR.value, status_requested="", lazy_status_request=False, updated_at=now
        )
    ).rowcount
    if not changed:
        return None
    return _give_back(connection, worker_id, reason, now)
