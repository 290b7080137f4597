"""Scheduler benchmark: statestore's claim against a bare claim loop, in one run.

1. Claims per second with 1, 8 and 32 concurrent claimers (coroutines, each
   claim for a fresh awake worker, activate=True) against a baseline measured
   in the same run: a bare single-table claim loop on the raw driver with no
   dependencies or filters — on PostgreSQL ``UPDATE … WHERE id = (SELECT …
   FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING`` on as many asyncpg connections
   as claimers; on SQLite ``BEGIN IMMEDIATE``, the same UPDATE … RETURNING,
   ``COMMIT`` on one raw sqlite3 connection (SQLite has one writer, so more
   raw loops would not be faster). Goals: at 8 claimers ≥ 50 % of the raw rate
   on PostgreSQL (ratio ≤ 2), ≥ 1/3 on SQLite (ratio ≤ 3).
2. p50/p99 latency of one claim with 1k, 100k and 1M tasks in the database
   (``--max-tasks`` caps the sizes), 99 % of them completed (history in
   completed jobs) and 1 % (at least 32) queued in a live job, **while the
   worker loop's completions run**: besides the measured claimer, 7 worker
   coroutines (each its own worker row) run the worker loop on the live job
   — ``scheduler.claim``, two ``tasks.touched_by_worker``,
   ``state_machine.worker_task_update(…, status="completed")`` — and put
   each completed task back in the queue (untimed), so the live job's queue
   and the database's size stay the same while claims and completions
   rewrite task rows, append history and churn the indexes. The measured
   claimer puts its claimed task back (untimed) too, and claims for at least
   ``--latency-seconds`` (120) per size, so that slow spells (a vacuum, a
   checkpoint) land in the window. Figures: p50 and p99 at each larger size
   over the same at 1k. Goals: PostgreSQL p50 ≤ 1.2 ×, p99 ≤ 2 ×; SQLite
   p50 ≤ 2 × (p99 shown). Also printed: when the claims slower than 4 × p50
   happened, per 10 s of the window. On PostgreSQL it also prints,
   for the tasks table over the measured window, the row updates and how
   many were HOT, the dead tuples and (auto)vacuum/analyze runs.
3. The query plans of the claim at the largest size (EXPLAIN QUERY PLAN on
   SQLite, EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL, rolled back).

Usage: python bench/scheduler.py [--postgres URL] [--rounds N] [--claims N] [--max-tasks N]
                                 [--latency-claims N] [--latency-only] [--skip-sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from math import inf
from typing import Any

from harness import Figure, asyncpg_dsn, interleaved, raw_sqlite, report, sqlite_time, throwaway_postgres
from sqlalchemy import insert, update

from statestore import Store, open_store
from statestore.errors import TransactionConflict
from statestore.farm import AuthoredJob, AuthoredTask, TaskStatus, WorkerStatus
from statestore.farm.claim.postgresql import CLAIM_SQL as CLAIM_SQL_POSTGRESQL
from statestore.farm.claim.sqlite import LOOKUP as CLAIM_LOOKUP_SQLITE
from statestore.farm.tables import TASKS, WORKERS

CLAIMERS = (1, 8, 32)
SIZES = (1_000, 100_000, 1_000_000)
LIVE_SHARE = 0.01
LIVE_MIN = 32
"""The live job's queue at the least, so the loop workers always find work."""
LOOP_WORKERS = 7
"""Worker-loop coroutines claiming and completing beside the measured claimer."""
HISTORY_JOB_SIZE = 10_000

RAW_QUEUE_DDL = (
    "CREATE TABLE bench_queue (id {pk}, state VARCHAR(16) NOT NULL, worker_id BIGINT)",
    "CREATE INDEX ix_bench_queue_queued ON bench_queue (id) WHERE state = 'queued'",
)
RAW_CLAIM = (
    "UPDATE bench_queue SET state = 'active', worker_id = {w} WHERE id = "
    "(SELECT id FROM bench_queue WHERE state = 'queued' ORDER BY id LIMIT 1{lock}) RETURNING id"
)


# -- setup ---------------------------------------------------------------------


def _worker_rows(count: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {
            "uuid": uuid.uuid4(),
            "created_at": now,
            "updated_at": now,
            "secret_hash": "not-a-real-hash",
            "name": f"w{index}",
            "status": WorkerStatus.AWAKE.value,
            "supported_task_types": "blender",
        }
        for index in range(count)
    ]


