"""Claims of one worker racing each other or its heartbeat (issue "Reliability", items 2 and 3).

* Concurrent claims for the SAME worker — from one store, from two stores,
  from two processes — hand it one task: every claim names the same task,
  exactly one of them as newly claimed, and the worker has one active task.
* A claim racing the worker's heartbeat still returns a task.
* A claim counts as the worker being seen (``last_seen_at``), so a worker that
  claimed but never sent a heartbeat is timed out like any other.

On every backend; the tests with two stores or processes on those several
connections can share (SQLite file, PostgreSQL, MariaDB).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection

from statestore import Store, TransactionConflict, open_store
from statestore.core.types import utcnow
from statestore.farm import GivenBack, ScheduledTask, TaskStatus, WorkerStatus
from statestore.farm.claim import postgresql as claim_postgresql
from statestore.farm.tables import TASKS, WORKERS
from tests.support.backends import SERVER_ENV, TestDatabase, discard_database, new_database
from tests.support.farm_fixtures import create_worker, job_of, render_task

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 40

Held = tuple[ScheduledTask | None, ScheduledTask | None, int]
"""What each of two claims returned, and how many tasks the worker has active then."""


@pytest.fixture
async def roomy(backend: str, store: Store, store_url: str) -> AsyncIterator[Store]:
    """``store``, with connections enough on the servers for four claims to run side by side."""
    if backend not in SERVER_ENV:
        yield store
        return
    async with open_store(store_url, pool_size=8) as opened:
        yield opened


@pytest.fixture(params=["sqlite-file", "postgresql", "mysql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TestDatabase]:
    """A new database several stores and processes can share (not SQLite in memory)."""
    made = await new_database(str(request.param), tmp_path)
    async with open_store(made.url, create=True):
        pass
    yield made
    await discard_database(made)


async def _awake_workers(store: Store, count: int) -> list[UUID]:
    """``count`` awake workers never seen (copies of one, to hash its secret only once)."""
    first = await create_worker(store, "w0", task_types=["blender"])

    def copy(connection: Connection) -> None:
        row = dict(connection.execute(select(WORKERS).where(WORKERS.c.uuid == first.uuid)).mappings().one())
        del row["id"]
        rows = [{**row, "uuid": uuid4(), "name": f"w{number}"} for number in range(1, count)]
        connection.execute(insert(WORKERS), rows)

    await store.write(copy)
    return [worker.uuid for worker in await store.workers.list()]


async def _queued_tasks(store: Store, count: int) -> None:
    await store.jobs.store_authored(job_of(*(render_task(f"t{number}") for number in range(count))))


def _active_of_worker(connection: Connection, worker: UUID) -> int:
    worker_id = select(WORKERS.c.id).where(WORKERS.c.uuid == worker).scalar_subquery()
    statement = select(func.count()).where(TASKS.c.worker_id == worker_id, TASKS.c.status == TaskStatus.ACTIVE.value)
    return int(connection.execute(statement).scalar_one())


async def _active_count(store: Store, worker: UUID) -> int:
    return await store.read(lambda connection: _active_of_worker(connection, worker))


def _one_task(results: Sequence[ScheduledTask | None]) -> str | None:
    """What is wrong with the results of concurrent claims of one worker (None: nothing)."""
    if any(result is None for result in results):
        return f"a claim got nothing: {results}"
    tasks = {result.task.uuid for result in results if result is not None}
    if len(tasks) != 1:
        return f"{len(tasks)} different tasks"
    new = [result.newly_claimed for result in results if result is not None]
    if new.count(True) != 1:
        return f"newly_claimed {new}"
    return None


@pytest.mark.parametrize("claimers", [2, 4])
async def test_concurrent_claims_of_one_worker_hand_it_one_task(roomy: Store, claimers: int) -> None:
    workers = await _awake_workers(roomy, ROUNDS)
    await _queued_tasks(roomy, ROUNDS + claimers)
    wrong: list[str] = []
    for worker in workers:
        results = await asyncio.gather(*(roomy.scheduler.claim(worker) for _ in range(claimers)))
        problem = _one_task(results)
        active = await _active_count(roomy, worker)
        if problem is not None or active != 1:
            wrong.append(f"{problem or 'the same task'}, {active} active")
    assert wrong == []


async def test_claims_racing_heartbeats_hand_the_worker_one_task(roomy: Store) -> None:
    workers = await _awake_workers(roomy, ROUNDS)
    await _queued_tasks(roomy, ROUNDS + 2)
    wrong: list[str] = []
    for worker in workers:
        first, _, second, _ = await asyncio.gather(
            roomy.scheduler.claim(worker),
            roomy.workers.seen(worker),
            roomy.scheduler.claim(worker),
            roomy.workers.seen(worker),
        )
        problem = _one_task([first, second])
        active = await _active_count(roomy, worker)
        if problem is not None or active != 1:
            wrong.append(f"{problem or 'the same task'}, {active} active")
    assert wrong == []


async def test_a_claim_racing_a_heartbeat_gets_a_task(roomy: Store) -> None:
    workers = await _awake_workers(roomy, ROUNDS)
    await _queued_tasks(roomy, ROUNDS)
    for worker in workers:
        claimed, _ = await asyncio.gather(roomy.scheduler.claim(worker), roomy.workers.seen(worker))
        assert claimed is not None
        assert claimed.newly_claimed
        assert await _active_count(roomy, worker) == 1


async def _claim_while_held(database: TestDatabase, hold: str) -> Held:
    """Worker ``w``'s claim by a second store while the first holds a
    transaction in which it claimed for ``w`` (``hold="claim"``) or sent its
    heartbeat (``hold="heartbeat"``)."""
    async with open_store(database.url) as first, open_store(database.url) as second:
        await first.jobs.store_authored(job_of(*(render_task(f"t{number}") for number in range(3))))
        worker = (await create_worker(first, "w", task_types=["blender"])).uuid
        holding = asyncio.Event()

        async def hold_open() -> ScheduledTask | None:
            async with first.transaction():
                held = await first.scheduler.claim(worker) if hold == "claim" else None
                if hold == "heartbeat":
                    await first.workers.seen(worker)
                holding.set()
                await asyncio.sleep(0.5)
            return held

        async def claim_meanwhile() -> ScheduledTask | None:
            await holding.wait()
            await asyncio.sleep(0.05)  # its statement starts while the first transaction is open
            return await second.scheduler.claim(worker)

        held, meanwhile = await asyncio.gather(hold_open(), claim_meanwhile())
        return held, meanwhile, await _active_count(first, worker)


async def test_a_claim_waiting_on_a_claim_of_the_same_worker_gets_that_task(database: TestDatabase) -> None:
    held, meanwhile, active = await _claim_while_held(database, "claim")
    assert held is not None
    assert meanwhile is not None
    assert meanwhile.task.uuid == held.task.uuid
    assert (held.newly_claimed, meanwhile.newly_claimed) == (True, False)
    assert active == 1


async def test_a_claim_waiting_on_a_heartbeat_of_the_worker_gets_a_task(database: TestDatabase) -> None:
    _, meanwhile, active = await _claim_while_held(database, "heartbeat")
    assert meanwhile is not None
    assert meanwhile.newly_claimed
    assert active == 1


async def test_without_the_version_guard_the_race_reproduces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test above fails on PostgreSQL if the worker row's version guard
    is taken out of the claim: the waiting claim then takes a second task."""
    guard = claim_postgresql.VERSION_GUARD
    assert claim_postgresql.CLAIM_SQL.count(guard) == 1
    unguarded = claim_postgresql.claim_statement(claim_postgresql.CLAIM_SQL.replace(guard, ""))
    monkeypatch.setattr(claim_postgresql, "_CLAIM", unguarded)
    database = await new_database("postgresql", tmp_path)
    try:
        async with open_store(database.url, create=True):
            pass
        held, meanwhile, active = await _claim_while_held(database, "claim")
    finally:
        await discard_database(database)
    assert held is not None
    assert meanwhile is not None
    assert meanwhile.task.uuid != held.task.uuid
    assert active == 2


