"""Farm-model benchmark: job submission and heartbeats against the raw driver, in one run.

Each figure is a ratio to a baseline measured in the same run, rounds of the
two interleaved so the machine's noise hits both; absolute figures on a shared
2-vCPU machine mean little.

1. Storing a job of 10,000 tasks and 10,000 dependency edges (a chain; the
   last task also depends on the first) through ``store.jobs.store_authored``,
   against inserting the same rows — the job row, 10,000 task rows with all
   their columns, 10,000 dependency rows — on the raw driver in one
   transaction: stdlib sqlite3 ``executemany`` (goal ≤ 2×), asyncpg
   ``copy_records_to_table`` (goal ≤ 1.5×). Both sides look the new tasks'
   ids up with one SELECT before inserting the edges. The inputs are built
   outside the timed region: the raw side gets ready tuples (commands already
   JSON text), the store gets the ``AuthoredJob``. The store's price includes
   what the raw loop skips: validating every task (texts, ranges, commands as
   JSON), checking the dependency graph for duplicates and cycles, counting
   each task's pending dependencies and copying the job's priority — and
   encoding uuids, datetimes and JSON through the column types. Both sides
   run ``gc.collect()`` after building their input, so neither pays for the
   collector's debt of building it (the store pauses the collector during a
   large submission itself, see ``statestore/core/gc_pause.py``).
2. Heartbeats per second, one caller: ``store.workers.seen(uuid)`` and
   ``store.tasks.touched_by_worker(uuid)`` against the same single UPDATE on
   the raw driver — sqlite3 (WAL, synchronous=NORMAL, ``BEGIN IMMEDIATE`` …
   ``COMMIT``; goal ≤ 4×) and one asyncpg autocommit statement (goal ≤ 1.5×).
3. 50 workers heart-beating at once (50 coroutines, each calling ``seen``
   for its own worker in a loop), against the raw single-caller rate of 2.
   SQLite's group commit shares one commit among them; on PostgreSQL the
   store's heartbeat coalescer (``statestore/core/coalesce.py``) sends the
   calls that arrive while a statement is in flight as one ``UPDATE … WHERE
   uuid = ANY(…)``. No goal: shown as a ratio (below 1 = faster than raw).

Usage: python bench/farm.py [--postgres URL] [--rounds N] [--beats N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from harness import Figure, asyncpg_dsn, interleaved, rate, raw_sqlite, report, sqlite_time, throwaway_postgres

from statestore import Store, open_store
from statestore.farm import AuthoredJob, AuthoredTask, Command, WorkerStatus

TASKS = 10_000
WORKERS = 50

TASK_COLUMNS = (
    "uuid",
    "created_at",
    "updated_at",
    "job_id",
    "index_in_job",
    "name",
    "type",
    "priority",
    "status",
    "worker_id",
    "last_touched_at",
    "commands",
    "activity",
    "steps_completed",
    "steps_total",
    "job_priority",
    "pending_dependencies",
    "job_schedulable",
)
JOB_COLUMNS = (
    "uuid",
    "created_at",
    "updated_at",
    "name",
    "job_type",
    "priority",
    "status",
    "activity",
    "settings",
    "metadata",
    "delete_requested_at",
    "storage_checkout_id",
    "worker_tag_id",
    "steps_completed",
    "steps_total",
)
RAW_SEEN_SQLITE = "UPDATE workers SET last_seen_at = ?, updated_at = ? WHERE uuid = ? AND deleted_at IS NULL"
RAW_TOUCH_SQLITE = "UPDATE tasks SET last_touched_at = ?, updated_at = ? WHERE uuid = ?"
RAW_SEEN_PG = "UPDATE workers SET last_seen_at = $1, updated_at = $2 WHERE uuid = $3 AND deleted_at IS NULL"
RAW_TOUCH_PG = "UPDATE tasks SET last_touched_at = $1, updated_at = $2 WHERE uuid = $3"


# -- the job -------------------------------------------------------------------


def _commands(frame: int) -> list[Command]:
    """A Flamenco render task's command: render one frame."""
    return [
        Command(
            "blender-render",
            {
                "exe": "blender",
                "argsBefore": [],
                "blendfile": "/render/sprite-fright/shot-010.blend",
                "args": ["--render-output", "/render/out/######", "--render-format", "PNG", "--render-frame", frame],
            },
            total_step_count=1,
        )
    ]


