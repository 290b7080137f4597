"""Job blocklists: Flamenco's jobs_blocklist_test.go against our API."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from sqlalchemy import func, select

from statestore import InvalidInput, NotFound, Store
from statestore.farm import Job
from statestore.farm.tables import BLOCKS
from tests.support.farm_fixtures import authored_job, create_worker, store_job


async def _rows(store: Store) -> int:
    statement = select(func.count()).select_from(BLOCKS)
    return int(await store.read(lambda conn: conn.execute(statement).scalar_one()))


async def _job_and_tasks(store: Store, worker_tag: UUID | None = None) -> tuple[Job, list[UUID]]:
    job = await store_job(store, authored_job(worker_tag=worker_tag))
    return job, [task.uuid for task in await store.tasks.of_job(job.uuid)]


async def test_add_worker_to_job_blocklist(store: Store) -> None:
    job = await store_job(store)
    worker = await create_worker(store)
    await store.blocklist.add(job.uuid, worker.uuid, "blender")
    await store.blocklist.add(job.uuid, worker.uuid, "blender")  # idempotent
    assert await _rows(store) == 1


async def test_fetch_job_blocklist(store: Store) -> None:
    job = await store_job(store)
    worker = await create_worker(store)
    await store.blocklist.add(job.uuid, worker.uuid, "blender")
    [entry] = await store.blocklist.entries(job.uuid)
    assert (entry.job_uuid, entry.worker_uuid, entry.worker_name, entry.task_type) == (
        job.uuid,
        worker.uuid,
        worker.name,
        "blender",
    )
    assert entry.created_at.tzinfo is not None
    with pytest.raises(NotFound, match="job"):
        await store.blocklist.entries(uuid4())


async def test_clear_job_blocklist(store: Store) -> None:
    job = await store_job(store)
    other_job = await store_job(store, authored_job(name="other"))
    worker = await create_worker(store)
    await store.blocklist.add(job.uuid, worker.uuid, "blender")
    await store.blocklist.add(job.uuid, worker.uuid, "ffmpeg")
    await store.blocklist.add(other_job.uuid, worker.uuid, "blender")
    assert await store.blocklist.clear(job.uuid) == 2
    assert await store.blocklist.entries(job.uuid) == []
    assert len(await store.blocklist.entries(other_job.uuid)) == 1
    assert await store.blocklist.clear(job.uuid) == 0


async def test_remove_from_job_blocklist(store: Store) -> None:
    job = await store_job(store)
    worker = await create_worker(store)
    await store.blocklist.add(job.uuid, worker.uuid, "blender")
    await store.blocklist.add(job.uuid, worker.uuid, "ffmpeg")
    await store.blocklist.remove(job.uuid, worker.uuid, "ffmpeg")
    assert [entry.task_type for entry in await store.blocklist.entries(job.uuid)] == ["blender"]
    await store.blocklist.remove(job.uuid, worker.uuid, "ffmpeg")  # not there: nothing happens
    await store.blocklist.remove(uuid4(), worker.uuid, "blender")
    assert [entry.task_type for entry in await store.blocklist.entries(job.uuid)] == ["blender"]


async def test_entries_by_worker_name_then_worker_then_type(store: Store) -> None:
    job = await store_job(store)
    zed = await create_worker(store, "zed")
    first_amy = await create_worker(store, "amy")
    second_amy = await create_worker(store, "amy")
    for worker, task_type in [(second_amy, "blender"), (zed, "blender"), (first_amy, "misc"), (first_amy, "ffmpeg")]:
        await store.blocklist.add(job.uuid, worker.uuid, task_type)
    assert [(entry.worker_uuid, entry.task_type) for entry in await store.blocklist.entries(job.uuid)] == [
        (first_amy.uuid, "ffmpeg"),
        (first_amy.uuid, "misc"),
        (second_amy.uuid, "blender"),
        (zed.uuid, "blender"),
    ]


async def test_workers_left_to_run(store: Store) -> None:
    job = await store_job(store)
    assert await store.blocklist.workers_left_to_run(job.uuid, "blender") == set()
    w1, w2 = await create_worker(store, "w1"), await create_worker(store, "w2")
    tag1 = await store.worker_tags.create("tag1")
    wc1 = await create_worker(store, "wC1")
    await store.worker_tags.set_worker_tags(wc1.uuid, [tag1.uuid])
    everyone = {w1.uuid, w2.uuid, wc1.uuid}
    assert await store.blocklist.workers_left_to_run(job.uuid, "blender") == everyone
    await store.blocklist.add(job.uuid, w1.uuid, "blender")
    assert await store.blocklist.workers_left_to_run(job.uuid, "blender") == {w2.uuid, wc1.uuid}
    assert await store.blocklist.workers_left_to_run(job.uuid, "ffmpeg") == everyone
    await store.blocklist.add(job.uuid, w2.uuid, "blender")
    await store.blocklist.add(job.uuid, wc1.uuid, "blender")
    assert await store.blocklist.workers_left_to_run(job.uuid, "blender") == set()
    with pytest.raises(NotFound, match="job"):  # Flamenco: an unknown job blocks nobody
        await store.blocklist.workers_left_to_run(uuid4(), "blender")


async def test_workers_left_to_run_with_tags(store: Store) -> None:
    tag1, tag2, tag3 = [await store.worker_tags.create(name) for name in ("tag1", "tag2", "tag3")]
    job = await store_job(store, authored_job(worker_tag=tag1.uuid))
    c13, c1, c2 = [await create_worker(store, name) for name in ("C13", "C1", "C2")]
    await create_worker(store, "untagged")
    await store.worker_tags.set_worker_tags(c13.uuid, [tag1.uuid, tag3.uuid])
    await store.worker_tags.set_worker_tags(c1.uuid, [tag1.uuid])
    await store.worker_tags.set_worker_tags(c2.uuid, [tag2.uuid])
    assert await store.blocklist.workers_left_to_run(job.uuid, "blender") == {c13.uuid, c1.uuid}
    await store.blocklist.add(job.uuid, c1.uuid, "blender")
    assert await store.blocklist.workers_left_to_run(job.uuid, "blender") == {c13.uuid}
    await store.blocklist.add(job.uuid, c13.uuid, "blender")
    assert await store.blocklist.workers_left_to_run(job.uuid, "blender") == set()


async def test_soft_deleted_workers_are_not_left_to_run(store: Store) -> None:
    """Deviation from Flamenco, which still counts soft-deleted workers."""
    job = await store_job(store)
    kept, gone = await create_worker(store, "kept"), await create_worker(store, "gone")
    await store.blocklist.add(job.uuid, gone.uuid, "ffmpeg")
    await store.workers.delete(gone.uuid)
    assert await store.blocklist.workers_left_to_run(job.uuid, "blender") == {kept.uuid}
    with pytest.raises(NotFound, match="job"):  # Flamenco: an unknown job blocks nobody
        await store.blocklist.workers_left_to_run(uuid4(), "blender")
    # Its entry is still listed, and can be removed; it cannot be blocked anew.
    assert [entry.worker_uuid for entry in await store.blocklist.entries(job.uuid)] == [gone.uuid]
    with pytest.raises(NotFound, match="worker"):
        await store.blocklist.add(job.uuid, gone.uuid, "blender")
    await store.blocklist.remove(job.uuid, gone.uuid, "ffmpeg")
    assert await store.blocklist.entries(job.uuid) == []


async def test_count_task_failures_of_worker(store: Store) -> None:
    job, (t0, t1, t2) = await _job_and_tasks(store)
    w1, w2 = await create_worker(store, "w1"), await create_worker(store, "w2")
    for task, worker in [(t0, w1), (t1, w1), (t1, w2), (t2, w1)]:
        await store.task_failures.add(task, worker.uuid)
    count = store.task_failures.count_task_failures_of_worker
    assert await count(job.uuid, w1.uuid, "blender") == 2
    assert await count(job.uuid, w2.uuid, "blender") == 1
    assert await count(job.uuid, w1.uuid, "ffmpeg") == 1
    assert await count(job.uuid, w2.uuid, "ffmpeg") == 0
    assert await count(uuid4(), w1.uuid, "blender") == 0
    assert await count(job.uuid, uuid4(), "blender") == 0


async def test_deleting_the_job_deletes_its_blocklist(store: Store) -> None:
    job = await store_job(store)
    worker = await create_worker(store)
    await store.blocklist.add(job.uuid, worker.uuid, "blender")
    await store.jobs.delete(job.uuid)
    assert await _rows(store) == 0


async def test_unknown_jobs_and_workers_block_nothing(store: Store) -> None:
    job = await store_job(store)
    worker = await create_worker(store)
    with pytest.raises(NotFound, match="job"):
        await store.blocklist.add(uuid4(), worker.uuid, "blender")
    with pytest.raises(NotFound, match="worker"):
        await store.blocklist.add(job.uuid, uuid4(), "blender")
    assert await _rows(store) == 0


@pytest.mark.parametrize(("task_type", "message"), [("", "must not be empty"), ("t" * 33, "at most 32"), (7, "string")])
async def test_bad_task_types_are_refused(store: Store, task_type: object, message: str) -> None:
    job = await store_job(store)
    worker = await create_worker(store)
    await store.blocklist.add(job.uuid, worker.uuid, "blender")
    for call in (
        store.blocklist.add(job.uuid, worker.uuid, task_type),  # type: ignore[arg-type]
        store.blocklist.remove(job.uuid, worker.uuid, task_type),  # type: ignore[arg-type]
        store.blocklist.workers_left_to_run(job.uuid, task_type),  # type: ignore[arg-type]
        store.task_failures.count_task_failures_of_worker(job.uuid, worker.uuid, task_type),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidInput, match=f"task type.*{message}"):
            await call
    assert await _rows(store) == 1


@pytest.mark.parametrize("bad", ["not-a-uuid", "", "1234", 1234, b"\x00" * 16, None], ids=repr)
async def test_non_uuids_are_refused(store: Store, bad: object) -> None:
    job = await store_job(store)
    worker = await create_worker(store)
    for call, field in [
        (store.blocklist.add(bad, worker.uuid, "blender"), "job uuid"),  # type: ignore[arg-type]
        (store.blocklist.add(job.uuid, bad, "blender"), "worker uuid"),  # type: ignore[arg-type]
        (store.blocklist.entries(bad), "job uuid"),  # type: ignore[arg-type]
        (store.blocklist.clear(bad), "job uuid"),  # type: ignore[arg-type]
        (store.blocklist.remove(job.uuid, bad, "blender"), "worker uuid"),  # type: ignore[arg-type]
        (store.blocklist.workers_left_to_run(bad, "blender"), "job uuid"),  # type: ignore[arg-type]
    ]:
        with pytest.raises(InvalidInput, match=field):
            await call
    assert await _rows(store) == 0


async def test_uuid_strings_work_like_uuids(store: Store) -> None:
    job = await store_job(store)
    worker = await create_worker(store)
    await store.blocklist.add(str(job.uuid), str(worker.uuid), "blender")
    await store.blocklist.add(job.uuid, worker.uuid, "blender")  # the same entry: still one
    assert await _rows(store) == 1
    assert await store.blocklist.entries(str(job.uuid)) == await store.blocklist.entries(job.uuid)
    assert await store.blocklist.workers_left_to_run(str(job.uuid), "blender") == set()
    await store.blocklist.remove(str(job.uuid), str(worker.uuid), "blender")
    assert await _rows(store) == 0
    await store.blocklist.add(job.uuid, worker.uuid, "ffmpeg")
    assert await store.blocklist.clear(str(job.uuid).upper()) == 1
    assert await _rows(store) == 0
