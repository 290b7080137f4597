"""The stored secret hash of a worker: the units that read and write it.

Statements carrying a hash, as a value or a result, run on the DB-API cursor
(:func:`_hidden`), so SQLAlchemy's echo log and the parameters quoted by its
errors never see it. A new worker's row is inserted with :data:`NO_HASH` and
its hash set by a second, hidden statement of the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from statestore.core.direct import DirectResult, DirectStatement
from statestore.core.types import utcnow
from statestore.errors import NotFound
from statestore.farm.lookups import LIVE
from statestore.farm.tables import WORKERS

__all__ = ["NO_HASH", "secret_hash_of", "set_new_secret_hash", "set_secret_hash"]

_SECRET_HASH = DirectStatement(select(WORKERS.c.secret_hash).where(WORKERS.c.uuid == bindparam("uuid"), LIVE))


_SET_SECRET = DirectStatement(
    update(WORKERS)
    .where(WORKERS.c.uuid == bindparam("b_uuid"), LIVE)
    .values(secret_hash=bindparam("secret_hash"), updated_at=bindparam("updated_at"))
)


_SET_NEW_SECRET = DirectStatement(
    update(WORKERS)
    .where(WORKERS.c.id == bindparam("b_id"))
    .values(secret_hash=bindparam("secret_hash"), updated_at=bindparam("updated_at"))
)


NO_HASH = ""
"""What a new worker's row holds until its hash is set, in the same
transaction (no hash parses from it, so nothing ever verifies against it)."""


def _hidden(connection: Connection, statement: DirectStatement, values: dict[str, Any]) -> DirectResult:
    """Run a statement whose values or rows hold a secret hash on the DB-API
    cursor: not logged by ``echo`` (not even rows, with ``echo="debug"``),
    and a driver error is wrapped as SQLAlchemy wraps one (so it is
    classified as usual) with no parameters in it."""
    dialect = connection.dialect
    try:
        return statement.execute(connection, values)
    except dialect.loaded_dbapi.Error as error:
        raise DBAPIError.instance(
            statement.sql(dialect), None, error, dialect.loaded_dbapi.Error, dialect=dialect
        ) from error


def secret_hash_of(connection: Connection, uuid: UUID) -> str | None:
    """The stored secret hash of worker ``uuid``; None if absent or soft-deleted."""
    rows = _hidden(connection, _SECRET_HASH, {"uuid": uuid}).rows
    return rows[0][0] if rows else None


def set_secret_hash(connection: Connection, uuid: UUID, secret_hash: str) -> None:
    """Replace the secret hash of worker ``uuid``."""
    params = {"secret_hash": secret_hash, "updated_at": utcnow(), "b_uuid": uuid}
    if _hidden(connection, _SET_SECRET, params).rowcount == 0:
        raise NotFound(f"worker {uuid} not found")


def set_new_secret_hash(connection: Connection, worker_id: int, secret_hash: str, now: datetime) -> None:
    """Set the hash of the worker just inserted (with :data:`NO_HASH`) as ``worker_id``."""
    _hidden(connection, _SET_NEW_SECRET, {"secret_hash": secret_hash, "updated_at": now, "b_id": worker_id})
