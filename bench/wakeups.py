"""Wake-ups and the change feed: how soon a waiting claim hears of work, what
waiting costs while there is none, and how fast the change feed catches up.

1. Wake-up latency: one worker waits in ``scheduler.claim(worker, wait=30)``
   (its first claim found nothing; after 30–80 ms, drawn at random so the
   samples fall anywhere in a polling interval) when a job of one task is
   committed; the latency runs from the commit — the moment
   ``jobs.store_authored`` returned, ``time.time()`` — to the moment the
   claim returned that task. The task is then completed, so every sample
   starts with nothing claimable (and the waiter's first claim is checked to
   have found nothing). Beside each sample, the reference: a job committed
   the same way, then a claim without ``wait`` that finds its task at once —
   the claim's own time, the floor of the wake-up latency. ``--samples``
   (60) samples each of:

   * same process: the waiter's own store commits the job (woken in-process
     at once). Goals p50 ≤ 5 ms, SQLite file and PostgreSQL;
   * another process: a child (``sys.executable``, its own store on the same
     database) commits the job and sends its commit time over a pipe (the
     wall clock is shared by the processes of one machine). Woken by
     PostgreSQL's LISTEN/NOTIFY (goal p50 ≤ 10 ms) and on a SQLite file by
     ``PRAGMA data_version`` read every 5 ms (goal p50 ≤ 50 ms);
   * MariaDB/MySQL (``--mysql``): another process, where the head waiter
     re-claims on an interval that starts at 10 ms and doubles to 1 s; shown
     without a goal, after 30–80 ms of waiting and after 1–2 s.

2. Idle cost: ``--waiters`` (200) workers each waiting in ``claim(wait=…)``
   longer than the window, no work anywhere; this process's CPU time
   (``time.process_time()``) over ``--idle-seconds`` (10) of wall time, as a
   share of one core, after the waiters' first claims have settled. Also
   counted: the claims the waiters made in the window; on PostgreSQL, when
   the server runs on this machine, the CPU time of the bench database's
   server backends (the LISTEN connection among them; ``/proc``). On SQLite,
   after the window, the floor of polling on this machine: the same process
   doing nothing but ``asyncio.sleep`` at the watcher's interval for as long.
   Goal < 2 % of a core, SQLite file and PostgreSQL.

3. ``store.changes(follow=False)`` catching up on ``--changes`` (100,000)
   changes, against the raw driver's keyset scan of the same table in the
   same run, rounds interleaved: asyncpg ``SELECT <the feed's columns> FROM
   changes WHERE (tx, id) > ($1, $2) ORDER BY tx, id LIMIT 1000`` in a loop,
   each row made a tuple; sqlite3 the same on the SQLite file (WAL), and
   also ``WHERE id > ? ORDER BY id`` (SQLite's ``tx`` is always 0, and
   SQLite uses only ``tx`` of the row value to search the index, so the
   ``(tx, id)`` scan re-reads the index from the start on every page). The
   first and the last full page's time is printed for each. The
   changes are written beforehand with ``statestore.changes.recording.record``
   in 10,000-row units. Goal: statestore ≥ 50 % of raw's rows/s (≤ 2x
   slower), SQLite file and PostgreSQL.

The machines here are shared 2-vCPU VMs: the latencies and the CPU shares are
absolute figures and move with the machine's load; the load average is
printed at the start and the end.

Usage: python bench/wakeups.py [--postgres URL] [--mysql URL] [--samples N] [--changes N]
                               [--idle-seconds S] [--waiters N] [--skip-sqlite] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from harness import (
    Figure,
    asyncpg_dsn,
    percentiles,
    raw_sqlite,
    report,
    throwaway_mysql,
    throwaway_postgres,
)
from sqlalchemy import text
from sqlalchemy.engine import Connection

from statestore import Store, open_store
from statestore.changes import ChangeKind
from statestore.changes.feed import BATCH as PAGE
from statestore.changes.recording import change, record
from statestore.core.data_version_watch import INTERVAL_QUIET as DATA_VERSION_INTERVAL
from statestore.farm import AuthoredJob, AuthoredTask, Command, TaskStatus, WorkerStatus
from statestore.farm.records import ScheduledTask

SCRIPT = os.path.abspath(__file__)
TASK_TYPE = "blender"
WAIT = 30.0
"""How long a sampled claim may wait, in seconds."""
SETTLE = (0.03, 0.08)
"""Seconds the waiter waits before the commit, drawn uniformly."""
LONG_SETTLE = (1.0, 2.0)
"""The same, for MariaDB's second row: its polling interval has grown to ~1 s."""
LONG_SAMPLES = 20
IDLE_SETTLE = 3.0
"""Seconds for the idle waiters' first claims to finish before the window."""
CHANGE_ROUNDS = 3
CHANGE_UNIT = 10_000
"""Changes written per unit when filling the table."""
WORKER_CREATORS = 8
"""Workers created concurrently (their secrets are hashed with scrypt on threads)."""