async def _fresh_workers(store: Store, count: int) -> list[uuid.UUID]:
    """``count`` awake workers inserted in bulk (a claim per fresh worker
    measures claiming, not the "already has an active task" shortcut)."""
    rows = _worker_rows(count)
    await store.write(lambda conn: conn.execute(insert(WORKERS), rows), offload=True)
    return [row["uuid"] for row in rows]


async def _queued_job(store: Store, tasks: int) -> None:
    job = AuthoredJob("bench", "render", tasks=[AuthoredTask(f"t{n}", "blender") for n in range(tasks)])
    await store.jobs.store_authored(job)


async def _claim_all(store: Store, workers: list[uuid.UUID], claimers: int) -> float:
    """Claims per second, ``claimers`` coroutines sharing the worker list."""
    pending = iter(workers)

    async def claimer() -> None:
        for worker in pending:
            if await store.scheduler.claim(worker) is None:
                raise AssertionError("a claim found no task: the benchmark's job is too small")

    started = time.perf_counter()
    await asyncio.gather(*(claimer() for _ in range(claimers)))
    return len(workers) / (time.perf_counter() - started)


# -- throughput ----------------------------------------------------------------


async def throughput_sqlite(rounds: int, claims: int) -> list[Figure]:
    directory = tempfile.mkdtemp(prefix="statestore-bench-")
    path = os.path.join(directory, "scheduler.db")
    figures = []
    async with open_store(f"sqlite:///{path}", create=True) as store:
        raw = raw_sqlite(path)
        for statement in RAW_QUEUE_DDL:
            raw.execute(statement.format(pk="INTEGER PRIMARY KEY"))
        claim = RAW_CLAIM.format(w="?", lock="")

        async def raw_rate() -> float:
            raw.executemany("INSERT INTO bench_queue (state) VALUES ('queued')", [()] * claims)
            started = time.perf_counter()
            for worker in range(claims):
                raw.execute("BEGIN IMMEDIATE")
                claimed = raw.execute(claim, (worker,)).fetchone()
                raw.execute("COMMIT")
                assert claimed is not None
                await asyncio.sleep(0)  # as a loop inside an asyncio service would
            return claims / (time.perf_counter() - started)

        for claimers in CLAIMERS:

            async def store_rate(claimers: int = claimers) -> float:
                workers = await _fresh_workers(store, claims)
                await _queued_job(store, claims)
                return await _claim_all(store, workers, claimers)

            ours, baseline = await interleaved(raw_rate, store_rate, rounds)
            goal = 3.0 if claimers == 8 else inf
            figures.append(
                Figure(f"SQLite: claims/s, {claimers} claimers vs raw sqlite3 loop", ours, baseline, "claims/s", goal)
            )
        raw.close()
    return figures


async def _raw_drain(
    pool: Any, admin: Any, claim: str, loops: int, claims: int, queue: str | None, workers: list[int] | None = None
) -> float:
    """``loops`` raw asyncpg connections claim until nothing is left; claims/s."""
    if queue is not None:
        await admin.executemany(f"INSERT INTO {queue} (state) VALUES ('queued')", [()] * claims)
    done = 0

    async def loop(index: int) -> None:
        nonlocal done
        async with pool.acquire() as connection:
            while await connection.fetchval(claim, index if workers is None else workers[index]) is not None:
                done += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(index) for index in range(loops)))
    assert done == claims, (done, claims)
    return claims / (time.perf_counter() - started)


