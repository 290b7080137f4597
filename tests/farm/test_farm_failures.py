"""Task failure lists: the failure-list scenarios of Flamenco's jobs_test.go against our API."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from sqlalchemy import func, select

from statestore import InvalidInput, NotFound, Store
from statestore.farm.tables import FAILURES, TASKS, WORKERS
from tests.support.farm_fixtures import authored_job, create_worker, store_job


async def _failures(store: Store) -> list[tuple[UUID, UUID]]:
    """Every (task uuid, worker uuid) of the failure lists, by task id then worker id."""
    statement = (
        select(TASKS.c.uuid, WORKERS.c.uuid)
        .select_from(FAILURES)
        .join(TASKS, TASKS.c.id == FAILURES.c.task_id)
        .join(WORKERS, WORKERS.c.id == FAILURES.c.worker_id)
        .order_by(TASKS.c.id, WORKERS.c.id)
    )
    return [(task, worker) for task, worker in await store.read(lambda conn: conn.execute(statement).all())]


async def _count(store: Store) -> int:
    statement = select(func.count()).select_from(FAILURES)
    return int(await store.read(lambda conn: conn.execute(statement).scalar_one()))


async def _tasks(store: Store, job: UUID) -> list[UUID]:
    return [task.uuid for task in await store.tasks.of_job(job)]


async def test_add_worker_to_task_failed_list(store: Store) -> None:
    job = await store_job(store)
    task = (await _tasks(store, job.uuid))[1]
    w1, w2 = await create_worker(store, "w1"), await create_worker(store, "w2")
    assert await store.task_failures.add(task, w1.uuid) == 1
    assert await store.task_failures.add(task, w1.uuid) == 1  # already on it: no-op
    assert await store.task_failures.add(task, w2.uuid) == 2
    assert await _count(store) == 2
    await store.jobs.delete(job.uuid)
    assert await _count(store) == 0  # cascaded with the job's tasks


async def test_clear_failure_list_of_task(store: Store) -> None:
    job = await store_job(store)
    t1, t2, _ = await _tasks(store, job.uuid)
    w1, w2 = await create_worker(store, "w1"), await create_worker(store, "w2")
    for task, worker in [(t1, w1), (t1, w2), (t2, w1)]:
        await store.task_failures.add(task, worker.uuid)
    assert await store.task_failures.clear_for_task(t1) == 2
    assert await _failures(store) == [(t2, w1.uuid)]
    assert await store.task_failures.clear_for_task(t1) == 0
    assert await store.task_failures.clear_for_task(uuid4()) == 0


async def test_clear_failure_list_of_job(store: Store) -> None:
    job1 = await store_job(store, authored_job(name="first"))
    job2 = await store_job(store, authored_job(name="second"))
    t1_1, t1_2, _ = await _tasks(store, job1.uuid)
    t2_1, _, _ = await _tasks(store, job2.uuid)
    w1, w2 = await create_worker(store, "w1"), await create_worker(store, "w2")
    for task, worker in [(t1_1, w1), (t1_1, w2), (t1_2, w1), (t2_1, w1), (t2_1, w2)]:
        await store.task_failures.add(task, worker.uuid)
    assert await store.task_failures.clear_for_job(job1.uuid) == 3
    assert await _failures(store) == [(t2_1, w1.uuid), (t2_1, w2.uuid)]
    assert await store.task_failures.clear_for_job(uuid4()) == 0


async def test_fetch_task_failure_list(store: Store) -> None:
    with pytest.raises(NotFound, match="task"):
        await store.task_failures.workers(uuid4())
    job = await store_job(store)
    t1, t2, _ = await _tasks(store, job.uuid)
    assert await store.task_failures.workers(t1) == []
    w1, w2 = await create_worker(store, "w1"), await create_worker(store, "w2")
    await store.task_failures.add(t2, w2.uuid)
    await store.task_failures.add(t2, w1.uuid)
    failed = await store.task_failures.workers(t2)
    assert failed == [w1, w2]  # by worker id, whatever the order of failing
    assert [(worker.uuid, worker.name, worker.address) for worker in failed] == [
        (w1.uuid, "w1", w1.address),
        (w2.uuid, "w2", w2.address),
    ]
    assert await store.task_failures.workers(t1) == []


async def test_a_soft_deleted_worker_stays_on_failure_lists_but_cannot_be_added(store: Store) -> None:
    job = await store_job(store)
    t1, t2, _ = await _tasks(store, job.uuid)
    worker = await create_worker(store)
    await store.task_failures.add(t1, worker.uuid)
    await store.workers.delete(worker.uuid)
    [listed] = await store.task_failures.workers(t1)
    assert listed.uuid == worker.uuid
    assert listed.deleted_at is not None
    with pytest.raises(NotFound, match="worker"):
        await store.task_failures.add(t2, worker.uuid)
    assert await _failures(store) == [(t1, worker.uuid)]


async def test_unknown_tasks_and_workers_add_nothing(store: Store) -> None:
    job = await store_job(store)
    task = (await _tasks(store, job.uuid))[0]
    worker = await create_worker(store)
    with pytest.raises(NotFound, match="task"):
        await store.task_failures.add(uuid4(), worker.uuid)
    with pytest.raises(NotFound, match="worker"):
        await store.task_failures.add(task, uuid4())
    assert await _count(store) == 0


@pytest.mark.parametrize("bad", ["not-a-uuid", "", "1234", 1234, b"\x00" * 16, None], ids=repr)
async def test_non_uuids_are_refused(store: Store, bad: object) -> None:
    job = await store_job(store)
    task = (await _tasks(store, job.uuid))[0]
    worker = await create_worker(store)
    for call, field in [
        (store.task_failures.add(bad, worker.uuid), "task uuid"),  # type: ignore[arg-type]
        (store.task_failures.add(task, bad), "worker uuid"),  # type: ignore[arg-type]
        (store.task_failures.workers(bad), "task uuid"),  # type: ignore[arg-type]
        (store.task_failures.clear_for_task(bad), "task uuid"),  # type: ignore[arg-type]
        (store.task_failures.clear_for_job(bad), "job uuid"),  # type: ignore[arg-type]
        (store.task_failures.record(task, bad), "worker uuid"),  # type: ignore[arg-type]
        (store.task_failures.record(bad, worker.uuid), "task uuid"),  # type: ignore[arg-type]
        (store.task_failures.count_task_failures_of_worker(bad, worker.uuid, "blender"), "job uuid"),  # type: ignore[arg-type]
        (store.task_failures.count_task_failures_of_worker(job.uuid, bad, "blender"), "worker uuid"),  # type: ignore[arg-type]
    ]:
        with pytest.raises(InvalidInput, match=field):
            await call
    assert await _count(store) == 0


async def test_uuid_strings_work_like_uuids(store: Store) -> None:
    job = await store_job(store)
    t1, t2, _ = await _tasks(store, job.uuid)
    worker = await create_worker(store)
    assert await store.task_failures.add(str(t1), str(worker.uuid)) == 1
    assert await store.task_failures.add(t1, worker.uuid) == 1  # the same entry
    assert await store.task_failures.workers(str(t1)) == await store.task_failures.workers(t1) == [worker]
    recorded = await store.task_failures.record(str(t2), str(worker.uuid))
    assert recorded.failed_workers == 1
    assert await store.task_failures.count_task_failures_of_worker(str(job.uuid), str(worker.uuid), "blender") == 2
    assert await store.task_failures.clear_for_task(str(t1).upper()) == 1
    assert await store.task_failures.clear_for_job(str(job.uuid)) == 1
    assert await _count(store) == 0
