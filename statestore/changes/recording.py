"""How writers append changes: in the transaction that makes them.

A unit that changes something the feed reports builds rows with
:func:`change` and appends them with :func:`record` on its own connection,
so a change is in the feed exactly when what it describes is committed.
Statements written as SQL text (the PostgreSQL claim and completion) insert
into ``changes`` themselves, with ``tx`` set as
:meth:`~statestore.core.dialect.DialectFacts.change_tx` says.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import insert
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

from statestore.changes.kinds import ChangeKind
from statestore.changes.tables import CHANGES
from statestore.core.batches import chunks
from statestore.core.dialect import DialectFacts, facts_of

__all__ = ["change", "insert_changes", "record"]


def change(
    kind: ChangeKind,
    *,
    at: datetime,
    job: UUID | None = None,
    task: UUID | None = None,
    worker: UUID | None = None,
    logbook: UUID | None = None,
    flow: UUID | None = None,
    atom: UUID | None = None,
    old: str | None = None,
    new: str | None = None,
    reason: str = "",
    who: str = "",
) -> dict[str, Any]:
    """The row of one change, for :func:`record`."""
    return {
        "kind": kind.value,
        "job_uuid": job,
        "task_uuid": task,
        "worker_uuid": worker,
        "logbook_uuid": logbook,
        "flow_uuid": flow,
        "atom_uuid": atom,
        "old_value": old,
        "new_value": new,
        "reason": reason,
        "who": who,
        "at": at,
    }


def insert_changes(facts: DialectFacts) -> Insert:
    """``INSERT INTO changes`` with ``tx`` as the dialect orders changes;
    give it rows from :func:`change` (or use ``from_select``)."""
    return insert(CHANGES).values(tx=facts.change_tx())


def record(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Append changes in the connection's transaction."""
    if not rows:
        return
    statement = insert_changes(facts_of(connection))
    for chunk in chunks(rows, 500):
        connection.execute(statement, list(chunk))
