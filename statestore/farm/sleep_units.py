"""Units for sleep schedules: at most one per worker, upserted on ``worker_id``.

A soft-deleted worker has no schedule as far as these units are concerned:
it can no longer be put to sleep or woken, so the sleep checker need not see
it (Flamenco's queries do not filter it out; its checker then fails on it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.engine import Connection

from statestore.core.dialect import upsert
from statestore.core.types import utcnow
from statestore.errors import NotFound
from statestore.farm.records import SleepSchedule, Worker
from statestore.farm.tables import SLEEP_SCHEDULES as SCHEDULES
from statestore.farm.tables import WORKERS
from statestore.farm.worker_codec import schedule_from_row, worker_from_row
from statestore.farm.worker_loading import LIVE, RECORD_COLUMNS, live_worker_id

__all__ = ["load_schedule", "schedules_to_check", "set_next_check", "set_schedule", "worker_of"]


_UPSERTED = ("is_active", "days_of_week", "start_time", "end_time", "next_check", "updated_at")
_OWNED = select(SCHEDULES, WORKERS.c.uuid.label("worker_uuid"), WORKERS.c.name.label("worker_name")).join(
    WORKERS, WORKERS.c.id == SCHEDULES.c.worker_id
)
_OF_WORKER = _OWNED.where(WORKERS.c.uuid == bindparam("worker_uuid"), LIVE)
_TO_CHECK = _OWNED.where(
    SCHEDULES.c.is_active.is_(True),
    or_(SCHEDULES.c.next_check <= bindparam("now"), SCHEDULES.c.next_check.is_(None)),
    LIVE,
).order_by(SCHEDULES.c.id)
_NEXT_CHECK = (
    update(SCHEDULES)
    .where(
        SCHEDULES.c.worker_id
        == select(WORKERS.c.id).where(WORKERS.c.uuid == bindparam("worker_uuid"), LIVE).scalar_subquery()
    )
    .values(next_check=bindparam("next_check"), updated_at=bindparam("updated_at"))
)
_WORKER_OF = (
    select(*RECORD_COLUMNS)
    .join(SCHEDULES, SCHEDULES.c.worker_id == WORKERS.c.id)
    .where(SCHEDULES.c.uuid == bindparam("schedule_uuid"), LIVE)
)


def load_schedule(connection: Connection, worker_uuid: UUID) -> SleepSchedule | None:
    """The worker's schedule; None if it has none or the worker does not exist."""
    row = connection.execute(_OF_WORKER, {"worker_uuid": worker_uuid}).mappings().one_or_none()
    return None if row is None else schedule_from_row(row)


def _stored(connection: Connection, worker_uuid: UUID) -> SleepSchedule:
    schedule = load_schedule(connection, worker_uuid)
    assert schedule is not None, "the schedule was written in this transaction"
    return schedule


def set_schedule(connection: Connection, worker_uuid: UUID, values: dict[str, Any]) -> SleepSchedule:
    """Create or replace the worker's schedule (one upsert; its uuid and
    created_at survive a replacement)."""
    worker_id = live_worker_id(connection, worker_uuid)
    now = utcnow()
    row = {**values, "worker_id": worker_id, "uuid": uuid4(), "created_at": now, "updated_at": now}
    connection.execute(upsert(connection.dialect, SCHEDULES, "worker_id", _UPSERTED), row)
    return _stored(connection, worker_uuid)


def set_next_check(connection: Connection, worker_uuid: UUID, next_check: datetime) -> SleepSchedule:
    """Set when the worker's schedule is next due (NotFound if it has none)."""
    params = {"worker_uuid": worker_uuid, "next_check": next_check, "updated_at": utcnow()}
    if connection.execute(_NEXT_CHECK, params).rowcount == 0:
        raise NotFound(f"sleep schedule of worker {worker_uuid} not found")
    return _stored(connection, worker_uuid)


def worker_of(connection: Connection, schedule_uuid: UUID) -> Worker:
    """The worker owning schedule ``schedule_uuid`` (NotFound if it is gone or soft-deleted)."""
    row = connection.execute(_WORKER_OF, {"schedule_uuid": schedule_uuid}).mappings().one_or_none()
    if row is None:
        raise NotFound(f"worker of sleep schedule {schedule_uuid} not found")
    return worker_from_row(row)


def schedules_to_check(connection: Connection, now: datetime) -> list[SleepSchedule]:
    """Active schedules due at ``now`` (or never checked), of live workers, in id order."""
    return [schedule_from_row(row) for row in connection.execute(_TO_CHECK, {"now": now}).mappings()]