def authored_job(tasks: int = TASKS) -> AuthoredJob:
    """``tasks`` render tasks in a chain, the last also depending on the
    first: ``tasks`` dependency edges."""
    authored = [AuthoredTask(f"render-{frame}", "blender", commands=_commands(frame)) for frame in range(tasks)]
    for previous, task in itertools.pairwise(authored):
        task.dependencies = [previous.uuid]
    if tasks > 1:
        authored[-1].dependencies.append(authored[0].uuid)
    return AuthoredJob(
        "bench",
        "simple-blender-render",
        settings={"frames": f"1-{tasks}"},
        metadata={"project": "bench"},
        tasks=authored,
    )


@dataclass
class RawJob:
    """The same job as ready tuples: the job row, the task rows without
    ``job_id`` (known only once the job is inserted), the edges as
    (dependent, dependency) positions in the task list."""

    job: tuple[Any, ...]
    tasks: list[tuple[Any, ...]]
    edges: list[tuple[int, int]]
    priority: int


def raw_job(
    job: AuthoredJob, encode_time: Callable[[datetime], Any], encode_uuid: Callable[[uuid.UUID], Any]
) -> RawJob:
    now = datetime.now(UTC)
    stamp = encode_time(now)
    position = {task.uuid: index for index, task in enumerate(job.tasks)}
    tasks = []
    edges = []
    steps_total = 0
    for index, task in enumerate(job.tasks):
        commands = json.dumps(
            [
                {"name": c.name, "parameters": c.parameters, "total_step_count": c.total_step_count}
                for c in task.commands
            ]
        )
        steps = sum(max(1, c.total_step_count) for c in task.commands)
        steps_total += steps
        # TASK_COLUMNS without job_id (inserted at position 3 once known).
        tasks.append(
            (
                encode_uuid(task.uuid),
                stamp,
                stamp,
                index + 1,
                task.name,
                task.type,
                task.priority,
                "queued",
                None,
                None,
                commands,
                "",
                0,
                steps,
                job.priority,
                len(task.dependencies),
                job.status.value in ("active", "queued"),
            )
        )
        edges.extend((index, position[dep]) for dep in task.dependencies)
    job_row = (
        encode_uuid(job.uuid),
        stamp,
        stamp,
        job.name,
        job.job_type,
        job.priority,
        job.status.value,
        "",
        json.dumps(job.settings),
        json.dumps(job.metadata),
        None,
        job.storage_checkout_id,
        None,
        0,
        steps_total,
    )
    return RawJob(job_row, tasks, edges, job.priority)


def _with_job_id(rows: list[tuple[Any, ...]], job_id: int) -> list[tuple[Any, ...]]:
    return [(*row[:3], job_id, *row[3:]) for row in rows]


def _placeholders(columns: tuple[str, ...], style: Callable[[int], str]) -> str:
    return ", ".join(style(number) for number in range(1, len(columns) + 1))


def _timed_store(store: Store) -> Callable[[], Awaitable[float]]:
    async def store_job() -> float:
        job = authored_job()
        gc.collect()  # the debt of building the input is not the store's
        started = time.perf_counter()
        stored = await store.jobs.store_authored(job)
        elapsed = time.perf_counter() - started
        assert stored.steps_total == TASKS
        return elapsed * 1e3

    return store_job


# -- heartbeats -----------------------------------------------------------------


async def _workers(store: Store, count: int) -> list[uuid.UUID]:
    workers = await asyncio.gather(
        *(store.workers.create(f"bench-{n}", "secret", status=WorkerStatus.AWAKE) for n in range(count))
    )
    return [worker.uuid for worker in workers]


