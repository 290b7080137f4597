"""A claim appends the status changes it makes to the status history, in
its own transaction, on every backend: the task's (queued or soft-failed →
active, by the worker) and, when it makes a queued job active, the job's."""

from __future__ import annotations

from statestore import Store
from statestore.farm import JobStatus, TaskStatus
from statestore.farm.records import HistoryEntry, ScheduledTask
from tests.support.farm_fixtures import create_worker, job_of, render_task

CLAIMED = "claimed by the worker"
JOB_ACTIVATED = "a task became active"


def _changes(entries: list[HistoryEntry]) -> list[tuple[object, ...]]:
    return [(e.job_uuid, e.task_uuid, e.old_status, e.new_status, e.reason, e.who) for e in entries]


async def _claimed(store: Store, worker_uuid: object, *, activate: bool = True) -> ScheduledTask:
    scheduled = await store.scheduler.claim(str(worker_uuid), activate=activate)
    assert scheduled is not None
    return scheduled


async def test_a_claim_records_the_task_and_the_job_it_makes_active(store: Store) -> None:
    worker = await create_worker(store)
    job = await store.jobs.store_authored(job_of(render_task("the task")))
    scheduled = await _claimed(store, worker.uuid)
    task = scheduled.task
    assert scheduled.newly_claimed
    who = str(worker.uuid)
    task_entry = (job.uuid, task.uuid, "queued", "active", CLAIMED, who)
    job_entry = (job.uuid, None, "queued", "active", JOB_ACTIVATED, who)
    of_task = await store.status_history.of_task(task.uuid)
    assert _changes(of_task) == [task_entry]
    of_job = await store.status_history.of_job(job.uuid)
    assert _changes(of_job) == [task_entry, job_entry]  # the task's change, then the ripple to its job
    assert all(entry.at == task.last_touched_at for entry in of_job)  # the claim's own time
    assert of_job[0].cursor < of_job[1].cursor
    assert (await store.jobs.fetch(job.uuid)).status == JobStatus.ACTIVE.value


async def test_a_claim_in_an_active_job_records_only_the_task(store: Store) -> None:
    first, second = await create_worker(store, "first"), await create_worker(store, "second")
    job = await store.jobs.store_authored(job_of(render_task("one"), render_task("two")))
    one = (await _claimed(store, first.uuid)).task
    two = (await _claimed(store, second.uuid)).task  # the job is active by now
    assert _changes(await store.status_history.of_task(two.uuid)) == [
        (job.uuid, two.uuid, "queued", "active", CLAIMED, str(second.uuid))
    ]
    assert _changes(await store.status_history.of_job(job.uuid)) == [
        (job.uuid, one.uuid, "queued", "active", CLAIMED, str(first.uuid)),
        (job.uuid, None, "queued", "active", JOB_ACTIVATED, str(first.uuid)),
        (job.uuid, two.uuid, "queued", "active", CLAIMED, str(second.uuid)),
    ]


async def test_a_soft_failed_task_is_recorded_from_soft_failed(store: Store) -> None:
    worker = await create_worker(store)
    job = await store.jobs.store_authored(job_of(render_task("the task")))
    await store.jobs.save_status(job.uuid, JobStatus.ACTIVE)  # raw persistence calls record nothing
    (queued,) = await store.tasks.of_job(job.uuid)
    await store.tasks.save_status(queued.uuid, TaskStatus.SOFT_FAILED)
    assert await store.status_history.of_job(job.uuid) == []
    task = (await _claimed(store, worker.uuid)).task
    assert task.uuid == queued.uuid
    assert _changes(await store.status_history.of_job(job.uuid)) == [
        (job.uuid, task.uuid, "soft-failed", "active", CLAIMED, str(worker.uuid))
    ]  # the job was active already: no entry of its own


async def test_a_repeated_claim_of_the_active_task_records_nothing(store: Store) -> None:
    worker = await create_worker(store)
    job = await store.jobs.store_authored(job_of(render_task("one"), render_task("two")))
    first = await _claimed(store, worker.uuid)
    before = await store.status_history.of_job(job.uuid)
    assert len(before) == 2
    again = await _claimed(store, worker.uuid)
    assert not again.newly_claimed
    assert again.task.uuid == first.task.uuid
    assert await store.status_history.of_job(job.uuid) == before


async def test_a_claim_without_activate_records_nothing(store: Store) -> None:
    worker = await create_worker(store)
    job = await store.jobs.store_authored(job_of(render_task("the task")))
    scheduled = await _claimed(store, worker.uuid, activate=False)
    assert scheduled.newly_claimed
    assert (await store.tasks.fetch(scheduled.task.uuid)).status is TaskStatus.QUEUED
    assert await store.status_history.of_task(scheduled.task.uuid) == []
    assert await store.status_history.of_job(job.uuid) == []
    assert (await store.jobs.fetch(job.uuid)).status == JobStatus.QUEUED.value


async def test_a_claim_that_finds_nothing_records_nothing(store: Store) -> None:
    worker = await create_worker(store, task_types=("ffmpeg",))
    job = await store.jobs.store_authored(job_of(render_task("the task")))
    assert await store.scheduler.claim(worker.uuid) is None
    assert await store.status_history.of_job(job.uuid) == []
