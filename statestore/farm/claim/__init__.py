"""Claiming the next runnable task for a worker: the rules, and one module per claim strategy.

The rules are Flamenco's (reference §5), made explicit:

1. A worker that is unknown → NotFound. A worker that is soft-deleted, not
   ``awake``, or has a status change pending gets nothing.
2. If the worker already runs an ``active`` task of an active or queued job,
   that task is returned unchanged.
3. Otherwise the next task is one that is queued or soft-failed with every
   dependency completed, in an active or queued job, of a type the worker
   supports, not failed by this worker, whose type is not blocklisted for this
   worker on this job, and whose job is untagged or carries one of the
   worker's tags — in the order job priority DESC, task priority DESC, id.
4. The claim assigns it and, with ``activate``, marks it active, touches it
   and makes a queued job active, in the same transaction — and appends
   those status changes to ``status_history`` there: the task's (reason
   "claimed by the worker") and, if the claim made its job active, the
   job's ("a task became active"), ``who`` the worker's uuid — and appends
   the same changes to the change feed (``changes``, kinds ``task.status``
   and ``job.status``). Returning the worker's active task (rule 2) and a
   claim without ``activate`` change no status and append nothing.

Candidates come from the partial index ``ix_tasks_claimable``, which holds only
claimable tasks already in claim order, so the cost of a claim does not grow
with the number of finished tasks. Each strategy
(:attr:`statestore.core.dialect.DialectFacts.claim`) applies the same rules in
the statements its database runs best: :mod:`.postgresql` (one statement),
:mod:`.sqlite` (two statements inside ``BEGIN IMMEDIATE``), :mod:`.mariadb`
(a few statements, locking task rows alone).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple, Protocol
from uuid import UUID

from sqlalchemy.engine import Connection

from statestore.core.dialect import ClaimStrategy
from statestore.farm.claim.mariadb import claim_mariadb
from statestore.farm.claim.postgresql import claim_postgresql
from statestore.farm.claim.sqlite import claim_sqlite
from statestore.farm.records import ScheduledTask

__all__ = ["CLAIMS", "ClaimFunction", "ClaimUnit"]


class ClaimFunction(Protocol):
    """A claim as a unit of work."""

    def __call__(
        self, connection: Connection, worker_uuid: UUID, activate: bool, now: datetime
    ) -> ScheduledTask | None: ...


class ClaimUnit(NamedTuple):
    """A claim strategy's unit of work, and whether it is a single statement
    (then the runner may skip BEGIN/COMMIT around it)."""

    run: ClaimFunction
    single_statement: bool


CLAIMS: dict[ClaimStrategy, ClaimUnit] = {
    "postgresql": ClaimUnit(claim_postgresql, single_statement=True),
    "sqlite": ClaimUnit(claim_sqlite, single_statement=False),
    "mariadb": ClaimUnit(claim_mariadb, single_statement=False),
}
