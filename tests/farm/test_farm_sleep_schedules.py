"""Sleep schedules: Flamenco's worker_sleep_schedule_test.go against our API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import func, select

from statestore import InvalidInput, NotFound, Store
from statestore.schema.metadata import SleepScheduleRow
from tests.support.farm_fixtures import create_worker

WORKDAYS: dict[str, Any] = {
    "is_active": True,
    "days_of_week": "mo,tu,th,fr",
    "start_time": "18:00",
    "end_time": "09:00",
}


async def _rows(store: Store) -> int:
    table = SleepScheduleRow.__table__
    return int(await store.read(lambda conn: conn.execute(select(func.count()).select_from(table)).scalar_one()))


async def test_fetch_worker_sleep_schedule(store: Store) -> None:
    with pytest.raises(NotFound, match="worker"):
        await store.sleep_schedules.fetch(uuid4())
    worker = await create_worker(store)
    assert await store.sleep_schedules.fetch(worker.uuid) is None
    created = await store.sleep_schedules.set(worker.uuid, **WORKDAYS)
    fetched = await store.sleep_schedules.fetch(worker.uuid)
    assert fetched == created
    assert fetched is not None
    assert fetched.is_active is True
    assert (fetched.days_of_week, fetched.start_time, fetched.end_time) == ("mo,tu,th,fr", "18:00", "09:00")
    assert (fetched.worker_uuid, fetched.worker_name) == (worker.uuid, worker.name)
    assert fetched.next_check is None


async def test_a_schedule_names_its_worker_by_uuid(store: Store) -> None:
    worker = await create_worker(store)
    schedule = await store.sleep_schedules.set(worker.uuid, **WORKDAYS)
    assert await store.workers.fetch(schedule.worker_uuid) == worker
    [due] = await store.sleep_schedules.to_check(datetime.now(UTC))
    assert (due.uuid, due.worker_uuid) == (schedule.uuid, worker.uuid)
    await store.workers.delete(worker.uuid)
    with pytest.raises(NotFound, match="worker"):
        await store.sleep_schedules.fetch(worker.uuid)
    with pytest.raises(NotFound):
        await store.workers.fetch(schedule.worker_uuid)
    assert not hasattr(store.sleep_schedules, "worker_of")


async def test_set_worker_sleep_schedule(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.sleep_schedules.set(uuid4(), **WORKDAYS)
    assert await _rows(store) == 0
    worker = await create_worker(store)
    created = await store.sleep_schedules.set(worker.uuid, **WORKDAYS)
    next_check = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
    overwritten = await store.sleep_schedules.set(
        worker.uuid, is_active=False, days_of_week="sa su", start_time="01:00", end_time="23:59", next_check=next_check
    )
    assert (overwritten.id, overwritten.uuid, overwritten.created_at) == (created.id, created.uuid, created.created_at)
    assert (overwritten.is_active, overwritten.days_of_week) == (False, "sa su")
    assert (overwritten.start_time, overwritten.end_time, overwritten.next_check) == ("01:00", "23:59", next_check)
    assert overwritten.updated_at > created.updated_at
    assert await store.sleep_schedules.fetch(worker.uuid) == overwritten
    assert await _rows(store) == 1
    empty = await store.sleep_schedules.set(worker.uuid, is_active=False, days_of_week="", start_time="", end_time="")
    assert (empty.is_active, empty.days_of_week, empty.start_time, empty.end_time) == (False, "", "", "")
    assert empty.next_check is None
    assert await store.sleep_schedules.fetch(worker.uuid) == empty
    assert await _rows(store) == 1


async def test_schedules_of_two_workers_are_separate(store: Store) -> None:
    first, second = await create_worker(store, "first"), await create_worker(store, "second")
    one = await store.sleep_schedules.set(first.uuid, **WORKDAYS)
    two = await store.sleep_schedules.set(second.uuid, **{**WORKDAYS, "days_of_week": "su"})
    assert one.uuid != two.uuid
    assert await store.sleep_schedules.fetch(first.uuid) == one
    assert await store.sleep_schedules.fetch(second.uuid) == two


async def test_set_sleep_schedule_next_check(store: Store) -> None:
    worker = await create_worker(store)
    with pytest.raises(NotFound):
        await store.sleep_schedules.set_next_check(worker.uuid, datetime.now(UTC))
    schedule = await store.sleep_schedules.set(worker.uuid, **WORKDAYS)
    later = datetime.now(UTC) + timedelta(hours=5)
    updated = await store.sleep_schedules.set_next_check(worker.uuid, later)
    assert updated.next_check == later
    assert await store.sleep_schedules.fetch(worker.uuid) == updated
    assert (updated.days_of_week, updated.uuid) == (schedule.days_of_week, schedule.uuid)


async def test_fetch_sleep_schedules_to_check(store: Store) -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    past, future = now - timedelta(minutes=1), now + timedelta(minutes=1)
    workers = [await create_worker(store, f"worker{index}") for index in range(4)]
    for worker, is_active, next_check in zip(
        workers, [True, True, True, False], [past, future, None, past], strict=True
    ):
        await store.sleep_schedules.set(worker.uuid, **{**WORKDAYS, "is_active": is_active, "next_check": next_check})
    due = await store.sleep_schedules.to_check(now)
    assert [(schedule.worker_name, schedule.worker_uuid) for schedule in due] == [
        ("worker0", workers[0].uuid),
        ("worker2", workers[2].uuid),
    ]
    assert [schedule.worker_name for schedule in await store.sleep_schedules.to_check(future)] == [
        "worker0",
        "worker1",
        "worker2",
    ]


async def test_soft_deleted_workers_have_no_schedule(store: Store) -> None:
    worker = await create_worker(store)
    await store.sleep_schedules.set(worker.uuid, **WORKDAYS)
    await store.workers.delete(worker.uuid)
    with pytest.raises(NotFound, match="worker"):
        await store.sleep_schedules.fetch(worker.uuid)
    assert await store.sleep_schedules.to_check(datetime.now(UTC)) == []
    with pytest.raises(NotFound):
        await store.sleep_schedules.set(worker.uuid, **WORKDAYS)
    with pytest.raises(NotFound):
        await store.sleep_schedules.set_next_check(worker.uuid, datetime.now(UTC))


BAD_SCHEDULES: dict[str, tuple[dict[str, Any], str]] = {
    "hour-24": ({"start_time": "24:00"}, "start_time"),
    "minute-60": ({"end_time": "12:60"}, "end_time"),
    "one-digit-hour": ({"start_time": "9:00"}, "start_time"),
    "with-seconds": ({"start_time": "09:00:00"}, "start_time"),
    "letters": ({"end_time": "ab:cd"}, "end_time"),
    "time-not-str": ({"start_time": 900}, "start_time"),
    "long-days": ({"days_of_week": "d" * 65}, "days_of_week"),
    "active-not-bool": ({"is_active": "yes"}, "is_active"),
    "naive-next-check": ({"next_check": datetime(2026, 1, 1)}, "next_check.*naive"),
}


@pytest.mark.parametrize("change", list(BAD_SCHEDULES.values()), ids=list(BAD_SCHEDULES))
async def test_bad_schedules_write_nothing(store: Store, change: tuple[dict[str, Any], str]) -> None:
    worker = await create_worker(store)
    overrides, message = change
    with pytest.raises(InvalidInput, match=message):
        await store.sleep_schedules.set(worker.uuid, **{**WORKDAYS, **overrides})
    assert await _rows(store) == 0
    stored = await store.sleep_schedules.set(worker.uuid, **WORKDAYS)
    with pytest.raises(InvalidInput, match=message):
        await store.sleep_schedules.set(worker.uuid, **{**WORKDAYS, **overrides})
    assert await store.sleep_schedules.fetch(worker.uuid) == stored


async def test_bad_identifiers_and_instants_are_refused(store: Store) -> None:
    worker = await create_worker(store)
    schedule = await store.sleep_schedules.set(worker.uuid, **WORKDAYS)
    for bad in ("not-a-uuid", "", "1234", 1234, worker.uuid.bytes, None):
        with pytest.raises(InvalidInput, match="worker uuid"):
            await store.sleep_schedules.fetch(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="worker uuid"):
            await store.sleep_schedules.set(bad, **{**WORKDAYS, "is_active": False})  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="worker uuid"):
            await store.sleep_schedules.set_next_check(bad, datetime.now(UTC))  # type: ignore[arg-type]
    assert await store.sleep_schedules.fetch(str(worker.uuid)) == schedule
    with pytest.raises(InvalidInput, match=r"next_check.*naive"):
        await store.sleep_schedules.set_next_check(worker.uuid, datetime(2026, 1, 1))
    with pytest.raises(InvalidInput, match="now"):
        await store.sleep_schedules.to_check(datetime(2026, 1, 1))
    assert await store.sleep_schedules.fetch(worker.uuid) == schedule


@pytest.mark.parametrize("time", ["", "00:00", "23:59", "12:30"])
async def test_valid_times_are_stored(store: Store, time: str) -> None:
    worker = await create_worker(store)
    stored = await store.sleep_schedules.set(worker.uuid, **{**WORKDAYS, "start_time": time, "end_time": time})
    assert (stored.start_time, stored.end_time) == (time, time)
