"""Flamenco's task_scheduler_test.go scenarios, restated against statestore's
scheduler, on every backend."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from uuid import uuid4

import pytest

from statestore import NotFound, Store
from statestore.core.types import utcnow
from statestore.farm import GivenBack, JobStatus, TaskStatus, Worker, WorkerStatus
from tests.support.farm_fixtures import create_worker, job_of, render_task


async def _claimed_name(store: Store, worker: Worker) -> str | None:
    scheduled = await store.scheduler.claim(worker.uuid)
    return None if scheduled is None else scheduled.task.name


async def test_no_tasks_gives_nothing(store: Store) -> None:
    worker = await create_worker(store)
    assert await store.scheduler.claim(worker.uuid) is None


async def test_one_job_one_task_is_assigned_activated_and_touched(store: Store) -> None:
    worker = await create_worker(store)
    job = await store.jobs.store_authored(job_of(render_task("the task")))
    before = utcnow()
    scheduled = await store.scheduler.claim(worker.uuid)
    assert scheduled is not None
    assert scheduled.newly_claimed
    task = scheduled.task
    assert task.name == "the task"
    assert task.job_uuid == job.uuid
    assert task.worker_uuid == worker.uuid
    assert task.status is TaskStatus.ACTIVE
    assert task.last_touched_at is not None
    assert abs(task.last_touched_at - before) < timedelta(seconds=1)
    assert scheduled.job_type == job.job_type
    assert scheduled.job_priority == job.priority
    stored = await store.tasks.fetch(task.uuid)
    assert stored.worker_uuid == worker.uuid
    assert stored.status is TaskStatus.ACTIVE
    assert stored.last_touched_at == task.last_touched_at
    assert (await store.jobs.fetch(job.uuid)).status == "active"  # a queued job becomes active


async def test_without_activate_the_task_is_assigned_but_stays_queued(store: Store) -> None:
    worker = await create_worker(store)
    job = await store.jobs.store_authored(job_of(render_task("the task")))
    scheduled = await store.scheduler.claim(worker.uuid, activate=False)
    assert scheduled is not None
    stored = await store.tasks.fetch(scheduled.task.uuid)
    assert stored.status is TaskStatus.QUEUED
    assert stored.worker_uuid == worker.uuid
    assert (await store.jobs.fetch(job.uuid)).status == "queued"


async def test_task_priority_orders_within_a_job(store: Store) -> None:
    worker = await create_worker(store)
    await store.jobs.store_authored(job_of(render_task("1"), render_task("2", priority=100), render_task("3")))
    assert await _claimed_name(store, worker) == "2"


async def test_a_dependency_comes_before_a_higher_priority_dependent(store: Store) -> None:
    worker = await create_worker(store)
    first = render_task("1")
    second = render_task("2", priority=100)
    second.dependencies = [first.uuid]
    await store.jobs.store_authored(job_of(first, second, render_task("3")))
    assert await _claimed_name(store, worker) == "1"


async def test_job_priority_comes_before_task_priority(store: Store) -> None:
    worker = await create_worker(store)
    await store.jobs.store_authored(
        job_of(render_task("1.1"), render_task("1.2", priority=200), render_task("1.3"), name="one")
    )
    await store.jobs.store_authored(
        job_of(render_task("2.1"), render_task("2.2"), render_task("2.3", priority=150), priority=100, name="two")
    )
    assert await _claimed_name(store, worker) == "2.3"


async def test_fan_out_fan_in_runs_in_dependency_then_id_order(store: Store) -> None:
    worker = await create_worker(store)
    one = render_task("1")
    two = [render_task(f"2.{n}") for n in (1, 2, 3)]
    three = render_task("3")
    four = render_task("4")
    for task in two:
        task.dependencies = [one.uuid]
    three.dependencies = [task.uuid for task in two]
    four.dependencies = [three.uuid]
    # Authored out of order on purpose: ids then differ from the run order.
    await store.jobs.store_authored(job_of(four, three, two[0], two[1], one, two[2]))
    order = []
    while (scheduled := await store.scheduler.claim(worker.uuid)) is not None:
        order.append(scheduled.task.name)
        await store.tasks.save_status(scheduled.task.uuid, TaskStatus.COMPLETED)
    assert order == ["1", "2.1", "2.2", "2.3", "3", "4"]


async def test_some_but_not_all_dependencies_completed_gives_nothing(store: Store) -> None:
    worker = await create_worker(store, task_types=("blender",))
    first = render_task("1")
    second = render_task("2", "unsupported")
    third = render_task("3")
    third.dependencies = [first.uuid, second.uuid]
    await store.jobs.store_authored(job_of(first, second, third))
    scheduled = await store.scheduler.claim(worker.uuid)
    assert scheduled is not None
    assert scheduled.task.name == "1"
    await store.tasks.save_status(scheduled.task.uuid, TaskStatus.COMPLETED)
    assert await store.scheduler.claim(worker.uuid) is None


async def test_an_already_active_task_is_returned_again(store: Store) -> None:
    worker = await create_worker(store)
    low = render_task("3", priority=1)
    job = job_of(render_task("1"), render_task("2", priority=100), low)
    await store.jobs.store_authored(job)
    await store.tasks.assign_to_worker(low.uuid, worker.uuid)
    await store.tasks.save_status(low.uuid, TaskStatus.ACTIVE)
    scheduled = await store.scheduler.claim(worker.uuid)
    assert scheduled is not None
    assert scheduled.task.uuid == low.uuid
    assert not scheduled.newly_claimed


async def test_a_queued_task_last_assigned_to_another_worker_is_reassigned(store: Store) -> None:
    worker = await create_worker(store)
    other = await create_worker(store, "other")
    wanted = render_task("2", priority=100)
    await store.jobs.store_authored(job_of(render_task("1"), wanted))
    await store.tasks.assign_to_worker(wanted.uuid, other.uuid)
    scheduled = await store.scheduler.claim(worker.uuid)
    assert scheduled is not None
    assert scheduled.task.uuid == wanted.uuid
    assert (await store.tasks.fetch(wanted.uuid)).worker_uuid == worker.uuid


async def test_a_task_the_worker_failed_before_is_skipped(store: Store) -> None:
    worker = await create_worker(store)
    failed = render_task("1", priority=100)
    await store.jobs.store_authored(job_of(failed, render_task("2")))
    assert await store.task_failures.add(failed.uuid, worker.uuid) == 1
    assert await _claimed_name(store, worker) == "2"


async def test_worker_tags_both_ways(store: Store) -> None:
    tag1 = await store.worker_tags.create("tag1")
    tag2 = await store.worker_tags.create("tag2")
    tagged = await create_worker(store, "tagged")
    untagged = await create_worker(store, "untagged")
    await store.worker_tags.set_worker_tags(tagged.uuid, [tag1.uuid])

    job_for_tag2 = job_of(render_task("for tag2"), name="tag2 job")
    job_for_tag2.worker_tag = tag2.uuid
    await store.jobs.store_authored(job_for_tag2)
    assert await store.scheduler.claim(tagged.uuid) is None

    job_for_tag1 = job_of(render_task("for tag1"), name="tag1 job")
    job_for_tag1.worker_tag = tag1.uuid
    await store.jobs.store_authored(job_for_tag1)
    assert await store.scheduler.claim(untagged.uuid) is None
    assert await _claimed_name(store, tagged) == "for tag1"


async def test_an_untagged_job_goes_to_tagged_and_untagged_workers(store: Store) -> None:
    tag = await store.worker_tags.create("tag1")
    tagged = await create_worker(store, "tagged")
    untagged = await create_worker(store, "untagged")
    await store.worker_tags.set_worker_tags(tagged.uuid, [tag.uuid])
    await store.jobs.store_authored(job_of(render_task("a"), render_task("b")))
    assert await _claimed_name(store, tagged) == "a"
    assert await _claimed_name(store, untagged) == "b"


async def test_a_blocklisted_task_type_is_skipped(store: Store) -> None:
    worker = await create_worker(store)
    job = await store.jobs.store_authored(job_of(render_task("1", "blender", priority=100), render_task("2", "ffmpeg")))
    await store.blocklist.add(job.uuid, worker.uuid, "blender")
    assert await _claimed_name(store, worker) == "2"


@pytest.mark.parametrize("status", [status for status in WorkerStatus if status is not WorkerStatus.AWAKE], ids=str)
async def test_only_awake_workers_get_work(store: Store, status: WorkerStatus) -> None:
    worker = await create_worker(store, status=status)
    await store.jobs.store_authored(job_of(render_task("1")))
    assert await store.scheduler.claim(worker.uuid) is None


async def test_a_worker_with_a_status_change_pending_gets_nothing(store: Store) -> None:
    worker = await create_worker(store)
    await store.workers.save_status(worker.uuid, WorkerStatus.AWAKE, requested=WorkerStatus.ASLEEP, lazy=True)
    await store.jobs.store_authored(job_of(render_task("1")))
    assert await store.scheduler.claim(worker.uuid) is None


async def test_a_soft_deleted_worker_gets_nothing_and_an_unknown_one_is_not_found(store: Store) -> None:
    worker = await create_worker(store)
    await store.jobs.store_authored(job_of(render_task("1")))
    await store.workers.delete(worker.uuid)
    assert await store.scheduler.claim(worker.uuid) is None
    with pytest.raises(NotFound, match="worker"):
        await store.scheduler.claim(uuid4())


async def test_a_worker_without_the_task_type_gets_nothing(store: Store) -> None:
    worker = await create_worker(store, task_types=("ffmpeg",))
    await store.jobs.store_authored(job_of(render_task("1", "blender")))
    assert await store.scheduler.claim(worker.uuid) is None


@pytest.mark.parametrize(
    "job_status", [status for status in JobStatus if status not in (JobStatus.ACTIVE, JobStatus.QUEUED)], ids=str
)
async def test_tasks_of_unschedulable_jobs_are_not_handed_out(store: Store, job_status: JobStatus) -> None:
    worker = await create_worker(store)
    await store.jobs.store_authored(job_of(render_task("1"), status=job_status))
    assert await store.scheduler.claim(worker.uuid) is None


async def test_soft_failed_tasks_are_handed_out_again(store: Store) -> None:
    worker = await create_worker(store)
    other = await create_worker(store, "other")
    task = render_task("1")
    await store.jobs.store_authored(job_of(task))
    await store.tasks.save_status(task.uuid, TaskStatus.SOFT_FAILED)
    await store.task_failures.add(task.uuid, other.uuid)
    assert await store.scheduler.claim(other.uuid) is None  # it failed this one
    assert await _claimed_name(store, worker) == "1"


async def test_requeue_gives_a_workers_active_tasks_back(store: Store) -> None:
    worker = await create_worker(store)
    job = await store.jobs.store_authored(job_of(render_task("1"), render_task("2")))
    claimed = await store.scheduler.claim(worker.uuid)
    assert claimed is not None
    assert await store.scheduler.requeue_tasks_of_worker(worker.uuid, "it signed off") == [
        GivenBack(claimed.task.uuid, job.uuid, TaskStatus.QUEUED)
    ]
    task = await store.tasks.fetch(claimed.task.uuid)
    assert task.status is TaskStatus.QUEUED
    assert task.activity == "Task was queued by Manager because it signed off"
    counts = await store.jobs.count_tasks_in_status(job.uuid, TaskStatus.QUEUED)
    assert counts == (2, 2)


async def test_timing_out_a_worker_marks_it_error_and_pauses_tasks_of_pausing_jobs(store: Store) -> None:
    worker = await create_worker(store)
    job = await store.jobs.store_authored(job_of(render_task("1"), render_task("2")))
    claimed = await store.scheduler.claim(worker.uuid)
    assert claimed is not None
    await store.workers.save_status(worker.uuid, WorkerStatus.AWAKE, requested=WorkerStatus.ASLEEP)
    await store.jobs.save_status(job.uuid, JobStatus.PAUSE_REQUESTED, "pausing")
    assert await store.scheduler.time_out_worker(worker.uuid) == [
        GivenBack(claimed.task.uuid, job.uuid, TaskStatus.PAUSED)
    ]
    task = await store.tasks.fetch(claimed.task.uuid)
    assert task.status is TaskStatus.PAUSED
    assert task.activity == "Task was paused by Manager because the worker timed out"
    stored = await store.workers.fetch(worker.uuid)
    assert stored.status is WorkerStatus.ERROR
    assert stored.status_requested is None


async def test_time_out_workers_finds_them_by_last_seen(store: Store) -> None:
    gone = await create_worker(store, "gone")
    fresh = await create_worker(store, "fresh")
    await store.workers.save(replace(await store.workers.fetch(gone.uuid), last_seen_at=utcnow() - timedelta(hours=1)))
    await store.workers.seen(fresh.uuid)
    assert await store.scheduler.time_out_workers(utcnow() - timedelta(minutes=1)) == {gone.uuid: []}
    assert (await store.workers.fetch(gone.uuid)).status is WorkerStatus.ERROR
    assert (await store.workers.fetch(fresh.uuid)).status is WorkerStatus.AWAKE


async def test_a_worker_seen_after_the_timeout_listing_keeps_its_task(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = await create_worker(store)
    await store.jobs.store_authored(job_of(render_task("1")))
    claimed = await store.scheduler.claim(worker.uuid)
    assert claimed is not None
    await store.workers.save(
        replace(await store.workers.fetch(worker.uuid), last_seen_at=utcnow() - timedelta(hours=1))
    )
    cutoff = utcnow() - timedelta(minutes=1)
    listed = await store.workers.timed_out(cutoff)
    assert [found.uuid for found in listed] == [worker.uuid]
    await store.workers.seen(worker.uuid)  # its heartbeat arrives after the listing

    async def stale_listing(_: object) -> list[Worker]:
        return listed

    monkeypatch.setattr(store.workers, "timed_out", stale_listing)
    assert await store.scheduler.time_out_workers(cutoff) == {}
    assert (await store.workers.fetch(worker.uuid)).status is WorkerStatus.AWAKE
    assert (await store.tasks.fetch(claimed.task.uuid)).status is TaskStatus.ACTIVE


async def test_an_active_task_is_returned_even_once_its_type_is_blocklisted(store: Store) -> None:
    worker = await create_worker(store)
    job = await store.jobs.store_authored(job_of(render_task("1", "blender"), render_task("2", "ffmpeg")))
    claimed = await store.scheduler.claim(worker.uuid)
    assert claimed is not None
    assert claimed.task.name == "1"
    await store.blocklist.add(job.uuid, worker.uuid, "blender")
    again = await store.scheduler.claim(worker.uuid)
    assert again is not None
    assert again.task.uuid == claimed.task.uuid
    assert not again.newly_claimed