class _Counting:
    """A statement that counts its runs."""

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self.runs = 0

    def execute(self, connection: Connection, params: dict[str, Any]) -> Any:
        self.runs += 1
        return self.statement.execute(connection, params)


async def test_a_claim_whose_worker_keeps_changing_under_it_gives_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a claim that finds the worker's row changed under it each
    time runs a bounded number of times, then raises TransactionConflict,
    having claimed nothing."""
    always_raced = claim_postgresql.CLAIM_SQL.replace(claim_postgresql.VERSION_GUARD, "AND false")
    counting = _Counting(claim_postgresql.claim_statement(always_raced))
    monkeypatch.setattr(claim_postgresql, "_CLAIM", counting)
    database = await new_database("postgresql", tmp_path)
    try:
        async with open_store(database.url, create=True) as store:
            await _queued_tasks(store, 1)
            worker = (await create_worker(store, "w", task_types=["blender"])).uuid
            with pytest.raises(TransactionConflict):
                await store.scheduler.claim(worker)
            assert await _active_count(store, worker) == 0
    finally:
        await discard_database(database)
    assert counting.runs >= claim_postgresql.RUNS
    assert counting.runs % claim_postgresql.RUNS == 0  # the runner may run the whole claim again


async def _read_json(process: asyncio.subprocess.Process) -> dict[str, Any]:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
    assert line, "the claiming process ended early"
    result: dict[str, Any] = json.loads(line)
    return result


@pytest.mark.parametrize("coroutines", [1, 2])
async def test_processes_claiming_for_one_worker_hand_it_one_task(database: TestDatabase, coroutines: int) -> None:
    """Two processes (each with ``coroutines`` claims at once) claim for the
    same worker at the same moment, a fresh worker each round."""
    async with open_store(database.url) as store:
        workers = await _awake_workers(store, ROUNDS)
        await _queued_tasks(store, ROUNDS + 2 * coroutines)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.support.claim_race_worker",
                database.url,
                str(coroutines),
                cwd=ROOT,
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            for _ in range(2)
        ]
        try:
            for process in processes:
                assert process.stdout is not None
                assert await asyncio.wait_for(process.stdout.readline(), timeout=60) == b"ready\n"
            wrong: list[str] = []
            for worker in workers:
                for process in processes:
                    assert process.stdin is not None
                    process.stdin.write(f"{worker}\n".encode())
                answers = [await _read_json(process) for process in processes]
                tasks = {task for answer in answers for task in answer["tasks"]}
                new = [flag for answer in answers for flag in answer["new"]]
                active = await _active_count(store, worker)
                if None in tasks or len(tasks) != 1 or new.count(True) != 1 or active != 1:
                    wrong.append(f"tasks {tasks}, newly_claimed {new}, {active} active")
            assert wrong == []
        finally:
            for process in processes:
                assert process.stdin is not None
                process.stdin.close()
            for process in processes:
                await asyncio.wait_for(process.wait(), timeout=30)
        assert all(process.returncode == 0 for process in processes)


async def test_a_worker_that_claimed_but_never_sent_a_heartbeat_is_timed_out(store: Store) -> None:
    worker = await create_worker(store)
    assert worker.last_seen_at is None
    job = await store.jobs.store_authored(job_of(render_task("1")))
    before = utcnow()
    claimed = await store.scheduler.claim(worker.uuid)
    assert claimed is not None
    seen = (await store.workers.fetch(worker.uuid)).last_seen_at
    assert seen is not None
    assert seen >= before
    timed_out = await store.scheduler.time_out_workers(utcnow() + timedelta(seconds=1))
    assert timed_out == {worker.uuid: [GivenBack(claimed.task.uuid, job.uuid, TaskStatus.QUEUED)]}
    assert (await store.tasks.fetch(claimed.task.uuid)).status is TaskStatus.QUEUED
    assert (await store.workers.fetch(worker.uuid)).status is WorkerStatus.ERROR


async def test_a_claim_marks_an_eligible_worker_seen_even_without_work(store: Store) -> None:
    idle = await create_worker(store, "idle")
    asleep = await create_worker(store, "asleep", status=WorkerStatus.ASLEEP)
    before = utcnow()
    assert await store.scheduler.claim(idle.uuid) is None
    assert await store.scheduler.claim(asleep.uuid) is None
    seen = (await store.workers.fetch(idle.uuid)).last_seen_at
    assert seen is not None
    assert seen >= before
    assert (await store.workers.fetch(asleep.uuid)).last_seen_at is None  # gets nothing, and is not marked