GOAL_SAME_PROCESS_MS = 5.0
GOAL_SQLITE_PROCESS_MS = 50.0
GOAL_POSTGRES_PROCESS_MS = 10.0
GOAL_IDLE_PERCENT = 2.0
GOAL_CHANGES_RATIO = 2.0


@dataclass
class Absolute:
    """A figure with an absolute goal (``value`` ≤ ``goal``; None: shown only)."""

    name: str
    value: float
    unit: str
    detail: str
    goal: float | None

    @property
    def met(self) -> str:
        if self.goal is None:
            return "—"
        return "yes" if self.value <= self.goal else "NO"


def absolute_report(figures: Sequence[Absolute]) -> None:
    width = max((len(figure.name) for figure in figures), default=6)
    print(f"{'figure':<{width}} {'value':>10} {'goal':>9}  met  detail")
    for figure in figures:
        goal = "—" if figure.goal is None else f"≤ {figure.goal:g}"
        value = f"{figure.value:,.2f} {figure.unit}"
        print(f"{figure.name:<{width}} {value:>10} {goal:>9}  {figure.met:<3}  {figure.detail}")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


# -- the objects a sample needs ----------------------------------------------------------


def one_task_job(name: str) -> AuthoredJob:
    task = AuthoredTask(name, TASK_TYPE, commands=[Command("echo", {"message": name})])
    return AuthoredJob(name, "wakeup-bench", tasks=[task])


async def create_workers(store: Store, count: int, prefix: str) -> list[uuid.UUID]:
    created: list[uuid.UUID] = []

    async def create(index: int) -> None:
        worker = await store.workers.create(
            f"{prefix}-{index}", "bench-secret", status=WorkerStatus.AWAKE, supported_task_types=[TASK_TYPE]
        )
        created.append(worker.uuid)

    for start in range(0, count, WORKER_CREATORS):
        await asyncio.gather(*(create(index) for index in range(start, min(count, start + WORKER_CREATORS))))
    return created


# -- 1. wake-up latency ----------------------------------------------------------------------

Commit = Callable[[str], Awaitable[tuple[float, uuid.UUID]]]
"""Commits a job of one task named so; (its commit time by ``time.time()``, the job's uuid)."""


def same_process(store: Store) -> Commit:
    async def commit(name: str) -> tuple[float, uuid.UUID]:
        job = await store.jobs.store_authored(one_task_job(name))
        return time.time(), job.uuid

    return commit


class Child:
    """Another process with its own store on the same database; commits a
    job whenever asked (this script run with ``--child URL``)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @classmethod
    async def start(cls, url: str) -> Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            SCRIPT,
            "--child",
            url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        child = cls(process)
        assert await child._line() == "ready"
        return child

    async def _line(self) -> str:
        assert self._process.stdout is not None
        line = await asyncio.wait_for(self._process.stdout.readline(), 60)
        if not line:
            raise RuntimeError(f"the child process ended (exit code {await self._process.wait()})")
        return line.decode().strip()

    async def commit(self, name: str) -> tuple[float, uuid.UUID]:
        assert self._process.stdin is not None
        self._process.stdin.write(f"{name}\n".encode())
        await self._process.stdin.drain()
        committed_at, job = (await self._line()).split()
        return float(committed_at), uuid.UUID(job)

    async def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        assert await asyncio.wait_for(self._process.wait(), 60) == 0


async def child_main(url: str) -> None:
    """The child's side: for each line read, store a job of one task by that
    name and write back ``<commit time> <job uuid>``."""
    loop = asyncio.get_running_loop()
    async with open_store(url) as store:
        print("ready", flush=True)
        while name := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
            job = await store.jobs.store_authored(one_task_job(name))
            print(f"{time.time()!r} {job.uuid}", flush=True)


async def timed_claim(store: Store, worker: uuid.UUID) -> tuple[ScheduledTask | None, float]:
    scheduled = await store.scheduler.claim(worker, wait=WAIT)
    return scheduled, time.time()


@dataclass
class Latencies:
    woken: list[float]
    """Seconds from each commit to the waiting claim's return."""
    claim: list[float]
    """Seconds a claim without ``wait`` takes to return a task committed before it (the floor of ``woken``)."""