async def throughput_postgres(url: str, rounds: int, claims: int) -> list[Figure]:
    import asyncpg  # type: ignore[import-untyped]

    figures = []
    async with open_store(url, create=True, pool_size=2 * max(CLAIMERS), max_overflow=8) as store:
        admin = await asyncpg.connect(asyncpg_dsn(url))
        for statement in RAW_QUEUE_DDL:
            await admin.execute(statement.format(pk="BIGSERIAL PRIMARY KEY"))
        claim = RAW_CLAIM.format(w="$1", lock=" FOR UPDATE SKIP LOCKED")
        pool = await asyncpg.create_pool(asyncpg_dsn(url), min_size=max(CLAIMERS), max_size=max(CLAIMERS))
        for claimers in CLAIMERS:

            async def raw_rate(claimers: int = claimers) -> float:
                return await _raw_drain(pool, admin, claim, claimers, claims, "bench_queue")

            async def store_rate(claimers: int = claimers) -> float:
                workers = await _fresh_workers(store, claims)
                await _queued_job(store, claims)
                return await _claim_all(store, workers, claimers)

            ours, baseline = await interleaved(raw_rate, store_rate, rounds)
            goal = 2.0 if claimers == 8 else inf
            figures.append(
                Figure(
                    f"PostgreSQL: claims/s, {claimers} claimers vs raw SKIP LOCKED", ours, baseline, "claims/s", goal
                )
            )
        # Where the gap comes from, 1: the bare claim loop, unchanged, but on
        # the tasks table (wider rows; a claim moves the row in five indexes).
        bare_on_tasks = (
            "UPDATE tasks SET status = 'active', worker_id = $1, last_touched_at = now(), updated_at = now() "
            "WHERE id = (SELECT id FROM tasks WHERE status IN ('queued', 'soft-failed') AND pending_dependencies = 0 "
            "ORDER BY job_priority DESC, priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id"
        )
        # A worker of its own per loop, as the store's claims have (one shared
        # worker row would make the loops contend on its foreign-key lock).
        loop_workers = [row[0] for row in await admin.fetch("SELECT id FROM workers ORDER BY id LIMIT 8")]

        async def raw_on_single_table() -> float:
            return await _raw_drain(pool, admin, claim, 8, claims, "bench_queue")

        async def raw_on_tasks() -> float:
            await _queued_job(store, claims)
            return await _raw_drain(pool, admin, bare_on_tasks, 8, claims, None, loop_workers)

        ours, baseline = await interleaved(raw_on_single_table, raw_on_tasks, rounds)
        figures.append(
            Figure("PostgreSQL: raw bare claim, 8 loops: on tasks vs single table", ours, baseline, "claims/s", inf)
        )
        # 2: the same claim statement on raw asyncpg
        # (prepared once) separates the store's own overhead from the cost
        # of the claim's SQL on the tasks table and its indexes.
        statement = await admin.prepare(
            CLAIM_SQL_POSTGRESQL.replace(":worker_uuid", "$1").replace(":now", "$2").replace(":activate", "$3")
        )

        async def same_sql_rate() -> float:
            workers = await _fresh_workers(store, claims)
            await _queued_job(store, claims)
            started = time.perf_counter()
            for worker in workers:
                assert await statement.fetch(worker, datetime.now(UTC), True)
            return claims / (time.perf_counter() - started)

        async def store_rate() -> float:
            workers = await _fresh_workers(store, claims)
            await _queued_job(store, claims)
            return await _claim_all(store, workers, 1)

        ours, baseline = await interleaved(same_sql_rate, store_rate, rounds)
        figures.append(
            Figure("PostgreSQL: claims/s, 1 claimer vs its own SQL on raw asyncpg", ours, baseline, "claims/s", inf)
        )
        await pool.close()
        await admin.close()
    return figures


# -- latency as history grows ----------------------------------------------------


def _task_rows(job_id: int, count: int, status: str, first_index: int = 1) -> Iterator[tuple[Any, ...]]:
    now = datetime.now(UTC)
    for index in range(first_index, first_index + count):
        # id is left to the database; the tuple follows HISTORY_COLUMNS.
        live = status == "queued"
        yield (uuid.uuid4(), now, now, job_id, index, f"t{index}", "blender", 50, status, "[]", "", 1, 1, 50, 0, live)


HISTORY_COLUMNS = (
    "uuid, created_at, updated_at, job_id, index_in_job, name, type, priority, status, commands, activity, "
    "steps_completed, steps_total, job_priority, pending_dependencies, job_schedulable"
)


