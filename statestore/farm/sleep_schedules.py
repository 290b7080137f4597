"""Workers' sleep schedules (at most one per worker).

``days_of_week`` is stored as given (Flamenco's sleep scheduler normalises it
to lowercase two-letter day names when it reads it); times are "" or
"HH:MM". The schedules of soft-deleted workers are invisible here.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING
from uuid import UUID

from statestore.core.validate import aware_datetime, uuid_value
from statestore.farm import sleep_units
from statestore.farm.records import SleepSchedule, Worker
from statestore.farm.worker_codec import schedule_values

if TYPE_CHECKING:
    from statestore.store import Store

__all__ = ["SleepSchedules"]


class SleepSchedules:
    """Workers' sleep schedules (at most one per worker)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def fetch(self, worker_uuid: UUID) -> SleepSchedule | None:
        """The worker's schedule; None when the worker (live) or its schedule does not exist."""
        uuid_value(worker_uuid, "worker uuid")
        return await self._store.read(
            partial(sleep_units.load_schedule, worker_uuid=worker_uuid), single_statement=True
        )

    async def set(
        self,
        worker_uuid: UUID,
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
        uuid_value(worker_uuid, "worker uuid")
        values = schedule_values(
            is_active=is_active,
            days_of_week=days_of_week,
            start_time=start_time,
            end_time=end_time,
            next_check=next_check,
        )
        return await self._store.write(partial(sleep_units.set_schedule, worker_uuid=worker_uuid, values=values))

    async def set_next_check(self, worker_uuid: UUID, next_check: datetime) -> SleepSchedule:
        """Set when the worker's schedule is next due (NotFound if it has none)."""
        uuid_value(worker_uuid, "worker uuid")
        when = aware_datetime(next_check, "sleep schedule.next_check")
        return await self._store.write(partial(sleep_units.set_next_check, worker_uuid=worker_uuid, next_check=when))

    async def worker_of(self, schedule_uuid: UUID) -> Worker:
        """The worker owning the schedule (NotFound if the worker was soft-deleted)."""
        uuid_value(schedule_uuid, "sleep schedule uuid")
        return await self._store.read(
            partial(sleep_units.worker_of, schedule_uuid=schedule_uuid), single_statement=True
        )

    async def to_check(self, now: datetime) -> list[SleepSchedule]:
        """Active schedules whose next check is due at ``now`` or was never
        set, in id order, each with its worker's uuid and name."""
        when = aware_datetime(now, "now")
        return await self._store.read(partial(sleep_units.schedules_to_check, now=when), single_statement=True)
