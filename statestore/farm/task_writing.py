"""Write units of single tasks: saves, assignment, the worker's heartbeat.

A status change recounts the dependents' ``pending_dependencies`` in the same
transaction (:mod:`statestore.farm.readiness`); a change of completed steps
re-sums the job's counters. The heartbeat (``touched_by_worker``) is one
statement on the DB-API cursor.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, update
from sqlalchemy.engine import Connection

from statestore.core.direct import DirectStatement
from statestore.core.types import utcnow
from statestore.errors import InvalidReference, NotFound
from statestore.farm import readiness
from statestore.farm.job_writing import resum_steps
from statestore.farm.records import Task
from statestore.farm.tables import TASKS
from statestore.farm.task_loading import load_task
from statestore.farm.worker_loading import live_worker_id

__all__ = ["assign_to_worker", "save_task", "touched_by_worker"]

_TOUCH = DirectStatement(
    update(TASKS)
    .where(TASKS.c.uuid == bindparam("b_uuid"))
    .values(last_touched_at=bindparam("last_touched_at"), updated_at=bindparam("updated_at"))
)


def save_task(connection: Connection, uuid: UUID, values: dict[str, Any], *, steps_changed: bool = False) -> Task:
    """Write ``values`` (column → value) and ``updated_at`` to task ``uuid``.

    With a ``status`` among the values the dependents are recounted; with
    ``steps_changed`` the job's step counters are re-summed.
    """
    # Dependents are locked before the change and recounted after it (see
    # readiness); the recount is right whatever the old status was.
    dependents = readiness.lock_dependents_of(connection, uuid) if "status" in values else []
    statement = update(TASKS).where(TASKS.c.uuid == bindparam("b_uuid")).values(**values, updated_at=utcnow())
    if connection.execute(statement, {"b_uuid": uuid}).rowcount == 0:
        raise NotFound(f"task {uuid} not found")
    task = load_task(connection, uuid)
    if dependents:
        readiness.recount(connection, dependents)
    if steps_changed:
        resum_steps(connection, task.job_id)
    return task


def assign_to_worker(connection: Connection, uuid: UUID, worker_uuid: UUID) -> Task:
    """Record that worker ``worker_uuid`` (not deleted) runs task ``uuid``."""
    try:
        worker_id = live_worker_id(connection, worker_uuid)
    except NotFound:
        raise InvalidReference(f"task {uuid}: no worker {worker_uuid} found") from None
    return save_task(connection, uuid, {"worker_id": worker_id})


def touched_by_worker(connection: Connection, uuid: UUID) -> None:
    """The worker reported progress: ``last_touched_at = updated_at = now``."""
    now = utcnow()
    if _TOUCH.execute(connection, {"b_uuid": uuid, "last_touched_at": now, "updated_at": now}).rowcount == 0:
        raise NotFound(f"task {uuid} not found")