def _store_beats(
    beat: Callable[[uuid.UUID], Awaitable[None]], target: uuid.UUID, beats: int
) -> Callable[[], Awaitable[float]]:
    async def store_rate() -> float:
        async def step(_: int) -> None:
            await beat(target)

        return await rate(step, beats)

    return store_rate


def _concurrent_beats(store: Store, workers: list[uuid.UUID], beats: int) -> Callable[[], Awaitable[float]]:
    per_worker = max(1, beats // len(workers))

    async def concurrent_rate() -> float:
        async def worker(target: uuid.UUID) -> None:
            for _ in range(per_worker):
                await store.workers.seen(target)

        started = time.perf_counter()
        await asyncio.gather(*(worker(target) for target in workers))
        return per_worker * len(workers) / (time.perf_counter() - started)

    return concurrent_rate


async def _heartbeat_figures(
    label: str,
    store: Store,
    raw_seen: Callable[[], Awaitable[float]],
    raw_touch: Callable[[], Awaitable[float]],
    workers: list[uuid.UUID],
    task: uuid.UUID,
    beats: int,
    rounds: int,
    goal: float,
) -> list[Figure]:
    figures = []
    ours, baseline = await interleaved(raw_seen, _store_beats(store.workers.seen, workers[0], beats), rounds)
    figures.append(Figure(f"{label}: workers.seen, 1 caller", ours, baseline, "beats/s", goal))
    ours, baseline = await interleaved(raw_touch, _store_beats(store.tasks.touched_by_worker, task, beats), rounds)
    figures.append(Figure(f"{label}: tasks.touched_by_worker, 1 caller", ours, baseline, "beats/s", goal))
    ours, baseline = await interleaved(raw_seen, _concurrent_beats(store, workers, beats), rounds)
    figures.append(
        Figure(
            f"{label}: workers.seen, {len(workers)} callers vs raw 1 caller", ours, baseline, "beats/s", float("inf")
        )
    )
    return figures


# -- SQLite ----------------------------------------------------------------------


async def bench_sqlite(rounds: int, beats: int) -> list[Figure]:
    directory = tempfile.mkdtemp(prefix="statestore-bench-")
    path = os.path.join(directory, "farm.db")
    figures = []
    async with open_store(f"sqlite:///{path}", create=True) as store:
        raw = raw_sqlite(path)
        raw.execute("PRAGMA foreign_keys = ON")
        insert_job = f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) VALUES ({_placeholders(JOB_COLUMNS, lambda _: '?')})"
        insert_tasks = (
            f"INSERT INTO tasks ({', '.join(TASK_COLUMNS)}) VALUES ({_placeholders(TASK_COLUMNS, lambda _: '?')})"
        )

        async def raw_store() -> float:
            job = raw_job(authored_job(), sqlite_time, lambda value: value.hex)
            gc.collect()
            started = time.perf_counter()
            raw.execute("BEGIN IMMEDIATE")
            job_id = raw.execute(insert_job, job.job).lastrowid
            raw.executemany(insert_tasks, _with_job_id(job.tasks, job_id))
            ids = [
                row[0] for row in raw.execute("SELECT id FROM tasks WHERE job_id = ? ORDER BY index_in_job", (job_id,))
            ]
            raw.executemany(
                "INSERT INTO task_dependencies (task_id, dependency_id) VALUES (?, ?)",
                [(ids[task], ids[dep]) for task, dep in job.edges],
            )
            raw.execute("COMMIT")
            return (time.perf_counter() - started) * 1e3

        ours, baseline = await interleaved(raw_store, _timed_store(store), rounds)
        figures.append(
            Figure(f"SQLite: store a {TASKS:,}-task job (ms)", ours, baseline, "ms", 2.0, higher_is_better=False)
        )

        workers = await _workers(store, WORKERS)
        task = authored_job(1)
        await store.jobs.store_authored(task)
        raw_worker = workers[1].hex
        raw_task_job = authored_job(1)
        await store.jobs.store_authored(raw_task_job)
        raw_task = raw_task_job.tasks[0].uuid.hex

        def raw_beat(sql: str, target: str) -> Callable[[], Awaitable[float]]:
            async def raw_rate() -> float:
                async def step(_: int) -> None:
                    raw.execute("BEGIN IMMEDIATE")
                    now = sqlite_time(datetime.now(UTC))
                    raw.execute(sql, (now, now, target))
                    raw.execute("COMMIT")

                return await rate(step, beats)

            return raw_rate

        figures += await _heartbeat_figures(
            "SQLite",
            store,
            raw_beat(RAW_SEEN_SQLITE, raw_worker),
            raw_beat(RAW_TOUCH_SQLITE, raw_task),
            workers,
            task.tasks[0].uuid,
            beats,
            rounds,
            4.0,
        )
        raw.close()
    return figures


