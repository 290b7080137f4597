"""store.transaction(): one unit of work; nested is a savepoint."""

from __future__ import annotations

import pytest
from sqlalchemy import func, insert, select

from statestore import Store
from tests.support.core_model import COUNTERS, counters_table


class Boom(Exception):
    pass


async def _add(store: Store, name: str) -> None:
    await store.write(lambda conn: conn.execute(insert(COUNTERS), {"name": name}))


async def _names(store: Store) -> list[str]:
    return await store.read(
        lambda conn: list(conn.execute(select(COUNTERS.c.name).order_by(COUNTERS.c.name)).scalars())
    )


async def test_an_error_rolls_back_every_write(store: Store) -> None:
    async with counters_table(store):
        with pytest.raises(Boom):
            async with store.transaction():
                await _add(store, "a")
                await _add(store, "b")
                raise Boom
        assert await _names(store) == []


async def test_a_completed_transaction_commits_every_write(store: Store) -> None:
    async with counters_table(store):
        async with store.transaction():
            await _add(store, "a")
            await _add(store, "b")
        assert await _names(store) == ["a", "b"]


async def test_reads_inside_see_their_own_writes(store: Store) -> None:
    async with counters_table(store), store.transaction():
        await _add(store, "a")
        assert await _names(store) == ["a"]


async def test_a_nested_transaction_is_a_savepoint(store: Store) -> None:
    async with counters_table(store):
        async with store.transaction():
            await _add(store, "outer")
            with pytest.raises(Boom):
                async with store.transaction():
                    await _add(store, "inner")
                    raise Boom
            await _add(store, "after")
        assert await _names(store) == ["after", "outer"]


async def test_a_write_outside_is_visible_once_it_returns(store: Store) -> None:
    async with counters_table(store):
        await _add(store, "a")
        count = await store.read(lambda conn: conn.execute(select(func.count()).select_from(COUNTERS)).scalar_one())
        assert count == 1
