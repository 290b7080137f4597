"""Purge benchmark: rows removed per second by ``statestore purge`` against a
raw chunked DELETE, in the same run.

Each round stores a job of ``--tasks`` (100,000) tasks, marks it completed
long ago in one UPDATE, and removes it: once with
``statestore.maintenance.purge.purge`` (chunks of 2,000 rows, each its own
transaction that re-checks the job under its row lock, then the job row with
its ``job.deleted`` change; also the logbook, history and change passes,
which find nothing here), once with the raw driver deleting the same rows
the same way but nothing else: ``SELECT id … LIMIT 2000`` and ``DELETE …
WHERE id IN (…)`` per transaction on raw sqlite3 (``BEGIN IMMEDIATE`` …
``COMMIT``) or asyncpg, then the job row. Rounds alternate. Figure: rows per
second, statestore over raw. Goal: ≥ 50 % of the raw rate (ratio ≤ 2).

Usage: python bench/purge.py [--postgres URL] [--tasks N] [--rounds N] [--skip-sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial

import asyncpg  # type: ignore[import-untyped]
from harness import Figure, asyncpg_dsn, raw_sqlite, report, throwaway_postgres
from sqlalchemy import update
from sqlalchemy.engine import Connection

from statestore import Store, open_store
from statestore.farm import AuthoredJob, AuthoredTask, Command, JobStatus, TaskStatus
from statestore.farm.tables import JOBS, TASKS
from statestore.maintenance.purge import DEFAULT_CHUNK, purge

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)
CUTOFF = datetime(2021, 1, 1, tzinfo=UTC)


def _finish(connection: Connection, job_id: int) -> None:
    connection.execute(update(TASKS).where(TASKS.c.job_id == job_id).values(status=TaskStatus.COMPLETED.value))
    connection.execute(
        update(JOBS).where(JOBS.c.id == job_id).values(status=JobStatus.COMPLETED.value, updated_at=LONG_AGO)
    )


async def _finished_job(store: Store, tasks: int) -> int:
    """A stored job of ``tasks`` tasks, completed long ago; its id."""
    authored = AuthoredJob(
        "finished",
        "bench",
        tasks=[AuthoredTask(f"t{i}", "blender", commands=[Command("run", {"frame": i})]) for i in range(tasks)],
    )
    job = await store.jobs.store_authored(authored)
    await store.write(partial(_finish, job_id=job.id))
    return job.id


async def _timed(action: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await action()
    return time.perf_counter() - started


def _raw_sqlite_purge(path: str, job_id: int) -> None:
    raw = raw_sqlite(path)
    raw.execute("PRAGMA foreign_keys = ON")  # the cascades statestore relies on, the same work
    while True:
        raw.execute("BEGIN IMMEDIATE")
        ids = [
            row[0]
            for row in raw.execute("SELECT id FROM tasks WHERE job_id = ? ORDER BY id LIMIT ?", (job_id, DEFAULT_CHUNK))
        ]
        if ids:
            raw.execute(f"DELETE FROM tasks WHERE id IN ({','.join('?' * len(ids))})", ids)
        raw.execute("COMMIT")
        if not ids:
            break
    raw.execute("BEGIN IMMEDIATE")
    raw.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
    raw.execute("COMMIT")
    raw.close()


async def _raw_postgres_purge(dsn: str, job_id: int) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        while True:
            async with connection.transaction():
                ids = [
                    row[0]
                    for row in await connection.fetch(
                        "SELECT id FROM tasks WHERE job_id = $1 ORDER BY id LIMIT $2", job_id, DEFAULT_CHUNK
                    )
                ]
                if ids:
                    await connection.execute("DELETE FROM tasks WHERE id = ANY($1::bigint[])", ids)
            if not ids:
                break
        await connection.execute("DELETE FROM jobs WHERE id = $1", job_id)
    finally:
        await connection.close()


async def measure(name: str, url: str, raw: Callable[[int], Awaitable[None]], tasks: int, rounds: int) -> Figure:
    ours_rates, raw_rates = [], []
    async with open_store(url, create=True) as store:
        for _ in range(rounds):
            job = await _finished_job(store, tasks)
            ours = await _timed(lambda: purge(store, finished_before=CUTOFF))
            ours_rates.append((tasks + 1) / ours)
            job = await _finished_job(store, tasks)
            baseline = await _timed(partial(raw, job))
            raw_rates.append((tasks + 1) / baseline)
            print(f"  {name}: statestore {ours_rates[-1]:,.0f} rows/s, raw {raw_rates[-1]:,.0f} rows/s", flush=True)
    return Figure(
        f"{name}: rows purged/s, {tasks:,}-task job",
        statistics.median(ours_rates),
        statistics.median(raw_rates),
        "rows/s",
        2.0,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default=os.environ.get("STATESTORE_BENCH_POSTGRES_URL"))
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-sqlite", action="store_true")
    options = parser.parse_args()
    figures = []
    if not options.skip_sqlite:
        with tempfile.TemporaryDirectory() as scratch:
            path = os.path.join(scratch, "purge.db")

            async def raw_sqlite_purge(job: int) -> None:
                _raw_sqlite_purge(path, job)

            figures.append(
                await measure("SQLite file", f"sqlite:///{path}", raw_sqlite_purge, options.tasks, options.rounds)
            )
    if options.postgres:
        async with throwaway_postgres(options.postgres) as url:

            async def raw_postgres_purge(job: int) -> None:
                await _raw_postgres_purge(asyncpg_dsn(url), job)

            figures.append(await measure("PostgreSQL", url, raw_postgres_purge, options.tasks, options.rounds))
    report(figures, "ratio = times slower than a raw chunked DELETE; goal: at least 50 % of its rate")


if __name__ == "__main__":
    asyncio.run(main())
