"""The claim on PostgreSQL: the rules of :mod:`statestore.farm.claim` as ONE statement.

Many manager processes on many hosts claim against one database, and a
round trip costs more than the SQL, so the whole claim — eligibility of the
worker, its already-active task, the candidate, the assignment and the job's
activation — is one statement run in autocommit (no BEGIN/COMMIT round trips).

Safety: the candidate is taken ``FOR UPDATE OF t SKIP LOCKED``, so concurrent
claimers never wait on one another's row and never take the same task; a row
another claimer committed meanwhile is re-checked by PostgreSQL under READ
COMMITTED (no longer queued → skipped). The UPDATE's own ``status IN
(queued, soft-failed)`` guard makes that explicit.

Data-modifying CTEs see the snapshot the statement started with, so the
returned task comes from ``RETURNING`` rather than from a re-read.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import Boolean, SmallInteger, String, Uuid, bindparam, column, text
from sqlalchemy.engine import Connection

from statestore.core.direct import DirectStatement
from statestore.core.types import UTCDateTime
from statestore.errors import NotFound
from statestore.farm.claim import ScheduledTask, scheduled_from_row
from statestore.farm.tables import TASKS

__all__ = ["claim_postgresql"]

_TASK_COLUMNS = ", ".join(f"{{prefix}}.{column.name}" for column in TASKS.c)

_SQL = f"""
WITH w AS (
    SELECT id, supported_task_types FROM workers
    WHERE uuid = :worker_uuid AND deleted_at IS NULL AND status = 'awake' AND status_requested = ''
),
current_task AS (
    SELECT t.id FROM tasks t JOIN jobs j ON j.id = t.job_id
    WHERE t.worker_id = (SELECT id FROM w) AND t.status = 'active' AND j.status IN ('active', 'queued')
    ORDER BY t.id LIMIT 1
),
candidate AS (
    -- Only tasks in the FROM list, so the planner can walk ix_tasks_claimable
    -- in claim order and stop at the first row that passes; the worker's
    -- values are InitPlans (computed once), the job a primary-key probe.
    SELECT t.id, t.job_id FROM tasks t
    WHERE EXISTS (SELECT 1 FROM w) AND NOT EXISTS (SELECT 1 FROM current_task)
      AND t.status IN ('queued', 'soft-failed') AND t.pending_dependencies = 0 AND t.job_schedulable
      AND t.type = ANY ((SELECT string_to_array(w.supported_task_types, ',') FROM w)::text[])
      AND EXISTS (SELECT 1 FROM jobs j
                  WHERE j.id = t.job_id AND j.status IN ('active', 'queued')
                    AND (j.worker_tag_id IS NULL
                         OR j.worker_tag_id IN (SELECT m.worker_tag_id FROM worker_tag_membership m
                                                WHERE m.worker_id = (SELECT id FROM w))))
      AND NOT EXISTS (SELECT 1 FROM task_failures f WHERE f.task_id = t.id AND f.worker_id = (SELECT id FROM w))
      AND NOT EXISTS (SELECT 1 FROM job_blocks b
                      WHERE b.job_id = t.job_id AND b.worker_id = (SELECT id FROM w) AND b.task_type = t.type)
    ORDER BY t.job_priority DESC, t.priority DESC, t.id
    LIMIT 1
    FOR UPDATE OF t SKIP LOCKED
),
claimed AS (
    UPDATE tasks SET worker_id = w.id, last_touched_at = :now, updated_at = :now,
        status = CASE WHEN :activate THEN 'active' ELSE tasks.status END
    FROM candidate CROSS JOIN w
    WHERE tasks.id = candidate.id AND tasks.status IN ('queued', 'soft-failed')
    RETURNING tasks.*
),
job_activated AS (
    UPDATE jobs SET status = 'active', updated_at = :now
    WHERE :activate AND status = 'queued' AND id IN (SELECT job_id FROM claimed)
)
SELECT {_TASK_COLUMNS.format(prefix="c")}, j.uuid AS job_uuid, j.priority AS job_priority_now, j.job_type,
       true AS newly_claimed
FROM claimed c JOIN jobs j ON j.id = c.job_id
UNION ALL
SELECT {_TASK_COLUMNS.format(prefix="t")}, j.uuid, j.priority, j.job_type, false
FROM current_task ct JOIN tasks t ON t.id = ct.id JOIN jobs j ON j.id = t.job_id
UNION ALL
-- No task: one row of NULLs if the worker exists, so that telling "no work"
-- from "no such worker" costs no second round trip.
SELECT {", ".join(["NULL"] * (len(TASKS.c) + 4))}
WHERE NOT EXISTS (SELECT 1 FROM claimed) AND NOT EXISTS (SELECT 1 FROM current_task)
  AND EXISTS (SELECT 1 FROM workers WHERE uuid = :worker_uuid)
"""

_CLAIM = DirectStatement(
    text(_SQL)
    .bindparams(
        bindparam("worker_uuid", type_=Uuid()),
        bindparam("now", type_=UTCDateTime()),
        bindparam("activate", type_=Boolean()),
    )
    .columns(
        *TASKS.c,
        column("job_uuid", Uuid()),
        column("job_priority_now", SmallInteger()),
        column("job_type", String()),
        column("newly_claimed", Boolean()),
    )
)
_COLUMNS = [*(column.name for column in TASKS.c), "job_uuid", "job_priority_now", "job_type", "newly_claimed"]


def claim_postgresql(connection: Connection, worker_uuid: UUID, activate: bool, now: datetime) -> ScheduledTask | None:
    """Claim in one statement: a task, a row of NULLs (no work) or no row
    (no such worker)."""
    rows = _CLAIM.execute(connection, {"worker_uuid": worker_uuid, "now": now, "activate": activate}).rows
    if not rows:
        raise NotFound(f"worker {worker_uuid} not found")
    row = dict(zip(_COLUMNS, rows[0], strict=True))
    if row["id"] is None:
        return None
    return scheduled_from_row(row, worker_uuid, newly_claimed=row["newly_claimed"])
