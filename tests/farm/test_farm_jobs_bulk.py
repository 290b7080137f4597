"""Large submissions: inserted in chunks (PostgreSQL), with the cyclic garbage
collector paused while they are validated and written."""

from __future__ import annotations

import asyncio
import gc

import pytest

from statestore import AlreadyExists, Store
from statestore.core.bulk_insert import CHUNK
from statestore.core.gc_pause import collection_paused
from statestore.farm import AuthoredTask, Command, TaskStatus
from statestore.farm.jobs import OFFLOAD_TASKS
from tests.support.farm_fixtures import job_of, render_task
from tests.support.farm_job_fixtures import counts, pending

SIZE = max(3 * CHUNK, OFFLOAD_TASKS) + 7
"""More tasks than three chunks and than the offloading threshold, and not a
multiple of the chunk."""


def _fan_in_job(size: int = SIZE) -> list[AuthoredTask]:
    """A chain (task n depends on task n-1); every 10th task from CHUNK + 3
    on also depends on task n - CHUNK - 3, an edge across a chunk boundary."""
    tasks = [render_task(f"frame-{number}", steps=number % 4) for number in range(size)]
    for number in range(1, size):
        tasks[number].dependencies = [tasks[number - 1].uuid]
        if number % 10 == 0 and number >= CHUNK + 3:
            tasks[number].dependencies.append(tasks[number - CHUNK - 3].uuid)
    return tasks


async def test_a_job_larger_than_several_chunks_is_stored_whole(store: Store) -> None:
    tasks = _fan_in_job()
    # A dependency on a task authored later, in another chunk.
    extra = AuthoredTask("late", "ffmpeg", commands=[Command("merge", {"all": True})])
    tasks[5].dependencies.append(extra.uuid)
    tasks.append(extra)
    job = await store.jobs.store_authored(job_of(*tasks))
    edges = sum(len(task.dependencies) for task in tasks)
    assert await counts(store) == (1, len(tasks), edges)
    stored = await store.tasks.of_job(job.uuid)
    assert [task.uuid for task in stored] == [task.uuid for task in tasks]
    assert [task.index_in_job for task in stored] == list(range(1, len(tasks) + 1))
    assert [task.name for task in stored] == [task.name for task in tasks]
    assert [task.commands for task in stored] == [tuple(task.commands) for task in tasks]
    assert {task.status for task in stored} == {TaskStatus.QUEUED}
    assert job.steps_total == sum(max(1, number % 4) for number in range(SIZE)) + 1
    for number in (5, CHUNK - 1, CHUNK, CHUNK + 3, 2 * CHUNK + 10, SIZE - 1):
        expected = sorted(tasks[number].dependencies, key=[task.uuid for task in tasks].index)
        assert await store.tasks.dependencies(tasks[number].uuid) == expected
        assert await pending(store, tasks[number].uuid) == len(expected)
    assert await pending(store, tasks[0].uuid) == 0


async def test_a_stored_task_uuid_in_a_later_chunk_writes_nothing(store: Store) -> None:
    first = await store.jobs.store_authored(job_of(render_task("already stored")))
    stored_uuid = (await store.tasks.of_job(first.uuid))[0].uuid
    tasks = _fan_in_job()
    tasks[2 * CHUNK + 1].uuid = stored_uuid
    tasks[2 * CHUNK + 2].dependencies = [stored_uuid]
    before = await counts(store)
    with pytest.raises(AlreadyExists):
        await store.jobs.store_authored(job_of(*tasks))
    assert await counts(store) == before
    assert gc.isenabled()


async def test_the_collector_runs_again_after_a_large_submission(store: Store) -> None:
    assert gc.isenabled()
    await store.jobs.store_authored(job_of(*_fan_in_job()))
    assert gc.isenabled()


async def test_overlapping_large_submissions_resume_collection_when_the_last_ends(store: Store) -> None:
    await asyncio.gather(*(store.jobs.store_authored(job_of(*_fan_in_job())) for _ in range(2)))
    assert gc.isenabled()
    assert (await counts(store))[:2] == (2, 2 * SIZE)


def test_collection_paused_nests_and_restores() -> None:
    assert gc.isenabled()
    with collection_paused():
        assert not gc.isenabled()
        with collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()


def test_collection_paused_restores_after_an_error() -> None:
    with pytest.raises(ZeroDivisionError), collection_paused():
        1 / 0  # noqa: B018
    assert gc.isenabled()


def test_collection_paused_leaves_a_collector_disabled_by_the_application_disabled() -> None:
    gc.disable()
    try:
        with collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
