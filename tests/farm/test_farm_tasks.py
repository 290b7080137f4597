"""Tasks one at a time, restated from Flamenco's jobs_test.go, timeout_test.go
and workers_test.go, on every backend."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import timedelta
from uuid import uuid4

import pytest
from sqlalchemy.engine import Connection

from statestore import InvalidInput, InvalidReference, NotFound, Store, open_store
from statestore.core.types import utcnow
from statestore.farm import AuthoredTask, Command, JobStatus, TaskStatus
from statestore.farm.tasks import TIMED_OUT
from tests.support.farm_fixtures import authored_job, create_worker, store_job

SECOND = timedelta(seconds=1)


async def test_fetch_task(store: Store) -> None:
    authored = authored_job()
    job = await store_job(store, authored)
    task = await store.tasks.fetch(authored.tasks[0].uuid)
    assert (task.uuid, task.job_uuid, task.name) == (authored.tasks[0].uuid, job.uuid, "render-1-3")
    assert (task.worker_uuid, task.last_touched_at) == (None, None)
    assert not {"job_id", "worker_id"} & {field.name for field in fields(task)}
    with pytest.raises(NotFound, match="task"):
        await store.tasks.fetch(uuid4())
    assert await store.tasks.fetch(str(task.uuid)) == task
    assert await store.tasks.fetch(str(task.uuid).upper()) == task
    for bad in ("not-a-uuid", "", "1234", 1234, task.uuid.bytes, None):
        with pytest.raises(InvalidInput, match="task uuid"):
            await store.tasks.fetch(bad)  # type: ignore[arg-type]


async def test_fetch_tasks_of_job_in_status(store: Store) -> None:
    authored = authored_job()
    job = await store_job(store, authored)
    await store_job(store)
    t0, t1, t2 = (task.uuid for task in authored.tasks)
    queued = await store.tasks.of_job_in_status(job.uuid, TaskStatus.QUEUED)
    assert [task.uuid for task in queued] == [t0, t1, t2]
    assert all(task.job_uuid == job.uuid for task in queued)
    await store.tasks.save_status(t0, TaskStatus.FAILED)
    assert [task.uuid for task in await store.tasks.of_job_in_status(job.uuid, TaskStatus.QUEUED)] == [t1, t2]
    assert [task.uuid for task in await store.tasks.of_job_in_status(job.uuid, TaskStatus.FAILED)] == [t0]
    assert await store.tasks.of_job_in_status(job.uuid, TaskStatus.ACTIVE) == []
    assert await store.tasks.of_job_in_status(job.uuid) == []
    with pytest.raises(NotFound):
        await store.tasks.of_job_in_status(uuid4(), TaskStatus.QUEUED)
    with pytest.raises(NotFound):
        await store.tasks.of_job(uuid4())


async def test_save_task_activity_does_not_save_the_status(store: Store) -> None:
    authored = authored_job()
    await store_job(store, authored)
    task = await store.tasks.fetch(authored.tasks[0].uuid)
    saved = await store.tasks.save_activity(task.uuid, "Somebody ran a ünit test")
    assert saved.activity == "Somebody ran a ünit test"
    assert saved.status is TaskStatus.QUEUED
    assert saved.updated_at > task.updated_at
    assert await store.tasks.fetch(task.uuid) == saved


async def test_save_task_status_with_and_without_activity(store: Store) -> None:
    authored = authored_job()
    await store_job(store, authored)
    uuid = authored.tasks[0].uuid
    saved = await store.tasks.save_status(uuid, TaskStatus.ACTIVE, "started")
    assert (saved.status, saved.activity) == (TaskStatus.ACTIVE, "started")
    saved = await store.tasks.save_status(uuid, TaskStatus.PAUSED)
    assert (saved.status, saved.activity) == (TaskStatus.PAUSED, "started")
    with pytest.raises(NotFound):
        await store.tasks.save_status(uuid4(), TaskStatus.ACTIVE)


async def test_save_task_writes_every_mutable_field(store: Store) -> None:
    authored = authored_job()
    await store_job(store, authored)
    worker = await create_worker(store)
    task = await store.tasks.fetch(authored.tasks[1].uuid)
    touched = utcnow() - timedelta(minutes=3)
    changed = replace(
        task,
        name="renamed",
        type="ffmpeg",
        priority=99,
        status=TaskStatus.ACTIVE,
        worker_uuid=worker.uuid,
        last_touched_at=touched,
        commands=(Command("other", {"x": [1, 2]}, total_step_count=4),),
        activity="busy",
        steps_completed=2,
        steps_total=4,
    )
    saved = await store.tasks.save(changed)
    assert saved == replace(changed, updated_at=saved.updated_at)
    assert saved.updated_at > task.updated_at
    assert await store.tasks.fetch(task.uuid) == saved
    job = await store.jobs.fetch(task.job_uuid)
    assert (job.steps_completed, job.steps_total) == (2, 1 + 4 + 1)
    with pytest.raises(InvalidReference, match="worker"):
        await store.tasks.save(replace(changed, worker_uuid=uuid4(), name="unwritten"))
    with pytest.raises(InvalidInput, match="renamed"):
        await store.tasks.save(replace(changed, type="t" * 33))
    with pytest.raises(NotFound):
        await store.tasks.save(replace(changed, uuid=uuid4()))
    assert await store.tasks.fetch(task.uuid) == saved


async def test_save_task_takes_the_worker_by_uuid(store: Store) -> None:
    authored = authored_job()
    await store_job(store, authored)
    await create_worker(store, "decoy")  # worker ids and task ids differ
    first = await create_worker(store, "first")
    second = await create_worker(store, "second")
    task = await store.tasks.fetch(authored.tasks[0].uuid)
    saved = await store.tasks.save(replace(task, worker_uuid=first.uuid, activity="on first"))
    assert (saved.worker_uuid, saved.activity) == (first.uuid, "on first")
    assert await store.tasks.of_worker_in_status(first.uuid, TaskStatus.QUEUED) == [saved]
    saved = await store.tasks.save(replace(saved, worker_uuid=second.uuid))
    assert saved.worker_uuid == second.uuid
    assert await store.tasks.fetch(task.uuid) == saved
    assert await store.tasks.of_worker_in_status(first.uuid, TaskStatus.QUEUED) == []
    assert await store.tasks.of_worker_in_status(second.uuid, TaskStatus.QUEUED) == [saved]
    unassigned = await store.tasks.save(replace(saved, worker_uuid=None, activity="unassigned"))
    assert (unassigned.worker_uuid, unassigned.activity) == (None, "unassigned")
    assert await store.tasks.fetch(task.uuid) == unassigned
    assert await store.tasks.of_worker_in_status(second.uuid, TaskStatus.QUEUED) == []
    # An unknown worker: nothing is written, and the next call works.
    for missing in (uuid4(), task.uuid, task.job_uuid):
        with pytest.raises(InvalidReference, match=str(missing)):
            await store.tasks.save(replace(unassigned, worker_uuid=missing, activity="unwritten", priority=1))
        assert await store.tasks.fetch(task.uuid) == unassigned
    again = await store.tasks.save(replace(unassigned, worker_uuid=first.uuid, activity="again"))
    assert (again.worker_uuid, again.activity) == (first.uuid, "again")
    assert await store.tasks.fetch(task.uuid) == again
    with pytest.raises(InvalidInput, match="worker_uuid"):
        await store.tasks.save(replace(again, worker_uuid=12))  # type: ignore[arg-type]


async def test_save_task_refuses_a_deleted_worker_unless_the_task_already_names_it(store: Store) -> None:
    authored = authored_job()
    await store_job(store, authored)
    gone = await create_worker(store, "gone")
    named = await store.tasks.assign_to_worker(authored.tasks[0].uuid, gone.uuid)
    other = await store.tasks.fetch(authored.tasks[1].uuid)
    await store.workers.delete(gone.uuid)
    # A fetched task still saves with the (soft-deleted) worker it names ...
    kept = await store.tasks.save(replace(named, activity="kept"))
    assert (kept.worker_uuid, kept.activity) == (gone.uuid, "kept")
    # ... but no task is newly given to a soft-deleted worker.
    with pytest.raises(InvalidReference, match=str(gone.uuid)):
        await store.tasks.save(replace(other, worker_uuid=gone.uuid, activity="unwritten"))
    assert await store.tasks.fetch(other.uuid) == other
    assert (await store.tasks.save(replace(kept, worker_uuid=None))).worker_uuid is None
    with pytest.raises(InvalidReference):
        await store.tasks.save(replace(kept, worker_uuid=gone.uuid))


async def test_save_task_with_an_unknown_worker_writes_nothing_in_a_transaction(store: Store) -> None:
    authored = authored_job()
    await store_job(store, authored)
    task = await store.tasks.fetch(authored.tasks[0].uuid)
    async with store.transaction():
        with pytest.raises(InvalidReference):
            await store.tasks.save(replace(task, worker_uuid=uuid4(), activity="unwritten"))
        saved = await store.tasks.save(replace(task, activity="written"))
    assert await store.tasks.fetch(task.uuid) == saved
    assert saved.activity == "written"


async def test_save_steps_completed_resums_the_job(store: Store) -> None:
    authored = authored_job()
    job = await store_job(store, authored)
    saved = await store.tasks.save_steps_completed(authored.tasks[0].uuid, 1)
    assert saved.steps_completed == 1
    stored = await store.jobs.fetch(job.uuid)
    assert (stored.steps_completed, stored.steps_total) == (1, 3)
    assert stored.updated_at == job.updated_at
    with pytest.raises(InvalidInput):
        await store.tasks.save_steps_completed(authored.tasks[0].uuid, -1)


async def test_task_assign_to_worker(store: Store) -> None:
    authored = authored_job()
    await store_job(store, authored)
    worker = await create_worker(store)
    task = await store.tasks.fetch(authored.tasks[1].uuid)
    assert task.worker_uuid is None
    assigned = await store.tasks.assign_to_worker(task.uuid, worker.uuid)
    assert assigned.worker_uuid == worker.uuid
    assert await store.tasks.fetch(task.uuid) == assigned
    with pytest.raises(InvalidReference, match="worker"):
        await store.tasks.assign_to_worker(task.uuid, uuid4())
    with pytest.raises(NotFound):
        await store.tasks.assign_to_worker(uuid4(), worker.uuid)


async def test_assigning_to_a_deleted_worker_is_refused_but_the_old_uuid_stays_visible(store: Store) -> None:
    authored = authored_job()
    await store_job(store, authored)
    worker = await create_worker(store)
    await store.tasks.assign_to_worker(authored.tasks[0].uuid, worker.uuid)
    await store.workers.delete(worker.uuid)
    assert (await store.tasks.fetch(authored.tasks[0].uuid)).worker_uuid == worker.uuid
    with pytest.raises(InvalidReference):
        await store.tasks.assign_to_worker(authored.tasks[1].uuid, worker.uuid)


async def test_fetch_tasks_of_worker_in_status(store: Store) -> None:
    authored = authored_job()
    job = await store_job(store, authored)
    worker = await create_worker(store)
    await store.tasks.assign_to_worker(authored.tasks[1].uuid, worker.uuid)
    found = await store.tasks.of_worker_in_status(worker.uuid, TaskStatus.QUEUED)
    assert [(task.uuid, task.job_uuid) for task in found] == [(authored.tasks[1].uuid, job.uuid)]
    assert await store.tasks.of_worker_in_status(worker.uuid, TaskStatus.CANCELED) == []
    with pytest.raises(NotFound):
        await store.tasks.of_worker_in_status(uuid4(), TaskStatus.QUEUED)
    await store.workers.delete(worker.uuid)
    with pytest.raises(NotFound):  # soft-deleted workers are invisible, as to every listing
        await store.tasks.of_worker_in_status(worker.uuid, TaskStatus.CANCELED)


async def test_fetch_tasks_of_worker_in_status_of_job(store: Store) -> None:
    first, second = authored_job(), authored_job()
    job1 = await store_job(store, first)
    job2 = await store_job(store, second)
    w1 = await create_worker(store, "w1")
    w2 = await create_worker(store, "w2")
    for task in (first.tasks[1], first.tasks[0], second.tasks[0]):
        await store.tasks.assign_to_worker(task.uuid, w1.uuid)
    await store.tasks.assign_to_worker(first.tasks[2].uuid, w2.uuid)
    await store.tasks.assign_to_worker(second.tasks[1].uuid, w2.uuid)
    found = await store.tasks.of_worker_in_status_of_job(w1.uuid, TaskStatus.QUEUED, job1.uuid)
    assert [task.uuid for task in found] == [first.tasks[0].uuid, first.tasks[1].uuid]
    found = await store.tasks.of_worker_in_status_of_job(w2.uuid, TaskStatus.QUEUED, job2.uuid)
    assert [task.uuid for task in found] == [second.tasks[1].uuid]
    assert await store.tasks.of_worker_in_status_of_job(w1.uuid, TaskStatus.ACTIVE, job1.uuid) == []
    fresh = await create_worker(store, "fresh")
    assert await store.tasks.of_worker_in_status_of_job(fresh.uuid, TaskStatus.QUEUED, job1.uuid) == []
    with pytest.raises(NotFound):
        await store.tasks.of_worker_in_status_of_job(fresh.uuid, TaskStatus.QUEUED, uuid4())
    with pytest.raises(NotFound):
        await store.tasks.of_worker_in_status_of_job(uuid4(), TaskStatus.QUEUED, job1.uuid)


async def test_task_touched_by_worker(store: Store) -> None:
    authored = authored_job()
    await store_job(store, authored)
    uuid = authored.tasks[0].uuid
    assert (await store.tasks.fetch(uuid)).last_touched_at is None
    before = utcnow()
    await store.tasks.touched_by_worker(uuid)
    task = await store.tasks.fetch(uuid)
    assert task.last_touched_at is not None
    assert abs(task.last_touched_at - before) < SECOND
    assert task.updated_at == task.last_touched_at
    with pytest.raises(NotFound, match="task"):
        await store.tasks.touched_by_worker(uuid4())


async def test_fetch_timed_out_tasks(store: Store) -> None:
    authored = authored_job()
    job = await store_job(store, authored)
    worker = await create_worker(store)
    deadline = utcnow() - timedelta(minutes=10)
    task = await store.tasks.assign_to_worker(authored.tasks[0].uuid, worker.uuid)
    task = await store.tasks.save(replace(task, last_touched_at=deadline - timedelta(minutes=1)))
    await store.tasks.save(replace(await store.tasks.fetch(authored.tasks[1].uuid), last_touched_at=deadline))
    assert await store.tasks.timed_out(deadline) == []
    await store.tasks.save_status(task.uuid, TaskStatus.ACTIVE)
    await store.tasks.save_status(authored.tasks[1].uuid, TaskStatus.ACTIVE)
    await store.tasks.save_status(authored.tasks[2].uuid, TaskStatus.ACTIVE)  # never touched: not timed out
    found = await store.tasks.timed_out(deadline)
    assert [(each.task.uuid, each.task.job_uuid, each.task.worker_uuid, each.worker_name) for each in found] == [
        (task.uuid, job.uuid, worker.uuid, "дрон"),
        (authored.tasks[1].uuid, job.uuid, None, None),
    ]


async def test_fetch_worker_task(store: Store) -> None:
    first, second = authored_job(), authored_job()
    job1 = await store_job(store, first)
    await store_job(store, second)
    for job in (job1.uuid, second.uuid):
        await store.jobs.save_status(job, JobStatus.ACTIVE, "")
    worker = await create_worker(store)
    assert await store.tasks.current_of_worker(worker.uuid) is None
    task1 = first.tasks[0].uuid
    await store.tasks.assign_to_worker(task1, worker.uuid)
    await store.tasks.save_status(task1, TaskStatus.ACTIVE)
    current = await store.tasks.current_of_worker(worker.uuid)
    assert current is not None
    assert (current.uuid, current.job_uuid) == (task1, job1.uuid)
    await store.tasks.save_status(task1, TaskStatus.COMPLETED)
    current = await store.tasks.current_of_worker(worker.uuid)
    assert current is not None
    assert current.uuid == task1
    task2 = second.tasks[0].uuid
    await store.tasks.assign_to_worker(task2, worker.uuid)
    await store.tasks.save_status(task2, TaskStatus.COMPLETED)
    current = await store.tasks.current_of_worker(worker.uuid)
    assert current is not None
    assert current.uuid == task2
    # A task that is running (task and job active) comes first, however old.
    await store.tasks.save_status(task1, TaskStatus.ACTIVE)
    await store.tasks.save_activity(task2, "touched later")
    current = await store.tasks.current_of_worker(worker.uuid)
    assert current is not None
    assert current.uuid == task1
    with pytest.raises(NotFound, match="worker"):
        await store.tasks.current_of_worker(uuid4())


async def test_dependencies_are_ordered_by_dependency_id(store: Store) -> None:
    authored = authored_job()
    first, second, video = authored.tasks
    video.dependencies = [second.uuid, first.uuid]
    await store_job(store, authored)
    assert await store.tasks.dependencies(video.uuid) == [first.uuid, second.uuid]
    with pytest.raises(NotFound):
        await store.tasks.dependencies(uuid4())


async def test_of_job_is_in_authoring_order(store: Store) -> None:
    authored = authored_job()
    job = await store_job(store, authored)
    extra = await store.jobs.add_tasks(job.uuid, [replace_name(authored.tasks[0], "extra")])
    tasks = await store.tasks.of_job(job.uuid)
    assert [task.index_in_job for task in tasks] == [1, 2, 3, 4]
    assert tasks[3] == extra[0]


def replace_name(task: AuthoredTask, name: str) -> AuthoredTask:
    return AuthoredTask(name, task.type, commands=list(task.commands))


async def test_timed_out_tasks_are_found_through_their_index() -> None:
    """The query timed_out() runs is a range scan of (status, last_touched_at)."""
    async with open_store("sqlite:///:memory:", create=True) as store:

        def plan(connection: Connection) -> list[str]:
            compiled = TIMED_OUT.compile(dialect=connection.dialect)
            params = compiled.construct_params({"untouched_since": utcnow()})
            processed = [
                compiled.binds[name].type.bind_processor(connection.dialect)(params[name])  # type: ignore[misc]
                if compiled.binds[name].type.bind_processor(connection.dialect)
                else params[name]
                for name in compiled.positiontup or ()
            ]
            return [str(row) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", tuple(processed))]

        rows = await store.read(plan)
    assert any("ix_tasks_status_last_touched_at" in row for row in rows), rows
