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

Claims of one worker (rule 2) take turns on the worker's row. A lock alone
would not do: a statement that waited for it still reads with the snapshot it
started with, in which another claim of the worker, committed meanwhile, has
not assigned its task, so it would take a second one. So the claim starts by
updating the worker's row — marking it seen (``last_seen_at``, the claim
counts as a heartbeat) — guarded by the row's version (``xmin``) in the
statement's snapshot. If another transaction changed the row since (a claim
of the same worker, a heartbeat, a status change), PostgreSQL re-checks the
UPDATE's WHERE on the row's newest version once that transaction is over
(READ COMMITTED's EvalPlanQual); the guard fails, the statement claims
nothing and answers ``raced``, and :func:`claim_postgresql` runs it again
with a fresh snapshot, in which rule 2 finds the task the other claim
assigned. The version is ``xmin`` (the transaction that wrote this version of
the row), not ``updated_at``: every UPDATE changes it, even one that writes
the same timestamp. Only a worker that may get work is updated (and locked);
the others get nothing and are not marked seen.

Status history: with ``activate`` the statement also appends the changes it
makes to ``status_history`` (the ``history`` CTE), in the same statement and
so the same transaction: the task's (queued or soft-failed → active, the old
status as the candidate's locked row has it) and, only when ``job_activated``
changed the job's row (its ``WHERE status = 'queued'`` held; its
``RETURNING`` says so, also after a re-check of a row another transaction
changed meanwhile), the job's. ``who`` is the worker's uuid. The ``changed``
CTE appends the same changes, by uuid, to the change feed (``changes``),
with the statement's transaction id as ``tx`` (see
:mod:`statestore.changes.tables`). A claim makes no work claimable, so it
sends no wake-up.

Cursor order: the state machine appends a job's entries holding the job's
row ``FOR UPDATE`` (:mod:`statestore.farm.ripple`), so its calls' entries of
a job are in commit order. A claim locks the job's row only when it makes
the job active (the UPDATE of ``job_activated``). Its task entry's
id is drawn after the task's row is locked (``history`` reads ``claimed``),
so a task's entries stay in commit order; its job entry's id is drawn after
``job_activated``'s UPDATE has locked the job's row (it comes from that
UPDATE's ``RETURNING``), and that lock is held to the commit, so a job's own
entries stay in commit order too. But across the tasks of one job a claim's
task entry may commit after an entry with a larger cursor, so a reader that
pages a job's history by cursor can pass it.

The history and the feed add no lock: neither ``status_history`` nor
``changes`` has a foreign key to check (see their tables), so a claim never
waits for a state-machine call holding the task's job.
"""

from __future__ import annotations

from datetime import datetime
from importlib.resources import files
from uuid import UUID

from sqlalchemy import Boolean, SmallInteger, String, Uuid, bindparam, column, text
from sqlalchemy.engine import Connection

from statestore.core.direct import DirectStatement
from statestore.core.types import UTCDateTime
from statestore.errors import NotFound, TransactionConflict
from statestore.farm.claim.common import scheduled_from_row
from statestore.farm.records import ScheduledTask
from statestore.farm.tables import TASKS

CLAIM_SQL = (files(__package__) / "postgresql.sql").read_text(encoding="utf-8")
"""The claim's text (``:name`` parameters), as benchmarks and ``EXPLAIN`` read it too."""


VERSION_GUARD = "AND workers.xmin = seen.seen_version"
"""The line of the claim that makes claims of one worker take turns (tests take it out to see the race)."""


def claim_statement(sql: str) -> DirectStatement:
    """The claim's ``sql`` with its parameters' and columns' types."""
    return DirectStatement(
        text(sql)
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
            column("raced", Boolean()),
        )
    )


_CLAIM = claim_statement(CLAIM_SQL)


_COLUMNS = [*(column.name for column in TASKS.c), "job_uuid", "job_priority_now", "job_type", "newly_claimed", "raced"]


RUNS = 5
"""How many times a claim runs while the worker's row keeps changing under it."""


def claim_postgresql(connection: Connection, worker_uuid: UUID, activate: bool, now: datetime) -> ScheduledTask | None:
    """Claim in one statement: a task, a row of NULLs (no work) or no row
    (no such worker); again while the row says the worker's row changed
    under the statement (see the module doc), TransactionConflict after
    ``RUNS`` times."""
    params = {"worker_uuid": worker_uuid, "now": now, "activate": activate}
    for _ in range(RUNS):
        rows = _CLAIM.execute(connection, params).rows
        if not rows:
            raise NotFound(f"worker {worker_uuid} not found")
        row = dict(zip(_COLUMNS, rows[0], strict=True))
        if not row["raced"]:
            break
    else:
        raise TransactionConflict(f"worker {worker_uuid} changed under each of {RUNS} claims")
    if row["id"] is None:
        return None
    return scheduled_from_row(row, worker_uuid, newly_claimed=row["newly_claimed"])
