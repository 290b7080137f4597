"""Drift of the maintained columns: found exactly, repaired, and never
reported on a store the writers kept, on every backend."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import Table, func, select

from statestore import InvalidInput, Store
from statestore.farm import AuthoredJob, AuthoredTask, Command, JobStatus, TaskStatus
from statestore.farm.tables import JOBS, TASKS
from statestore.maintenance.repair import Drift, find_drift, repair
from tests.support.farm_fixtures import authored_job, create_worker, job_of, render_task, store_job
from tests.support.state_machine_fixtures import set_columns

QUEUED = JobStatus.QUEUED


def _chain(name: str, length: int, *, steps: int = 2, priority: int = 50) -> AuthoredJob:
    """A job of ``length`` tasks, each depending on the one before."""
    tasks: list[AuthoredTask] = []
    for index in range(length):
        before: list[UUID | str | AuthoredTask] = [tasks[-1].uuid] if tasks else []
        command = Command("run", {"frame": index}, total_step_count=steps)
        tasks.append(AuthoredTask(f"{name}-{index}", "blender", commands=[command], dependencies=before))
    return AuthoredJob(name, "chain", priority=priority, status=QUEUED, tasks=tasks)


async def _column(store: Store, table: Table, uuid: UUID, column: str) -> Any:
    statement = select(table.c[column]).where(table.c.uuid == uuid)
    return await store.read(lambda connection: connection.execute(statement).scalar_one())


async def _updated_at(store: Store, uuid: UUID) -> Any:
    return await _column(store, TASKS, uuid, "updated_at")


# -- each maintained column, corrupted by hand ---------------------------------------


async def test_a_count_set_on_a_task_without_dependencies_is_found_and_the_task_becomes_claimable(
    store: Store,
) -> None:
    """The reported case: ``check`` said OK and the task could never be claimed."""
    only = render_task("only")
    job = await store_job(store, job_of(only))
    worker = await create_worker(store)
    await set_columns(store, TASKS, only.uuid, pending_dependencies=3)
    assert await store.scheduler.claim(worker.uuid) is None
    expected = [Drift("tasks", only.uuid, "pending_dependencies", 3, 0)]
    assert await find_drift(store) == expected
    before = await _updated_at(store, only.uuid)
    assert await repair(store) == expected
    assert await find_drift(store) == []
    assert await _column(store, TASKS, only.uuid, "pending_dependencies") == 0
    assert await _updated_at(store, only.uuid) == before  # derived data, not a change of the task
    scheduled = await store.scheduler.claim(worker.uuid)
    assert scheduled is not None
    assert (scheduled.task.uuid, scheduled.task.job_uuid) == (only.uuid, job.uuid)


@pytest.mark.parametrize(("stored", "completed", "expected"), [(0, 0, 2), (2, 1, 1), (1, 2, 0), (5, 0, 2)])
async def test_a_wrong_count_of_a_task_with_dependencies_is_found_and_recounted(
    store: Store, stored: int, completed: int, expected: int
) -> None:
    authored = authored_job(status=QUEUED)
    await store_job(store, authored)
    *renders, video = authored.tasks
    for render in renders[:completed]:
        await store.tasks.save_status(render.uuid, TaskStatus.COMPLETED)
    await set_columns(store, TASKS, video.uuid, pending_dependencies=stored)
    drift = [Drift("tasks", video.uuid, "pending_dependencies", stored, expected)]
    assert await find_drift(store) == drift
    assert await repair(store) == drift
    assert await _column(store, TASKS, video.uuid, "pending_dependencies") == expected
    assert await find_drift(store) == []


async def test_a_wrong_copy_of_the_job_priority_is_found_and_copied_again(store: Store) -> None:
    first, second = render_task("first"), render_task("second")
    await store_job(store, job_of(first, second, priority=40))
    await set_columns(store, TASKS, second.uuid, job_priority=99)
    drift = [Drift("tasks", second.uuid, "job_priority", 99, 40)]
    assert await find_drift(store) == drift
    assert await repair(store) == drift
    assert [await _column(store, TASKS, task.uuid, "job_priority") for task in (first, second)] == [40, 40]
    assert await find_drift(store) == []


@pytest.mark.parametrize(("job_status", "stored"), [(JobStatus.QUEUED, False), (JobStatus.PAUSED, True)])
async def test_a_wrong_copy_of_whether_the_job_is_schedulable_is_found_and_copied_again(
    store: Store, job_status: JobStatus, stored: bool
) -> None:
    task = render_task("only")
    await store_job(store, job_of(task, status=job_status))
    worker = await create_worker(store)
    await set_columns(store, TASKS, task.uuid, job_schedulable=stored)
    drift = [Drift("tasks", task.uuid, "job_schedulable", stored, not stored)]
    assert await find_drift(store) == drift
    assert await repair(store) == drift
    assert await _column(store, TASKS, task.uuid, "job_schedulable") is (not stored)
    assert await find_drift(store) == []
    claimed = await store.scheduler.claim(worker.uuid)
    assert (claimed is not None) == (job_status is JobStatus.QUEUED)


async def test_wrong_step_sums_of_a_job_are_found_and_summed_again(store: Store) -> None:
    job = await store_job(store, job_of(render_task("a", steps=3), render_task("b", steps=4)))
    assert (job.steps_completed, job.steps_total) == (0, 7)
    await set_columns(store, JOBS, job.uuid, steps_completed=5, steps_total=1)
    drift = [Drift("jobs", job.uuid, "steps_completed", 5, 0), Drift("jobs", job.uuid, "steps_total", 1, 7)]
    assert await find_drift(store) == drift
    assert await repair(store) == drift
    fetched = await store.jobs.fetch(job.uuid)
    assert (fetched.steps_completed, fetched.steps_total) == (0, 7)
    assert await find_drift(store) == []


async def test_a_job_without_tasks_sums_to_zero(store: Store) -> None:
    job = await store_job(store, job_of())
    await set_columns(store, JOBS, job.uuid, steps_total=2)
    drift = [Drift("jobs", job.uuid, "steps_total", 2, 0)]
    assert await find_drift(store) == drift
    assert await repair(store) == drift
    assert (await store.jobs.fetch(job.uuid)).steps_total == 0


# -- several at once, limits, idempotence ------------------------------------------


async def _corrupt_two_jobs(store: Store) -> tuple[list[Drift], AuthoredJob, AuthoredJob]:
    one = authored_job(status=QUEUED, name="one")
    two = _chain("two", 3, priority=70)
    await store_job(store, one)
    two_job = await store_job(store, two)
    await set_columns(store, TASKS, one.tasks[0].uuid, pending_dependencies=1, job_priority=10)
    await set_columns(store, TASKS, two.tasks[2].uuid, pending_dependencies=0, job_schedulable=False)
    await set_columns(store, JOBS, two_job.uuid, steps_completed=4)
    drift = [
        Drift("tasks", one.tasks[0].uuid, "pending_dependencies", 1, 0),
        Drift("tasks", two.tasks[2].uuid, "pending_dependencies", 0, 1),
        Drift("tasks", one.tasks[0].uuid, "job_priority", 10, 50),
        Drift("tasks", two.tasks[2].uuid, "job_schedulable", False, True),
        Drift("jobs", two_job.uuid, "steps_completed", 4, 0),
    ]
    return drift, one, two


async def test_drift_is_listed_by_kind_of_column_then_by_row_and_limited(store: Store) -> None:
    drift, _, _ = await _corrupt_two_jobs(store)
    assert await find_drift(store) == drift
    assert await find_drift(store, limit=1) == drift[:1]
    assert await find_drift(store, limit=3) == drift[:3]
    assert await find_drift(store, limit=100) == drift


@pytest.mark.parametrize("limit", [0, -1, True, "5", 2.0])
async def test_a_bad_limit_is_refused(store: Store, limit: Any) -> None:
    with pytest.raises(InvalidInput, match="limit"):
        await find_drift(store, limit=limit)


async def test_repair_fixes_everything_job_by_job_and_is_idempotent(store: Store) -> None:
    drift, _, _ = await _corrupt_two_jobs(store)
    fixed = await repair(store)
    # Job by job: the first job's drift, then the second's, each by kind of column.
    assert fixed == [drift[0], drift[2], drift[1], drift[3], drift[4]]
    assert await find_drift(store) == []
    assert await repair(store) == []
    assert await find_drift(store) == []


async def test_repair_leaves_a_clean_store_untouched(store: Store) -> None:
    authored = authored_job(status=QUEUED)
    await store_job(store, authored)
    before = [await _updated_at(store, task.uuid) for task in authored.tasks]
    assert await find_drift(store) == []
    assert await repair(store) == []
    assert [await _updated_at(store, task.uuid) for task in authored.tasks] == before


# -- no false positive: a store the writers kept -----------------------------------


async def _nontrivial(store: Store) -> tuple[int, int, int, int]:
    """How many tasks wait on a dependency, tasks of unschedulable jobs, and
    jobs with steps done; and the largest job priority copy: the clean-store
    test must cover each derived value, not only its default."""

    def read(connection: Any) -> tuple[int, int, int, int]:
        waiting = connection.execute(select(func.count()).where(TASKS.c.pending_dependencies > 0)).scalar_one()
        held = connection.execute(select(func.count()).where(~TASKS.c.job_schedulable)).scalar_one()
        stepped = connection.execute(select(func.count()).where(JOBS.c.steps_completed > 0)).scalar_one()
        priority = connection.execute(select(func.max(TASKS.c.job_priority))).scalar_one()
        return int(waiting), int(held), int(stepped), int(priority)

    return await store.read(read)


async def _run_one(store: Store, worker: UUID, *, steps: int) -> UUID | None:
    """Claim a task, report progress, complete it; the task, or None."""
    scheduled = await store.scheduler.claim(worker)
    if scheduled is None:
        return None
    task = scheduled.task.uuid
    await store.state_machine.worker_task_update(worker, task, steps_completed=steps, activity="rendering")
    await store.state_machine.worker_task_update(worker, task, status=TaskStatus.COMPLETED)
    return task


async def test_a_store_after_a_realistic_workload_has_no_drift(store: Store) -> None:
    alpha = await create_worker(store, "alpha")
    beta = await create_worker(store, "beta")
    renders = authored_job(status=QUEUED, name="renders")
    chain = _chain("chain", 4, steps=3, priority=60)
    paused = _chain("paused", 3)
    doomed = job_of(render_task("doomed-1"), render_task("doomed-2"), name="doomed")
    gone = job_of(render_task("gone-1"), name="gone")
    for job in (renders, chain, paused, doomed, gone):
        await store_job(store, job)

    # Workers take tasks in the scheduler's order and finish some.
    for _ in range(3):
        assert await _run_one(store, alpha.uuid, steps=1) is not None
    # A failure (soft: one worker of three), then a give-back of an active task.
    scheduled = await store.scheduler.claim(beta.uuid)
    assert scheduled is not None
    await store.state_machine.worker_task_failed(beta.uuid, scheduled.task.uuid, reason="out of memory")
    scheduled = await store.scheduler.claim(beta.uuid)
    assert scheduled is not None
    await store.state_machine.worker_task_update(beta.uuid, scheduled.task.uuid, steps_completed=1)
    await store.state_machine.requeue_active_tasks_of_worker(beta.uuid, reason="signed off")

    # A manager steers: priorities, a pause, a cancel, a requeue, more tasks, a deletion.
    await store.jobs.save_priority(chain.uuid, 90)
    await store.state_machine.job_status_change(paused.uuid, JobStatus.PAUSE_REQUESTED, reason="later")
    await store.state_machine.job_status_change(doomed.uuid, JobStatus.CANCEL_REQUESTED, reason="wrong scene")
    await store.jobs.add_tasks(chain.uuid, [render_task("chain-extra", steps=2)])
    await store.state_machine.job_status_change(gone.uuid, JobStatus.CANCEL_REQUESTED, reason="not needed")
    await store.state_machine.delete_job(gone.uuid, reason="cleanup")
    await _run_one(store, alpha.uuid, steps=2)
    await store.state_machine.job_status_change(renders.uuid, JobStatus.REQUEUEING, reason="new frames")
    await _run_one(store, beta.uuid, steps=1)

    waiting, held, stepped, priority = await _nontrivial(store)
    assert waiting > 0
    assert held > 0
    assert stepped > 0
    assert priority == 90
    assert await find_drift(store) == []
    assert await repair(store) == []


async def test_repair_while_workers_run_leaves_no_drift(store: Store) -> None:
    """Repair takes the writers' locks: workers finishing tasks of the jobs
    it repairs neither block for good nor undo it, nor are undone."""
    chains = [_chain(f"chain{n}", 4, steps=2) for n in range(3)]
    for chain in chains:
        await store_job(store, chain)
        # Counts too high: each chain stalls there until repaired (or recounted by a completion).
        await set_columns(store, TASKS, chain.tasks[1].uuid, pending_dependencies=5)
        await set_columns(store, TASKS, chain.tasks[3].uuid, pending_dependencies=3)
        await set_columns(store, TASKS, chain.tasks[0].uuid, job_priority=1)
    workers = [await create_worker(store, f"w{n}") for n in range(2)]

    async def work(worker: UUID) -> int:
        done = 0
        for _ in range(20):
            if await _run_one(store, worker, steps=1) is None:
                await asyncio.sleep(0.01)
            else:
                done += 1
        return done

    fixed, *_ = await asyncio.gather(repair(store), *(work(worker.uuid) for worker in workers))
    assert fixed  # something was drifted when it ran
    assert await find_drift(store) == []
    # Once repaired, every chain runs to its end.
    while await _run_one(store, workers[0].uuid, steps=2) is not None:
        pass
    statuses = await store.read(lambda connection: connection.execute(select(TASKS.c.status)).scalars().all())
    assert set(statuses) == {TaskStatus.COMPLETED.value}
    assert await find_drift(store) == []
