"""Give-backs say what they gave back: ``requeue_tasks_of_worker``,
``time_out_worker`` and ``time_out_workers`` return the tasks taken back from
a worker (task, job, new status), each in one transaction, at a statement
count that does not grow with the tasks; concurrent give-backs of one worker
give each task back once. On every backend."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from sqlalchemy import select, update

from statestore import InvalidInput, NotFound, Store
from statestore.core.types import utcnow
from statestore.farm import AuthoredTask, GivenBack, Job, JobStatus, TaskStatus, Worker, WorkerStatus
from statestore.farm.tables import TASKS, WORKERS
from tests.support.farm_fixtures import create_worker, job_of, render_task
from tests.support.statements import statements


async def _make_active(store: Store, worker: Worker, tasks: Sequence[AuthoredTask | UUID]) -> None:
    """Assign ``tasks`` to ``worker`` and mark them active (as claims would, one at a time)."""
    uuids = [task if isinstance(task, UUID) else task.uuid for task in tasks]
    worker_id = select(WORKERS.c.id).where(WORKERS.c.uuid == worker.uuid).scalar_subquery()
    statement = (
        update(TASKS)
        .where(TASKS.c.uuid.in_(uuids))
        .values(worker_id=worker_id, status=TaskStatus.ACTIVE.value, last_touched_at=utcnow())
    )
    await store.write(lambda conn: conn.execute(statement))


async def _jobs(
    store: Store, running: int = 3, pausing: int = 2
) -> tuple[Job, list[AuthoredTask], Job, list[AuthoredTask]]:
    """A running job and a pause-requested one, with ``running`` and ``pausing`` tasks."""
    first = [render_task(f"run-{number}") for number in range(running)]
    second = [render_task(f"pause-{number}") for number in range(pausing)]
    job = await store.jobs.store_authored(job_of(*first, name="running", status=JobStatus.ACTIVE))
    pausing_job = await store.jobs.store_authored(job_of(*second, name="pausing", status=JobStatus.ACTIVE))
    await store.jobs.save_status(pausing_job.uuid, JobStatus.PAUSE_REQUESTED, "pausing")
    return job, first, pausing_job, second


async def test_requeue_returns_exactly_the_tasks_given_back(store: Store) -> None:
    worker = await create_worker(store)
    other = await create_worker(store, "other")
    job, running, pausing_job, pausing = await _jobs(store, running=4, pausing=2)
    # Interleaved on purpose: the answer comes by task id, whatever the statement order.
    await _make_active(store, worker, [running[0], pausing[0], running[2], pausing[1]])
    await store.tasks.assign_to_worker(running[1].uuid, worker.uuid)  # assigned, still queued: not given back
    await _make_active(store, other, [running[3]])
    given = await store.scheduler.requeue_tasks_of_worker(worker.uuid, "it signed off")
    assert given == [
        GivenBack(running[0].uuid, job.uuid, TaskStatus.QUEUED),
        GivenBack(running[2].uuid, job.uuid, TaskStatus.QUEUED),
        GivenBack(pausing[0].uuid, pausing_job.uuid, TaskStatus.PAUSED),
        GivenBack(pausing[1].uuid, pausing_job.uuid, TaskStatus.PAUSED),
    ]
    for record in given:
        task = await store.tasks.fetch(record.task_uuid)
        assert (task.status, task.job_uuid) == (record.status, record.job_uuid)
        assert task.activity == f"Task was {record.status.value} by Manager because it signed off"
    assert (await store.tasks.fetch(running[1].uuid)).status is TaskStatus.QUEUED
    assert (await store.tasks.fetch(running[3].uuid)).status is TaskStatus.ACTIVE  # the other worker's
    assert await store.scheduler.requeue_tasks_of_worker(worker.uuid, "again") == []


async def test_a_worker_without_active_tasks_gives_back_nothing(store: Store) -> None:
    worker = await create_worker(store)
    await store.jobs.store_authored(job_of(render_task("1")))
    assert await store.scheduler.requeue_tasks_of_worker(worker.uuid, "it signed off") == []
    assert await store.scheduler.time_out_worker(worker.uuid) == []
    assert (await store.workers.fetch(worker.uuid)).status is WorkerStatus.ERROR


async def test_a_claimed_task_given_back_is_the_one_claimed(store: Store) -> None:
    worker = await create_worker(store)
    job = await store.jobs.store_authored(job_of(render_task("1"), render_task("2")))
    claimed = await store.scheduler.claim(worker.uuid)
    assert claimed is not None
    assert await store.scheduler.requeue_tasks_of_worker(worker.uuid, "it signed off") == [
        GivenBack(claimed.task.uuid, job.uuid, TaskStatus.QUEUED)
    ]
    again = await store.scheduler.claim(worker.uuid)
    assert again is not None
    assert again.newly_claimed


async def test_time_out_worker_returns_its_tasks(store: Store) -> None:
    worker = await create_worker(store)
    await store.workers.save_status(worker.uuid, WorkerStatus.AWAKE, requested=WorkerStatus.ASLEEP)
    job, running, pausing_job, pausing = await _jobs(store, running=1, pausing=1)
    await _make_active(store, worker, [*pausing, *running])
    assert await store.scheduler.time_out_worker(worker.uuid, "it vanished") == [
        GivenBack(running[0].uuid, job.uuid, TaskStatus.QUEUED),
        GivenBack(pausing[0].uuid, pausing_job.uuid, TaskStatus.PAUSED),
    ]
    stored = await store.workers.fetch(worker.uuid)
    assert (stored.status, stored.status_requested) == (WorkerStatus.ERROR, None)
    assert (await store.tasks.fetch(pausing[0].uuid)).activity == "Task was paused by Manager because it vanished"


async def _last_seen(store: Store, worker: Worker, ago: timedelta) -> None:
    await store.workers.save(replace(await store.workers.fetch(worker.uuid), last_seen_at=utcnow() - ago))


async def test_time_out_workers_returns_each_workers_tasks(store: Store) -> None:
    busy = await create_worker(store, "busy")
    idle = await create_worker(store, "idle")
    fresh = await create_worker(store, "fresh")
    already = await create_worker(store, "already", status=WorkerStatus.OFFLINE)
    job, running, pausing_job, pausing = await _jobs(store, running=3, pausing=1)
    await _make_active(store, busy, [running[0], pausing[0]])
    await _make_active(store, fresh, [running[1]])
    await _make_active(store, already, [running[2]])
    for worker in (busy, idle, already):
        await _last_seen(store, worker, timedelta(hours=1))
    await store.workers.seen(fresh.uuid)
    timed_out = await store.scheduler.time_out_workers(utcnow() - timedelta(minutes=1))
    assert timed_out == {
        busy.uuid: [
            GivenBack(running[0].uuid, job.uuid, TaskStatus.QUEUED),
            GivenBack(pausing[0].uuid, pausing_job.uuid, TaskStatus.PAUSED),
        ],
        idle.uuid: [],
    }
    assert list(timed_out) == [busy.uuid, idle.uuid]  # by id
    assert (await store.tasks.fetch(running[1].uuid)).status is TaskStatus.ACTIVE
    assert (await store.tasks.fetch(running[2].uuid)).status is TaskStatus.ACTIVE  # offline: not timed out
    assert await store.scheduler.time_out_workers(utcnow() - timedelta(minutes=1)) == {}


def _task_statements(seen: list[str]) -> list[str]:
    return [sql for sql in seen if "tasks" in sql]


async def test_the_statement_count_does_not_grow_with_the_tasks(store: Store) -> None:
    worker = await create_worker(store)
    _, running, _, pausing = await _jobs(store, running=60, pausing=40)
    await _make_active(store, worker, [running[0], pausing[0]])
    with statements(store) as few:
        assert len(await store.scheduler.requeue_tasks_of_worker(worker.uuid, "few")) == 2
    await _make_active(store, worker, [*running, *pausing])
    with statements(store) as many:
        given = await store.scheduler.requeue_tasks_of_worker(worker.uuid, "many")
    assert len(given) == 100
    assert {record.task_uuid for record in given} == {task.uuid for task in [*running, *pausing]}
    assert [sql.split()[0] for sql in _task_statements(many)] == [sql.split()[0] for sql in _task_statements(few)]
    updates = [sql for sql in many if sql.lstrip().upper().startswith("UPDATE TASKS")]
    assert len(updates) == 2  # one per new status
    if store.runner.facts.update_returning:
        assert all("RETURNING" in sql for sql in updates)
        assert len(_task_statements(many)) == 2
    else:
        locked = [sql for sql in many if sql.lstrip().upper().startswith("SELECT") and "FOR UPDATE" in sql]
        assert len(locked) == 1
        assert all("RETURNING" not in sql for sql in updates)


async def test_concurrent_requeues_of_one_worker_give_each_task_back_once(store: Store) -> None:
    worker = await create_worker(store)
    job, running, pausing_job, pausing = await _jobs(store, running=20, pausing=10)
    everything = {task.uuid for task in [*running, *pausing]}
    for round_number in range(5):
        await _make_active(store, worker, [*running, *pausing])
        answers = await asyncio.gather(
            *(store.scheduler.requeue_tasks_of_worker(worker.uuid, f"round {round_number}") for _ in range(2))
        )
        given = [record.task_uuid for answer in answers for record in answer]
        assert sorted(given) == sorted(everything)  # each exactly once in total
        summary = await store.jobs.count_tasks_in_status(job.uuid, TaskStatus.QUEUED)
        assert summary == (20, 20)
        assert await store.jobs.count_tasks_in_status(pausing_job.uuid, TaskStatus.PAUSED) == (10, 10)


async def test_a_requeue_racing_a_time_out_gives_each_task_back_once(store: Store) -> None:
    worker = await create_worker(store)
    _, running, _, pausing = await _jobs(store, running=15, pausing=5)
    await _make_active(store, worker, [*running, *pausing])
    requeued, timed_out = await asyncio.gather(
        store.scheduler.requeue_tasks_of_worker(worker.uuid, "it signed off"),
        store.scheduler.time_out_worker(worker.uuid),
    )
    given = [record.task_uuid for record in [*requeued, *timed_out]]
    assert sorted(given) == sorted(task.uuid for task in [*running, *pausing])
    assert (await store.workers.fetch(worker.uuid)).status is WorkerStatus.ERROR


async def test_an_unknown_worker_is_not_found_and_the_next_call_works(store: Store) -> None:
    worker = await create_worker(store)
    job, running, _, _ = await _jobs(store, running=1, pausing=0)
    await _make_active(store, worker, running)
    with pytest.raises(NotFound, match="worker"):
        await store.scheduler.requeue_tasks_of_worker(uuid4(), "it signed off")
    with pytest.raises(NotFound, match="worker"):
        await store.scheduler.time_out_worker(uuid4())
    with pytest.raises(InvalidInput, match="reason"):
        await store.scheduler.requeue_tasks_of_worker(worker.uuid, "r" * 10_000)
    with pytest.raises(InvalidInput, match="worker"):
        await store.scheduler.requeue_tasks_of_worker("not a uuid", "it signed off")  # type: ignore[arg-type]
    assert (await store.tasks.fetch(running[0].uuid)).status is TaskStatus.ACTIVE
    assert await store.scheduler.requeue_tasks_of_worker(worker.uuid, "it signed off") == [
        GivenBack(running[0].uuid, job.uuid, TaskStatus.QUEUED)
    ]


async def test_a_soft_deleted_worker_still_gives_its_tasks_back(store: Store) -> None:
    worker = await create_worker(store)
    job, running, _, _ = await _jobs(store, running=1, pausing=0)
    await _make_active(store, worker, running)
    await store.workers.delete(worker.uuid)
    assert await store.scheduler.requeue_tasks_of_worker(worker.uuid, "it was deleted") == [
        GivenBack(running[0].uuid, job.uuid, TaskStatus.QUEUED)
    ]
