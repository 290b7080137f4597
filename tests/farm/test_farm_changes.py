"""The farm model appends its changes to the change feed (``changes``) in
the transaction that makes them, on every backend: status changes of jobs
and tasks as the status history has them (and those the raw saves make,
which have no history entry), workers' status changes, jobs stored and
deleted; a refused call appends nothing. On PostgreSQL, the commits that
can make work claimable NOTIFY claim waiters, and others do not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from uuid import UUID

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from statestore import Conflict, NotFound, Store
from statestore.changes.tables import CHANGES
from statestore.core.wakeups import WORK_CHANNEL
from statestore.farm import AuthoredTask, JobStatus, TaskStatus, WorkerStatus
from tests.support.farm_fixtures import create_worker, job_of, render_task

Row = tuple[Any, ...]

REPORTED = "reported by the worker"


def _rows(connection: Connection) -> list[Row]:
    columns = [CHANGES.c[name] for name in ("kind", "job_uuid", "task_uuid", "worker_uuid", "old_value", "new_value")]
    columns += [CHANGES.c.reason, CHANGES.c.who]
    return [tuple(row) for row in connection.execute(select(*columns).order_by(CHANGES.c.id))]


async def changes(store: Store, after: int = 0) -> list[Row]:
    """The feed's rows, oldest first, from the ``after``-th on."""
    return (await store.read(_rows))[after:]


async def count(store: Store) -> int:
    return int(
        await store.read(lambda connection: connection.execute(select(func.count()).select_from(CHANGES)).scalar_one())
    )


async def status_changes_of(store: Store, job: UUID) -> list[Row]:
    """The job's status history, as the feed's rows of those changes."""
    entries = await store.status_history.of_job(job, limit=10_000)
    return [
        (
            "task.status" if e.task_uuid else "job.status",
            e.job_uuid,
            e.task_uuid,
            None,
            e.old_status,
            e.new_status,
            e.reason,
            e.who,
        )
        for e in entries
    ]


def _status_rows(rows: list[Row]) -> list[Row]:
    return [row for row in rows if row[0] in ("job.status", "task.status")]


def stored(job: UUID, status: str = "queued") -> Row:
    return ("job.stored", job, None, None, None, status, "", "")


def task_row(job: UUID, task: UUID, old: str, new: str, reason: str, who: str) -> Row:
    return ("task.status", job, task, None, old, new, reason, who)


def job_row(job: UUID, old: str, new: str, reason: str, who: str) -> Row:
    return ("job.status", job, None, None, old, new, reason, who)


def worker_row(worker: UUID, old: str | None, new: str) -> Row:
    return ("worker.status", None, None, worker, old, new, "", "")


# -- jobs stored and claimed -----------------------------------------------------------


async def test_a_stored_job_is_in_the_feed_with_its_status(store: Store) -> None:
    job = await store.jobs.store_authored(job_of(render_task("one"), render_task("two")))
    held = await store.jobs.store_authored(job_of(render_task("three"), status=JobStatus.PAUSED))
    assert await changes(store) == [stored(job.uuid), stored(held.uuid, "paused")]


async def test_the_feed_orders_by_the_writing_transaction(backend: str, store: Store) -> None:
    await store.jobs.store_authored(job_of(render_task("one")))
    (tx,) = await store.read(lambda connection: connection.execute(select(CHANGES.c.tx)).scalars().all())
    if backend == "postgresql":
        assert tx is not None
        assert tx > 0
    elif backend == "mysql":
        assert tx is None  # numbered by the feed's readers
    else:
        assert tx == 0  # one writer: ids are commit order


async def test_a_claim_records_the_task_and_the_job_it_activates(store: Store) -> None:
    worker = await create_worker(store)
    job = await store.jobs.store_authored(job_of(render_task("one"), render_task("two")))
    before = await count(store)
    first = await store.scheduler.claim(worker.uuid)
    assert first is not None
    who = str(worker.uuid)
    assert await changes(store, before) == [
        task_row(job.uuid, first.task.uuid, "queued", "active", "claimed by the worker", who),
        job_row(job.uuid, "queued", "active", "a task became active", who),
    ]
    assert _status_rows(await changes(store)) == await status_changes_of(store, job.uuid)
    again = await store.scheduler.claim(worker.uuid)  # its active task again: no change
    assert again is not None
    assert not again.newly_claimed
    assert len(await changes(store, before)) == 2


