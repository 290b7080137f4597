"""Read units for workers: lookups, listings, counts, timed-out workers.

Soft-deleted workers (``deleted_at`` set) are invisible to every unit here, as
in Flamenco. The secret hash is selected only by :func:`secret_hash_of`; no
record ever carries it. Statements are built once at import.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection

from statestore.errors import NotFound
from statestore.farm.records import Worker
from statestore.farm.statuses import WorkerStatus
from statestore.farm.tables import WORKERS
from statestore.farm.worker_codec import worker_from_row

__all__ = [
    "LIVE",
    "RECORD_COLUMNS",
    "WORKER_BY_UUID",
    "list_workers",
    "live_worker_id",
    "load_worker",
    "load_worker_by_id",
    "secret_hash_of",
    "summarize_statuses",
    "timed_out",
]

RECORD_COLUMNS = tuple(column for column in WORKERS.c if column.name != "secret_hash")
"""Every column but the secret hash: what a :class:`Worker` is built from."""
LIVE = WORKERS.c.deleted_at.is_(None)
"""Not soft-deleted."""

WORKER_BY_UUID = select(*RECORD_COLUMNS).where(WORKERS.c.uuid == bindparam("uuid"), LIVE)
_BY_ID = select(*RECORD_COLUMNS).where(WORKERS.c.id == bindparam("id"), LIVE)
_ALL = select(*RECORD_COLUMNS).where(LIVE).order_by(WORKERS.c.id)
_ID = select(WORKERS.c.id).where(WORKERS.c.uuid == bindparam("uuid"), LIVE)
_ID_LOCKED = _ID.with_for_update()
_SECRET_HASH = select(WORKERS.c.secret_hash).where(WORKERS.c.uuid == bindparam("uuid"), LIVE)
_STATUS_COUNTS = (
    select(WORKERS.c.status, func.count().label("count"))
    .where(LIVE)
    .group_by(WORKERS.c.status)
    .order_by(WORKERS.c.status)
)
# Served by ix_workers_last_seen_at: the range on last_seen_at comes first.
_TIMED_OUT = (
    select(*RECORD_COLUMNS)
    .where(
        WORKERS.c.last_seen_at <= bindparam("before"),
        LIVE,
        WORKERS.c.status.not_in([WorkerStatus.ERROR.value, WorkerStatus.OFFLINE.value]),
    )
    .order_by(WORKERS.c.id)
)


def load_worker(connection: Connection, uuid: UUID) -> Worker:
    """Worker ``uuid`` (NotFound if absent or soft-deleted)."""
    row = connection.execute(WORKER_BY_UUID, {"uuid": uuid}).mappings().one_or_none()
    if row is None:
        raise NotFound(f"worker {uuid} not found")
    return worker_from_row(row)


def load_worker_by_id(connection: Connection, worker_id: int) -> Worker:
    """The worker with primary key ``worker_id`` (NotFound if absent or soft-deleted)."""
    row = connection.execute(_BY_ID, {"id": worker_id}).mappings().one_or_none()
    if row is None:
        raise NotFound(f"worker with id {worker_id} not found")
    return worker_from_row(row)


def list_workers(connection: Connection) -> list[Worker]:
    """Every worker not soft-deleted, in creation (id) order."""
    return [worker_from_row(row) for row in connection.execute(_ALL).mappings()]


def live_worker_id(connection: Connection, uuid: UUID, *, lock: bool = False) -> int:
    """The primary key of worker ``uuid`` (NotFound if absent or soft-deleted);
    with ``lock``, its row stays locked until the transaction ends (SQLite's
    write transactions are serial anyway), so writers of the worker's rows
    elsewhere take turns."""
    worker_id = connection.execute(_ID_LOCKED if lock else _ID, {"uuid": uuid}).scalar_one_or_none()
    if worker_id is None:
        raise NotFound(f"worker {uuid} not found")
    return int(worker_id)


def secret_hash_of(connection: Connection, uuid: UUID) -> str | None:
    """The stored secret hash of worker ``uuid``; None if absent or soft-deleted."""
    return connection.execute(_SECRET_HASH, {"uuid": uuid}).scalar_one_or_none()


def summarize_statuses(connection: Connection) -> dict[WorkerStatus, int]:
    """How many workers (not soft-deleted) are in each status; absent statuses are left out."""
    return {WorkerStatus(status): int(count) for status, count in connection.execute(_STATUS_COUNTS)}


def timed_out(connection: Connection, before: datetime) -> list[Worker]:
    """Workers last seen at or before ``before`` that are not already in
    error or offline (and not soft-deleted), in id order."""
    return [worker_from_row(row) for row in connection.execute(_TIMED_OUT, {"before": before}).mappings()]
