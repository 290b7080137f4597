"""Write units for workers: create, save, status, heartbeat, secret, soft delete.

Values arrive validated by :mod:`statestore.farm.worker_codec`; secrets arrive
already hashed. Every update matches live (not soft-deleted) workers only and
is one statement where the dialect has ``UPDATE … RETURNING`` (MariaDB adds a
SELECT in the same transaction). The heartbeat, called by every worker every
few seconds, is one UPDATE run as a precompiled :class:`DirectStatement`;
:func:`mark_seen_many` is the same UPDATE for the heartbeats of many workers
at once (see :mod:`statestore.core.coalesce`).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Uuid, any_, bindparam, insert, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import BindParameter

from statestore.core.dialect import update_returning
from statestore.core.direct import DirectStatement
from statestore.core.types import utcnow
from statestore.errors import NotFound
from statestore.farm.records import Worker
from statestore.farm.tables import WORKERS
from statestore.farm.worker_codec import worker_from_row
from statestore.farm.worker_loading import LIVE, RECORD_COLUMNS, WORKER_BY_UUID

__all__ = [
    "MUTABLE_COLUMNS",
    "STATUS_COLUMNS",
    "create_worker",
    "mark_seen",
    "mark_seen_many",
    "save_status",
    "save_worker",
    "set_secret_hash",
    "soft_delete",
]

MUTABLE_COLUMNS = (
    "name",
    "address",
    "platform",
    "software",
    "status",
    "last_seen_at",
    "status_requested",
    "lazy_status_request",
    "supported_task_types",
    "can_restart",
)
"""What :func:`save_worker` writes (besides ``updated_at``)."""

STATUS_COLUMNS = ("status", "status_requested", "lazy_status_request")
"""What :func:`save_status` writes (besides ``updated_at``)."""


def _live_update(columns: tuple[str, ...]) -> Update:
    values: dict[str, BindParameter[Any]] = {name: bindparam(name) for name in (*columns, "updated_at")}
    return update(WORKERS).where(WORKERS.c.uuid == bindparam("b_uuid"), LIVE).values(values)


_SAVE = _live_update(MUTABLE_COLUMNS)
_SAVE_STATUS = _live_update(STATUS_COLUMNS)
_SET_SECRET = _live_update(("secret_hash",))
_SEEN = DirectStatement(_live_update(("last_seen_at",)))
_SOFT_DELETE = _live_update(("deleted_at",))
# PostgreSQL: one array parameter, so one prepared statement for any batch size.
_SEEN_MANY = DirectStatement(
    update(WORKERS)
    .where(WORKERS.c.uuid == any_(bindparam("uuids", type_=ARRAY(Uuid()))), LIVE)
    .values(last_seen_at=bindparam("last_seen_at"), updated_at=bindparam("updated_at"))
    .returning(WORKERS.c.uuid)
)


def create_worker(connection: Connection, values: dict[str, Any]) -> Worker:
    """Insert a worker (``values`` holds every column but id and the timestamps)."""
    now = utcnow()
    row = {**values, "created_at": now, "updated_at": now, "deleted_at": None}
    result = connection.execute(insert(WORKERS).values(row))
    (worker_id,) = result.inserted_primary_key or (None,)
    return worker_from_row({**row, "id": worker_id})


def _update_returning_worker(connection: Connection, statement: Update, params: dict[str, Any]) -> Worker:
    """Run ``statement`` on one live worker and return it as stored afterwards."""
    if update_returning(connection.dialect):
        row = connection.execute(statement.returning(*RECORD_COLUMNS), params).mappings().one_or_none()
    else:
        matched = connection.execute(statement, params).rowcount
        row = connection.execute(WORKER_BY_UUID, {"uuid": params["b_uuid"]}).mappings().one() if matched else None
    if row is None:
        raise NotFound(f"worker {params['b_uuid']} not found")
    return worker_from_row(row)


def save_worker(connection: Connection, uuid: UUID, values: dict[str, Any]) -> Worker:
    """Write every mutable column of worker ``uuid``."""
    params = {name: values[name] for name in MUTABLE_COLUMNS}
    return _update_returning_worker(connection, _SAVE, {**params, "updated_at": utcnow(), "b_uuid": uuid})


def save_status(connection: Connection, uuid: UUID, values: dict[str, Any]) -> Worker:
    """Write only the status, the requested status and the lazy flag of worker ``uuid``."""
    params = {name: values[name] for name in STATUS_COLUMNS}
    return _update_returning_worker(connection, _SAVE_STATUS, {**params, "updated_at": utcnow(), "b_uuid": uuid})


def _update_one(connection: Connection, statement: Update, params: dict[str, Any]) -> None:
    if connection.execute(statement, params).rowcount == 0:
        raise NotFound(f"worker {params['b_uuid']} not found")


def set_secret_hash(connection: Connection, uuid: UUID, secret_hash: str) -> None:
    """Replace the secret hash of worker ``uuid``."""
    _update_one(connection, _SET_SECRET, {"secret_hash": secret_hash, "updated_at": utcnow(), "b_uuid": uuid})


def mark_seen(connection: Connection, uuid: UUID) -> None:
    """The heartbeat: ``last_seen_at = updated_at = now``, one statement."""
    now = utcnow()
    if _SEEN.execute(connection, {"last_seen_at": now, "updated_at": now, "b_uuid": uuid}).rowcount == 0:
        raise NotFound(f"worker {uuid} not found")


def mark_seen_many(connection: Connection, uuids: list[UUID]) -> set[UUID]:
    """The heartbeats of many workers in one statement (PostgreSQL); the
    uuids of the live workers it found."""
    now = utcnow()
    found = _SEEN_MANY.execute(connection, {"uuids": uuids, "last_seen_at": now, "updated_at": now}).rows
    return {uuid for (uuid,) in found}


def soft_delete(connection: Connection, uuid: UUID) -> None:
    """Mark worker ``uuid`` deleted; its rows elsewhere stay (no cascade fires)."""
    now = utcnow()
    _update_one(connection, _SOFT_DELETE, {"deleted_at": now, "updated_at": now, "b_uuid": uuid})