async def test_a_claim_without_activate_records_nothing(store: Store) -> None:
    worker = await create_worker(store)
    await store.jobs.store_authored(job_of(render_task("one")))
    before = await count(store)
    assert await store.scheduler.claim(worker.uuid, activate=False) is not None
    assert await count(store) == before


# -- completions -------------------------------------------------------------------------


async def test_a_completion_records_the_task_and_then_the_job_completing(store: Store) -> None:
    worker = await create_worker(store)
    job = await store.jobs.store_authored(job_of(render_task("one"), render_task("two")))
    who = str(worker.uuid)
    first = await store.scheduler.claim(worker.uuid)
    assert first is not None
    before = await count(store)
    # Another task is unfinished: on PostgreSQL the one-statement fast path, and nothing for the job.
    await store.state_machine.worker_task_update(worker.uuid, first.task.uuid, status="completed")
    assert await changes(store, before) == [task_row(job.uuid, first.task.uuid, "active", "completed", REPORTED, who)]
    second = await store.scheduler.claim(worker.uuid)
    assert second is not None
    before = await count(store)
    await store.state_machine.worker_task_update(worker.uuid, second.task.uuid, status="completed", activity="done")
    assert await changes(store, before) == [
        task_row(job.uuid, second.task.uuid, "active", "completed", "done", who),
        job_row(job.uuid, "active", "completed", "all tasks completed", who),
    ]
    assert _status_rows(await changes(store)) == await status_changes_of(store, job.uuid)
    assert (await store.jobs.fetch(job.uuid)).status == JobStatus.COMPLETED


async def test_the_feed_has_the_history_s_times(store: Store) -> None:
    worker = await create_worker(store)
    job = await store.jobs.store_authored(job_of(render_task("one")))
    claimed = await store.scheduler.claim(worker.uuid)
    assert claimed is not None
    await store.state_machine.worker_task_update(worker.uuid, claimed.task.uuid, status="completed")
    times = await store.read(
        lambda connection: (
            connection.execute(
                select(CHANGES.c.at).where(CHANGES.c.kind.in_(["job.status", "task.status"])).order_by(CHANGES.c.id)
            )
            .scalars()
            .all()
        )
    )
    assert times == [entry.at for entry in await store.status_history.of_job(job.uuid)]


# -- a manager's calls -------------------------------------------------------------------


async def test_a_cancel_records_every_change_of_the_ripple(store: Store) -> None:
    worker = await create_worker(store)
    job = await store.jobs.store_authored(job_of(render_task("one"), render_task("two"), render_task("three")))
    claimed = await store.scheduler.claim(worker.uuid)
    assert claimed is not None
    before = await count(store)
    await store.state_machine.job_status_change(job.uuid, JobStatus.CANCEL_REQUESTED, reason="no more", who="Ton")
    rows = await changes(store, before)
    assert rows[0] == job_row(job.uuid, "active", "cancel-requested", "no more", "Ton")
    assert rows[-1][4:6] == ("cancel-requested", "canceled")
    canceled = {row[2] for row in rows if row[0] == "task.status"}
    assert len(canceled) == 3  # the active one and the two queued ones
    assert _status_rows(await changes(store)) == await status_changes_of(store, job.uuid)


async def test_a_pause_records_the_job_and_the_tasks_it_pauses(store: Store) -> None:
    worker = await create_worker(store)
    job = await store.jobs.store_authored(job_of(render_task("one"), render_task("two")))
    active = await store.scheduler.claim(worker.uuid)
    assert active is not None
    (queued,) = await store.tasks.of_job_in_status(job.uuid, TaskStatus.QUEUED)
    before = await count(store)
    await store.state_machine.job_status_change(job.uuid, JobStatus.PAUSE_REQUESTED, reason="lunch")
    assert await changes(store, before) == [
        job_row(job.uuid, "active", "pause-requested", "lunch", "manager"),
        task_row(job.uuid, queued.uuid, "queued", "paused", "job pause-requested", "manager"),
    ]  # a task is still active: the job waits in pause-requested
    assert _status_rows(await changes(store)) == await status_changes_of(store, job.uuid)


