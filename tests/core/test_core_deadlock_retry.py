"""A deadlock victim is re-run, not surfaced: two units that lock two rows in
opposite orders both complete on the database servers (SQLite has one writer
and cannot deadlock)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import Connection

from statestore import Store
from tests.support.core_model import COUNTERS, counters_table


def _crossing(first: str, second: str, runs: list[str]) -> Callable[[Connection], None]:
    def unit(connection: Connection) -> None:
        runs.append(first)
        connection.execute(update(COUNTERS).where(COUNTERS.c.name == first).values(value=COUNTERS.c.value + 1))
        # A server-side pause (the loop keeps running) so that the other unit
        # takes its first lock before this one asks for its second.
        pause = "SELECT pg_sleep(0.3)" if connection.dialect.name == "postgresql" else "SELECT SLEEP(0.3)"
        connection.execute(text(pause))
        connection.execute(update(COUNTERS).where(COUNTERS.c.name == second).values(value=COUNTERS.c.value + 1))

    return unit


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])  # SQLite has one writer: no deadlock
async def test_a_deadlock_victim_is_run_again(store: Store) -> None:
    async with counters_table(store):
        await store.write(lambda conn: conn.execute(insert(COUNTERS), [{"name": "a"}, {"name": "b"}]))
        runs: list[str] = []
        await asyncio.gather(store.write(_crossing("a", "b", runs)), store.write(_crossing("b", "a", runs)))
        values = await store.read(lambda conn: dict(conn.execute(select(COUNTERS.c.name, COUNTERS.c.value)).all()))
        assert values == {"a": 2, "b": 2}  # each unit's effect exactly once
        assert len(runs) == 3  # one of them was the victim and ran again
