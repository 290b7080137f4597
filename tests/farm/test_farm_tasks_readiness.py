"""``tasks.pending_dependencies`` stays right through every status change
(checked through SQL: records do not carry it), on every backend."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from sqlalchemy import select, text

from statestore import Store
from statestore.farm import AuthoredTask, TaskStatus
from statestore.farm.tables import TASKS
from tests.support.farm_fixtures import authored_job, job_of, render_task, store_job
from tests.support.farm_job_fixtures import pending


async def _claimable(store: Store) -> list[str]:
    """Tasks whose status and dependencies let them run (whatever their job's
    status, which the fixture leaves under construction)."""
    ready = "status IN ('queued', 'soft-failed') AND pending_dependencies = 0"
    statement = select(TASKS.c.name).where(text(ready)).order_by(TASKS.c.id)
    return list(await store.read(lambda conn: conn.execute(statement).scalars().all()))


async def test_completing_dependencies_one_by_one(store: Store) -> None:
    authored = authored_job()
    await store_job(store, authored)
    first, second, video = authored.tasks
    assert await pending(store, video.uuid) == 2
    assert await _claimable(store) == ["render-1-3", "render-4-6"]
    await store.tasks.save_status(first.uuid, TaskStatus.ACTIVE)
    assert await pending(store, video.uuid) == 2
    await store.tasks.save_status(first.uuid, TaskStatus.COMPLETED)
    assert await pending(store, video.uuid) == 1
    await store.tasks.save_status(first.uuid, TaskStatus.COMPLETED)  # again: idempotent
    assert await pending(store, video.uuid) == 1
    await store.tasks.save_status(second.uuid, TaskStatus.COMPLETED)
    assert await pending(store, video.uuid) == 0
    assert await _claimable(store) == ["preview-video"]


async def test_requeueing_a_completed_dependency_counts_it_again(store: Store) -> None:
    authored = authored_job()
    await store_job(store, authored)
    first, second, video = authored.tasks
    for task in (first, second):
        await store.tasks.save_status(task.uuid, TaskStatus.COMPLETED)
    assert await pending(store, video.uuid) == 0
    await store.tasks.save_status(first.uuid, TaskStatus.QUEUED)
    assert await pending(store, video.uuid) == 1
    await store.tasks.save_status(second.uuid, TaskStatus.FAILED)
    assert await pending(store, video.uuid) == 2


async def test_save_of_a_whole_task_recounts_its_dependents(store: Store) -> None:
    authored = authored_job()
    await store_job(store, authored)
    first = await store.tasks.fetch(authored.tasks[0].uuid)
    await store.tasks.save(replace(first, status=TaskStatus.COMPLETED))
    assert await pending(store, authored.tasks[2].uuid) == 1
    await store.tasks.save(replace(first, status=TaskStatus.CANCELED))
    assert await pending(store, authored.tasks[2].uuid) == 2


async def test_recount_does_not_touch_the_dependents_updated_at(store: Store) -> None:
    authored = authored_job()
    await store_job(store, authored)
    video = await store.tasks.fetch(authored.tasks[2].uuid)
    await store.tasks.save_status(authored.tasks[0].uuid, TaskStatus.COMPLETED)
    assert (await store.tasks.fetch(video.uuid)).updated_at == video.updated_at


async def test_bulk_updates_of_a_job_recount_the_job(store: Store) -> None:
    authored = authored_job()
    job = await store_job(store, authored)
    other = authored_job()
    await store_job(store, other)
    await store.jobs.update_task_statuses(job.uuid, TaskStatus.COMPLETED, "done")
    assert await pending(store, authored.tasks[2].uuid) == 0
    assert await pending(store, other.tasks[2].uuid) == 2
    await store.jobs.update_task_statuses(job.uuid, TaskStatus.QUEUED, "again")
    assert await pending(store, authored.tasks[2].uuid) == 2
    await store.jobs.update_task_statuses_conditional(job.uuid, [TaskStatus.QUEUED], TaskStatus.COMPLETED, "")
    assert await pending(store, authored.tasks[2].uuid) == 0
    await store.jobs.update_task_statuses_conditional(job.uuid, [TaskStatus.COMPLETED], TaskStatus.PAUSED, "")
    assert await pending(store, authored.tasks[2].uuid) == 2


async def test_conditional_update_of_some_dependencies(store: Store) -> None:
    authored = authored_job()
    job = await store_job(store, authored)
    first, second, video = authored.tasks
    await store.tasks.save_status(first.uuid, TaskStatus.ACTIVE)
    changed = await store.jobs.update_task_statuses_conditional(
        job.uuid, [TaskStatus.ACTIVE], TaskStatus.COMPLETED, "finished"
    )
    assert changed == 1
    assert await pending(store, video.uuid) == 1
    assert await pending(store, second.uuid) == 0


async def test_fan_out_fan_in(store: Store) -> None:
    # Flamenco's FanOutFanIn graph: 1 → 2.1, 2.2, 2.3 → 3 → 4, authored out of order.
    one = render_task("1")
    twos = [AuthoredTask(f"2.{n}", "blender", dependencies=[one.uuid]) for n in (1, 2, 3)]
    three = AuthoredTask("3", "blender", dependencies=[task.uuid for task in twos])
    four = AuthoredTask("4", "blender", dependencies=[three.uuid])
    await store.jobs.store_authored(job_of(four, three, twos[0], twos[1], one, twos[2]))
    assert [await pending(store, task.uuid) for task in (one, *twos, three, four)] == [0, 1, 1, 1, 3, 1]
    assert await _claimable(store) == ["1"]
    await store.tasks.save_status(one.uuid, TaskStatus.COMPLETED)
    assert await _claimable(store) == ["2.1", "2.2", "2.3"]
    for task in twos[:2]:
        await store.tasks.save_status(task.uuid, TaskStatus.COMPLETED)
    assert await pending(store, three.uuid) == 1
    await store.tasks.save_status(twos[2].uuid, TaskStatus.COMPLETED)
    assert await _claimable(store) == ["3"]


async def test_added_tasks_depending_on_completed_and_new_tasks(store: Store) -> None:
    authored = authored_job()
    job = await store_job(store, authored)
    await store.tasks.save_status(authored.tasks[0].uuid, TaskStatus.COMPLETED)
    new = render_task("new")
    both = AuthoredTask("both", "misc", dependencies=[authored.tasks[0].uuid, new.uuid])
    await store.jobs.add_tasks(job.uuid, [new, both])
    assert await pending(store, both.uuid) == 1
    await store.tasks.save_status(new.uuid, TaskStatus.COMPLETED)
    assert await pending(store, both.uuid) == 0
    await store.tasks.save_status(authored.tasks[0].uuid, TaskStatus.SOFT_FAILED)
    assert await pending(store, both.uuid) == 1
    assert await pending(store, authored.tasks[2].uuid) == 2


async def test_concurrent_completion_of_both_dependencies(store: Store) -> None:
    for _ in range(5):
        authored = authored_job()
        await store_job(store, authored)
        first, second, video = authored.tasks
        await asyncio.gather(
            store.tasks.save_status(first.uuid, TaskStatus.COMPLETED),
            store.tasks.save_status(second.uuid, TaskStatus.COMPLETED),
        )
        assert await pending(store, video.uuid) == 0
