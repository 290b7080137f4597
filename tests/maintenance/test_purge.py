"""``statestore.maintenance.purge``: what goes and what stays, dry runs,
chunks, resumption after an interruption, bad input, on every backend; and
workers claiming and completing while 100k finished tasks are purged."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from statestore import InvalidInput, NotFound, Store
from statestore.changes.tables import CHANGES
from statestore.farm import JobStatus, TaskStatus
from statestore.farm.tables import JOBS, STATUS_HISTORY, TASKS
from statestore.flows import AtomDetail, FlowState
from statestore.flows.tables import BOOKS
from statestore.maintenance.purge import PurgeReport, purge
from tests.support.farm_fixtures import create_worker, job_of, render_task
from tests.support.farm_job_fixtures import count_rows, set_job_updated_at
from tests.support.feed_reading import settled_changes
from tests.support.flow_fixtures import book_with, flow_with
from tests.support.state_machine_fixtures import C, Q, job_with

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)
CUTOFF = datetime(2021, 1, 1, tzinfo=UTC)


async def _age_everything(store: Store) -> None:
    """History and changes made so far happened long ago."""

    def age(connection: Connection) -> None:
        connection.execute(update(STATUS_HISTORY).values(at=LONG_AGO))
        connection.execute(update(CHANGES).values(at=LONG_AGO))

    await store.write(age)


async def _book(store: Store, name: str, state: FlowState | None, *, old: bool) -> UUID:
    flow = flow_with(AtomDetail("a"), AtomDetail("b"), name=f"{name}-flow")
    flow.state = state
    book = await store.logbooks.save(book_with(flow, name=name))
    if old:
        statement = update(BOOKS).where(BOOKS.c.uuid == book.uuid).values(updated_at=LONG_AGO)
        await store.write(lambda connection: connection.execute(statement))
    return book.uuid


async def _scene(store: Store) -> dict[str, Any]:
    """Old finished jobs and books that go; recent or unfinished ones that stay."""
    done, done_tasks = await job_with(store, C, C, job_status=JobStatus.COMPLETED, name="old-completed")
    canceled, _ = await job_with(store, Q, job_status=JobStatus.CANCELED, name="old-canceled")
    recent, _ = await job_with(store, C, job_status=JobStatus.COMPLETED, name="recent-completed")
    paused, _ = await job_with(store, Q, job_status=JobStatus.PAUSED, name="old-paused")
    queued, _ = await job_with(store, Q, Q, name="old-queued")
    await store.state_machine.task_status_change(done_tasks[0], TaskStatus.COMPLETED, reason="again")  # no-op
    for job in (done, canceled, paused, queued):
        await set_job_updated_at(store, job.uuid, LONG_AGO)
    books = {
        "old-success": await _book(store, "old-success", FlowState.SUCCESS, old=True),
        "old-running": await _book(store, "old-running", FlowState.RUNNING, old=True),
        "recent-success": await _book(store, "recent-success", FlowState.SUCCESS, old=False),
    }
    return {"gone": [done.uuid, canceled.uuid], "kept": [recent.uuid, paused.uuid, queued.uuid], "books": books}


async def test_old_finished_work_goes_and_the_rest_stays(store: Store) -> None:
    scene = await _scene(store)
    await _age_everything(store)
    jobs_before, tasks_before = await count_rows(store, JOBS), await count_rows(store, TASKS)
    would = await purge(store, finished_before=CUTOFF, dry_run=True)
    assert (await count_rows(store, JOBS), await count_rows(store, TASKS)) == (jobs_before, tasks_before)
    assert (would.jobs, would.tasks, would.logbooks, would.flow_details, would.atom_details) == (2, 3, 1, 1, 2)
    done = await purge(store, finished_before=CUTOFF)
    assert done == would
    for uuid in scene["gone"]:
        with pytest.raises(NotFound):
            await store.jobs.fetch(uuid)
    for uuid in scene["kept"]:
        assert (await store.jobs.fetch(uuid)).uuid == uuid
    with pytest.raises(NotFound):
        await store.logbooks.get(scene["books"]["old-success"])
    for kept in ("old-running", "recent-success"):
        assert (await store.logbooks.get(scene["books"][kept])).uuid == scene["books"][kept]
    assert await count_rows(store, STATUS_HISTORY) == 0  # all of it was old
    left = await settled_changes(store)
    assert {c.kind.value for c in left} == {"job.deleted", "logbook.destroyed"}  # what the purge itself recorded
    assert all(c.reason.startswith("purged") for c in left if c.kind.value == "job.deleted")
    assert await purge(store, finished_before=CUTOFF) == PurgeReport()


async def test_a_purge_goes_in_chunks_and_an_interrupted_one_finishes_on_the_next_run(store: Store) -> None:
    job, _ = await job_with(store, *[C] * 12, job_status=JobStatus.COMPLETED, name="big")
    await set_job_updated_at(store, job.uuid, LONG_AGO)
    seen: list[tuple[str, int]] = []

    def interrupted(what: str, n: int) -> None:
        seen.append((what, n))
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await purge(store, finished_before=CUTOFF, chunk_size=5, progress=interrupted)
    assert all(n <= 5 for _, n in seen)
    # Part of the tasks went; the job is still there, with the rest.
    assert 0 < await count_rows(store, TASKS) < 12
    assert (await store.jobs.fetch(job.uuid)).uuid == job.uuid
    chunks: list[tuple[str, int]] = []
    done = await purge(store, finished_before=CUTOFF, chunk_size=5, progress=lambda what, n: chunks.append((what, n)))
    assert done.jobs == 1
    assert (await count_rows(store, TASKS), await count_rows(store, JOBS)) == (0, 0)
    assert all(n <= 5 for _, n in chunks)
    # The store works after the interruption.
    assert await store.jobs.page() == []


async def test_a_job_requeued_during_its_purge_is_left_alone(store: Store) -> None:
    """The purge is interrupted after its first chunk and the operator
    requeues the job: the next run re-checks under the job's lock and
    leaves the job and the tasks it still has."""
    job, _ = await job_with(store, *[C] * 6, job_status=JobStatus.COMPLETED, name="requeued")
    await set_job_updated_at(store, job.uuid, LONG_AGO)

    def stop(what: str, n: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await purge(store, finished_before=CUTOFF, chunk_size=2, progress=stop)
    assert await count_rows(store, TASKS) == 4
    await store.state_machine.job_status_change(job.uuid, JobStatus.REQUEUEING, reason="needed after all")
    done = await purge(store, finished_before=CUTOFF, chunk_size=2)
    assert (done.jobs, done.tasks) == (0, 0)
    assert (await store.jobs.fetch(job.uuid)).status is JobStatus.QUEUED
    assert await count_rows(store, TASKS) == 4


async def test_bad_input_is_refused_before_any_sql(store: Store) -> None:
    await _scene(store)
    before = await count_rows(store, JOBS)
    for kwargs, match in [
        ({"finished_before": datetime(2021, 1, 1)}, "finished_before"),  # naive
        ({"finished_before": "2021-01-01"}, "finished_before"),
        ({"finished_before": datetime.now(UTC) + timedelta(days=1)}, "future"),
        ({"finished_before": CUTOFF, "chunk_size": 0}, "chunk_size"),
        ({"finished_before": CUTOFF, "chunk_size": True}, "chunk_size"),
        ({"finished_before": CUTOFF, "dry_run": "yes"}, "dry_run"),
    ]:
        with pytest.raises(InvalidInput, match=match):
            await purge(store, **kwargs)
    assert await count_rows(store, JOBS) == before


def _complete_all(connection: Connection, job_id: int) -> None:
    connection.execute(
        update(TASKS).where(TASKS.c.job_id == job_id).values(status=TaskStatus.COMPLETED.value, job_schedulable=False)
    )
    connection.execute(
        update(JOBS).where(JOBS.c.id == job_id).values(status=JobStatus.COMPLETED.value, updated_at=LONG_AGO)
    )


async def test_workers_claim_and_complete_while_100k_finished_tasks_are_purged(backend: str, store: Store) -> None:
    if backend not in ("sqlite-file", "postgresql"):
        pytest.skip("the long run is on a SQLite file and PostgreSQL; the others run the chunked purge above")
    big = await store.jobs.store_authored(job_of(*[render_task(f"f{i}") for i in range(100_000)], name="finished"))
    await store.write(partial(_complete_all, job_id=big.id))
    work = await store.jobs.store_authored(job_of(*[render_task(f"w{i}") for i in range(60)], name="live"))
    workers = [await create_worker(store, f"box-{i}") for i in range(3)]
    claimed: list[UUID] = []
    purging = asyncio.Event()
    purged = 0  # tasks the purge has removed so far
    purged_at_claims: list[int] = []

    def count(what: str, n: int) -> None:
        nonlocal purged
        purged += n if what == "tasks" else 0

    async def worker_loop(worker_uuid: UUID) -> None:
        await purging.wait()
        while True:
            got = await store.scheduler.claim(worker_uuid)
            if got is None:
                return
            claimed.append(got.task.uuid)
            purged_at_claims.append(purged)
            await store.state_machine.worker_task_update(worker_uuid, got.task.uuid, status="completed")

    async def purge_it() -> PurgeReport:
        purging.set()
        return await purge(store, finished_before=CUTOFF, chunk_size=5000, progress=count)

    results = await asyncio.gather(purge_it(), *(worker_loop(w.uuid) for w in workers))
    report = results[0]
    assert isinstance(report, PurgeReport)
    assert (report.jobs, report.tasks) == (1, 100_000)
    assert sorted(map(str, claimed)) == sorted(str(t.uuid) for t in await store.tasks.of_job(work.uuid))
    assert len(set(claimed)) == len(claimed) == 60  # each once
    # The claims ran while the purge was half-way, not before or after it.
    assert any(0 < n < 100_000 for n in purged_at_claims), purged_at_claims
    assert (await store.jobs.fetch(work.uuid)).status is JobStatus.COMPLETED
    remaining = select(func.count()).select_from(TASKS).where(TASKS.c.job_id == big.id)
    assert await store.read(lambda connection: connection.execute(remaining).scalar_one()) == 0