# -- PostgreSQL ------------------------------------------------------------------


async def bench_postgres(admin_url: str, rounds: int, beats: int) -> list[Figure]:
    import asyncpg  # type: ignore[import-untyped]

    figures: list[Figure] = []
    async with throwaway_postgres(admin_url) as url, open_store(url, create=True) as store:
        raw = await asyncpg.connect(asyncpg_dsn(url))
        insert_job = (
            f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) VALUES ({_placeholders(JOB_COLUMNS, lambda n: f'${n}')}) "
            "RETURNING id"
        )

        async def raw_store() -> float:
            job = raw_job(authored_job(), lambda moment: moment, lambda value: value)
            gc.collect()
            started = time.perf_counter()
            async with raw.transaction():
                job_id = await raw.fetchval(insert_job, *job.job)
                await raw.copy_records_to_table("tasks", records=_with_job_id(job.tasks, job_id), columns=TASK_COLUMNS)
                ids = [
                    row[0]
                    for row in await raw.fetch("SELECT id FROM tasks WHERE job_id = $1 ORDER BY index_in_job", job_id)
                ]
                await raw.copy_records_to_table(
                    "task_dependencies",
                    records=[(ids[task], ids[dep]) for task, dep in job.edges],
                    columns=("task_id", "dependency_id"),
                )
            return (time.perf_counter() - started) * 1e3

        ours, baseline = await interleaved(raw_store, _timed_store(store), rounds)
        figures.append(
            Figure(f"PostgreSQL: store a {TASKS:,}-task job (ms)", ours, baseline, "ms", 1.5, higher_is_better=False)
        )

        workers = await _workers(store, WORKERS)
        task = authored_job(1)
        await store.jobs.store_authored(task)
        raw_task_job = authored_job(1)
        await store.jobs.store_authored(raw_task_job)

        def raw_beat(sql: str, target: uuid.UUID) -> Callable[[], Awaitable[float]]:
            async def raw_rate() -> float:
                async def step(_: int) -> None:
                    now = datetime.now(UTC)
                    await raw.execute(sql, now, now, target)

                return await rate(step, beats)

            return raw_rate

        figures += await _heartbeat_figures(
            "PostgreSQL",
            store,
            raw_beat(RAW_SEEN_PG, workers[1]),
            raw_beat(RAW_TOUCH_PG, raw_task_job.tasks[0].uuid),
            workers,
            task.tasks[0].uuid,
            beats,
            rounds,
            1.5,
        )
        await raw.close()
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default=os.environ.get("STATESTORE_BENCH_POSTGRES_URL"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--beats", type=int, default=2000, help="heartbeats per round")
    options = parser.parse_args()
    figures = await bench_sqlite(options.rounds, options.beats)
    if options.postgres:
        figures += await bench_postgres(options.postgres, options.rounds, options.beats // 2)
    report(figures, "ratio = times slower than the raw driver (below 1 = faster); goal inf = shown, no goal set")


if __name__ == "__main__":
    asyncio.run(main())
