"""Recording a task failure: failure list, blocklist and workers left, in one go.

Flamenco's onTaskFailed counts the current failure twice and blocks a worker
after 2 failed tasks with the threshold at 3; ``record`` counts it once.
"""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import pytest
from sqlalchemy import func, select

from statestore import InvalidInput, NotFound, Store
from statestore.farm import FailureRecorded, Job
from statestore.farm.tables import BLOCKS, FAILURES
from tests.support.farm_fixtures import create_worker, job_of, render_task, store_job


async def _rows(store: Store) -> tuple[int, int]:
    """(failure rows, block rows)."""
    failures = select(func.count()).select_from(FAILURES)
    blocks = select(func.count()).select_from(BLOCKS)
    return (
        int(await store.read(lambda conn: conn.execute(failures).scalar_one())),
        int(await store.read(lambda conn: conn.execute(blocks).scalar_one())),
    )


async def _render_job(store: Store, tasks: int = 4, worker_tag: UUID | None = None) -> tuple[Job, list[UUID]]:
    authored = job_of(*[render_task(f"render-{index}") for index in range(tasks)], render_task("video", "ffmpeg"))
    authored.worker_tag = worker_tag
    job = await store_job(store, authored)
    return job, [task.uuid for task in await store.tasks.of_job(job.uuid)]


async def test_threshold_3_blocks_after_the_third_failed_task_not_the_second(store: Store) -> None:
    job, tasks = await _render_job(store)
    worker = await create_worker(store, "w")
    other = await create_worker(store, "other")
    first = await store.task_failures.record(tasks[0], worker.uuid, blocklist_threshold=3)
    assert first == FailureRecorded(1, 1, False, frozenset({other.uuid}))
    second = await store.task_failures.record(tasks[1], worker.uuid, blocklist_threshold=3)
    assert (second.worker_failures_on_job, second.blocklisted) == (2, False)  # Flamenco would block here
    assert await store.blocklist.entries(job.uuid) == []
    assert second.workers_left == {other.uuid}
    third = await store.task_failures.record(tasks[2], worker.uuid, blocklist_threshold=3)
    assert (third.failed_workers, third.worker_failures_on_job, third.blocklisted) == (1, 3, True)
    assert [(entry.worker_uuid, entry.task_type) for entry in await store.blocklist.entries(job.uuid)] == [
        (worker.uuid, "blender")
    ]
    assert third.workers_left == {other.uuid}
    assert await store.blocklist.workers_left_to_run(job.uuid, "blender") == {other.uuid}


async def test_workers_left_leave_out_the_tasks_failure_list(store: Store) -> None:
    _, tasks = await _render_job(store)
    w1, w2, w3 = [await create_worker(store, name) for name in ("w1", "w2", "w3")]
    assert (await store.task_failures.record(tasks[0], w1.uuid)).workers_left == {w2.uuid, w3.uuid}
    recorded = await store.task_failures.record(tasks[0], w2.uuid)
    assert (recorded.failed_workers, recorded.workers_left) == (2, frozenset({w3.uuid}))
    recorded = await store.task_failures.record(tasks[0], w3.uuid)
    assert (recorded.failed_workers, recorded.workers_left) == (3, frozenset())
    # Another task of the job has its own, empty failure list.
    assert (await store.task_failures.record(tasks[1], w1.uuid)).workers_left == {w2.uuid, w3.uuid}


async def test_recording_the_same_failure_again_counts_it_once(store: Store) -> None:
    _, tasks = await _render_job(store)
    worker = await create_worker(store)
    for _ in range(3):
        recorded = await store.task_failures.record(tasks[0], worker.uuid, blocklist_threshold=2)
        assert (recorded.failed_workers, recorded.worker_failures_on_job, recorded.blocklisted) == (1, 1, False)
    assert await _rows(store) == (1, 0)


async def test_failures_count_per_task_type(store: Store) -> None:
    job, tasks = await _render_job(store, tasks=2)
    worker = await create_worker(store)
    await store.task_failures.record(tasks[0], worker.uuid, blocklist_threshold=2)
    video = await store.task_failures.record(tasks[2], worker.uuid, blocklist_threshold=2)
    assert (video.worker_failures_on_job, video.blocklisted) == (1, False)
    render = await store.task_failures.record(tasks[1], worker.uuid, blocklist_threshold=2)
    assert (render.worker_failures_on_job, render.blocklisted) == (2, True)
    assert [entry.task_type for entry in await store.blocklist.entries(job.uuid)] == ["blender"]
    assert await store.task_failures.count_task_failures_of_worker(job.uuid, worker.uuid, "blender") == 2
    assert await store.task_failures.count_task_failures_of_worker(job.uuid, worker.uuid, "ffmpeg") == 1


async def test_failures_on_another_job_do_not_count(store: Store) -> None:
    _, first_tasks = await _render_job(store)
    second, second_tasks = await _render_job(store)
    worker = await create_worker(store)
    await store.task_failures.record(first_tasks[0], worker.uuid, blocklist_threshold=2)
    recorded = await store.task_failures.record(second_tasks[0], worker.uuid, blocklist_threshold=2)
    assert (recorded.worker_failures_on_job, recorded.blocklisted) == (1, False)
    assert await store.blocklist.entries(second.uuid) == []


async def test_threshold_1_blocks_at_once(store: Store) -> None:
    job, tasks = await _render_job(store)
    worker = await create_worker(store)
    recorded = await store.task_failures.record(tasks[0], worker.uuid, blocklist_threshold=1)
    assert recorded == FailureRecorded(1, 1, True, frozenset())
    assert len(await store.blocklist.entries(job.uuid)) == 1


async def test_workers_left_of_a_tagged_job_are_its_tags_members(store: Store) -> None:
    tag = await store.worker_tags.create("tag")
    _, tasks = await _render_job(store, worker_tag=tag.uuid)
    member, other_member = await create_worker(store, "member"), await create_worker(store, "other member")
    await create_worker(store, "outsider")
    for worker in (member, other_member):
        await store.worker_tags.set_worker_tags(worker.uuid, [tag.uuid])
    recorded = await store.task_failures.record(tasks[0], member.uuid)
    assert recorded.workers_left == {other_member.uuid}


async def test_a_refused_record_writes_nothing(store: Store) -> None:
    _, tasks = await _render_job(store)
    worker = await create_worker(store)
    with pytest.raises(NotFound, match="task"):
        await store.task_failures.record(uuid4(), worker.uuid)
    with pytest.raises(NotFound, match="worker"):
        await store.task_failures.record(tasks[0], uuid4())
    await store.workers.delete(worker.uuid)
    with pytest.raises(NotFound, match="worker"):
        await store.task_failures.record(tasks[0], worker.uuid)
    for bad in (0, -1, "3", 2.5, True):
        with pytest.raises(InvalidInput, match="blocklist_threshold"):
            await store.task_failures.record(tasks[0], worker.uuid, blocklist_threshold=bad)  # type: ignore[arg-type]
    assert await _rows(store) == (0, 0)


async def test_concurrent_failures_of_one_worker_each_count_the_others(store: Store) -> None:
    job, tasks = await _render_job(store, tasks=3)
    worker = await create_worker(store)
    results = await asyncio.gather(
        *(store.task_failures.record(task, worker.uuid, blocklist_threshold=3) for task in tasks[:3])
    )
    assert sorted(result.worker_failures_on_job for result in results) == [1, 2, 3]
    assert [result.blocklisted for result in results].count(True) == 1
    assert len(await store.blocklist.entries(job.uuid)) == 1
