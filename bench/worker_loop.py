"""Worker-loop benchmark: the whole loop of a render-farm worker, end to end.

8 workers (coroutines in one process, each its own awake worker row) run,
each until the job is done:

    task = store.scheduler.claim(worker)
    store.tasks.touched_by_worker(task)            # heartbeat
    store.tasks.touched_by_worker(task)            # heartbeat
    store.state_machine.worker_task_update(worker, task, status="completed")

on (1) a job of ``--tasks`` (5,000) tasks with no dependencies and (2) a DAG
job of as many tasks, each depending on one or two earlier ones (its parent
in a binary tree, and half of them also on one of the 32 tasks before), so
work becomes claimable progressively. A worker whose claim finds nothing
while tasks remain waits until another worker completes one (an in-process
signal standing in for a worker's poll; it never misses a completion) and
claims again; those empty claims are counted. Jobs per second = tasks /
wall time from the first claim to the last completion; the job is stored
before the clock starts and checked ``completed`` after it stops.

Baselines, measured in the same run, rounds interleaved:

* PostgreSQL: pgqueuer 1.6 (``pip install -e '.[bench]'``) draining as many
  no-op jobs with 8 QueueManagers, each on its own asyncpg connection,
  ``batch_size=1``, ``mode=drain`` (pgqueuer's own drain benchmark, with
  batch size 1); the jobs are enqueued before the clock starts. pgqueuer
  has no dependencies, so both statestore jobs are compared with the same
  drain. Goal: statestore ≥ 1.5 × pgqueuer's jobs/s (in the report's
  "times slower" ratio: ≤ 0.67x).
* SQLite (a file): raw sqlite3 doing the same loop — 8 coroutines on one
  connection (SQLite has one writer), WAL, synchronous=NORMAL, each call its
  own ``BEGIN IMMEDIATE`` … ``COMMIT``: claim (``UPDATE … WHERE id = (SELECT
  … WHERE state = 'queued' AND pending = 0 ORDER BY id LIMIT 1) RETURNING``),
  two heartbeats (one UPDATE each), complete (the task's UPDATE and the
  dependents' ``pending - 1``) on a bare task table and an edge table.
  Goal: ≤ 3 × slower.
* MariaDB/MySQL (``--mysql``, ``STATESTORE_BENCH_MYSQL_URL``): statestore's
  figures only.

Also printed: p50/p99 of each statestore call (claim, heartbeat, completion,
and the empty claims), and, on PostgreSQL, where the time goes: every
statement each kind of call sends (BEGIN and COMMIT included), counted and
timed on the client at SQLAlchemy's asyncpg adapter in one extra round of
each job (lock waits and event-loop delays included in those times), and
what the server's active statements wait on meanwhile (pg_stat_activity
sampled every 10 ms, with the statement of the transaction blocking each).
A call that raises TransactionConflict after the store's own retries is
made again, as a worker would, and counted.

Usage: python bench/worker_loop.py [--postgres URL] [--mysql URL] [--tasks N] [--rounds N] [--mysql-rounds N]
                                  [--no-profile] [--skip-sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from harness import (
    Figure,
    asyncpg_dsn,
    interleaved,
    percentiles,
    raw_sqlite,
    report,
    sqlite_time,
    throwaway_mysql,
    throwaway_postgres,
)

from statestore import Store, open_store
from statestore.errors import TransactionConflict
from statestore.farm import AuthoredJob, AuthoredTask, Command, JobStatus, TaskStatus, WorkerStatus

WORKERS = 8
TASK_TYPE = "blender"
DAG_WINDOW = 32
"""Half the DAG's tasks also depend on one of the this many tasks before them."""
GOAL_VS_PGQUEUER = 1.5
"""statestore's jobs/s over pgqueuer's."""
STALL = 60.0
"""Seconds a worker waits for any completion before the run is declared stuck."""

CALL: ContextVar[str] = ContextVar("CALL", default="other")
"""The loop's call in progress, for the statement profile."""


