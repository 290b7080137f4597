"""Flow-model benchmark: statestore against the raw driver, in one run.

Each figure is a ratio to a baseline measured in the same run, rounds of the
two interleaved so the machine's noise hits both; absolute rates on a shared
2-vCPU machine mean little.

1. Committed atom-state updates per second, one writer:
   ``store.atom_details.update(atom)`` against the same UPDATE + COMMIT on the
   raw driver — sqlite3 (WAL, synchronous=NORMAL, BEGIN IMMEDIATE) and, when
   a PostgreSQL URL is given, a single asyncpg statement (autocommit).
2. 16 concurrent writers on SQLite through the store (they share commits)
   against the raw sqlite3 single-writer rate.
3. Loading a logbook of 10 flows x 100 atoms: SELECT count and time against
   the same three queries on the raw driver, whose rows get their JSON
   columns decoded (what any caller of the raw driver must do to use them);
   the store also builds typed records, UTC datetimes and Failure objects.

Usage: python bench/flows.py [--postgres URL] [--rounds N] [--updates N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from harness import Figure, asyncpg_dsn, interleaved, rate, raw_sqlite, report, sqlite_time, throwaway_postgres
from sqlalchemy import event

from statestore import Store, open_store
from statestore.flows import AtomDetail, AtomState, FlowDetail, LogBook

RAW_UPDATE_SQLITE = "UPDATE atom_details SET state = ?, results = ?, updated_at = ? WHERE uuid = ?"
# Positions of results, failure, revert_results, revert_failure, meta in
# SELECT * FROM atom_details (the migration's column order).
JSON_COLUMNS_SQLITE = (9, 10, 11, 12, 14)


def _decoded(row: Any, positions: tuple[int, ...]) -> list[Any]:
    values = list(row)
    for position in positions:
        if isinstance(values[position], str):  # SQLite gives numeric JSON back as numbers
            values[position] = json.loads(values[position])
    return values


RAW_UPDATE_PG = "UPDATE atom_details SET state = $1, results = $2::json, updated_at = $3 WHERE uuid = $4"


def _store_updates(store: Store, atom: AtomDetail, updates: int) -> Callable[[], Awaitable[float]]:
    """One writer committing ``updates`` state changes of ``atom``; its rate."""

    async def store_rate() -> float:
        async def step(index: int) -> None:
            atom.state, atom.results = AtomState.RUNNING, index
            await store.atom_details.update(atom)

        return await rate(step, updates)

    return store_rate


def _book(flows: int, atoms: int) -> LogBook:
    return LogBook(
        "bench",
        flows=[FlowDetail(f"f{f}", atoms=[AtomDetail(f"a{f}-{a}") for a in range(atoms)]) for f in range(flows)],
    )


@contextmanager
def _select_counter(store: Store) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_c: Any, _cur: Any, sql: str, *_rest: Any) -> None:
        if sql.lstrip().upper().startswith("SELECT"):
            seen.append(sql)

    event.listen(store.runner.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store.runner.sync_engine, "before_cursor_execute", record)


async def bench_sqlite(rounds: int, updates: int) -> list[Figure]:
    directory = tempfile.mkdtemp(prefix="statestore-bench-")
    path = os.path.join(directory, "bench.db")
    figures = []
    async with open_store(f"sqlite:///{path}", create=True) as store:
        book = _book(10, 100)
        await store.logbooks.save(book)
        mine, theirs = book.flows[0].atoms[0], book.flows[0].atoms[1]
        raw = raw_sqlite(path)

        async def raw_rate() -> float:
            def one(index: int) -> None:
                raw.execute("BEGIN IMMEDIATE")
                now = sqlite_time(datetime.now(UTC))
                raw.execute(RAW_UPDATE_SQLITE, ("RUNNING", json.dumps(index), now, theirs.uuid.hex))
                raw.execute("COMMIT")

            async def step(index: int) -> None:
                one(index)

            return await rate(step, updates)

        ours, baseline = await interleaved(raw_rate, _store_updates(store, mine, updates), rounds)
        figures.append(Figure("SQLite: atom update, 1 writer", ours, baseline, "updates/s", 4.0))

        writers = book.flows[1].atoms[:16]

        async def concurrent_rate() -> float:
            per_writer = updates // 16

            async def writer(atom: AtomDetail) -> None:
                for index in range(per_writer):
                    atom.state, atom.results = AtomState.RUNNING, index
                    await store.atom_details.update(atom)

            started = time.perf_counter()
            await asyncio.gather(*(writer(atom) for atom in writers))
            return per_writer * 16 / (time.perf_counter() - started)

        ours, baseline = await interleaved(raw_rate, concurrent_rate, rounds)
        figures.append(Figure("SQLite: 16 concurrent writers vs raw 1 writer", ours, baseline, "updates/s", 1.0))

        def raw_load() -> int:
            book_id = raw.execute("SELECT id FROM log_books WHERE uuid = ?", (book.uuid.hex,)).fetchone()[0]
            raw.execute("SELECT * FROM flow_details WHERE logbook_id = ? ORDER BY id", (book_id,)).fetchall()
            rows = raw.execute(
                "SELECT a.* FROM atom_details a JOIN flow_details f ON a.flow_detail_id = f.id "
                "WHERE f.logbook_id = ? ORDER BY a.id",
                (book_id,),
            ).fetchall()
            return len([_decoded(row, JSON_COLUMNS_SQLITE) for row in rows])

        figures.extend(await _load_figures("SQLite", store, book, raw_load, rounds))
        raw.close()
    return figures


async def _load_figures(
    label: str, store: Store, book: LogBook, raw_load: Callable[[], Any], rounds: int
) -> list[Figure]:
    with _select_counter(store) as selects:
        loaded = await store.logbooks.get(book.uuid)
    assert sum(len(flow.atoms) for flow in loaded.flows) == 1000
    loads = max(5, rounds * 3)

    async def raw_rate() -> float:
        started = time.perf_counter()
        for _ in range(loads):
            result = raw_load()
            if asyncio.iscoroutine(result):
                await result
        return loads / (time.perf_counter() - started)

    async def store_rate() -> float:
        started = time.perf_counter()
        for _ in range(loads):
            await store.logbooks.get(book.uuid)
        return loads / (time.perf_counter() - started)

    ours, baseline = await interleaved(raw_rate, store_rate, rounds)
    return [
        Figure(f"{label}: load 1,000-atom logbook", ours, baseline, "loads/s", 2.0),
        Figure(f"{label}: SELECTs per logbook load", float(len(selects)), 3.0, "queries", 1.0, False),
    ]


async def bench_postgres(admin_url: str, rounds: int, updates: int) -> list[Figure]:
    import asyncpg  # type: ignore[import-untyped]

    figures: list[Figure] = []
    async with throwaway_postgres(admin_url) as url, open_store(url, create=True) as store:
        book = _book(10, 100)
        await store.logbooks.save(book)
        mine, theirs = book.flows[0].atoms[0], book.flows[0].atoms[1]
        raw = await asyncpg.connect(asyncpg_dsn(url))

        async def raw_rate() -> float:
            async def step(index: int) -> None:
                await raw.execute(RAW_UPDATE_PG, "RUNNING", json.dumps(index), datetime.now(UTC), theirs.uuid)

            return await rate(step, updates)

        ours, baseline = await interleaved(raw_rate, _store_updates(store, mine, updates), rounds)
        figures.append(Figure("PostgreSQL: atom update, 1 writer", ours, baseline, "updates/s", 1.3))

        async def raw_load() -> None:
            book_id = await raw.fetchval("SELECT id FROM log_books WHERE uuid = $1", book.uuid)
            await raw.fetch("SELECT * FROM flow_details WHERE logbook_id = $1 ORDER BY id", book_id)
            rows = await raw.fetch(
                "SELECT a.* FROM atom_details a JOIN flow_details f ON a.flow_detail_id = f.id "
                "WHERE f.logbook_id = $1 ORDER BY a.id",
                book_id,
            )
            [_decoded(row, JSON_COLUMNS_SQLITE) for row in rows]  # same column order

        figures.extend(await _load_figures("PostgreSQL", store, book, raw_load, rounds))
        await raw.close()
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default=os.environ.get("STATESTORE_BENCH_POSTGRES_URL"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--updates", type=int, default=2000)
    options = parser.parse_args()
    figures = await bench_sqlite(options.rounds, options.updates)
    if options.postgres:
        figures += await bench_postgres(options.postgres, options.rounds, options.updates // 2)
    report(figures, "ratio = times slower than the raw driver; for query counts, queries / 3")


if __name__ == "__main__":
    asyncio.run(main())