async def test_a_refused_call_records_nothing(store: Store) -> None:
    worker, other = await create_worker(store, "one"), await create_worker(store, "two")
    job = await store.jobs.store_authored(job_of(render_task("one"), render_task("two")))
    claimed = await store.scheduler.claim(worker.uuid)
    assert claimed is not None
    before = await changes(store)
    with pytest.raises(Conflict):  # not an allowed transition
        await store.state_machine.job_status_change(job.uuid, JobStatus.UNDER_CONSTRUCTION, reason="no")
    with pytest.raises(Conflict):  # not this worker's task (on PostgreSQL: past the fast path)
        await store.state_machine.worker_task_update(other.uuid, claimed.task.uuid, status="completed")
    (queued,) = await store.tasks.of_job_in_status(job.uuid, TaskStatus.QUEUED)
    with pytest.raises(Conflict):  # queued → completed is not allowed
        await store.state_machine.task_status_change(queued.uuid, TaskStatus.COMPLETED, reason="skip it")
    assert await changes(store) == before


# -- raw saves, give-backs, time-outs ----------------------------------------------------


async def test_raw_saves_record_status_changes_without_history(store: Store) -> None:
    job = await store.jobs.store_authored(job_of(render_task("one")))
    (task,) = await store.tasks.of_job(job.uuid)
    before = await count(store)
    await store.jobs.save_status(job.uuid, JobStatus.ACTIVE, "made active")
    await store.jobs.save_status(job.uuid, JobStatus.ACTIVE)  # no change, nothing recorded
    await store.tasks.save_status(task.uuid, TaskStatus.SOFT_FAILED, "it broke")
    await store.tasks.save_activity(task.uuid, "just text")
    assert await changes(store, before) == [
        job_row(job.uuid, "queued", "active", "made active", ""),
        task_row(job.uuid, task.uuid, "queued", "soft-failed", "it broke", ""),
    ]
    assert await store.status_history.of_job(job.uuid) == []
    before = await count(store)
    changed = await store.jobs.update_task_statuses(job.uuid, TaskStatus.CANCELED, "all off")
    assert changed == 1
    assert await changes(store, before) == [task_row(job.uuid, task.uuid, "soft-failed", "canceled", "all off", "")]


async def test_a_give_back_and_a_time_out_are_recorded(store: Store) -> None:
    worker = await create_worker(store)
    job = await store.jobs.store_authored(job_of(render_task("one")))
    claimed = await store.scheduler.claim(worker.uuid)
    assert claimed is not None
    before = await count(store)
    await store.scheduler.requeue_tasks_of_worker(worker.uuid, "it signed off")
    assert await changes(store, before) == [
        task_row(job.uuid, claimed.task.uuid, "active", "queued", "it signed off", ""),
    ]
    again = await store.scheduler.claim(worker.uuid)
    assert again is not None
    before = await count(store)
    await store.scheduler.time_out_worker(worker.uuid)
    assert await changes(store, before) == [
        worker_row(worker.uuid, "awake", "error"),
        task_row(job.uuid, claimed.task.uuid, "active", "queued", "the worker timed out", ""),
    ]


# -- workers and deletions ------------------------------------------------------------------


async def test_worker_status_changes_are_recorded_when_the_status_changes(store: Store) -> None:
    worker = await create_worker(store, status=WorkerStatus.STARTING)
    assert await changes(store) == [worker_row(worker.uuid, None, "starting")]
    before = await count(store)
    await store.workers.save_status(worker.uuid, WorkerStatus.AWAKE)
    await store.workers.save_status(worker.uuid, WorkerStatus.AWAKE, requested=WorkerStatus.ASLEEP, lazy=True)
    await store.workers.seen(worker.uuid)
    fetched = await store.workers.fetch(worker.uuid)
    await store.workers.save(fetched)  # nothing changes
    await store.workers.save(replace(fetched, status=WorkerStatus.ASLEEP, status_requested=None))
    assert await changes(store, before) == [
        worker_row(worker.uuid, "starting", "awake"),
        worker_row(worker.uuid, "awake", "asleep"),
    ]


async def test_a_deleted_job_is_recorded_with_its_status(store: Store) -> None:
    job = await store.jobs.store_authored(job_of(render_task("one")))
    await store.state_machine.job_status_change(job.uuid, JobStatus.CANCEL_REQUESTED, reason="gone")
    await store.jobs.delete(job.uuid)
    rows = await changes(store)
    assert rows[0] == stored(job.uuid)
    assert rows[-1] == ("job.deleted", job.uuid, None, None, "canceled", None, "", "")
    assert _status_rows(rows)  # its status changes stay in the feed, its history went with it


