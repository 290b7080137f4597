"""kill -9 durability: a process killed with SIGKILL at a random point of a
stream of acknowledged writes loses none of them.

A child (``tests.support.ack_writer``) writes to both models from several
coroutines at once and prints a line after each write returned; the test
kills it after a random number of acknowledgements plus a random delay, then
opens the store itself and checks that every acknowledged write is there
(with its value or a later one of the same entity), that every job is whole
(all its tasks and dependencies, or absent), that explicit transactions are
all-or-nothing, and that the store is sound and takes new writes.

Each trial draws a seed, shown on failure; ``STATESTORE_TEST_KILL_SEED``
fixes it (the kill's timing still varies from run to run).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections import defaultdict
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypeVar
from uuid import UUID

import pytest
from sqlalchemy import func, select

from statestore import NotFound, Store, open_store
from statestore.farm import AuthoredJob, AuthoredTask, TaskStatus
from statestore.farm.tables import DEPENDENCIES, JOBS, TASKS, WORKERS
from statestore.flows import AtomDetail, FlowDetail, LogBook
from tests.support.ack_writer import STATUS_RANK

ROOT = Path(__file__).resolve().parents[2]
DURABLE_BACKENDS = ["sqlite-file", "postgresql", "mysql"]  # in-memory SQLite dies with its process
TRIALS = 3
MAX_ACKS_BEFORE_KILL = 2000  # the child acknowledges a few thousand writes a second
MAX_DELAY_AFTER = 0.05  # seconds, so that the kill may land inside a write
STALL_TIMEOUT = 60.0  # no acknowledgement for this long: the child is stuck

T = TypeVar("T")


@dataclass
class Acknowledged:
    """What the child acknowledged: for each entity, the latest value."""

    workers: set[UUID] = field(default_factory=set)
    pairs: list[tuple[UUID, UUID]] = field(default_factory=list)
    books: dict[UUID, int] = field(default_factory=dict)
    flows: dict[UUID, set[UUID]] = field(default_factory=lambda: defaultdict(set))
    atoms: dict[UUID, int] = field(default_factory=dict)
    jobs: dict[UUID, tuple[int, int]] = field(default_factory=dict)
    tasks: dict[UUID, tuple[int, UUID]] = field(default_factory=dict)
    seen: dict[UUID, datetime] = field(default_factory=dict)
    count: int = 0

    def add(self, line: str) -> None:
        kind, *values = line.split()
        if kind == "worker":
            self.workers.add(UUID(values[0]))
        elif kind == "pair":
            self.pairs.append((UUID(values[0]), UUID(values[1])))
        elif kind == "book":
            book = UUID(values[0])
            self.books[book] = int(values[1])
            self.flows[book].add(UUID(values[2]))
        elif kind == "atom":
            self.atoms[UUID(values[0])] = int(values[1])
        elif kind == "job":
            self.jobs[UUID(values[0])] = (int(values[1]), int(values[2]))
        elif kind == "task":
            self.tasks[UUID(values[0])] = (int(values[1]), UUID(values[2]))
        elif kind == "seen":
            self.seen[UUID(values[0])] = datetime.fromisoformat(values[1])
        else:
            raise AssertionError(f"unknown acknowledgement {line!r}")
        self.count += 1


async def _run_and_kill(url: str, seed: int) -> tuple[Acknowledged, str]:
    """Run the child, SIGKILL it at a random point; everything it acknowledged."""
    rng = random.Random(seed)
    kill_after = rng.randint(1, MAX_ACKS_BEFORE_KILL)
    delay = rng.uniform(0, MAX_DELAY_AFTER)
    acknowledged = Acknowledged()
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.ack_writer",
        url,
        str(seed),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    try:
        while acknowledged.count < kill_after:
            line = await asyncio.wait_for(child.stdout.readline(), STALL_TIMEOUT)
            if not line.endswith(b"\n"):  # the child ended by itself
                break
            acknowledged.add(line.decode())
        await asyncio.sleep(delay)
    finally:
        if child.returncode is None:
            child.kill()
        # What it acknowledged after we stopped reading is in the pipe still.
        rest, stderr = await child.communicate()
    assert child.returncode == -signal.SIGKILL, (
        f"seed {seed}: the child ended by itself (exit {child.returncode}) "
        f"after {acknowledged.count} acknowledgements:\n{stderr.decode()}"
    )
    for text in rest.decode().splitlines(keepends=True):
        if text.endswith("\n"):  # a line cut short was never acknowledged
            acknowledged.add(text)
    return acknowledged, f"killed after {kill_after} acknowledgements read + {delay * 1000:.0f} ms"


async def _missing_or(problems: list[str], what: str, read: Awaitable[T]) -> T | None:
    try:
        return await read
    except NotFound:
        problems.append(f"{what}: acknowledged, not found")
        return None


async def _check_flows(store: Store, acked: Acknowledged, problems: list[str]) -> None:
    for uuid, n in acked.books.items():
        book = await _missing_or(problems, f"logbook {uuid}", store.logbooks.get(uuid))
        if book is None:
            continue
        if book.meta.get("n", -1) < n:
            problems.append(f"logbook {uuid}: meta {book.meta}, acknowledged n={n}")
        flows = {flow.uuid: flow for flow in book.flows}
        for flow in acked.flows[uuid]:
            if flow not in flows:
                problems.append(f"logbook {uuid}: acknowledged flow detail {flow} is missing")
            elif not flows[flow].atoms:
                problems.append(f"logbook {uuid}: flow detail {flow} lost its atoms")
    stored: dict[UUID, AtomDetail] = {}
    for uuid, n in acked.atoms.items():
        atom = await _missing_or(problems, f"atom detail {uuid}", store.atom_details.get(uuid))
        if atom is None:
            continue
        stored[uuid] = atom
        if not isinstance(atom.results, dict) or atom.results.get("n", -1) < n:
            problems.append(f"atom detail {uuid}: results {atom.results}, acknowledged n={n}")
    for first, second in acked.pairs:
        for uuid in (first, second):
            atom = stored.get(uuid) or await _missing_or(problems, f"atom detail {uuid}", store.atom_details.get(uuid))
            if atom is not None:
                stored[uuid] = atom
        if first in stored and second in stored and stored[first].results != stored[second].results:
            problems.append(
                f"atoms {first} and {second}, always updated in one transaction, differ: "
                f"{stored[first].results} != {stored[second].results}"
            )


async def _check_farm(store: Store, acked: Acknowledged, problems: list[str]) -> None:
    for uuid in acked.workers:
        await _missing_or(problems, f"worker {uuid}", store.workers.fetch(uuid))
    for uuid, began in acked.seen.items():
        worker = await _missing_or(problems, f"worker {uuid}", store.workers.fetch(uuid))
        if worker is not None and (worker.last_seen_at is None or worker.last_seen_at < began):
            problems.append(
                f"worker {uuid}: last seen {worker.last_seen_at}, a heartbeat begun at {began} was acknowledged"
            )
    await _check_jobs(store, acked, problems)
    await _check_tasks(store, acked, problems)


async def _check_jobs(store: Store, acked: Acknowledged, problems: list[str]) -> None:
    """Every job, acknowledged or not, is whole: all its tasks and dependencies."""
    tasks = select(TASKS.c.job_id, func.count().label("tasks")).group_by(TASKS.c.job_id).subquery()
    dependencies = (
        select(TASKS.c.job_id, func.count().label("dependencies"))
        .select_from(DEPENDENCIES.join(TASKS, TASKS.c.id == DEPENDENCIES.c.task_id))
        .group_by(TASKS.c.job_id)
        .subquery()
    )
    query = (
        select(JOBS.c.uuid, JOBS.c.metadata, tasks.c.tasks, dependencies.c.dependencies)
        .outerjoin(tasks, tasks.c.job_id == JOBS.c.id)
        .outerjoin(dependencies, dependencies.c.job_id == JOBS.c.id)
    )
    jobs = {row.uuid: row for row in await store.read(lambda conn: conn.execute(query).all())}
    for job in jobs.values():  # all the child's: its metadata says what whole is
        whole = {"tasks": job.tasks or 0, "dependencies": job.dependencies or 0}
        if whole != job.metadata:
            problems.append(f"job {job.uuid} is not whole: it has {whole}, it was stored with {job.metadata}")
    for uuid, (count, _) in acked.jobs.items():
        if uuid not in jobs:
            problems.append(f"job {uuid}: acknowledged ({count} tasks), not found")


async def _check_tasks(store: Store, acked: Acknowledged, problems: list[str]) -> None:
    """Claimed tasks are still at least active, completed ones completed, by their worker."""
    query = select(TASKS.c.uuid, TASKS.c.status, WORKERS.c.uuid.label("worker")).outerjoin(
        WORKERS, WORKERS.c.id == TASKS.c.worker_id
    )
    tasks = {row.uuid: row for row in await store.read(lambda conn: conn.execute(query).all())}
    for uuid, (rank, worker) in acked.tasks.items():
        task = tasks.get(uuid)
        if task is None:
            problems.append(f"task {uuid}: acknowledged, not found")
        elif STATUS_RANK.get(TaskStatus(task.status), -1) < rank or task.worker != worker:
            problems.append(
                f"task {uuid}: {task.status} of worker {task.worker}, acknowledged rank {rank} of worker {worker}"
            )


async def _fresh_writes(store: Store, acked: Acknowledged) -> None:
    """The store takes new writes of both models after the kill."""
    book = LogBook("after the kill", flows=[FlowDetail("after", atoms=[AtomDetail("x")])])
    await store.logbooks.save(book)
    assert (await store.logbooks.get(book.uuid)).flows[0].atoms[0].name == "x"
    job = AuthoredJob("after the kill", "kill-test", tasks=[AuthoredTask("x", "type-after")])
    await store.jobs.store_authored(job)
    assert [task.name for task in await store.tasks.of_job(job.uuid)] == ["x"]
    for uuid in list(acked.atoms)[:1]:
        atom = await store.atom_details.get(uuid)
        atom.results = {"n": 10**9}
        await store.atom_details.update(atom)
        assert (await store.atom_details.get(uuid)).results == {"n": 10**9}


@pytest.mark.parametrize("trial", range(TRIALS))
@pytest.mark.parametrize("backend", DURABLE_BACKENDS)
async def test_sigkill_loses_no_acknowledged_write(backend: str, store_url: str, trial: int) -> None:
    seed = int(os.environ.get("STATESTORE_TEST_KILL_SEED") or random.SystemRandom().randrange(2**32))
    print(f"{backend} trial {trial}: seed {seed}")
    acked, how = await _run_and_kill(store_url, seed)
    where = f"{backend}, seed {seed}, {how}, {acked.count} acknowledged"
    print(where)
    problems: list[str] = []
    async with open_store(store_url) as store:
        report = await store.check()
        assert report.ok, f"{where}: {report.problems}"
        await _check_flows(store, acked, problems)
        await _check_farm(store, acked, problems)
        assert not problems, f"{where}: {len(problems)} acknowledged writes lost:\n" + "\n".join(problems[:20])
        await _fresh_writes(store, acked)
