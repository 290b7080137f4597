"""Workers' sleep schedules (at most one per worker).

``days_of_week`` is stored as given (Flamenco's sleep scheduler normalises it
to lowercase two-letter day names when it reads it); times are "" or
"HH:MM". The schedules of soft-deleted workers are invisible here.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import partial
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.engine import Connection

from statestore.core.dialect import facts_of
from statestore.core.runner import Runner
from statestore.core.types import utcnow
from statestore.core.validate import aware_datetime, text, uuid_value
from statestore.errors import InvalidInput, NotFound
from statestore.farm.fields import boolean, optional_datetime
from statestore.farm.lookups import LIVE, live_worker_id
from statestore.farm.records import SleepSchedule
from statestore.farm.rows import schedule_from_row
from statestore.farm.tables import LENGTHS, SLEEP_SCHEDULES, WORKERS

_TIME_OF_DAY = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]")


def time_of_day(value: object, where: str) -> str:
    """ "" (not set) or "HH:MM" from 00:00 to 23:59."""
    value = text(value, LENGTHS["time_of_day"], where)
    if value and not _TIME_OF_DAY.fullmatch(value):
        raise InvalidInput(f"{where}: {value!r} is not a time of day HH:MM (00:00 to 23:59)")
    return value


def schedule_values(
    *, is_active: object, days_of_week: object, start_time: object, end_time: object, next_check: object
) -> dict[str, Any]:
    """Validated values of a sleep schedule; ``days_of_week`` is kept as given
    (Flamenco's sleep scheduler normalises it when it reads it)."""
    where = "sleep schedule"
    return {
        "is_active": boolean(is_active, f"{where}.is_active"),
        "days_of_week": text(days_of_week, LENGTHS["days_of_week"], f"{where}.days_of_week"),
        "start_time": time_of_day(start_time, f"{where}.start_time"),
        "end_time": time_of_day(end_time, f"{where}.end_time"),
        "next_check": optional_datetime(next_check, f"{where}.next_check"),
    }


_UPSERTED = ("is_active", "days_of_week", "start_time", "end_time", "next_check", "updated_at")


_OWNED = select(SLEEP_SCHEDULES, WORKERS.c.uuid.label("worker_uuid"), WORKERS.c.name.label("worker_name")).join(
    WORKERS, WORKERS.c.id == SLEEP_SCHEDULES.c.worker_id
)


# From the worker, outer-joined: a row of NULLs (but the worker's) when it has
# no schedule, none when there is no such live worker — one statement.
_OF_WORKER = (
    select(SLEEP_SCHEDULES, WORKERS.c.uuid.label("worker_uuid"), WORKERS.c.name.label("worker_name"))
    .select_from(WORKERS.outerjoin(SLEEP_SCHEDULES, SLEEP_SCHEDULES.c.worker_id == WORKERS.c.id))
    .where(WORKERS.c.uuid == bindparam("worker_uuid"), LIVE)
)


_TO_CHECK = _OWNED.where(
    SLEEP_SCHEDULES.c.is_active.is_(True),
    or_(SLEEP_SCHEDULES.c.next_check <= bindparam("now"), SLEEP_SCHEDULES.c.next_check.is_(None)),
    LIVE,
).order_by(SLEEP_SCHEDULES.c.id)


_NEXT_CHECK = (
    update(SLEEP_SCHEDULES)
    .where(
        SLEEP_SCHEDULES.c.worker_id
        == select(WORKERS.c.id).where(WORKERS.c.uuid == bindparam("worker_uuid"), LIVE).scalar_subquery()
    )
    .values(next_check=bindparam("next_check"), updated_at=bindparam("updated_at"))
)


def load_schedule(connection: Connection, worker_uuid: UUID) -> SleepSchedule | None:
    """The worker's schedule; None if it has none (NotFound if the worker is
    absent or soft-deleted)."""
    row = connection.execute(_OF_WORKER, {"worker_uuid": worker_uuid}).mappings().one_or_none()
    if row is None:
        raise NotFound(f"worker {worker_uuid} not found")
    return None if row["uuid"] is None else schedule_from_row(row)


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
    connection.execute(facts_of(connection).upsert(SLEEP_SCHEDULES, "worker_id", _UPSERTED), row)
    return _stored(connection, worker_uuid)


def set_next_check(connection: Connection, worker_uuid: UUID, next_check: datetime) -> SleepSchedule:
    """Set when the worker's schedule is next due (NotFound if it has none)."""
    params = {"worker_uuid": worker_uuid, "next_check": next_check, "updated_at": utcnow()}
    if connection.execute(_NEXT_CHECK, params).rowcount == 0:
        raise NotFound(f"sleep schedule of worker {worker_uuid} not found")
    return _stored(connection, worker_uuid)


def schedules_to_check(connection: Connection, now: datetime) -> list[SleepSchedule]:
    """Active schedules due at ``now`` (or never checked), of live workers, in id order."""
    return [schedule_from_row(row) for row in connection.execute(_TO_CHECK, {"now": now}).mappings()]


class SleepSchedules:
    """Workers' sleep schedules (at most one per worker)."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    async def fetch(self, worker_uuid: UUID | str) -> SleepSchedule | None:
        """The worker's schedule; None when it has none. NotFound for an
        unknown or soft-deleted worker."""
        worker = uuid_value(worker_uuid, "worker uuid")
        return await self._runner.read(partial(load_schedule, worker_uuid=worker), single_statement=True)

    async def set(
        self,
        worker_uuid: UUID | str,
        *,
        is_active: bool,
        days_of_week: str,
        start_time: str,
        end_time: str,
        next_check: datetime | None = None,
    ) -> SleepSchedule:
        """Create or replace the worker's schedule in one upsert and return it
        (NotFound for an unknown or soft-deleted worker). Times are "" or
        "HH:MM" from 00:00 to 23:59."""
        worker = uuid_value(worker_uuid, "worker uuid")
        values = schedule_values(
            is_active=is_active,
            days_of_week=days_of_week,
            start_time=start_time,
            end_time=end_time,
            next_check=next_check,
        )
        return await self._runner.write(partial(set_schedule, worker_uuid=worker, values=values))

    async def set_next_check(self, worker_uuid: UUID | str, next_check: datetime) -> SleepSchedule:
        """Set when the worker's schedule is next due (NotFound if it has none)."""
        worker = uuid_value(worker_uuid, "worker uuid")
        when = aware_datetime(next_check, "sleep schedule.next_check")
        return await self._runner.write(partial(set_next_check, worker_uuid=worker, next_check=when))

    async def to_check(self, now: datetime) -> list[SleepSchedule]:
        """Active schedules whose next check is due at ``now`` or was never
        set, in id order, each with its worker's uuid and name."""
        when = aware_datetime(now, "now")
        return await self._runner.read(partial(schedules_to_check, now=when), single_statement=True)
