"""Writers of two stores (two processes' worth of connections) racing on one
job's tasks: the dependency counts stay right and nothing deadlocks to the
caller. On SQLite the second writer waits for the first's write lock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from statestore import open_store
from statestore.farm import AuthoredJob, AuthoredTask, JobStatus, TaskStatus, WorkerStatus
from tests.support.backends import SERVER_ENV, TestDatabase, discard_database, new_database
from tests.support.farm_job_fixtures import pending


@pytest.fixture(params=["sqlite-file", "postgresql", "mysql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TestDatabase]:
    made = await new_database(str(request.param), tmp_path)
    async with open_store(made.url, create=True):
        pass
    yield made
    if made.backend in SERVER_ENV:
        await discard_database(made)


async def test_completing_a_task_while_a_dependent_is_being_added_leaves_it_claimable(
    database: TestDatabase,
) -> None:
    async with open_store(database.url) as adding, open_store(database.url) as completing:
        first = AuthoredTask("first", "blender")
        job = await adding.jobs.store_authored(AuthoredJob("j", "render", status=JobStatus.ACTIVE, tasks=[first]))
        later = AuthoredTask("later", "blender", dependencies=[first.uuid])
        added = asyncio.Event()

        async def add() -> None:
            async with adding.transaction():
                await adding.jobs.add_tasks(job.uuid, [later])
                added.set()
                await asyncio.sleep(0.5)  # the completion arrives before this commits

        async def complete() -> None:
            await added.wait()
            await completing.tasks.save_status(first.uuid, TaskStatus.COMPLETED)

        await asyncio.gather(add(), complete())
        assert await pending(adding, later.uuid) == 0
        worker = await adding.workers.create("w", "s", status=WorkerStatus.AWAKE, supported_task_types=["blender"])
        claimed = await adding.scheduler.claim(worker.uuid)
        assert claimed is not None
        assert claimed.task.uuid == later.uuid


async def test_a_bulk_update_and_single_saves_of_one_job_both_complete(database: TestDatabase) -> None:
    """A bulk status change of a job's tasks and single saves of its tasks lock
    in one order (the job first), so neither is left to a deadlock."""
    async with open_store(database.url) as bulk, open_store(database.url) as single:
        root = AuthoredTask("root", "blender")
        middle = [AuthoredTask(f"m{n}", "blender", dependencies=[root.uuid]) for n in range(10)]
        leaf = AuthoredTask("leaf", "blender", dependencies=[task.uuid for task in middle])
        job = await bulk.jobs.store_authored(AuthoredJob("j", "render", tasks=[root, *middle, leaf]))

        async def complete_one_by_one() -> None:
            for task in [root, *middle]:
                await single.tasks.save_status(task.uuid, TaskStatus.COMPLETED)

        async def requeue_all_repeatedly() -> None:
            for _ in range(5):
                await bulk.jobs.update_task_statuses_conditional(
                    job.uuid, [TaskStatus.QUEUED], TaskStatus.QUEUED, "requeued"
                )
                await bulk.jobs.update_task_statuses_conditional(
                    job.uuid, [TaskStatus.COMPLETED, TaskStatus.QUEUED], TaskStatus.QUEUED, "requeued"
                )
                await asyncio.sleep(0.01)

        await asyncio.gather(complete_one_by_one(), requeue_all_repeatedly())
        # Whatever the interleaving, each count matches the statuses stored.
        statuses = {task.uuid: task.status for task in await bulk.tasks.of_job(job.uuid)}
        for task in [*middle, leaf]:
            unfinished = sum(statuses[dependency] is not TaskStatus.COMPLETED for dependency in task.dependencies)
            assert await pending(bulk, task.uuid) == unfinished