# -- the loop ------------------------------------------------------------------------


@dataclass
class Calls:
    """One worker loop's calls; ``claim`` returns a handle or None."""

    claim: Callable[[int], Awaitable[Any]]
    beat: Callable[[int, Any], Awaitable[None]]
    complete: Callable[[int, Any], Awaitable[None]]


@dataclass
class Timings:
    """Seconds per call, over every round."""

    claim: list[float] = field(default_factory=list)
    empty: list[float] = field(default_factory=list)
    beat: list[float] = field(default_factory=list)
    complete: list[float] = field(default_factory=list)
    conflicts: dict[str, int] = field(default_factory=dict)
    """Calls that raised TransactionConflict (after the store's own retries) and were made again."""


class _Progress:
    """Completions so far; ``event`` is set by the next completion (a new
    one replaces it), so a worker that read it before a claim that found
    nothing cannot miss a completion made meanwhile."""

    def __init__(self) -> None:
        self.done = 0
        self.event = asyncio.Event()

    def completed(self) -> None:
        self.done += 1
        event, self.event = self.event, asyncio.Event()
        event.set()


async def drain(calls: Calls, tasks: int, workers: int, timings: Timings) -> float:
    """Run ``workers`` loops until ``tasks`` tasks are completed; tasks/s.

    A call that raises TransactionConflict (the store gave up retrying a
    deadlock or serialization failure) is made again, as a worker would,
    and counted; its time includes the retries."""
    progress = _Progress()

    async def again(name: str, call: Callable[[], Awaitable[Any]]) -> Any:
        while True:
            try:
                return await call()
            except TransactionConflict:
                timings.conflicts[name] = timings.conflicts.get(name, 0) + 1

    async def worker(index: int) -> None:
        clock = time.perf_counter
        while progress.done < tasks:
            woken_by = progress.event
            CALL.set("claim")
            started = clock()
            handle = await again("claim", partial(calls.claim, index))
            if handle is None:
                timings.empty.append(clock() - started)
                if progress.done >= tasks:
                    return
                try:
                    await asyncio.wait_for(woken_by.wait(), STALL)
                except TimeoutError:
                    raise AssertionError(f"no task completed in {STALL} s with {tasks - progress.done} left") from None
                continue
            timings.claim.append(clock() - started)
            CALL.set("heartbeat")
            for _ in range(2):
                started = clock()
                await again("heartbeat", partial(calls.beat, index, handle))
                timings.beat.append(clock() - started)
            CALL.set("completion")
            started = clock()
            await again("completion", partial(calls.complete, index, handle))
            timings.complete.append(clock() - started)
            progress.completed()

    started = time.perf_counter()
    await asyncio.gather(*(worker(index) for index in range(workers)))
    elapsed = time.perf_counter() - started
    assert progress.done == tasks, (progress.done, tasks)
    return tasks / elapsed


# -- the jobs --------------------------------------------------------------------------


