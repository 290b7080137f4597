"""Base columns beyond single-row inserts: many rows per statement, UPDATE
and WHERE clauses, edge microseconds — on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select, update

from statestore import InvalidInput, Store
from tests.support.core_model import COUNTERS, counters_table

PLUS_TWO = timezone(timedelta(hours=2))


async def _rows(store: Store) -> list[dict[str, object]]:
    result = await store.read(lambda conn: conn.execute(select(COUNTERS).order_by(COUNTERS.c.name)).mappings().all())
    return [dict(row) for row in result]


async def test_many_rows_in_one_statement_each_get_their_own_base_columns(store: Store) -> None:
    async with counters_table(store):
        await store.write(lambda conn: conn.execute(insert(COUNTERS), [{"name": f"r{i}"} for i in range(5)]))
        rows = await _rows(store)
        assert len({row["uuid"] for row in rows}) == 5
        assert len({row["id"] for row in rows}) == 5
        for row in rows:
            assert isinstance(row["created_at"], datetime)
            assert row["created_at"].tzinfo is UTC
            assert row["updated_at"] == row["created_at"]


async def test_a_given_created_at_is_also_the_first_updated_at(store: Store) -> None:
    when = datetime(2025, 6, 1, 8, 30, 0, 1, tzinfo=PLUS_TWO)
    async with counters_table(store):
        await store.write(lambda conn: conn.execute(insert(COUNTERS), {"name": "c", "created_at": when}))
        (row,) = await _rows(store)
        assert row["created_at"] == row["updated_at"] == when


async def test_edge_microseconds_round_trip_exactly(store: Store) -> None:
    """No rounding to seconds (MySQL's default DATETIME would carry
    23:59:59.999999 into the next day)."""
    last = datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    first = datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    async with counters_table(store):
        await store.write(
            lambda conn: conn.execute(
                insert(COUNTERS), [{"name": "a", "created_at": first}, {"name": "b", "created_at": last}]
            )
        )
        assert [row["created_at"] for row in await _rows(store)] == [first, last]


async def test_an_aware_non_utc_value_in_a_where_clause_finds_the_same_instant(store: Store) -> None:
    stored = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    async with counters_table(store):
        await store.write(lambda conn: conn.execute(insert(COUNTERS), {"name": "c", "created_at": stored}))
        same_instant = datetime(2026, 1, 1, 12, 0, tzinfo=PLUS_TWO)
        found = await store.read(
            lambda conn: conn.execute(select(COUNTERS.c.name).where(COUNTERS.c.created_at == same_instant)).all()
        )
        assert [row.name for row in found] == ["c"]
        later = datetime(2026, 1, 1, 11, 0, tzinfo=PLUS_TWO)  # 09:00 UTC, before the row
        after = await store.read(
            lambda conn: conn.execute(select(COUNTERS.c.name).where(COUNTERS.c.created_at > later)).all()
        )
        assert [row.name for row in after] == ["c"]


async def test_a_naive_datetime_is_rejected_in_update_and_where(store: Store) -> None:
    naive = datetime(2026, 1, 1, 12, 0)
    async with counters_table(store):
        await store.write(lambda conn: conn.execute(insert(COUNTERS), {"name": "c"}))
        (before,) = await _rows(store)
        with pytest.raises(InvalidInput, match="naive"):
            await store.write(lambda conn: conn.execute(update(COUNTERS).values(value=5, updated_at=naive)))
        with pytest.raises(InvalidInput, match="naive"):
            await store.read(lambda conn: conn.execute(select(COUNTERS).where(COUNTERS.c.created_at < naive)).all())
        assert await _rows(store) == [before]


async def test_an_explicit_updated_at_on_update_is_kept(store: Store) -> None:
    chosen = datetime(2030, 5, 5, 5, 5, 5, 5, tzinfo=UTC)
    async with counters_table(store):
        await store.write(lambda conn: conn.execute(insert(COUNTERS), {"name": "c"}))
        await store.write(lambda conn: conn.execute(update(COUNTERS).values(value=1, updated_at=chosen)))
        (row,) = await _rows(store)
        assert row["updated_at"] == chosen
        assert row["created_at"] != chosen
