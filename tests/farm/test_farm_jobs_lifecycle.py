"""Reading, saving and deleting jobs, restated from Flamenco's jobs_test.go
and jobs_query_test.go, on every backend."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from uuid import uuid4

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from statestore import InvalidReference, NotFound, Store
from statestore.core.types import utcnow
from statestore.farm import JobStatus, TaskStatus
from statestore.farm.tables import BLOCKS, JOBS, TASKS
from tests.support.farm_fixtures import authored_job, create_worker, store_job
from tests.support.farm_job_fixtures import FAILURES, count_rows, counts, job_priority_column, set_job_updated_at

SECOND = timedelta(seconds=1)


async def test_fetch_list_and_not_found(store: Store) -> None:
    first = await store_job(store)
    second = await store_job(store)
    assert await store.jobs.fetch(second.uuid) == second
    assert await store.jobs.list() == [first, second]
    with pytest.raises(NotFound, match="job"):
        await store.jobs.fetch(uuid4())
    assert not hasattr(store.jobs, "fetch_by_id")


async def test_fetch_task_job_uuid(store: Store) -> None:
    authored = authored_job()
    job = await store_job(store, authored)
    assert await store.tasks.job_uuid_of(authored.tasks[1].uuid) == job.uuid
    with pytest.raises(NotFound, match="task"):
        await store.tasks.job_uuid_of(uuid4())


async def test_save_job_status(store: Store) -> None:
    job = await store_job(store)
    saved = await store.jobs.save_status(job.uuid, JobStatus.ACTIVE, "busy rendering")
    assert (saved.status, saved.activity) == (JobStatus.ACTIVE, "busy rendering")
    assert saved.updated_at > job.updated_at
    assert await store.jobs.fetch(job.uuid) == saved
    with pytest.raises(NotFound):
        await store.jobs.save_status(uuid4(), JobStatus.ACTIVE, "")


async def test_save_job_storage_info_keeps_updated_at(store: Store) -> None:
    job = await store_job(store)
    earlier = utcnow() - timedelta(minutes=10)
    await set_job_updated_at(store, job.uuid, earlier)
    saved = await store.jobs.save_storage_info(job.uuid, "some-✓out-id-string")
    assert saved.storage_checkout_id == "some-✓out-id-string"
    stored = await store.jobs.fetch(job.uuid)
    assert stored == saved
    assert stored.updated_at == earlier


async def test_fetch_job_shaman_checkout_id(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.jobs.storage_checkout_id(uuid4())
    job = await store_job(store)
    assert await store.jobs.storage_checkout_id(job.uuid) == ""
    await store.jobs.save_storage_info(job.uuid, "some-✓out-id-string")
    assert await store.jobs.storage_checkout_id(job.uuid) == "some-✓out-id-string"


async def test_save_job_priority_is_copied_to_the_tasks(store: Store) -> None:
    authored = authored_job()
    job = await store_job(store, authored)
    other = authored_job()
    await store_job(store, other)
    saved = await store.jobs.save_priority(job.uuid, 47)
    assert saved.priority == 47
    assert saved.updated_at > job.updated_at
    assert (await store.jobs.fetch(job.uuid)).priority == 47
    assert [await job_priority_column(store, task.uuid) for task in authored.tasks] == [47, 47, 47]
    assert [await job_priority_column(store, task.uuid) for task in other.tasks] == [50, 50, 50]
    tasks = await store.tasks.of_job(job.uuid)
    assert all(task.updated_at == job.updated_at for task in tasks)


async def test_save_job_worker_tag(store: Store) -> None:
    job = await store_job(store)
    other = await store_job(store)
    await store.worker_tags.create("decoy")  # tag ids and job ids differ
    tag = await store.worker_tags.create("arbejdsklynge")
    assert job.worker_tag_uuid is None
    assert (await store.jobs.save_worker_tag(job.uuid, tag.uuid)).worker_tag_uuid == tag.uuid
    assert (await store.jobs.fetch(job.uuid)).worker_tag_uuid == tag.uuid
    with pytest.raises(InvalidReference, match="worker tag"):
        await store.jobs.save_worker_tag(job.uuid, uuid4())
    assert (await store.jobs.fetch(job.uuid)).worker_tag_uuid == tag.uuid
    # Every path that returns a job names the tag by uuid.
    assert (await store.jobs.save_status(job.uuid, JobStatus.ACTIVE, "")).worker_tag_uuid == tag.uuid
    assert (await store.jobs.save_priority(job.uuid, 60)).worker_tag_uuid == tag.uuid
    assert (await store.jobs.save_storage_info(job.uuid, "co")).worker_tag_uuid == tag.uuid
    assert (await store.jobs.update_task_step_counts(job.uuid)).worker_tag_uuid == tag.uuid
    assert [found.worker_tag_uuid for found in await store.jobs.list()] == [tag.uuid, None]
    assert [found.worker_tag_uuid for found in await store.jobs.in_status(JobStatus.ACTIVE)] == [tag.uuid]
    assert (await store.jobs.fetch(other.uuid)).worker_tag_uuid is None
    assert (await store.jobs.request_deletion(job.uuid)).worker_tag_uuid == tag.uuid
    assert (await store.jobs.save_worker_tag(job.uuid, None)).worker_tag_uuid is None
    assert (await store.jobs.fetch(job.uuid)).worker_tag_uuid is None


async def test_delete_job_cascades(store: Store) -> None:
    authored = authored_job()
    job = await store_job(store, authored)
    other = authored_job()
    kept = await store_job(store, other)
    worker = await create_worker(store)
    task_id = (await store.tasks.fetch(authored.tasks[0].uuid)).id
    kept_task_id = (await store.tasks.fetch(other.tasks[0].uuid)).id
    blocks = BLOCKS

    def failures_and_blocks(connection: Connection) -> None:
        connection.execute(insert(FAILURES), [{"task_id": task_id, "worker_id": worker.id, "created_at": utcnow()}])
        connection.execute(
            insert(FAILURES), [{"task_id": kept_task_id, "worker_id": worker.id, "created_at": utcnow()}]
        )
        connection.execute(
            insert(blocks), [{"job_id": job.id, "worker_id": worker.id, "task_type": "blender", "created_at": utcnow()}]
        )

    await store.write(failures_and_blocks)
    await store.last_rendered.set(job.uuid)
    await store.jobs.delete(job.uuid)
    with pytest.raises(NotFound):
        await store.jobs.fetch(job.uuid)
    assert await store.jobs.list() == [kept]
    assert [task.uuid for task in await store.tasks.of_job(kept.uuid)] == [task.uuid for task in other.tasks]
    assert await counts(store) == (1, 3, 2)
    assert await count_rows(store, FAILURES) == 1
    assert await count_rows(store, blocks) == 0
    assert await store.last_rendered.get() is None
    with pytest.raises(NotFound):
        await store.jobs.delete(job.uuid)


async def test_request_job_deletion(store: Store) -> None:
    job = await store_job(store)
    other = await store_job(store)
    before = utcnow()
    requested = await store.jobs.request_deletion(job.uuid)
    assert requested.delete_requested
    assert requested.delete_requested_at is not None
    assert abs(requested.delete_requested_at - before) < SECOND
    assert requested.updated_at == requested.delete_requested_at
    assert await store.jobs.fetch(job.uuid) == requested
    assert (await store.jobs.fetch(other.uuid)).delete_requested_at is None
    with pytest.raises(NotFound):
        await store.jobs.request_deletion(uuid4())


async def test_request_job_mass_deletion(store: Store) -> None:
    now = utcnow()
    jobs = [await store_job(store) for _ in range(4)]
    for job, age in zip(jobs, (0, 3, 4, 5), strict=True):
        await set_job_updated_at(store, job.uuid, now - timedelta(seconds=age))
    before = utcnow()
    # Flamenco's jobs 1..4 are created at now, −3 s, −4 s, −5 s and the
    # request uses job 3's (−4 s) updated_at: jobs 3 and 4 are marked.
    job3_updated = (await store.jobs.fetch(jobs[2].uuid)).updated_at
    marked = await store.jobs.request_mass_deletion(job3_updated)
    assert marked == [jobs[2].uuid, jobs[3].uuid]
    for job in jobs[:2]:
        assert (await store.jobs.fetch(job.uuid)).delete_requested_at is None
    for job in jobs[2:]:
        stored = await store.jobs.fetch(job.uuid)
        assert stored.delete_requested_at is not None
        assert abs(stored.delete_requested_at - before) < SECOND


async def test_request_job_mass_deletion_no_jobs_found(store: Store) -> None:
    job = await store_job(store)
    with pytest.raises(NotFound):
        await store.jobs.request_mass_deletion(utcnow() - timedelta(hours=24))
    assert (await store.jobs.fetch(job.uuid)).delete_requested_at is None


async def test_fetch_jobs_deletion_requested(store: Store) -> None:
    now = utcnow()
    jobs = [await store_job(store) for _ in range(4)]
    for job, age in zip(jobs[:3], (3, 1, 5), strict=True):
        statement = update(JOBS).where(JOBS.c.uuid == job.uuid).values(delete_requested_at=now - age * SECOND)
        await store.write(lambda conn, statement=statement: conn.execute(statement))
    assert await store.jobs.deletion_requested() == [jobs[2].uuid, jobs[0].uuid, jobs[1].uuid]


async def test_deletion_requested_ties_are_ordered_by_id(store: Store) -> None:
    jobs = [await store_job(store) for _ in range(3)]
    marked = await store.jobs.request_mass_deletion(utcnow())
    assert marked == [job.uuid for job in jobs]
    assert await store.jobs.deletion_requested() == marked


async def test_job_has_tasks_in_status(store: Store) -> None:
    job = await store_job(store)
    assert await store.jobs.has_tasks_in_status(job.uuid, TaskStatus.QUEUED)
    assert not await store.jobs.has_tasks_in_status(job.uuid, TaskStatus.ACTIVE)
    with pytest.raises(NotFound):
        await store.jobs.has_tasks_in_status(uuid4(), TaskStatus.QUEUED)


async def test_count_tasks_of_job_in_status(store: Store) -> None:
    authored = authored_job()
    job = await store_job(store, authored)
    await store_job(store)
    assert await store.jobs.count_tasks_in_status(job.uuid, TaskStatus.QUEUED) == (3, 3)
    await store.tasks.save_status(authored.tasks[0].uuid, TaskStatus.FAILED)
    assert await store.jobs.count_tasks_in_status(job.uuid, TaskStatus.QUEUED) == (2, 3)
    assert await store.jobs.count_tasks_in_status(job.uuid, TaskStatus.FAILED) == (1, 3)
    assert await store.jobs.count_tasks_in_status(job.uuid, TaskStatus.ACTIVE) == (0, 3)
    assert await store.jobs.count_tasks_in_status(job.uuid, TaskStatus.FAILED, TaskStatus.QUEUED) == (3, 3)
    assert await store.jobs.count_tasks_in_status(job.uuid) == (0, 3)
    with pytest.raises(NotFound):
        await store.jobs.count_tasks_in_status(uuid4(), TaskStatus.QUEUED)


async def test_fetch_jobs_in_status(store: Store) -> None:
    jobs = [await store_job(store) for _ in range(3)]
    under = JobStatus.UNDER_CONSTRUCTION
    assert [job.uuid for job in await store.jobs.in_status(under)] == [job.uuid for job in jobs]
    assert [job.uuid for job in await store.jobs.in_status(JobStatus.CANCELED, under)] == [job.uuid for job in jobs]
    await store.jobs.save_status(jobs[0].uuid, JobStatus.QUEUED, "")
    await store.jobs.save_status(jobs[1].uuid, JobStatus.REQUEUEING, "")
    found = await store.jobs.in_status(JobStatus.QUEUED, under)
    assert [job.uuid for job in found] == [jobs[0].uuid, jobs[2].uuid]
    assert await store.jobs.in_status() == []


async def test_update_jobs_task_step_counts(store: Store) -> None:
    authored = authored_job()
    job = await store_job(store, authored)
    for task, status in zip(authored.tasks, (TaskStatus.COMPLETED, TaskStatus.ACTIVE, TaskStatus.QUEUED), strict=True):
        stored = await store.tasks.fetch(task.uuid)
        await store.tasks.save(replace(stored, status=status, steps_total=3, steps_completed=2))
    updated = await store.jobs.update_task_step_counts(job.uuid)
    tasks = await store.tasks.of_job(job.uuid)
    assert [task.steps_completed for task in tasks] == [3, 2, 0]
    assert (updated.steps_completed, updated.steps_total) == (5, 9)
    assert await store.jobs.fetch(job.uuid) == updated


async def test_update_task_statuses(store: Store) -> None:
    authored = authored_job()
    job = await store_job(store, authored)
    other = authored_job()
    await store_job(store, other)
    assert await store.jobs.update_task_statuses(job.uuid, TaskStatus.CANCELED, "stop") == 3
    tasks = await store.tasks.of_job(job.uuid)
    assert all((task.status, task.activity) == (TaskStatus.CANCELED, "stop") for task in tasks)
    assert await store.jobs.count_tasks_in_status(job.uuid, TaskStatus.QUEUED) == (0, 3)
    assert await store.jobs.count_tasks_in_status(other.uuid, TaskStatus.QUEUED) == (3, 3)
    with pytest.raises(NotFound):
        await store.jobs.update_task_statuses(uuid4(), TaskStatus.CANCELED, "")


async def test_update_task_statuses_conditional(store: Store) -> None:
    authored = authored_job()
    job = await store_job(store, authored)
    await store.tasks.save_status(authored.tasks[0].uuid, TaskStatus.FAILED)
    await store.tasks.save_status(authored.tasks[1].uuid, TaskStatus.ACTIVE)
    changed = await store.jobs.update_task_statuses_conditional(
        job.uuid, {TaskStatus.FAILED, TaskStatus.QUEUED}, TaskStatus.CANCELED, "job failed"
    )
    assert changed == 2
    tasks = await store.tasks.of_job(job.uuid)
    assert [task.status for task in tasks] == [TaskStatus.CANCELED, TaskStatus.ACTIVE, TaskStatus.CANCELED]
    assert [task.activity for task in tasks] == ["job failed", "", "job failed"]
    assert await store.jobs.update_task_statuses_conditional(job.uuid, [], TaskStatus.QUEUED, "") == 0


async def test_query_job_task_summaries(store: Store) -> None:
    authored = authored_job()
    job = await store_job(store, authored)
    await store_job(store)
    worker = await create_worker(store)
    await store.tasks.assign_to_worker(authored.tasks[1].uuid, worker.uuid)
    summaries = await store.jobs.task_summaries(job.uuid)
    assert [summary.uuid for summary in summaries] == [task.uuid for task in authored.tasks]
    assert [summary.index_in_job for summary in summaries] == [1, 2, 3]
    assert [summary.worker_uuid for summary in summaries] == [None, worker.uuid, None]
    assert [summary.type for summary in summaries] == ["blender", "blender", "ffmpeg"]
    assert all(summary.status is TaskStatus.QUEUED and summary.steps_total == 1 for summary in summaries)
    with pytest.raises(NotFound):
        await store.jobs.task_summaries(uuid4())


async def test_summarize_job_statuses(store: Store) -> None:
    assert await store.jobs.summarize_statuses() == {}
    first = await store_job(store)
    second = await store_job(store)
    assert await store.jobs.summarize_statuses() == {JobStatus.UNDER_CONSTRUCTION: 2}
    await store.jobs.save_status(first.uuid, JobStatus.QUEUED, "")
    await store.jobs.save_status(second.uuid, JobStatus.FAILED, "")
    assert await store.jobs.summarize_statuses() == {JobStatus.QUEUED: 1, JobStatus.FAILED: 1}
    await store.jobs.delete(first.uuid)
    await store.jobs.delete(second.uuid)
    assert await store.jobs.summarize_statuses() == {}
    assert await count_rows(store, TASKS) == 0
    assert await store.read(lambda conn: conn.execute(select(JOBS.c.id)).all()) == []
