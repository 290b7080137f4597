"""Storing jobs (Flamenco's StoreAuthoredJob, StoreAuthoredJobTask), restated
from jobs_test.go, on every backend."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise
from uuid import uuid4

import pytest

from statestore import AlreadyExists, InvalidReference, NotFound, Store
from statestore.core.types import utcnow
from statestore.farm import AuthoredJob, AuthoredTask, Command, JobStatus, TaskStatus
from tests.support.farm_fixtures import JOB_UUID, authored_job, job_of, render_task, store_job
from tests.support.farm_job_fixtures import counts, job_priority_column, pending


async def test_store_authored_job_round_trips(store: Store) -> None:
    authored = authored_job(uuid=JOB_UUID)
    before = utcnow()
    job = await store.jobs.store_authored(authored)
    fetched = await store.jobs.fetch(JOB_UUID)
    assert fetched == job
    assert job.id > 0
    assert (job.name, job.job_type, job.priority) == ("Test job", "simple-blender-render", 50)
    assert job.status is JobStatus.UNDER_CONSTRUCTION
    assert job.storage_checkout_id == ""
    assert job.settings == {"frames": "1-6", "chunk_size": 3.0}
    assert job.metadata == {"author": "Sybren", "project": "Sprite Fright"}
    assert job.worker_tag_uuid is None
    assert job.delete_requested_at is None
    assert abs(job.created_at - before) < timedelta(seconds=1)
    assert job.updated_at == job.created_at
    assert (job.steps_completed, job.steps_total) == (0, 3)
    tasks = await store.tasks.of_job(JOB_UUID)
    assert [task.name for task in tasks] == ["render-1-3", "render-4-6", "preview-video"]
    assert [task.uuid for task in tasks] == [task.uuid for task in authored.tasks]
    assert [task.index_in_job for task in tasks] == [1, 2, 3]
    assert all(task.status is TaskStatus.QUEUED for task in tasks)
    assert all(task.created_at == job.created_at == task.updated_at for task in tasks)
    assert all(task.job_uuid == JOB_UUID for task in tasks)
    assert tasks[0].commands == (Command("run", {"frames": "render-1-3"}),)
    assert await store.tasks.dependencies(tasks[2].uuid) == [tasks[0].uuid, tasks[1].uuid]
    assert await store.tasks.dependencies(tasks[0].uuid) == []


async def test_default_status_is_queued(store: Store) -> None:
    job = await store.jobs.store_authored(AuthoredJob("plain", "simple", tasks=[render_task("one")]))
    assert job.status is JobStatus.QUEUED


async def test_store_authored_job_with_shaman_checkout_id(store: Store) -> None:
    authored = authored_job()
    authored.storage_checkout_id = "één/twee"
    job = await store.jobs.store_authored(authored)
    assert (await store.jobs.fetch(job.uuid)).storage_checkout_id == "één/twee"
    assert await store.jobs.storage_checkout_id(job.uuid) == "één/twee"


async def test_store_authored_job_with_worker_tag(store: Store) -> None:
    await store.worker_tags.create("decoy")  # tag ids and job ids differ
    tag = await store.worker_tags.create("🐈")
    job = await store.jobs.store_authored(authored_job(worker_tag=tag.uuid))
    assert job.worker_tag_uuid == tag.uuid
    assert (await store.jobs.fetch(job.uuid)) == job


async def test_unknown_worker_tag_is_an_invalid_reference_and_nothing_is_written(store: Store) -> None:
    missing = uuid4()
    with pytest.raises(InvalidReference, match=str(missing)):
        await store.jobs.store_authored(authored_job(worker_tag=missing))
    assert await counts(store) == (0, 0, 0)


async def test_a_stored_job_uuid_already_exists_and_nothing_more_is_written(store: Store) -> None:
    await store_job(store, authored_job(uuid=JOB_UUID))
    with pytest.raises(AlreadyExists):
        await store.jobs.store_authored(authored_job(uuid=JOB_UUID))
    assert await counts(store) == (1, 3, 2)


async def test_a_stored_task_uuid_already_exists(store: Store) -> None:
    first = authored_job()
    await store_job(store, first)
    second = job_of(AuthoredTask("again", "blender", uuid=first.tasks[0].uuid))
    with pytest.raises(AlreadyExists):
        await store.jobs.store_authored(second)
    assert await counts(store) == (1, 3, 2)


async def test_steps_total_sums_at_least_one_step_per_command(store: Store) -> None:
    task = AuthoredTask("multi", "blender", commands=[Command("a", total_step_count=5), Command("b"), Command("c")])
    empty = AuthoredTask("empty", "misc")
    job = await store.jobs.store_authored(job_of(task, empty))
    stored = await store.tasks.of_job(job.uuid)
    assert [each.steps_total for each in stored] == [7, 0]
    assert (job.steps_completed, job.steps_total) == (0, 7)


async def test_tasks_copy_the_job_priority_and_count_their_dependencies(store: Store) -> None:
    authored = authored_job(priority=70)
    await store_job(store, authored)
    assert [await job_priority_column(store, task.uuid) for task in authored.tasks] == [70, 70, 70]
    assert [await pending(store, task.uuid) for task in authored.tasks] == [0, 0, 2]


async def test_job_without_tasks(store: Store) -> None:
    job = await store.jobs.store_authored(AuthoredJob("empty", "simple"))
    assert await store.tasks.of_job(job.uuid) == []
    assert await store.jobs.count_tasks_in_status(job.uuid, TaskStatus.QUEUED) == (0, 0)
    assert job.steps_total == 0


async def test_check_if_jobs_hold_large_num_of_tasks(store: Store) -> None:
    tasks = [render_task(f"frame-{number}") for number in range(3500)]
    tasks[-1].dependencies = [task.uuid for task in tasks[:-1]]
    job = await store.jobs.store_authored(job_of(*tasks))
    assert await store.jobs.count_tasks_in_status(job.uuid, TaskStatus.QUEUED) == (3500, 3500)
    assert await pending(store, tasks[-1].uuid) == 3499
    assert await pending(store, tasks[0].uuid) == 0
    assert len(await store.tasks.dependencies(tasks[-1].uuid)) == 3499


async def test_ten_thousand_tasks_in_a_chain(store: Store) -> None:
    tasks = [render_task(f"t{number}") for number in range(10_000)]
    for previous, task in pairwise(tasks):
        task.dependencies = [previous.uuid]
    job = await store.jobs.store_authored(job_of(*tasks))
    assert await counts(store) == (1, 10_000, 9_999)
    summaries = await store.jobs.task_summaries(job.uuid)
    assert [summary.index_in_job for summary in summaries] == list(range(1, 10_001))
    assert await store.tasks.dependencies(tasks[5000].uuid) == [tasks[4999].uuid]


async def test_add_tasks_continues_numbering_and_links_to_stored_tasks(store: Store) -> None:
    authored = authored_job()
    job = await store_job(store, authored)
    extra = render_task("extra", steps=4)
    after_extra = AuthoredTask("after", "ffmpeg", dependencies=[extra.uuid, authored.tasks[2].uuid])
    stored = await store.tasks.of_job(job.uuid)
    new = await store.jobs.add_tasks(job.uuid, [extra, after_extra])
    assert [task.index_in_job for task in new] == [4, 5]
    assert [task.uuid for task in new] == [extra.uuid, after_extra.uuid]
    assert all(task.status is TaskStatus.QUEUED and task.job_uuid == job.uuid for task in new)
    assert new == (await store.tasks.of_job(job.uuid))[3:]
    assert await store.tasks.dependencies(after_extra.uuid) == [stored[2].uuid, extra.uuid]
    assert await pending(store, after_extra.uuid) == 2
    assert (await store.jobs.fetch(job.uuid)).steps_total == 3 + 4 + 0


async def test_add_tasks_counts_only_dependencies_not_completed(store: Store) -> None:
    authored = authored_job()
    job = await store_job(store, authored)
    first, second, _ = authored.tasks
    await store.tasks.save_status(first.uuid, TaskStatus.COMPLETED)
    late = AuthoredTask("late", "misc", dependencies=[first.uuid, second.uuid])
    only_done = AuthoredTask("only-done", "misc", dependencies=[first.uuid])
    await store.jobs.add_tasks(job.uuid, [late, only_done])
    assert await pending(store, late.uuid) == 1
    assert await pending(store, only_done.uuid) == 0
    await store.tasks.save_status(second.uuid, TaskStatus.COMPLETED)
    assert await pending(store, late.uuid) == 0


async def test_add_tasks_refuses_dependencies_on_other_jobs_and_writes_nothing(store: Store) -> None:
    other = authored_job()
    await store_job(store, other)
    job = await store_job(store, authored_job())
    stranger = AuthoredTask("stranger", "misc", dependencies=[other.tasks[0].uuid])
    with pytest.raises(InvalidReference, match="'stranger'"):
        await store.jobs.add_tasks(job.uuid, [render_task("fine"), stranger])
    assert await counts(store) == (2, 6, 4)


async def test_add_tasks_to_an_unknown_job(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.jobs.add_tasks(uuid4(), [render_task("orphan")])
    assert await counts(store) == (0, 0, 0)


async def test_add_no_tasks(store: Store) -> None:
    job = await store_job(store)
    assert await store.jobs.add_tasks(job.uuid, []) == []
    assert await counts(store) == (1, 3, 2)
