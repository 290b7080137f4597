"""``tasks.job_schedulable`` follows the job's status, so the claim index holds
no task of a job under construction, paused or finished — and such tasks
become claimable the moment their job is queued."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select

from statestore import Store
from statestore.farm import JobStatus
from statestore.farm.tables import TASKS
from tests.support.farm_fixtures import create_worker, job_of, render_task


async def _flags(store: Store, job: UUID) -> list[bool]:
    tasks = await store.tasks.of_job(job)
    ids = [task.id for task in tasks]
    rows = await store.read(
        lambda conn: dict(conn.execute(select(TASKS.c.id, TASKS.c.job_schedulable).where(TASKS.c.id.in_(ids))).all())
    )
    return [bool(rows[task_id]) for task_id in ids]


async def test_tasks_of_a_job_under_construction_wait_for_it_to_be_queued(store: Store) -> None:
    worker = await create_worker(store)
    job = await store.jobs.store_authored(job_of(render_task("1"), status=JobStatus.UNDER_CONSTRUCTION))
    await store.jobs.add_tasks(job.uuid, [render_task("2")])
    assert await _flags(store, job.uuid) == [False, False]
    assert await store.scheduler.claim(worker.uuid) is None
    await store.jobs.save_status(job.uuid, JobStatus.QUEUED, "ready")
    assert await _flags(store, job.uuid) == [True, True]
    claimed = await store.scheduler.claim(worker.uuid)
    assert claimed is not None
    assert claimed.task.name == "1"


async def test_pausing_a_job_takes_its_tasks_out_and_resuming_puts_them_back(store: Store) -> None:
    worker = await create_worker(store)
    job = await store.jobs.store_authored(job_of(render_task("1"), render_task("2")))
    await store.jobs.save_status(job.uuid, JobStatus.PAUSED, "paused by the user")
    assert await _flags(store, job.uuid) == [False, False]
    assert await store.scheduler.claim(worker.uuid) is None
    await store.jobs.add_tasks(job.uuid, [render_task("3")])  # added while paused
    assert await _flags(store, job.uuid) == [False, False, False]
    await store.jobs.save_status(job.uuid, JobStatus.ACTIVE, "resumed")
    assert await _flags(store, job.uuid) == [True, True, True]
    assert await store.scheduler.claim(worker.uuid) is not None


async def test_activating_a_queued_job_by_a_claim_keeps_its_tasks_claimable(store: Store) -> None:
    first, second = await create_worker(store, "first"), await create_worker(store, "second")
    job = await store.jobs.store_authored(job_of(render_task("1"), render_task("2")))
    assert await store.scheduler.claim(first.uuid) is not None
    assert (await store.jobs.fetch(job.uuid)).status is JobStatus.ACTIVE
    assert await _flags(store, job.uuid) == [True, True]
    assert await store.scheduler.claim(second.uuid) is not None
