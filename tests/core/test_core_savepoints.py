"""Savepoints and tasks sharing one explicit transaction, on every backend."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest
from sqlalchemy import insert, select

from statestore import AlreadyExists, Store
from tests.support.core_model import COUNTERS, counters_table


class Boom(Exception):
    pass


async def _add(store: Store, name: str, **values: object) -> None:
    await store.write(lambda conn: conn.execute(insert(COUNTERS), {"name": name, **values}))


async def _names(store: Store) -> list[str]:
    return await store.read(lambda conn: sorted(conn.execute(select(COUNTERS.c.name)).scalars()))


async def test_a_failed_statement_in_a_savepoint_leaves_the_transaction_usable(store: Store) -> None:
    """Insert-or-skip: on PostgreSQL a failed statement aborts the whole
    transaction unless a savepoint around it is rolled back."""
    taken = uuid4()
    async with counters_table(store):
        await _add(store, "first", uuid=taken)
        async with store.transaction():
            await _add(store, "before")
            with pytest.raises(AlreadyExists):
                async with store.transaction():
                    await _add(store, "duplicate", uuid=taken)
            await _add(store, "after")
        assert await _names(store) == ["after", "before", "first"]


async def test_tasks_inside_a_transaction_share_it(store: Store) -> None:
    async with counters_table(store):
        with pytest.raises(Boom):
            async with store.transaction():
                await asyncio.gather(_add(store, "a"), _add(store, "b"))
                raise Boom
        assert await _names(store) == []
        async with store.transaction():
            await asyncio.gather(_add(store, "a"), _add(store, "b"))
        assert await _names(store) == ["a", "b"]


async def test_nested_transactions_of_sibling_tasks_keep_each_others_work(store: Store) -> None:
    """Two tasks of one transaction each open a nested transaction; the first
    fails while the second's may be open. Rolling back the first must not
    take the second's savepoint (and its write) with it. (Savepoints form a
    stack on one connection, so a fix has to make the second wait for the
    first; this test does not block on the second from inside the first.)"""
    async with counters_table(store):
        first_wrote = asyncio.Event()
        second_entering = asyncio.Event()

        async def failing() -> None:
            async with store.transaction():
                await _add(store, "failing")
                first_wrote.set()
                await second_entering.wait()
                await asyncio.sleep(0.05)  # room for the sibling's SAVEPOINT and write
                raise Boom

        async def succeeding() -> None:
            await first_wrote.wait()
            second_entering.set()
            async with store.transaction():
                await _add(store, "kept")
                await asyncio.sleep(0.1)  # still open when the sibling rolls back

        async with store.transaction():
            outcomes = await asyncio.gather(failing(), succeeding(), return_exceptions=True)
        assert isinstance(outcomes[0], Boom)
        assert outcomes[1] is None, repr(outcomes[1])
        assert await _names(store) == ["kept"]
