"""``state_machine.request_worker_status`` and ``forget_worker``, on every
backend: Flamenco's status change requests (asking for the status a worker
has clears the request), and a worker forgotten with its active tasks given
back in one transaction, also while claims for it run."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import Select, func, select
from sqlalchemy.engine import Connection

from statestore import Conflict, InvalidInput, NotFound, Store
from statestore.changes.kinds import ChangeKind
from statestore.farm import TaskStatus, Worker, WorkerStatus
from statestore.farm.tables import TASKS, WORKERS
from tests.support.farm_fixtures import create_worker, job_of, render_task
from tests.support.feed_reading import settled_changes
from tests.support.state_machine_fixtures import activate, job_with, task_statuses


def _scalar(connection: Connection, statement: Select[Any]) -> Any:
    return connection.execute(statement).scalar_one()


async def _changes(store: Store, kind: ChangeKind) -> list[tuple[str | None, str | None, str, str]]:
    return [(c.old, c.new, c.reason, c.who) for c in await settled_changes(store, kinds=[kind])]


async def test_a_request_is_stored_and_recorded_and_the_same_status_clears_it(store: Store) -> None:
    worker = await create_worker(store)
    asked = await store.state_machine.request_worker_status(
        worker.uuid, "asleep", lazy=True, reason="night", who="operator:ann"
    )
    assert (asked.status, asked.status_requested, asked.lazy_status_request) == (
        WorkerStatus.AWAKE,
        WorkerStatus.ASLEEP,
        True,
    )
    fetched = await store.workers.fetch(worker.uuid)
    assert (fetched.status_requested, fetched.lazy_status_request) == (WorkerStatus.ASLEEP, True)
    # Asking for the status it has clears the pending request.
    cleared = await store.state_machine.request_worker_status(worker.uuid, WorkerStatus.AWAKE, reason="never mind")
    assert (cleared.status, cleared.status_requested, cleared.lazy_status_request) == (WorkerStatus.AWAKE, None, False)
    assert await _changes(store, ChangeKind.WORKER_REQUESTED) == [
        ("awake", "asleep", "night", "operator:ann"),
        ("awake", None, "never mind", "manager"),
    ]


async def test_an_asleep_worker_gets_no_work_until_woken(store: Store) -> None:
    worker = await create_worker(store)
    await job_with(store, TaskStatus.QUEUED)
    await store.state_machine.request_worker_status(worker.uuid, WorkerStatus.ASLEEP, reason="night")
    assert await store.scheduler.claim(worker.uuid) is None  # a request pending: no work
    await store.state_machine.request_worker_status(worker.uuid, WorkerStatus.AWAKE, reason="morning")
    assert await store.scheduler.claim(worker.uuid) is not None


async def test_forget_gives_back_the_active_tasks_and_soft_deletes(store: Store) -> None:
    worker = await create_worker(store)
    job, tasks = await job_with(store, TaskStatus.QUEUED, TaskStatus.QUEUED)
    await activate(store, worker, tasks[0])
    given = await store.state_machine.forget_worker(worker.uuid, reason="decommissioned", who="operator:ann")
    assert [(g.task_uuid, g.job_uuid, g.status) for g in given] == [(tasks[0], job.uuid, TaskStatus.QUEUED)]
    assert await task_statuses(store, tasks) == [TaskStatus.QUEUED, TaskStatus.QUEUED]
    with pytest.raises(NotFound):
        await store.workers.fetch(worker.uuid)
    assert await _changes(store, ChangeKind.WORKER_FORGOTTEN) == [("awake", None, "decommissioned", "operator:ann")]
    with pytest.raises(NotFound):  # forgotten once
        await store.state_machine.forget_worker(worker.uuid, reason="again")
    # The store works after the refusal, and another worker gets the task.
    other = await create_worker(store, "other")
    assert await store.scheduler.claim(other.uuid) is not None


async def test_bad_input_is_refused_before_any_sql(store: Store) -> None:
    worker = await create_worker(store)
    for call, match in [
        (store.state_machine.request_worker_status("nope", "asleep", reason="r"), "worker"),
        (store.state_machine.request_worker_status(worker.uuid, "dozing", reason="r"), "worker status"),
        (store.state_machine.request_worker_status(worker.uuid, "asleep", lazy="yes", reason="r"), "lazy"),  # type: ignore[arg-type]
        (store.state_machine.request_worker_status(worker.uuid, "asleep", reason=5), "reason"),  # type: ignore[arg-type]
        (store.state_machine.forget_worker(worker.uuid, reason="r", who="x" * 10_000), "who"),
    ]:
        with pytest.raises(InvalidInput, match=match):
            await call
    with pytest.raises(NotFound):
        await store.state_machine.request_worker_status(uuid4(), "asleep", reason="r")
    with pytest.raises(NotFound):
        await store.state_machine.forget_worker(uuid4(), reason="r")
    assert (await store.workers.fetch(worker.uuid)).status_requested is None


async def test_a_forget_racing_claims_never_leaves_a_task_with_a_deleted_worker(store: Store) -> None:
    """Claims for the worker run while it is forgotten: whichever wins, no
    task ends active on the forgotten worker."""
    for round_ in range(5):
        worker = await create_worker(store, f"w{round_}")
        authored = job_of(*[render_task(f"r{round_}-{i}") for i in range(4)], name=f"job {round_}")
        await store.jobs.store_authored(authored)

        async def claims(worker: Worker) -> None:
            for _ in range(4):
                try:
                    claimed = await store.scheduler.claim(worker.uuid)
                except (NotFound, Conflict):
                    return
                if claimed is None:
                    return

        results = await asyncio.gather(
            claims(worker), store.state_machine.forget_worker(worker.uuid, reason="gone"), return_exceptions=True
        )
        assert not [r for r in results if isinstance(r, BaseException)], results
        # Read directly: the repositories refuse a soft-deleted worker.
        active = (
            select(func.count())
            .select_from(TASKS.join(WORKERS, WORKERS.c.id == TASKS.c.worker_id))
            .where(WORKERS.c.uuid == worker.uuid, TASKS.c.status == TaskStatus.ACTIVE.value)
        )
        assert await store.read(partial(_scalar, statement=active)) == 0, round_