async def latencies(
    store: Store, worker: uuid.UUID, commit: Commit, samples: int, settle: tuple[float, float], seed: int
) -> Latencies:
    """Each sample: a waiting claim woken by a commit, then (the reference)
    a commit and a claim without ``wait`` that finds its task at once."""
    pick = random.Random(seed)
    wakeups = store.runner.wakeups
    watched = store.runner.facts.wakeups != "polling"
    taken = Latencies([], [])
    for index in range(samples):
        waiter = asyncio.create_task(timed_claim(store, worker))
        for _ in range(10_000):  # the watcher listening (up to 10 s)
            if not watched or wakeups.listening:
                break
            await asyncio.sleep(0.001)
        await asyncio.sleep(pick.uniform(*settle))
        if waiter.done():
            raise AssertionError(f"the waiter returned before the commit: {waiter.result()}")
        committed_at, job = await commit(f"sample-{index}")
        scheduled, returned_at = await asyncio.wait_for(waiter, WAIT)
        assert scheduled is not None, "the wait ran out"
        assert scheduled.task.job_uuid == job, (scheduled.task.job_uuid, job)
        taken.woken.append(returned_at - committed_at)
        await store.state_machine.worker_task_update(worker, scheduled.task.uuid, status=TaskStatus.COMPLETED)
        _, job = await commit(f"reference-{index}")
        started = time.perf_counter()
        scheduled = await store.scheduler.claim(worker)
        taken.claim.append(time.perf_counter() - started)
        assert scheduled is not None, "the reference claim found no task"
        assert scheduled.task.job_uuid == job, (scheduled.task.job_uuid, job)
        await store.state_machine.worker_task_update(worker, scheduled.task.uuid, status=TaskStatus.COMPLETED)
    return taken


def latency_figure(name: str, taken: Latencies, goal_ms: float | None) -> Absolute:
    p50, p99 = percentiles(taken.woken)
    claim_p50, claim_p99 = percentiles(taken.claim)
    detail = (
        f"p99 {p99 * 1e3:.2f} ms, max {max(taken.woken) * 1e3:.2f} ms, {len(taken.woken)} samples; "
        f"a claim of a task already there: p50 {claim_p50 * 1e3:.2f} ms, p99 {claim_p99 * 1e3:.2f} ms"
    )
    return Absolute(f"{name}: wake-up latency p50", p50 * 1e3, "ms", detail, goal_ms)


async def wakeup_figures(
    backend: str,
    store: Store,
    url: str,
    samples: int,
    same_goal: float | None,
    other_goal: float | None,
    *,
    same: bool = True,
    long_wait: bool = False,
) -> list[Absolute]:
    [worker] = await create_workers(store, 1, "latency")
    figures = []
    if same:
        taken = await latencies(store, worker, same_process(store), samples, SETTLE, seed=1)
        figures.append(latency_figure(f"{backend}, same process", taken, same_goal))
    child = await Child.start(url)
    try:
        taken = await latencies(store, worker, child.commit, samples, SETTLE, seed=2)
        figures.append(latency_figure(f"{backend}, another process", taken, other_goal))
        if long_wait:
            count = min(samples, LONG_SAMPLES)
            taken = await latencies(store, worker, child.commit, count, LONG_SETTLE, seed=3)
            figures.append(latency_figure(f"{backend}, another process, after 1–2 s of waiting", taken, None))
    finally:
        await child.close()
    return figures