def _history_plan(size: int) -> tuple[list[int], int]:
    """Sizes of the completed history jobs and of the live job's queue."""
    live = max(LIVE_MIN, int(size * LIVE_SHARE))
    history = size - live
    jobs = [HISTORY_JOB_SIZE] * (history // HISTORY_JOB_SIZE)
    if history % HISTORY_JOB_SIZE:
        jobs.append(history % HISTORY_JOB_SIZE)
    return jobs, live


async def _job_row(store: Store, name: str, status: str) -> int:
    job = await store.jobs.store_authored(AuthoredJob(name, "render", tasks=[]))
    if status != "queued":
        from statestore.farm import JobStatus

        await store.jobs.save_status(job.uuid, JobStatus(status), "")
    return job.id


async def _latencies(
    store: Store, worker: uuid.UUID, claims: int, seconds: float = 0.0, when: list[float] | None = None
) -> list[float]:
    """Seconds per claim, ``claims`` claims or for ``seconds`` if more;
    each claimed task is put back (untimed). ``when`` gets each claim's
    start, in seconds since the first."""
    timings: list[float] = []
    first = time.perf_counter()
    while len(timings) < claims or time.perf_counter() - first < seconds:
        started = time.perf_counter()
        scheduled = await store.scheduler.claim(worker)
        timings.append(time.perf_counter() - started)
        if when is not None:
            when.append(started - first)
        assert scheduled is not None
        await _put_back(store, scheduled.task.id)
    return timings


def _percentiles(timings: list[float]) -> tuple[float, float]:
    ordered = sorted(timings)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


@asynccontextmanager
async def _sized_sqlite(size: int) -> AsyncIterator[tuple[Store, str]]:
    path = os.path.join(tempfile.mkdtemp(prefix="statestore-bench-"), f"history-{size}.db")
    async with open_store(f"sqlite:///{path}", create=True) as store:
        history, live = _history_plan(size)
        job_ids = [await _job_row(store, f"history-{n}", "completed") for n in range(len(history))]
        live_job = await _job_row(store, "live", "queued")
        raw = sqlite3.connect(path)
        placeholders = ", ".join("?" * len(HISTORY_COLUMNS.split(",")))
        insert_sql = f"INSERT INTO tasks ({HISTORY_COLUMNS}) VALUES ({placeholders})"

        def sqlite_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
            return (row[0].hex, sqlite_time(row[1]), sqlite_time(row[2]), *row[3:])

        for job_id, count in zip(job_ids, history, strict=True):
            raw.executemany(insert_sql, (sqlite_row(row) for row in _task_rows(job_id, count, "completed")))
        raw.executemany(insert_sql, (sqlite_row(row) for row in _task_rows(live_job, live, "queued")))
        raw.commit()
        raw.close()
        yield store, path


@asynccontextmanager
async def _sized_postgres(admin_url: str, size: int) -> AsyncIterator[tuple[Store, str]]:
    import asyncpg

    async with (
        throwaway_postgres(admin_url) as url,
        open_store(url, create=True, pool_size=LOOP_WORKERS + 4, max_overflow=8) as store,
    ):
        history, live = _history_plan(size)
        job_ids = [await _job_row(store, f"history-{n}", "completed") for n in range(len(history))]
        live_job = await _job_row(store, "live", "queued")
        raw = await asyncpg.connect(asyncpg_dsn(url))
        columns = [name.strip() for name in HISTORY_COLUMNS.split(",")]
        for job_id, count in [*zip(job_ids, history, strict=True), (live_job, live)]:
            status = "queued" if job_id == live_job else "completed"
            await raw.copy_records_to_table("tasks", records=list(_task_rows(job_id, count, status)), columns=columns)
        await raw.execute("ANALYZE")  # what autovacuum does after a bulk load
        await raw.close()
        yield store, url


async def _one_worker(store: Store) -> uuid.UUID:
    return (await _fresh_workers(store, 1))[0]


async def _put_back(store: Store, task_id: int) -> None:
    await store.write(
        lambda conn: conn.execute(update(TASKS).where(TASKS.c.id == task_id).values(status="queued", worker_id=None)),
        single_statement=True,
    )


async def _again(call: Callable[[], Awaitable[Any]]) -> Any:
    """A call made again after TransactionConflict, as a worker would."""
    while True:
        try:
            return await call()
        except TransactionConflict:
            continue


async def _loop_worker(store: Store, worker: uuid.UUID, stop: asyncio.Event, completed: list[int]) -> None:
    """The worker loop (claim, two heartbeats, completion) on the live job
    until ``stop``; each completed task is put back in the queue, untimed."""
    while not stop.is_set():
        scheduled = await _again(partial(store.scheduler.claim, worker))
        if scheduled is None:  # all queued tasks momentarily taken
            await asyncio.sleep(0.001)
            continue
        task = scheduled.task
        for _ in range(2):
            await _again(partial(store.tasks.touched_by_worker, task.uuid))
        await _again(partial(store.state_machine.worker_task_update, worker, task.uuid, status=TaskStatus.COMPLETED))
        completed[0] += 1
        await _put_back(store, task.id)


@asynccontextmanager
async def _completions_running(store: Store) -> AsyncIterator[list[int]]:
    """``LOOP_WORKERS`` worker loops running meanwhile; yields the count of
    their completions so far (a one-item list)."""
    workers = await _fresh_workers(store, LOOP_WORKERS)
    stop = asyncio.Event()
    completed = [0]
    loops = [asyncio.create_task(_loop_worker(store, worker, stop, completed)) for worker in workers]
    try:
        yield completed
    finally:
        stop.set()
        await asyncio.gather(*loops)


TABLE_STATS_SQL = (
    "SELECT n_tup_upd, n_tup_hot_upd, n_live_tup, n_dead_tup, vacuum_count + autovacuum_count, "
    "analyze_count + autoanalyze_count, pg_relation_size('tasks'), pg_indexes_size('tasks'), "
    "extract(epoch FROM last_autovacuum), extract(epoch FROM last_autoanalyze), extract(epoch FROM now()) "
    "FROM pg_stat_user_tables WHERE relname = 'tasks'"
)


async def postgres_stats(url: str) -> tuple[Any, ...]:
    """The tasks table's counters (pg_stat_user_tables, after the statistics
    collector's flush) and sizes."""
    import asyncpg

    raw = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await asyncio.sleep(1.1)  # backends flush their counters at most every second
        await raw.execute("SELECT pg_stat_clear_snapshot()")
        return tuple(await raw.fetchrow(TABLE_STATS_SQL))
    finally:
        await raw.close()


def stats_line(label: str, before: tuple[Any, ...], after: tuple[Any, ...], window_start: float) -> str:
    """``window_start``: the server's clock (epoch seconds) when the measured
    claims began; autovacuum/analyze ends are shown relative to it."""
    updates = after[0] - before[0]
    hot = after[1] - before[1]

    def since(moment: Any) -> str:
        return "-" if moment is None else f"{float(moment) - window_start:+.0f} s"

    return (
        f"{label}: tasks over the window: {updates:,} row updates, {hot:,} HOT "
        f"({hot / max(1, updates):.0%}); dead tuples {before[3]:,} -> {after[3]:,}; "
        f"vacuums {after[4] - before[4]}, analyzes {after[5] - before[5]} "
        f"(last autovacuum ended {since(after[8])}, autoanalyze {since(after[9])} from the window's start); "
        f"heap {after[6] / 2**20:,.1f} MiB, indexes {after[7] / 2**20:,.1f} MiB"
    )


def slow_line(label: str, timings: list[float], when: list[float], p50: float) -> str:
    """When the claims slower than 4 × p50 happened, per 10 s of the window."""
    buckets: dict[int, int] = {}
    for duration, moment in zip(timings, when, strict=True):
        if duration > 4 * p50:
            buckets[int(moment // 10) * 10] = buckets.get(int(moment // 10) * 10, 0) + 1
    spread = ", ".join(f"{start}-{start + 10} s: {count}" for start, count in sorted(buckets.items())) or "none"
    return f"{label}: claims slower than 4 x p50 ({4 * p50 * 1e3:.1f} ms) by time in the window: {spread}"


async def latency(
    label: str,
    sized: Callable[[int], Any],
    sizes: list[int],
    claims: int,
    explain: Callable[[Any], Awaitable[str]],
    goals: tuple[float, float],
    stats: Callable[[str], Awaitable[tuple[Any, ...]]] | None = None,
    seconds: float = 0.0,
) -> tuple[list[Figure], list[str], str]:
    lines = []
    measured: dict[int, tuple[float, float]] = {}
    plan = ""
    for size in sizes:
        async with sized(size) as (store, where):
            worker = await _one_worker(store)
            async with _completions_running(store) as completed:
                await _latencies(store, worker, 50)  # warm caches and prepared statements
                before = await stats(where) if stats is not None else None
                done, started = completed[0], time.perf_counter()
                when: list[float] = []
                timings = await _latencies(store, worker, claims, seconds, when)
                elapsed = time.perf_counter() - started
                rate = (completed[0] - done) / elapsed
                after = await stats(where) if stats is not None else None
            p50, p99 = _percentiles(timings)
            measured[size] = (p50, p99)
            lines.append(
                f"{label}: {size:>9,} tasks (99 % completed): claim p50 {p50 * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms"
                f" ({len(timings):,} claims in {elapsed:.0f} s; {LOOP_WORKERS} worker loops completing"
                f" {rate:,.0f} tasks/s meanwhile)"
            )
            lines.append(slow_line(f"{label}: {size:>9,} tasks", timings, when, p50))
            if before is not None and after is not None:
                # The server's clock at the window's start: its clock when
                # ``after`` was read, less the time since the window began.
                window_start = float(after[10]) - (time.perf_counter() - started)
                lines.append(stats_line(f"{label}: {size:>9,} tasks", before, after, window_start))
            if size == sizes[-1]:
                plan = await explain((store, where, worker))
    smallest = sizes[0]
    figures = [
        Figure(
            f"{label}: claim {name} at {size:,} vs {smallest:,} tasks, completing",
            measured[size][index] * 1e3,
            measured[smallest][index] * 1e3,
            "ms",
            goal,
            higher_is_better=False,
        )
        for size in sizes[1:]
        for index, (name, goal) in enumerate((("p50", goals[0]), ("p99", goals[1])))
    ]
    return figures, lines, plan


async def explain_sqlite(context: tuple[Store, str, uuid.UUID]) -> str:
    store, path, worker = context
    sql = CLAIM_LOOKUP_SQLITE.sql(store.runner.dialect)
    raw = sqlite3.connect(path)
    plan = raw.execute(f"EXPLAIN QUERY PLAN {sql}", (worker.hex,)).fetchall()
    raw.close()
    return "SQLite EXPLAIN QUERY PLAN (the claim's lookup):\n" + "\n".join(f"  {row[-1]}" for row in plan)


async def explain_postgres(context: tuple[Store, str, uuid.UUID]) -> str:
    import asyncpg

    _, url, worker = context
    sql = CLAIM_SQL_POSTGRESQL.replace(":worker_uuid", "$1").replace(":now", "$2").replace(":activate", "$3")
    raw = await asyncpg.connect(asyncpg_dsn(url))
    transaction = raw.transaction()
    await transaction.start()
    rows = await raw.fetch(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}", worker, datetime.now(UTC), True)
    await transaction.rollback()
    await raw.close()
    return "PostgreSQL EXPLAIN (ANALYZE, BUFFERS) (the one-statement claim, rolled back):\n" + "\n".join(
        f"  {row[0]}" for row in rows
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default=os.environ.get("STATESTORE_BENCH_POSTGRES_URL"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--claims", type=int, default=2000, help="claims per throughput round")
    parser.add_argument("--latency-claims", type=int, default=1000, help="measured claims per history size, at least")
    parser.add_argument(
        "--latency-seconds",
        type=float,
        default=120.0,
        help="measure each history size for at least this long (long enough for autovacuum to run)",
    )
    parser.add_argument("--max-tasks", type=int, default=SIZES[-1], help="largest history size")
    parser.add_argument("--latency-only", action="store_true", help="skip the claims/s figures")
    parser.add_argument("--skip-sqlite", action="store_true")
    options = parser.parse_args()
    sizes = [size for size in SIZES if size < options.max_tasks] + [options.max_tasks]
    figures: list[Figure] = []
    lines: list[str] = []
    plan_texts = []
    if not options.skip_sqlite:
        if not options.latency_only:
            figures += await throughput_sqlite(options.rounds, options.claims)
        more, lines, plans = await latency(
            "SQLite",
            _sized_sqlite,
            sizes,
            options.latency_claims,
            explain_sqlite,
            (2.0, inf),
            seconds=options.latency_seconds,
        )
        figures += more
        plan_texts.append(plans)
    if options.postgres:
        if not options.latency_only:
            async with throwaway_postgres(options.postgres) as url:
                figures += await throughput_postgres(url, options.rounds, options.claims)
        more, pg_lines, pg_plan = await latency(
            "PostgreSQL",
            lambda size: _sized_postgres(options.postgres, size),
            sizes,
            options.latency_claims,
            explain_postgres,
            (1.2, 2.0),
            postgres_stats,
            options.latency_seconds,
        )
        figures += more
        lines += pg_lines
        plan_texts.append(pg_plan)
    print("\n".join(lines))
    print()
    report(figures, "ratio = times slower than the baseline; goal inf = shown, no goal set")
    print()
    print("\n\n".join(plan_texts))


if __name__ == "__main__":
    asyncio.run(main())
