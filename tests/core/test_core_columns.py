"""The shared base columns: id, uuid, created_at, updated_at — on every backend."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID, uuid4

import pytest
from sqlalchemy import func, insert, select, update

from statestore import AlreadyExists, InvalidInput, Store
from tests.support.core_model import COUNTERS, counters_table


async def _insert(store: Store, **values: object) -> None:
    await store.write(lambda conn: conn.execute(insert(COUNTERS), {"name": "c", **values}))


async def _row(store: Store, name: str = "c") -> dict[str, object]:
    row = await store.read(lambda conn: conn.execute(select(COUNTERS).where(COUNTERS.c.name == name)).mappings().one())
    return dict(row)


async def test_uuid_is_generated_when_not_given(store: Store) -> None:
    async with counters_table(store):
        await _insert(store)
        row = await _row(store)
        assert isinstance(row["uuid"], UUID)
        assert isinstance(row["id"], int)


async def test_uuid_is_kept_when_given(store: Store) -> None:
    chosen = uuid4()
    async with counters_table(store):
        await _insert(store, uuid=chosen)
        assert (await _row(store))["uuid"] == chosen


async def test_uuid_is_unique(store: Store) -> None:
    chosen = uuid4()
    async with counters_table(store):
        await _insert(store, uuid=chosen)
        with pytest.raises(AlreadyExists) as raised:
            await _insert(store, name="d", uuid=chosen)
        assert raised.value.__cause__ is not None


async def test_timestamps_are_aware_utc_and_equal_on_insert(store: Store) -> None:
    async with counters_table(store):
        before = datetime.now(UTC)
        await _insert(store)
        row = await _row(store)
        created, updated = row["created_at"], row["updated_at"]
        assert isinstance(created, datetime)
        assert created.tzinfo is UTC
        assert created == updated
        assert before - timedelta(seconds=5) <= created <= datetime.now(UTC) + timedelta(seconds=5)


async def test_non_utc_input_round_trips_as_the_same_instant(store: Store) -> None:
    noon_plus_two = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    async with counters_table(store):
        await _insert(store, created_at=noon_plus_two, updated_at=noon_plus_two)
        stored = (await _row(store))["created_at"]
        assert stored == noon_plus_two
        assert stored == datetime(2026, 1, 1, 10, 0, 0, 123456, tzinfo=UTC)
        assert isinstance(stored, datetime)
        assert stored.tzinfo is UTC
        assert stored.microsecond == 123456


async def test_naive_datetime_is_rejected_and_nothing_written(store: Store) -> None:
    async with counters_table(store):
        with pytest.raises(InvalidInput, match="naive"):
            await _insert(store, created_at=datetime(2026, 1, 1, 12, 0))
        count = await store.read(lambda conn: conn.execute(select(func.count()).select_from(COUNTERS)).scalar_one())
        assert count == 0


async def test_updated_at_moves_on_update_and_not_on_read(store: Store) -> None:
    async with counters_table(store):
        await _insert(store)
        first = await _row(store)
        await asyncio.sleep(0.01)
        await _row(store)
        assert (await _row(store))["updated_at"] == first["updated_at"]
        await store.write(lambda conn: conn.execute(update(COUNTERS).values(value=COUNTERS.c.value + 1)))
        second = await _row(store)
        assert second["value"] == 1
        assert isinstance(second["updated_at"], datetime)
        assert isinstance(first["updated_at"], datetime)
        assert second["updated_at"] > first["updated_at"]
        assert second["created_at"] == first["created_at"]