def dependencies(tasks: int, dag: bool) -> list[list[int]]:
    """Each task's dependencies, as positions of earlier tasks: none, or in
    the DAG its parent in a binary tree and, for half the tasks, one of the
    ``DAG_WINDOW`` tasks before it (the same DAG every time)."""
    if not dag:
        return [[] for _ in range(tasks)]
    pick = random.Random(tasks)
    edges: list[list[int]] = [[]]
    for position in range(1, tasks):
        these = [(position - 1) // 2]
        if pick.random() < 0.5:
            near = position - 1 - pick.randrange(min(position, DAG_WINDOW))
            if near not in these:
                these.append(near)
        edges.append(these)
    return edges


def authored_job(tasks: int, dag: bool) -> AuthoredJob:
    """A render job: one Blender command per task, as Flamenco's."""
    authored = [
        AuthoredTask(
            f"render-{frame}",
            TASK_TYPE,
            commands=[
                Command(
                    "blender-render",
                    {"exe": "blender", "blendfile": "/render/shot-010.blend", "args": ["--render-frame", frame]},
                    total_step_count=1,
                )
            ],
        )
        for frame in range(tasks)
    ]
    for task, these in zip(authored, dependencies(tasks, dag), strict=True):
        task.dependencies = [authored[position].uuid for position in these]
    return AuthoredJob("bench", "simple-blender-render", tasks=authored)


def label(dag: bool) -> str:
    return "DAG job" if dag else "flat job"


# -- statestore --------------------------------------------------------------------------


async def bench_workers(store: Store, count: int) -> list[uuid.UUID]:
    workers = []
    for index in range(count):
        worker = await store.workers.create(
            f"bench-{index}", "bench-secret", status=WorkerStatus.AWAKE, supported_task_types=[TASK_TYPE]
        )
        workers.append(worker.uuid)
    return workers


def store_calls(store: Store, workers: list[uuid.UUID]) -> Calls:
    async def claim(index: int) -> uuid.UUID | None:
        scheduled = await store.scheduler.claim(workers[index])
        return None if scheduled is None else scheduled.task.uuid

    async def beat(index: int, task: uuid.UUID) -> None:
        await store.tasks.touched_by_worker(task)

    async def complete(index: int, task: uuid.UUID) -> None:
        await store.state_machine.worker_task_update(workers[index], task, status=TaskStatus.COMPLETED)

    return Calls(claim, beat, complete)


def store_round(
    store: Store, workers: list[uuid.UUID], tasks: int, dag: bool, timings: Timings
) -> Callable[[], Awaitable[float]]:
    async def run() -> float:
        job = await store.jobs.store_authored(authored_job(tasks, dag))
        rate = await drain(store_calls(store, workers), tasks, len(workers), timings)
        status = (await store.jobs.fetch(job.uuid)).status
        assert status is JobStatus.COMPLETED, status
        return rate

    return run


def call_lines(backend: str, dag: bool, tasks: int, timings: Timings) -> list[str]:
    lines = []
    for name, values in (
        ("claim", timings.claim),
        ("heartbeat", timings.beat),
        ("completion", timings.complete),
        ("empty claim", timings.empty),
    ):
        if not values:
            lines.append(f"{backend}, {tasks:,}-task {label(dag)}: {name:<11} none")
            continue
        p50, p99 = percentiles(values)
        lines.append(
            f"{backend}, {tasks:,}-task {label(dag)}: {name:<11} p50 {p50 * 1e3:7.3f} ms  p99 {p99 * 1e3:7.3f} ms"
            f"  ({len(values):,} calls)"
        )
    if timings.conflicts:
        made_again = ", ".join(f"{name} {count:,}" for name, count in timings.conflicts.items())
        lines.append(
            f"{backend}, {tasks:,}-task {label(dag)}: TransactionConflict raised, call made again: {made_again}"
        )
    return lines


# -- PostgreSQL: pgqueuer --------------------------------------------------------------------


async def pgqueuer_install(dsn: str) -> None:
    import asyncpg  # type: ignore[import-untyped]
    from pgqueuer import AsyncpgDriver, Queries

    connection = await asyncpg.connect(dsn)
    try:
        await Queries(AsyncpgDriver(connection)).install()
    finally:
        await connection.close()


def pgqueuer_round(dsn: str, jobs: int, managers: int) -> Callable[[], Awaitable[float]]:
    async def run() -> float:
        import asyncpg
        from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager
        from pgqueuer.types import QueueExecutionMode

        admin = await asyncpg.connect(dsn)
        await Queries(AsyncpgDriver(admin)).enqueue(["bench"] * jobs, [None] * jobs, [0] * jobs)
        connections = [await asyncpg.connect(dsn) for _ in range(managers)]
        done = 0
        queue_managers = []
        for connection in connections:
            manager = QueueManager(Queries(AsyncpgDriver(connection)))

            @manager.entrypoint("bench")
            async def work(job: Job) -> None:
                nonlocal done
                done += 1

            queue_managers.append(manager)
        started = time.perf_counter()
        await asyncio.gather(*(manager.run(batch_size=1, mode=QueueExecutionMode.drain) for manager in queue_managers))
        elapsed = time.perf_counter() - started
        left = await admin.fetchval("SELECT count(*) FROM pgqueuer")
        for connection in [*connections, admin]:
            await connection.close()
        assert done == jobs, (done, jobs)
        assert left == 0, left
        return jobs / elapsed

    return run


# -- PostgreSQL: where the completion's time goes ----------------------------------------------


class StatementProfile:
    """Every statement sent through SQLAlchemy's asyncpg adapter (the
    store's DirectStatements too, which run on its cursor), with BEGIN and
    COMMIT, counted and timed per loop call (:data:`CALL`)."""

    def __init__(self) -> None:
        self.statements: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0])
        self._begins: dict[int, float] = {}

    def _add(self, text: str, seconds: float) -> None:
        entry = self.statements[(CALL.get(), text)]
        entry[0] += 1
        entry[1] += seconds

    @contextmanager
    def installed(self) -> Iterator[None]:
        from sqlalchemy.dialects.postgresql import asyncpg as adapter

        cursor, connection = adapter.AsyncAdapt_asyncpg_cursor, adapter.AsyncAdapt_asyncpg_connection
        execute, execute_many = cursor._prepare_and_execute, cursor._executemany
        start: Any = connection._start_transaction
        end: Any = connection._call_and_discard
        profile = self

        def timed_statement(original: Any) -> Any:
            async def wrapper(self: Any, operation: str, parameters: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await original(self, operation, parameters)
                finally:
                    # Less the BEGIN the adapter sent first, counted on its own.
                    seconds = time.perf_counter() - started - profile._begins.pop(id(self._adapt_connection), 0.0)
                    profile._add(" ".join(operation.split()), seconds)

            return wrapper

        async def timed_begin(self: Any) -> None:
            started = time.perf_counter()
            await start(self)
            if self.isolation_level != "autocommit":
                seconds = time.perf_counter() - started
                profile._begins[id(self)] = seconds
                profile._add("BEGIN", seconds)

        async def timed_end(self: Any, fn: Any) -> None:
            started = time.perf_counter()
            try:
                await end(self, fn)
            finally:
                profile._add(getattr(fn, "__name__", "end").upper(), time.perf_counter() - started)

        patches = (
            (cursor, "_prepare_and_execute", timed_statement(execute), execute),
            (cursor, "_executemany", timed_statement(execute_many), execute_many),
            (connection, "_start_transaction", timed_begin, start),
            (connection, "_call_and_discard", timed_end, end),
        )
        for owner, name, patched, _ in patches:
            setattr(owner, name, patched)
        try:
            yield
        finally:
            for owner, name, _, original in patches:
                setattr(owner, name, original)

    def lines(self, call: str, calls: int, wall: float, width: int = 150) -> list[str]:
        mine = sorted(
            ((text, count, seconds) for (kind, text), (count, seconds) in self.statements.items() if kind == call),
            key=lambda item: -item[2],
        )
        total_count = sum(count for _, count, _ in mine)
        total_seconds = sum(seconds for _, _, seconds in mine)
        lines = [
            f"  {call}: {total_count / calls:.2f} statements per call, {wall / calls * 1e3:.3f} ms per call, "
            f"{total_seconds / calls * 1e3:.3f} ms of it waiting on statements ({total_seconds / wall:.0%})"
        ]
        for text, count, seconds in mine:
            shown = text if len(text) <= width else text[: width - 1] + "…"
            lines.append(
                f"    {count / calls:5.2f} × {seconds / count * 1e3:6.3f} ms = {seconds / calls * 1e3:6.3f} ms  {shown}"
            )
        return lines


ACTIVITY = """
SELECT a.query, a.wait_event_type, a.wait_event, b.state AS blocker_state, b.query AS blocker_query
FROM pg_stat_activity a
LEFT JOIN LATERAL (SELECT state, query FROM pg_stat_activity
                   WHERE pid = (pg_blocking_pids(a.pid))[1]) b ON true
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
  AND a.state = 'active' AND a.backend_type = 'client backend'
"""


def _statement(sql: str | None, width: int = 70) -> str:
    """A statement's first words, comments left out."""
    text = " ".join(line for line in (sql or "").splitlines() if not line.lstrip().startswith("--"))
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


async def sample_activity(dsn: str, stop: asyncio.Event, counts: dict[tuple[str, str], int]) -> int:
    """Sample the database's active statements every 10 ms until ``stop``:
    (statement, what it waits for) → samples; the number of samples taken."""
    import asyncpg

    connection = await asyncpg.connect(dsn)
    taken = 0
    try:
        while not stop.is_set():
            for row in await connection.fetch(ACTIVITY):
                wait = "on CPU" if row["wait_event_type"] is None else f"{row['wait_event_type']}:{row['wait_event']}"
                if row["blocker_state"] is not None:
                    wait += f" behind a transaction {row['blocker_state']}: {_statement(row['blocker_query'], 45)}"
                key = (_statement(row["query"]), wait)
                counts[key] = counts.get(key, 0) + 1
            taken += 1
            await asyncio.sleep(0.01)
    finally:
        await connection.close()
    return taken


async def profile_postgres(store: Store, dsn: str, workers: list[uuid.UUID], tasks: int, dag: bool) -> list[str]:
    profile = StatementProfile()
    timings = Timings()
    job = await store.jobs.store_authored(authored_job(tasks, dag))
    stop = asyncio.Event()
    activity: dict[tuple[str, str], int] = {}
    sampler = asyncio.create_task(sample_activity(dsn, stop, activity))
    with profile.installed():
        await drain(store_calls(store, workers), tasks, len(workers), timings)
    stop.set()
    samples = await sampler
    assert (await store.jobs.fetch(job.uuid)).status is JobStatus.COMPLETED
    lines = [
        f"PostgreSQL, {tasks:,}-task {label(dag)}, {len(workers)} workers: statements per call "
        "(client-side time per statement: round trip, server time, lock waits, event-loop delay)"
    ]
    claims = len(timings.claim) + len(timings.empty)
    lines += profile.lines("claim", claims, sum(timings.claim) + sum(timings.empty))
    lines += profile.lines("heartbeat", len(timings.beat), sum(timings.beat))
    lines += profile.lines("completion", len(timings.complete), sum(timings.complete))
    active = sum(activity.values())
    lines.append(
        f"  server side: {samples:,} samples of pg_stat_activity (every 10 ms), {active / max(samples, 1):.2f} "
        "statements active per sample on average; share of active-statement samples:"
    )
    for (statement, wait), count in sorted(activity.items(), key=lambda item: -item[1])[:12]:
        lines.append(f"    {count / active:6.1%}  {statement}  [{wait}]")
    return lines


# -- backends ---------------------------------------------------------------------------------


async def run_postgres(url: str, tasks: int, rounds: int, profile: bool) -> tuple[list[Figure], list[str]]:
    figures: list[Figure] = []
    lines: list[str] = []
    profiles: list[str] = []
    dsn = asyncpg_dsn(url)
    await pgqueuer_install(dsn)
    async with open_store(url, create=True, pool_size=2 * WORKERS, max_overflow=WORKERS) as store:
        workers = await bench_workers(store, WORKERS)
        for dag in (False, True):
            timings = Timings()
            ours, baseline = await interleaved(
                pgqueuer_round(dsn, tasks, WORKERS), store_round(store, workers, tasks, dag, timings), rounds
            )
            figures.append(
                Figure(
                    f"PostgreSQL: jobs/s, {tasks:,}-task {label(dag)} vs pgqueuer drain",
                    ours,
                    baseline,
                    "jobs/s",
                    1 / GOAL_VS_PGQUEUER,
                )
            )
            lines.append(
                f"PostgreSQL, {tasks:,}-task {label(dag)}: statestore {ours:,.0f} jobs/s, pgqueuer {baseline:,.0f} "
                f"jobs/s: statestore/pgqueuer = {ours / baseline:.2f}x (goal ≥ {GOAL_VS_PGQUEUER}x)"
            )
            lines += call_lines("PostgreSQL", dag, tasks, timings)
        if profile:
            for dag in (False, True):
                profiles += await profile_postgres(store, dsn, workers, tasks, dag)
    return figures, [*lines, "", *profiles]


RAW_DDL = (
    "CREATE TABLE bench_loop (id INTEGER PRIMARY KEY, state TEXT NOT NULL, worker_id INTEGER, "
    "last_touched_at TEXT, pending INTEGER NOT NULL)",
    "CREATE INDEX ix_bench_loop_runnable ON bench_loop (id) WHERE state = 'queued' AND pending = 0",
    "CREATE TABLE bench_loop_edges (task_id INTEGER NOT NULL, depends_on INTEGER NOT NULL)",
    "CREATE INDEX ix_bench_loop_edges ON bench_loop_edges (depends_on)",
)
RAW_CLAIM = (
    "UPDATE bench_loop SET state = 'active', worker_id = ?, last_touched_at = ? WHERE id = "
    "(SELECT id FROM bench_loop WHERE state = 'queued' AND pending = 0 ORDER BY id LIMIT 1) RETURNING id"
)
RAW_BEAT = "UPDATE bench_loop SET last_touched_at = ? WHERE id = ?"
RAW_COMPLETE = (
    "UPDATE bench_loop SET state = 'completed', last_touched_at = ? WHERE id = ? AND state = 'active' AND worker_id = ?"
)
RAW_RELEASE = (
    "UPDATE bench_loop SET pending = pending - 1 "
    "WHERE id IN (SELECT task_id FROM bench_loop_edges WHERE depends_on = ?)"
)


def raw_calls(raw: sqlite3.Connection) -> Calls:
    """The loop on raw sqlite3: each call its own BEGIN IMMEDIATE … COMMIT,
    then a turn of the event loop, as a loop inside an asyncio service."""

    def now() -> str:
        return sqlite_time(datetime.now(UTC))

    async def claim(index: int) -> int | None:
        raw.execute("BEGIN IMMEDIATE")
        row = raw.execute(RAW_CLAIM, (index, now())).fetchone()
        raw.execute("COMMIT")
        await asyncio.sleep(0)
        return None if row is None else int(row[0])

    async def beat(index: int, task: int) -> None:
        raw.execute("BEGIN IMMEDIATE")
        raw.execute(RAW_BEAT, (now(), task))
        raw.execute("COMMIT")
        await asyncio.sleep(0)

    async def complete(index: int, task: int) -> None:
        raw.execute("BEGIN IMMEDIATE")
        if raw.execute(RAW_COMPLETE, (now(), task, index)).rowcount != 1:
            raise AssertionError(f"task {task} is not active on worker {index}")
        raw.execute(RAW_RELEASE, (task,))
        raw.execute("COMMIT")
        await asyncio.sleep(0)

    return Calls(claim, beat, complete)


def raw_round(raw: sqlite3.Connection, tasks: int, dag: bool) -> Callable[[], Awaitable[float]]:
    async def run() -> float:
        edges = dependencies(tasks, dag)
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("DELETE FROM bench_loop")
        raw.execute("DELETE FROM bench_loop_edges")
        raw.executemany(
            "INSERT INTO bench_loop (id, state, pending) VALUES (?, 'queued', ?)",
            ((position + 1, len(these)) for position, these in enumerate(edges)),
        )
        raw.executemany(
            "INSERT INTO bench_loop_edges (task_id, depends_on) VALUES (?, ?)",
            ((position + 1, dependency + 1) for position, these in enumerate(edges) for dependency in these),
        )
        raw.execute("COMMIT")
        rate = await drain(raw_calls(raw), tasks, WORKERS, Timings())
        left = raw.execute("SELECT count(*) FROM bench_loop WHERE state != 'completed'").fetchone()[0]
        assert left == 0, left
        return rate

    return run


async def run_sqlite(tasks: int, rounds: int) -> tuple[list[Figure], list[str]]:
    path = os.path.join(tempfile.mkdtemp(prefix="statestore-bench-"), "worker-loop.db")
    figures: list[Figure] = []
    lines: list[str] = []
    async with open_store(f"sqlite:///{path}", create=True) as store:
        workers = await bench_workers(store, WORKERS)
        raw = raw_sqlite(path)
        for statement in RAW_DDL:
            raw.execute(statement)
        for dag in (False, True):
            timings = Timings()
            ours, baseline = await interleaved(
                raw_round(raw, tasks, dag), store_round(store, workers, tasks, dag, timings), rounds
            )
            figures.append(
                Figure(
                    f"SQLite: jobs/s, {tasks:,}-task {label(dag)} vs raw sqlite3 loop", ours, baseline, "jobs/s", 3.0
                )
            )
            lines.append(
                f"SQLite, {tasks:,}-task {label(dag)}: statestore {ours:,.0f} jobs/s, raw sqlite3 {baseline:,.0f} "
                f"jobs/s: {baseline / ours:.2f}x slower (goal ≤ 3x)"
            )
            lines += call_lines("SQLite", dag, tasks, timings)
        raw.close()
    return figures, lines


async def run_mysql(url: str, tasks: int, rounds: int) -> tuple[list[Figure], list[str]]:
    figures: list[Figure] = []
    lines: list[str] = []
    async with open_store(url, create=True, pool_size=2 * WORKERS, max_overflow=WORKERS) as store:
        workers = await bench_workers(store, WORKERS)
        for dag in (False, True):
            timings = Timings()
            rates = [await store_round(store, workers, tasks, dag, timings)() for _ in range(max(1, rounds))]
            rates.sort()
            ours = rates[len(rates) // 2]
            lines.append(f"MariaDB/MySQL, {tasks:,}-task {label(dag)}: statestore {ours:,.0f} jobs/s (no baseline)")
            lines += call_lines("MariaDB/MySQL", dag, tasks, timings)
    return figures, lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default=os.environ.get("STATESTORE_BENCH_POSTGRES_URL"))
    parser.add_argument("--mysql", default=os.environ.get("STATESTORE_BENCH_MYSQL_URL"))
    parser.add_argument("--tasks", type=int, default=5000, help="tasks per job (and pgqueuer jobs per drain)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mysql-rounds", type=int, default=1, help="rounds on MariaDB/MySQL (no baseline)")
    parser.add_argument("--no-profile", dest="profile", action="store_false", help="skip PostgreSQL's profile")
    parser.add_argument("--skip-sqlite", action="store_true")
    options = parser.parse_args()
    figures: list[Figure] = []
    sections: list[list[str]] = []
    if not options.skip_sqlite:
        more, lines = await run_sqlite(options.tasks, options.rounds)
        figures += more
        sections.append(lines)
    if options.postgres:
        async with throwaway_postgres(options.postgres) as url:
            more, lines = await run_postgres(url, options.tasks, options.rounds, options.profile)
        figures += more
        sections.append(lines)
    if options.mysql:
        async with throwaway_mysql(options.mysql) as url:
            more, lines = await run_mysql(url, options.tasks, options.mysql_rounds)
        figures += more
        sections.append(lines)
    for lines in sections:
        print("\n".join(lines))
        print()
    report(
        figures,
        f"ratio = times slower than the baseline; vs pgqueuer the goal {1 / GOAL_VS_PGQUEUER:.2f}x "
        f"is statestore ≥ {GOAL_VS_PGQUEUER}x pgqueuer's jobs/s; goal inf = shown, no goal set",
    )


if __name__ == "__main__":
    asyncio.run(main())
