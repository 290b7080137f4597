"""The claim on PostgreSQL: the rules of :mod:`statestore.farm.claim` as one statement (``postgresql.sql``).

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
from importlib.resources import files
from uuid import UUID

from sqlalchemy import Boolean, SmallInteger, String, Uuid, bindparam, column, text
from sqlalchemy.engine import Connection

from statestore.core.direct import DirectStatement
from statestore.core.types import UTCDateTime
from statestore.errors import NotFound
from statestore.farm.claim.common import scheduled_from_row
from statestore.farm.records import ScheduledTask
from statestore.farm.tables import TASKS

CLAIM_SQL = (files(__package__) / "postgresql.sql").read_text(encoding="utf-8")
"""The claim's text (``:name`` parameters), as benchmarks and ``EXPLAIN`` read it too."""


_CLAIM = DirectStatement(
    text(CLAIM_SQL)
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