async def test_deleting_an_unknown_job_records_nothing(store: Store) -> None:
    await store.jobs.store_authored(job_of(render_task("one")))
    before = await changes(store)
    with pytest.raises(NotFound):
        await store.jobs.delete(UUID(int=7))
    assert await changes(store) == before


# -- wake-ups on PostgreSQL -------------------------------------------------------------------


class Heard:
    """The NOTIFYs on the work channel, heard on a raw asyncpg connection
    to the store's database."""

    MARKER = "test marker"

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection
        self._queue: asyncio.Queue[str] = asyncio.Queue()

    def heard(self, *args: Any) -> None:
        self._queue.put_nowait(args[3])

    async def count(self) -> int:
        """How many wake-ups came since the last count: a marker NOTIFY sent
        now is delivered after every one committed before it."""
        await self._connection.execute("SELECT pg_notify($1, $2)", WORK_CHANNEL, self.MARKER)
        heard = 0
        while await asyncio.wait_for(self._queue.get(), 5) != self.MARKER:
            heard += 1
        return heard


ON_POSTGRESQL = pytest.mark.parametrize("backend", ["postgresql"])
"""NOTIFY is PostgreSQL's (the ``store`` fixture's backend, narrowed)."""


@pytest.fixture
async def notified(store_url: str) -> AsyncIterator[Heard]:
    connection = await asyncpg.connect(store_url)
    heard = Heard(connection)
    await connection.add_listener(WORK_CHANNEL, heard.heard)
    try:
        yield heard
    finally:
        await connection.close()


def _chain(*names: str) -> list[AuthoredTask]:
    """Tasks each depending on the one before."""
    tasks: list[AuthoredTask] = []
    for name in names:
        task = render_task(name)
        if tasks:
            task.dependencies = [tasks[-1].uuid]
        tasks.append(task)
    return tasks


@ON_POSTGRESQL
async def test_storing_a_job_notifies(store: Store, notified: Heard) -> None:
    await store.jobs.store_authored(job_of(render_task("one")))
    assert await notified.count() == 1
    # Stored paused, its tasks cannot be handed out: no wake-up.
    await store.jobs.store_authored(job_of(render_task("two"), status=JobStatus.PAUSED))
    assert await notified.count() == 0


@ON_POSTGRESQL
async def test_a_completion_notifies_only_when_it_unblocks_a_dependent(store: Store, notified: Heard) -> None:
    worker = await create_worker(store)
    first, second = _chain("first", "second")
    lone = render_task("lone")
    third = render_task("third")
    third.dependencies = [second.uuid, lone.uuid]  # waits for two
    await store.jobs.store_authored(job_of(first, second, lone, third))
    await notified.count()
    claimed = await store.scheduler.claim(worker.uuid)
    assert claimed is not None
    assert claimed.task.uuid == first.uuid
    assert await notified.count() == 0  # a claim makes no work
    await store.state_machine.worker_task_update(worker.uuid, first.uuid, status="completed")
    assert await notified.count() == 1  # second may be claimed now
    claimed = await store.scheduler.claim(worker.uuid)
    assert claimed is not None
    assert claimed.task.uuid == second.uuid
    await store.tasks.touched_by_worker(second.uuid)  # heartbeats make no work
    await store.state_machine.worker_task_update(worker.uuid, second.uuid, status="completed")
    assert await notified.count() == 0  # third still waits for lone
    claimed = await store.scheduler.claim(worker.uuid)
    assert claimed is not None
    assert claimed.task.uuid == lone.uuid
    await store.state_machine.worker_task_update(worker.uuid, lone.uuid, status="completed")
    assert await notified.count() == 1  # third may be claimed now


@ON_POSTGRESQL
async def test_a_requeue_and_a_resume_notify(store: Store, notified: Heard) -> None:
    worker = await create_worker(store)
    job = await store.jobs.store_authored(job_of(render_task("one"), render_task("two")))
    claimed = await store.scheduler.claim(worker.uuid)
    assert claimed is not None
    await notified.count()
    await store.scheduler.requeue_tasks_of_worker(worker.uuid, "it signed off")
    assert await notified.count() == 1
    await store.state_machine.job_status_change(job.uuid, JobStatus.PAUSE_REQUESTED, reason="lunch")
    assert (await store.jobs.fetch(job.uuid)).status == JobStatus.PAUSED
    assert await notified.count() == 0
    await store.state_machine.job_status_change(job.uuid, JobStatus.REQUEUEING, reason="back")
    assert await notified.count() == 1
