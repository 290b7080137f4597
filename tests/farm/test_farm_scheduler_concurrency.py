"""Real concurrent claimers: 4 processes × 8 coroutines drain a 5,000-task DAG.

Every task must be completed exactly once, never handed to two workers, never
handed out before all its dependencies completed, and no caller may see
"database is locked" or a deadlock.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import pytest

from statestore import open_store
from statestore.farm import AuthoredJob, AuthoredTask, TaskStatus, WorkerStatus
from tests.support.backends import SERVER_ENV, TestDatabase, discard_database, new_database

ROOT = Path(__file__).resolve().parents[2]
LAYERS, WIDTH = 25, 200  # 5,000 tasks
PROCESSES, COROUTINES = 4, 8


def dag_job() -> AuthoredJob:
    """Layers of 200 tasks; each task after the first layer depends on three
    tasks of the layer before (fan-in), and each task feeds three (fan-out)."""
    layers: list[list[AuthoredTask]] = []
    for depth in range(LAYERS):
        layer = [AuthoredTask(f"t{depth}.{index}", "blender") for index in range(WIDTH)]
        if layers:
            previous = layers[-1]
            for index, task in enumerate(layer):
                task.dependencies = [previous[(index + offset) % WIDTH].uuid for offset in (0, 1, 7)]
        layers.append(layer)
    return AuthoredJob("dag", "render", tasks=[task for layer in layers for task in layer])


@pytest.fixture(params=["sqlite-file", "postgresql", "mysql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TestDatabase]:
    """A new database of each backend several processes can share (not memory)."""
    made: TestDatabase = await new_database(str(request.param), tmp_path)
    yield made
    if made.backend in SERVER_ENV:
        await discard_database(made)


@pytest.mark.slow
async def test_processes_drain_a_dag_each_task_once_in_dependency_order(database: TestDatabase, tmp_path: Path) -> None:
    job = dag_job()
    dependencies = {task.uuid: task.dependencies for task in job.tasks}
    async with open_store(database.url, create=True) as store:
        await store.jobs.store_authored(job)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        logs = [tmp_path / f"claims-{n}.jsonl" for n in range(PROCESSES)]
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.support.claim_worker",
                database.url,
                str(job.uuid),
                str(COROUTINES),
                str(log),
                cwd=ROOT,
                env=env,
                stderr=asyncio.subprocess.PIPE,
            )
            for log in logs
        ]
        outcomes = [await asyncio.wait_for(process.communicate(), timeout=600) for process in processes]
        for process, (_, stderr) in zip(processes, outcomes, strict=True):
            text = stderr.decode()
            assert process.returncode == 0, text
            assert "locked" not in text
            assert "deadlock" not in text.lower()
        entries = [json.loads(line) for log in logs for line in log.read_text().splitlines()]
        claimed = [UUID(entry["task"]) for entry in entries]
        assert len(claimed) == len(job.tasks)
        assert set(claimed) == set(dependencies)  # each exactly once
        assert all(status == "completed" for entry in entries for status in entry["dependency_statuses"])
        completing_at = {UUID(entry["task"]): entry["completing_at"] for entry in entries}
        for entry in entries:
            for dependency in dependencies[UUID(entry["task"])]:
                assert completing_at[dependency] < entry["claimed_at"]
        assert len({entry["worker"] for entry in entries}) > PROCESSES  # the work was really shared
        assert await store.jobs.count_tasks_in_status(job.uuid, TaskStatus.COMPLETED) == (len(job.tasks),) * 2


async def test_a_claim_held_open_hides_no_other_task(database: TestDatabase) -> None:
    """While one claimer's transaction holds a task, another claimer gets the
    next task — on SQLite after waiting for the write lock, on the servers at
    once (SKIP LOCKED) — never nothing."""
    async with open_store(database.url, create=True) as first, open_store(database.url) as second:
        await first.jobs.store_authored(
            AuthoredJob("j", "render", tasks=[AuthoredTask(f"t{n}", "blender") for n in range(3)])
        )
        one = await first.workers.create("one", "s", status=WorkerStatus.AWAKE, supported_task_types=["blender"])
        two = await first.workers.create("two", "s", status=WorkerStatus.AWAKE, supported_task_types=["blender"])
        holding = asyncio.Event()

        async def hold() -> str | None:
            async with first.transaction():
                claimed = await first.scheduler.claim(one.uuid)
                holding.set()
                await asyncio.sleep(0.5)
            return None if claimed is None else claimed.task.name

        async def claim_meanwhile() -> str | None:
            await holding.wait()
            claimed = await second.scheduler.claim(two.uuid)
            return None if claimed is None else claimed.task.name

        assert await asyncio.gather(hold(), claim_meanwhile()) == ["t0", "t1"]