# -- 2. idle cost -----------------------------------------------------------------------------


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (None: not readable here)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ServerBackends:
    """The CPU time of the bench database's PostgreSQL backends, read from
    ``/proc`` (the server must run on this machine)."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._start: dict[int, float] = {}
        self.listener: int | None = None

    async def _pids(self) -> dict[int, str]:
        import asyncpg  # type: ignore[import-untyped]

        connection = await asyncpg.connect(self._dsn)
        try:
            rows = await connection.fetch(
                "SELECT pid, query FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
        finally:
            await connection.close()
        return {int(row["pid"]): str(row["query"]) for row in rows}

    async def start(self) -> None:
        pids = await self._pids()
        self.listener = next((pid for pid, query in pids.items() if query.startswith("LISTEN")), None)
        for pid in pids:
            cpu = process_cpu(pid)
            if cpu is not None:
                self._start[pid] = cpu

    def used(self) -> tuple[float, float | None, int] | None:
        """(CPU seconds of the backends since start, of the listener, backends counted)."""
        if not self._start:
            return None
        total, listener, counted = 0.0, None, 0
        for pid, started in self._start.items():
            now = process_cpu(pid)
            if now is None:
                continue
            counted += 1
            total += now - started
            if pid == self.listener:
                listener = now - started
        return total, listener, counted


def count_claims(store: Store) -> list[int]:
    """Count every claim the store's scheduler makes from now on (a waiting
    claim makes one per wake-up); the count is the list's one element."""
    counter = [0]
    scheduler: Any = store.scheduler
    claim_once = scheduler._claim_once

    async def counted(*args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        return await claim_once(*args, **kwargs)

    scheduler._claim_once = counted
    return counter


async def timer_floor(seconds: float, interval: float) -> float:
    """This process's CPU, % of a core, while it only wakes every ``interval``
    seconds (``asyncio.sleep``): the floor of any poller at that interval."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(int(seconds / interval)):
        await asyncio.sleep(interval)
    return 100 * (time.process_time() - cpu) / (time.perf_counter() - wall)


async def idle_figure(
    backend: str, store: Store, waiters: int, seconds: float, dsn: str | None, poll: float | None = None
) -> list[Absolute]:
    """``poll``: the interval of the store's watcher, if it polls (SQLite's
    ``data_version``); a bare timer at that interval is measured after the
    window, for the floor on this machine."""
    workers = await create_workers(store, waiters, "idle")
    claims = count_claims(store)
    waits = [asyncio.create_task(store.scheduler.claim(worker, wait=IDLE_SETTLE + seconds + 30)) for worker in workers]
    await asyncio.sleep(IDLE_SETTLE)
    if any(wait.done() for wait in waits):
        raise AssertionError("an idle waiter returned before the window")
    server = ServerBackends(dsn) if dsn is not None else None
    if server is not None:
        await server.start()
    claims_before = claims[0]
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    made = claims[0] - claims_before
    server_used = server.used() if server is not None else None
    for wait in waits:
        wait.cancel()
    await asyncio.gather(*waits, return_exceptions=True)
    detail = f"{waiters} waiters, {wall:.1f} s window, {made:,} claims in it ({made / wall:,.1f}/s)"
    if server_used is not None:
        total, listener, counted = server_used
        detail += f"; server: {counted} backends {total / wall:.2%} of a core"
        if listener is not None:
            detail += f", LISTEN backend {listener / wall:.2%}"
    if poll is not None:
        floor = await timer_floor(seconds, poll)
        detail += f"; a bare asyncio loop waking every {poll * 1e3:g} ms, no store: {floor:.2f} %"
    return [Absolute(f"{backend}: idle CPU, this process", 100 * cpu / wall, "%", detail, GOAL_IDLE_PERCENT)]


# -- 3. the change feed's catch-up ---------------------------------------------------------------

FEED_COLUMNS = (
    "id, tx, kind, job_uuid, task_uuid, worker_uuid, logbook_uuid, flow_uuid, atom_uuid, "
    "old_value, new_value, reason, who, at"
)


def change_rows(count: int) -> list[dict[str, Any]]:
    """Task-status changes of jobs of 100 tasks, as a claim writes them."""
    now = datetime.now(UTC)
    rows = []
    job = uuid.uuid4()
    for index in range(count):
        if index % 100 == 0:
            job = uuid.uuid4()
        rows.append(
            change(
                ChangeKind.TASK_STATUS,
                at=now,
                job=job,
                task=uuid.uuid4(),
                worker=uuid.uuid4(),
                old="queued",
                new="active",
                reason="claimed by bench",
                who="bench",
            )
        )
    return rows


async def fill_changes(store: Store, count: int) -> float:
    """Write ``count`` changes; seconds taken."""
    started = time.perf_counter()
    for start in range(0, count, CHANGE_UNIT):
        rows = change_rows(min(CHANGE_UNIT, count - start))

        def unit(connection: Connection, rows: list[dict[str, Any]] = rows) -> None:
            record(connection, rows)

        await store.write(unit, offload=True)
    return time.perf_counter() - started


@dataclass
class Scan:
    """One catch-up: rows per second, and the seconds its first and its last
    page of ``PAGE`` rows took (a keyset page that costs more the further it
    is shows a scan from the start)."""

    rate: float
    first_page: float
    last_page: float


def scanned(page_times: list[float], rows: int, expected: int) -> Scan:
    assert rows == expected, (rows, expected)
    return Scan(rows / sum(page_times), page_times[0], page_times[-1] if len(page_times) == 1 else page_times[-2])


async def read_feed(store: Store) -> tuple[int, list[float]]:
    """Read the whole feed without following: (changes read, seconds per page of ``PAGE``)."""
    read, pages = 0, []
    started = time.perf_counter()
    async for _ in store.changes(follow=False):
        read += 1
        if read % PAGE == 0:
            now = time.perf_counter()
            pages.append(now - started)
            started = now
    pages.append(time.perf_counter() - started)
    return read, pages


def store_scan(store: Store, count: int) -> Callable[[], Awaitable[Scan]]:
    async def run() -> Scan:
        read, pages = await read_feed(store)
        return scanned(pages, read, count)

    return run


COUNT = text("SELECT count(*) FROM changes")
RAW_PAGE = f"SELECT {FEED_COLUMNS} FROM changes WHERE (tx, id) > ({{}}, {{}}) ORDER BY tx, id LIMIT {PAGE}"
RAW_ROWID_PAGE = f"SELECT {FEED_COLUMNS} FROM changes WHERE id > ? ORDER BY id LIMIT {PAGE}"


def asyncpg_scan(dsn: str, count: int) -> Callable[[], Awaitable[Scan]]:
    async def run() -> Scan:
        import asyncpg

        connection = await asyncpg.connect(dsn)
        try:
            query = RAW_PAGE.format("$1", "$2")
            rows: list[tuple[Any, ...]] = []
            pages: list[float] = []
            position = (0, 0)
            while True:
                started = time.perf_counter()
                page = [tuple(record) for record in await connection.fetch(query, *position)]
                pages.append(time.perf_counter() - started)
                rows += page
                if len(page) < PAGE:
                    break
                position = (page[-1][1], page[-1][0])
        finally:
            await connection.close()
        return scanned(pages, len(rows), count)

    return run


def sqlite_scan(path: str, rowid: bool, count: int) -> Callable[[], Awaitable[Scan]]:
    """The keyset scan on sqlite3, by ``(tx, id)`` or (``rowid``) by ``id``
    alone (SQLite's ``tx`` is always 0); each page its own read transaction."""

    async def run() -> Scan:
        raw = raw_sqlite(path)
        try:
            query = RAW_ROWID_PAGE if rowid else RAW_PAGE.format("?", "?")
            rows: list[tuple[Any, ...]] = []
            pages: list[float] = []
            position: tuple[int, ...] = (0,) if rowid else (0, 0)
            while True:
                started = time.perf_counter()
                raw.execute("BEGIN")
                page = raw.execute(query, position).fetchall()
                raw.execute("COMMIT")
                pages.append(time.perf_counter() - started)
                rows += page
                if len(page) < PAGE:
                    break
                position = (page[-1][0],) if rowid else (page[-1][1], page[-1][0])
        finally:
            raw.close()
        return scanned(pages, len(rows), count)

    return run


RawScan = tuple[str, Callable[[int], Callable[[], Awaitable[Scan]]]]
"""A baseline's name, and its scan of that many rows."""


async def changes_figures(
    backend: str, store: Store, count: int, raws: Sequence[RawScan]
) -> tuple[list[Figure], list[str]]:
    filled = await fill_changes(store, count)
    # The table also holds the changes of the samples before (claims, completions, jobs stored).
    total = await store.read(lambda connection: int(connection.execute(COUNT).scalar_one()))
    # PostgreSQL's feed reads below the oldest running transaction of the whole server:
    # wait until a transaction of other work on the machine no longer hides ours.
    for _ in range(120):
        if (read := (await read_feed(store))[0]) == total:
            break
        await asyncio.sleep(0.5)
    assert read == total, f"the feed shows {read:,} of {total:,} changes after a minute"
    # Rounds interleaved (as harness.interleaved, with several baselines): the median of each.
    runs: dict[str, list[Scan]] = {name: [] for name, _ in raws}
    runs["statestore"] = []
    for _ in range(CHANGE_ROUNDS):
        for name, raw_scan in raws:
            runs[name].append(await raw_scan(total)())
        runs["statestore"].append(await store_scan(store, total)())
    median = {
        name: Scan(
            *(statistics.median(getattr(run, part) for run in scans) for part in ("rate", "first_page", "last_page"))
        )
        for name, scans in runs.items()
    }
    ours = median["statestore"]
    figures: list[Figure] = []
    lines = [
        f"{backend}: {count:,} changes written in {filled:.1f} s; {total:,} in the table, read in pages of {PAGE:,}"
    ]
    for name, scan in median.items():
        lines.append(
            f"  {name:<36} {scan.rate:>9,.0f} rows/s, first page {scan.first_page * 1e3:6.2f} ms, "
            f"last page {scan.last_page * 1e3:6.2f} ms"
        )
        if name != "statestore":
            figures.append(
                Figure(
                    f"{backend}: changes(follow=False) rows/s vs {name}",
                    ours.rate,
                    scan.rate,
                    "rows/s",
                    GOAL_CHANGES_RATIO,
                )
            )
    return figures, lines


# -- backends ---------------------------------------------------------------------------------


@dataclass
class Results:
    absolute: list[Absolute]
    figures: list[Figure]
    lines: list[str]


async def run_sqlite(options: argparse.Namespace) -> Results:
    path = os.path.join(tempfile.mkdtemp(prefix="statestore-bench-"), "wakeups.db")
    url = f"sqlite:///{path}"
    results = Results([], [], [])
    async with open_store(url, create=True) as store:
        results.absolute += await wakeup_figures(
            "SQLite file", store, url, options.samples, GOAL_SAME_PROCESS_MS, GOAL_SQLITE_PROCESS_MS
        )
        results.absolute += await idle_figure(
            "SQLite file", store, options.waiters, options.idle_seconds, None, poll=DATA_VERSION_INTERVAL
        )
        raws: list[RawScan] = [
            ("sqlite3, WHERE (tx, id) > (?, ?)", partial(sqlite_scan, path, False)),
            ("sqlite3, WHERE id > ?", partial(sqlite_scan, path, True)),
        ]
        figures, lines = await changes_figures("SQLite file", store, options.changes, raws)
        results.figures += figures
        results.lines += lines
    return results


async def run_postgres(admin_url: str, options: argparse.Namespace) -> Results:
    results = Results([], [], [])
    async with throwaway_postgres(admin_url) as url:
        dsn = asyncpg_dsn(url)
        async with open_store(url, create=True, pool_size=10, max_overflow=10) as store:
            results.absolute += await wakeup_figures(
                "PostgreSQL", store, url, options.samples, GOAL_SAME_PROCESS_MS, GOAL_POSTGRES_PROCESS_MS
            )
            results.absolute += await idle_figure("PostgreSQL", store, options.waiters, options.idle_seconds, dsn)
            raws: list[RawScan] = [("asyncpg, WHERE (tx, id) > ($1, $2)", partial(asyncpg_scan, dsn))]
            figures, lines = await changes_figures("PostgreSQL", store, options.changes, raws)
            results.figures += figures
            results.lines += lines
    return results


async def run_mysql(admin_url: str, options: argparse.Namespace) -> Results:
    results = Results([], [], [])
    async with throwaway_mysql(admin_url) as url, open_store(url, create=True) as store:
        results.absolute += await wakeup_figures(
            "MariaDB", store, url, options.samples, None, None, same=False, long_wait=True
        )
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default=os.environ.get("STATESTORE_BENCH_POSTGRES_URL"))
    parser.add_argument("--mysql", default=os.environ.get("STATESTORE_BENCH_MYSQL_URL"))
    parser.add_argument("--samples", type=int, default=60, help="wake-up latency samples per figure")
    parser.add_argument("--changes", type=int, default=100_000, help="changes in the table for the catch-up")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="the idle-cost window")
    parser.add_argument("--waiters", type=int, default=200, help="idle waiters")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        await child_main(options.child)
        return
    print(f"start: {load()}")
    results: list[Results] = []
    if not options.skip_sqlite:
        results.append(await run_sqlite(options))
    if options.postgres and not options.skip_postgres:
        results.append(await run_postgres(options.postgres, options))
    if options.mysql:
        results.append(await run_mysql(options.mysql, options))
    print(f"end: {load()}\n")
    absolute_report([figure for result in results for figure in result.absolute])
    print()
    for result in results:
        for line in result.lines:
            print(line)
    print()
    report([figure for result in results for figure in result.figures], "ratio = times slower than the raw driver")


if __name__ == "__main__":
    asyncio.run(main())
