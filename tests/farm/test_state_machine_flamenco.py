"""Flamenco's own state-machine tests, on a real database of every backend.

Translated from Flamenco's ``internal/manager/task_state_machine/
task_state_machine_test.go`` (18 tests), ``worker_requeue_test.go`` (2) and
the ``onTaskFailed`` cases of ``internal/manager/api_impl/
worker_task_updates_test.go``. Upstream, the persistence layer is mocked and
each test states which calls it expects; here every scenario is built in the
database (tasks and job put straight into their statuses, rippling nothing,
as the mocks hand them over) and the outcome is read back: statuses, steps,
activities, failure lists, the blocklist, and the status history the state
machine wrote. Where statestore deliberately behaves differently from
Flamenco, the test checks statestore's behaviour and its docstring says so.
"""

from __future__ import annotations

from uuid import UUID

import pytest
from sqlalchemy import event

from statestore import InvalidInput, Store
from statestore.farm import GivenBack, JobStatus, StatusChange, TaskFailed, TaskStatus, Worker
from tests.support.farm_fixtures import create_worker
from tests.support.state_machine_fixtures import (
    A,
    C,
    F,
    P,
    Q,
    S,
    X,
    activate,
    history_of_job,
    in_task_order,
    job_status,
    job_with,
    last_cursor,
    snapshot,
    task_statuses,
)
from tests.support.statements import statements

CANCELLED_BY_FAILED_JOB = 'Manager cancelled this task because the job got status "failed".'
CANCELLED_BY_CANCEL = 'Manager cancelled this task because the job got status "cancel-requested".'
PAUSED_BY_PAUSE = 'Manager paused this task because the job got status "pause-requested".'
NO_WORKERS_LEFT = 'no more workers left to run tasks of type "misc"'

# The blocklist threshold of the upstream tests that "don't cover blocklisting".
NO_BLOCKLISTING = 65535


async def _steps(store: Store, job: UUID) -> int:
    return (await store.jobs.fetch(job)).steps_completed


# -- task_state_machine_test.go: a task's change and its job ------------------------


async def test_task_queued_to_active_makes_the_job_active(store: Store) -> None:
    """TestTaskStatusChangeQueuedToActive: T queued → active, J queued → active."""
    job, (task,) = await job_with(store, Q)
    changes = await store.state_machine.task_status_change(task, "active", reason="a worker took it")
    assert changes == (
        StatusChange(job.uuid, task, "queued", "active", "a worker took it", "manager"),
        StatusChange(job.uuid, None, "queued", "active", "task became active", "manager"),
    )
    assert await task_statuses(store, [task]) == [A]
    assert await job_status(store, job.uuid) is JobStatus.ACTIVE
    assert await history_of_job(store, job.uuid) == [(task, "queued", "active"), (None, "queued", "active")]


class _JobSaveError(Exception):
    """What the database says when it cannot save the job's status."""


async def test_a_job_change_that_fails_takes_the_task_change_with_it(store: Store) -> None:
    """TestTaskStatusChangeSaveTaskAfterJobChangeFailure, the statestore way.

    Upstream, the task's new status is saved even when saving the job's
    fails, and the error is returned. statestore deliberately differs: a
    state-machine call is one transaction, so the error reaches the caller
    and the task's change is rolled back with the job's; no half-rippled
    state, no history. (The failure is injected where the job's status is
    written to the database.)"""
    job, (task,) = await job_with(store, Q)
    before = await snapshot(store)

    def refuse_job_status(_conn: object, _cursor: object, sql: str, *_rest: object) -> None:
        if sql.lstrip().upper().startswith("UPDATE JOBS SET STATUS"):
            raise _JobSaveError("hypothetical job save error")

    engine = store.runner.sync_engine
    event.listen(engine, "before_cursor_execute", refuse_job_status)
    try:
        with pytest.raises(_JobSaveError, match="hypothetical job save error"):
            await store.state_machine.task_status_change(task, TaskStatus.ACTIVE, reason="a worker took it")
    finally:
        event.remove(engine, "before_cursor_execute", refuse_job_status)
    assert await snapshot(store) == before
    assert await history_of_job(store, job.uuid) == []
    # The next call works and makes both changes.
    await store.state_machine.task_status_change(task, TaskStatus.ACTIVE, reason="a worker took it")
    assert (await task_statuses(store, [task]), await job_status(store, job.uuid)) == ([A], JobStatus.ACTIVE)


async def test_tasks_completing_one_by_one_complete_the_job(store: Store) -> None:
    """TestTaskStatusChangeActiveToCompleted: three active tasks of an active
    job; the first completes (J stays active, its steps done), the second
    soft-fails (J stays active) and then completes (J stays active), the
    third completes (J → completed)."""
    job, (first, second, third) = await job_with(store, A, A, A, job_status=JobStatus.ACTIVE)
    machine = store.state_machine

    await machine.task_status_change(first, "completed", reason="done")
    assert await job_status(store, job.uuid) is JobStatus.ACTIVE
    assert ((await store.tasks.fetch(first)).steps_completed, await _steps(store, job.uuid)) == (1, 1)

    await machine.task_status_change(second, "soft-failed", reason="hiccup")
    assert await job_status(store, job.uuid) is JobStatus.ACTIVE
    await machine.task_status_change(second, "completed", reason="done")
    assert await job_status(store, job.uuid) is JobStatus.ACTIVE
    assert await _steps(store, job.uuid) == 2

    changes = await machine.task_status_change(third, "completed", reason="done")
    assert changes[-1] == StatusChange(job.uuid, None, "active", "completed", "all tasks completed", "manager")
    assert await job_status(store, job.uuid) is JobStatus.COMPLETED
    assert await task_statuses(store, [first, second, third]) == [C, C, C]
    assert await _steps(store, job.uuid) == 3
    assert await history_of_job(store, job.uuid) == [
        (first, "active", "completed"),
        (second, "active", "soft-failed"),
        (second, "soft-failed", "completed"),
        (third, "active", "completed"),
        (None, "active", "completed"),
    ]


async def test_one_failed_task_of_a_hundred_makes_a_queued_job_active(store: Store) -> None:
    """TestTaskStatusChangeQueuedToFailed: T queued → failed at 1 in 100
    failed, J queued → active (below the 10% that fails a job)."""
    job, tasks = await job_with(store, *[Q] * 100)
    changes = await store.state_machine.task_status_change(tasks[0], "failed", reason="broken")
    assert [(change.task_uuid, change.old_status, change.new_status) for change in changes] == [
        (tasks[0], "queued", "failed"),
        (None, "queued", "active"),
    ]
    assert await job_status(store, job.uuid) is JobStatus.ACTIVE
    assert await store.jobs.count_tasks_in_status(job.uuid, F) == (1, 100)
    assert await store.jobs.count_tasks_in_status(job.uuid, Q) == (99, 100)


async def test_the_tenth_failed_task_of_a_hundred_fails_the_job(store: Store) -> None:
    """TestTaskStatusChangeActiveToFailedFailJob: T active → failed with 10
    in 100 failed, J active → failed, and every task that could still run
    (active, queued, soft-failed) is canceled with Flamenco's activity;
    completed and failed tasks stay as they are."""
    statuses = [A, *[F] * 9, C, S, A, *[Q] * 87]
    job, tasks = await job_with(store, *statuses, job_status=JobStatus.ACTIVE)
    cursor = await last_cursor(store, job.uuid)
    await store.state_machine.task_status_change(tasks[0], "failed", reason="broken")
    assert await job_status(store, job.uuid) is JobStatus.FAILED
    assert await task_statuses(store, tasks) == [F, *[F] * 9, C, X, X, *[X] * 87]
    for task in (tasks[11], tasks[12], tasks[13]):
        assert (await store.tasks.fetch(task)).activity == CANCELLED_BY_FAILED_JOB
    assert (await store.tasks.fetch(tasks[10])).activity != CANCELLED_BY_FAILED_JOB
    history = await history_of_job(store, job.uuid, after=cursor)
    assert history[:2] == [(tasks[0], "active", "failed"), (None, "active", "failed")]
    assert in_task_order(history[2:], tasks) == [
        (task, status.value, "canceled") for task, status in zip(tasks[11:], statuses[11:], strict=True)
    ]
    job_entry = (await store.status_history.of_job(job.uuid, after=cursor))[1]
    assert job_entry.reason == "too many tasks failed"


async def test_requeueing_a_task_of_a_completed_job_requeues_the_job(store: Store) -> None:
    """TestTaskStatusChangeRequeueOnCompletedJob: T completed → queued,
    J completed → requeueing → queued; coming from completed, every task is
    queued again, and all steps (the task's, the job's) go back to 0."""
    job, tasks = await job_with(store, C, C, C, job_status=JobStatus.COMPLETED)
    assert job.steps_completed == 3
    await store.state_machine.task_status_change(tasks[0], "queued", reason="again")
    assert await job_status(store, job.uuid) is JobStatus.QUEUED
    assert await task_statuses(store, tasks) == [Q, Q, Q]
    assert [(await store.tasks.fetch(task)).steps_completed for task in tasks] == [0, 0, 0]
    assert await _steps(store, job.uuid) == 0
    requeued = 'Manager queued this task because the job got status "requeueing".'
    assert [(await store.tasks.fetch(task)).activity for task in tasks[1:]] == [requeued, requeued]
    assert await history_of_job(store, job.uuid) == [
        (tasks[0], "completed", "queued"),
        (None, "completed", "requeueing"),
        (tasks[1], "completed", "queued"),
        (tasks[2], "completed", "queued"),
        (None, "requeueing", "queued"),
    ]


async def test_canceling_the_last_runnable_task_cancels_a_cancel_requested_job(store: Store) -> None:
    """TestTaskStatusChangeCancelSingleTask: J cancel-requested with an active
    and a queued task; T1 active → canceled leaves J cancel-requested (one
    task can still run), T2 queued → canceled makes J canceled."""
    job, (first, second) = await job_with(store, A, Q, job_status=JobStatus.CANCEL_REQUESTED)
    assert await store.state_machine.task_status_change(first, "canceled", reason="stop") == (
        StatusChange(job.uuid, first, "active", "canceled", "stop", "manager"),
    )
    assert await job_status(store, job.uuid) is JobStatus.CANCEL_REQUESTED
    changes = await store.state_machine.task_status_change(second, "canceled", reason="stop")
    assert changes[-1] == StatusChange(
        job.uuid,
        None,
        "cancel-requested",
        "canceled",
        "canceled task was last runnable task of job, canceling job",
        "manager",
    )
    assert await job_status(store, job.uuid) is JobStatus.CANCELED
    assert await task_statuses(store, [first, second]) == [X, X]


async def test_failed_and_paused_tasks_do_not_keep_a_job_from_being_canceled(store: Store) -> None:
    """TestTaskStatusChangeCancelSingleTaskWithOtherFailed: J cancel-requested
    with tasks active, failed, paused; T1 active → canceled makes J canceled
    (the failed and paused ones cannot run), and those two stay as they are."""
    job, tasks = await job_with(store, A, F, P, job_status=JobStatus.CANCEL_REQUESTED)
    await store.state_machine.task_status_change(tasks[0], "canceled", reason="stop")
    assert await job_status(store, job.uuid) is JobStatus.CANCELED
    assert await task_statuses(store, tasks) == [X, F, P]
    assert await history_of_job(store, job.uuid) == [
        (tasks[0], "active", "canceled"),
        (None, "cancel-requested", "canceled"),
    ]


async def test_an_unknown_task_status_is_refused_before_any_sql(store: Store) -> None:
    """TestTaskStatusChangeUnknownStatus, the statestore way.

    Upstream, T queued → "borked" is saved and the job left alone.
    statestore deliberately differs: a status that does not exist is
    InvalidInput, checked before any SQL; nothing is saved."""
    _, (task,) = await job_with(store, Q)
    before = await snapshot(store)
    with statements(store) as sent, pytest.raises(InvalidInput, match="borked"):
        await store.state_machine.task_status_change(task, "borked", reason="unknown")
    assert sent == []
    assert await snapshot(store) == before


# -- task_state_machine_test.go: a job's change and its tasks ------------------------


async def test_requeueing_a_job_with_some_completed_tasks(store: Store) -> None:
    """TestJobRequeueWithSomeCompletedTasks: J active → requeueing queues
    the canceled, failed, paused and soft-failed tasks, keeps the completed
    one (and its steps: the job's counters are re-summed), and J → queued."""
    job, tasks = await job_with(store, C, F, S, X, P, job_status=JobStatus.ACTIVE)
    changes = await store.state_machine.job_status_change(job.uuid, "requeueing", reason="someone wrote a unittest")
    assert changes[0] == StatusChange(job.uuid, None, "active", "requeueing", "someone wrote a unittest", "manager")
    assert changes[-1] == StatusChange(job.uuid, None, "requeueing", "queued", "someone wrote a unittest", "manager")
    assert await job_status(store, job.uuid) is JobStatus.QUEUED
    assert await task_statuses(store, tasks) == [C, Q, Q, Q, Q]
    assert await _steps(store, job.uuid) == 1
    assert await history_of_job(store, job.uuid) == [
        (None, "active", "requeueing"),
        (tasks[1], "failed", "queued"),
        (tasks[2], "soft-failed", "queued"),
        (tasks[3], "canceled", "queued"),
        (tasks[4], "paused", "queued"),
        (None, "requeueing", "queued"),
    ]


async def test_requeueing_a_job_with_all_tasks_completed(store: Store) -> None:
    """TestJobRequeueWithAllCompletedTasks: J completed → requeueing queues
    every task, the steps are re-summed (to 0), and J → queued (not back to
    completed: by then no task is completed)."""
    job, tasks = await job_with(store, C, C, C, job_status=JobStatus.COMPLETED)
    await store.state_machine.job_status_change(job.uuid, JobStatus.REQUEUEING, reason="someone wrote a unit test")
    assert await job_status(store, job.uuid) is JobStatus.QUEUED
    assert await task_statuses(store, tasks) == [Q, Q, Q]
    assert await _steps(store, job.uuid) == 0
    assert await history_of_job(store, job.uuid) == [
        (None, "completed", "requeueing"),
        *[(task, "completed", "queued") for task in tasks],
        (None, "requeueing", "queued"),
    ]


async def test_canceling_a_job_with_some_completed_tasks(store: Store) -> None:
    """TestJobCancelWithSomeCompletedTasks: J active → cancel-requested
    cancels what could still run (active, queued, soft-failed) with
    Flamenco's activity, leaves completed and failed tasks, and J → canceled."""
    job, tasks = await job_with(store, C, F, S, A, Q, job_status=JobStatus.ACTIVE)
    await store.state_machine.job_status_change(job.uuid, "cancel-requested", reason="someone wrote a unittest")
    assert await job_status(store, job.uuid) is JobStatus.CANCELED
    assert await task_statuses(store, tasks) == [C, F, X, X, X]
    assert [(await store.tasks.fetch(task)).activity for task in tasks[2:]] == [CANCELLED_BY_CANCEL] * 3
    assert await history_of_job(store, job.uuid) == [
        (None, "active", "cancel-requested"),
        (tasks[2], "soft-failed", "canceled"),
        (tasks[3], "active", "canceled"),
        (tasks[4], "queued", "canceled"),
        (None, "cancel-requested", "canceled"),
    ]


async def test_pausing_a_job_with_all_tasks_queued(store: Store) -> None:
    """TestJobPauseWithAllQueuedTasks: J queued → pause-requested pauses the
    queued tasks with Flamenco's activity; none is active, so J → paused."""
    job, tasks = await job_with(store, Q, Q, Q)
    await store.state_machine.job_status_change(job.uuid, "pause-requested", reason="someone wrote a unittest")
    assert await job_status(store, job.uuid) is JobStatus.PAUSED
    assert await task_statuses(store, tasks) == [P, P, P]
    assert [(await store.tasks.fetch(task)).activity for task in tasks] == [PAUSED_BY_PAUSE] * 3
    assert await history_of_job(store, job.uuid) == [
        (None, "queued", "pause-requested"),
        *[(task, "queued", "paused") for task in tasks],
        (None, "pause-requested", "paused"),
    ]


async def test_pausing_a_job_with_some_tasks_completed(store: Store) -> None:
    """TestJobPauseWithSomeCompletedTasks: J queued → pause-requested pauses
    the queued tasks, leaves the completed one, and J → paused."""
    job, tasks = await job_with(store, C, Q, Q)
    await store.state_machine.job_status_change(job.uuid, "pause-requested", reason="someone wrote a unittest")
    assert await job_status(store, job.uuid) is JobStatus.PAUSED
    assert await task_statuses(store, tasks) == [C, P, P]
    assert await _steps(store, job.uuid) == 1


async def test_pausing_a_job_with_an_active_task_waits_for_it(store: Store) -> None:
    """TestJobPauseWithSomeActiveTasks: J active → pause-requested pauses
    the queued task, lets the active one run, and J stays pause-requested."""
    job, tasks = await job_with(store, A, C, Q, job_status=JobStatus.ACTIVE)
    changes = await store.state_machine.job_status_change(job.uuid, "pause-requested", reason="unittest")
    assert [(change.task_uuid, change.old_status, change.new_status) for change in changes] == [
        (None, "active", "pause-requested"),
        (tasks[2], "queued", "paused"),
    ]
    assert await job_status(store, job.uuid) is JobStatus.PAUSE_REQUESTED
    assert await task_statuses(store, tasks) == [A, C, P]


async def test_canceling_a_pause_requested_job(store: Store) -> None:
    """TestJobCancelWhilePauseRequested: J pause-requested → cancel-requested
    cancels the active task, leaves the completed and the paused one (as
    Flamenco does: paused tasks are not among those canceled), and J → canceled."""
    job, tasks = await job_with(store, A, C, P, job_status=JobStatus.PAUSE_REQUESTED)
    await store.state_machine.job_status_change(job.uuid, "cancel-requested", reason="someone wrote a unittest")
    assert await job_status(store, job.uuid) is JobStatus.CANCELED
    assert await task_statuses(store, tasks) == [X, C, P]
    assert await history_of_job(store, job.uuid) == [
        (None, "pause-requested", "cancel-requested"),
        (tasks[0], "active", "canceled"),
        (None, "cancel-requested", "canceled"),
    ]


async def test_a_task_assigned_to_a_worker_goes_active(store: Store) -> None:
    """TestTaskAssignedToWorker: a task assigned to worker "werkertje" goes
    queued → active and J queued → active; the task names its worker (what
    Flamenco's task update broadcasts)."""
    worker = await create_worker(store, "werkertje")
    job, (task,) = await job_with(store, Q)
    await store.tasks.assign_to_worker(task, worker.uuid)
    await store.state_machine.task_status_change(task, "active", reason="assigned")
    stored = await store.tasks.fetch(task)
    assert (stored.status, stored.worker_uuid) == (A, worker.uuid)
    assert await job_status(store, job.uuid) is JobStatus.ACTIVE
    current = await store.tasks.current_of_worker(worker.uuid)
    assert current is not None
    assert current.uuid == task


async def test_check_stuck_finishes_a_requeue(store: Store) -> None:
    """TestCheckStuck: a job stuck in requeueing (with a completed, a failed
    and a soft-failed task) has its requeue finished at start-up: the two
    unfinished tasks are queued, the steps re-summed, and J → queued. A job
    that is not stuck is left alone."""
    job, tasks = await job_with(store, C, F, S, job_status=JobStatus.REQUEUEING)
    other, other_tasks = await job_with(store, A, Q, job_status=JobStatus.ACTIVE, name="other")
    changes = await store.state_machine.check_stuck()
    assert {change.job_uuid for change in changes} == {job.uuid}
    assert changes[-1].new_status == "queued"
    assert await job_status(store, job.uuid) is JobStatus.QUEUED
    assert await task_statuses(store, tasks) == [C, Q, Q]
    assert await _steps(store, job.uuid) == 1
    assert await history_of_job(store, job.uuid) == [
        (tasks[1], "failed", "queued"),
        (tasks[2], "soft-failed", "queued"),
        (None, "requeueing", "queued"),
    ]
    assert (await job_status(store, other.uuid), await task_statuses(store, other_tasks)) == (JobStatus.ACTIVE, [A, Q])


# -- worker_requeue_test.go --------------------------------------------------------------


async def test_requeue_active_tasks_of_worker(store: Store) -> None:
    """TestRequeueActiveTasksOfWorker: a worker signs off with two active
    tasks (it should not have two, but both must come back): both are
    queued with the activity "Task was queued by Manager because worker had
    to test" and their steps reset; the job stays active."""
    worker = await create_worker(store, "testert")
    job, tasks = await job_with(store, Q, Q, steps=4)
    await activate(store, worker, *tasks)
    await store.state_machine.worker_task_update(worker.uuid, tasks[0], steps_completed=3)
    assert await _steps(store, job.uuid) == 3
    cursor = await last_cursor(store, job.uuid)
    given = await store.state_machine.requeue_active_tasks_of_worker(worker.uuid, reason="worker had to test")
    assert given == [GivenBack(tasks[0], job.uuid, Q), GivenBack(tasks[1], job.uuid, Q)]
    for task in tasks:
        stored = await store.tasks.fetch(task)
        assert (stored.status, stored.steps_completed) == (Q, 0)
        assert stored.activity == "Task was queued by Manager because worker had to test"
    assert await _steps(store, job.uuid) == 0
    assert await job_status(store, job.uuid) is JobStatus.ACTIVE
    entries = await store.status_history.of_job(job.uuid, after=cursor)
    assert [(entry.task_uuid, entry.old_status, entry.new_status, entry.reason) for entry in entries] == [
        (task, "active", "queued", "worker had to test") for task in tasks
    ]


async def test_pause_active_tasks_of_worker(store: Store) -> None:
    """TestPauseActiveTasksOfWorker: the job is pause-requested, with one
    paused task and one active on a worker that signs off; the active task
    is paused ("Task was paused by Manager because worker had to test") and,
    being the job's last active task, the job → paused."""
    worker = await create_worker(store, "testert")
    job, tasks = await job_with(store, Q, Q)
    await activate(store, worker, tasks[0])
    await store.state_machine.job_status_change(job.uuid, "pause-requested", reason="pause it")
    assert (await job_status(store, job.uuid), await task_statuses(store, tasks)) == (JobStatus.PAUSE_REQUESTED, [A, P])
    cursor = await last_cursor(store, job.uuid)
    given = await store.state_machine.requeue_active_tasks_of_worker(worker.uuid, reason="worker had to test")
    assert given == [GivenBack(tasks[0], job.uuid, P)]
    assert (await store.tasks.fetch(tasks[0])).activity == "Task was paused by Manager because worker had to test"
    assert await task_statuses(store, tasks) == [P, P]
    assert await job_status(store, job.uuid) is JobStatus.PAUSED
    assert await history_of_job(store, job.uuid, after=cursor) == [
        (tasks[0], "active", "paused"),
        (None, "pause-requested", "paused"),
    ]


# -- worker_task_updates_test.go: onTaskFailed ---------------------------------------


async def _misc_job(store: Store, tasks: int = 30) -> tuple[UUID, list[UUID]]:
    """A job of ``misc`` tasks, enough that a failed task or two does not
    reach the 10% that fails a job."""
    job, uuids = await job_with(store, *[Q] * tasks, task_type="misc")
    return job.uuid, uuids


async def _fail(
    store: Store, worker: Worker, task: UUID, *, threshold: int = 3, fail_after: int = 3, hand_over: bool = True
) -> TaskFailed:
    """The worker runs the task and reports that it failed."""
    if hand_over:
        await activate(store, worker, task)
    return await store.state_machine.worker_task_failed(
        worker.uuid, task, reason="exit code 1", blocklist_threshold=threshold, fail_after_workers=fail_after
    )


async def _failure_list(store: Store, task: UUID) -> list[UUID]:
    return [worker.uuid for worker in await store.task_failures.workers(task)]


async def test_task_update_failed_soft_fails_then_hard_fails(store: Store) -> None:
    """TestTaskUpdateFailed: a worker reports its task failed (blocklisting
    out of the way); the first failure, with other workers able to run the
    task, soft-fails it; once three workers have failed it
    (task_fail_after_softfail_count 3) it fails hard. The job, with 1 task
    of 30 failed, stays active. The reports go through worker_task_update
    with status "failed", as upstream they go through TaskUpdate."""
    job, tasks = await _misc_job(store)
    workers = [await create_worker(store, name) for name in ("дрон", "w2", "w3", "w4")]
    for count, worker in enumerate(workers[:3], start=1):
        await activate(store, worker, tasks[0])
        changes = await store.state_machine.worker_task_update(
            worker.uuid, tasks[0], status="failed", activity="exit code 1", blocklist_threshold=NO_BLOCKLISTING
        )
        expected = S if count < 3 else F
        assert changes[0] == StatusChange(job, tasks[0], "active", expected.value, "exit code 1", str(worker.uuid))
        assert await task_statuses(store, tasks[:1]) == [expected]
        assert await _failure_list(store, tasks[0]) == [worker.uuid for worker in workers[:count]]
    assert await job_status(store, job) is JobStatus.ACTIVE
    assert await store.blocklist.entries(job) == []


async def test_blocking_after_failure_requeues_the_workers_failed_tasks(store: Store) -> None:
    """TestBlockingAfterFailure, first case: the worker's third failed task
    of a type on the job (threshold 3) blocklists it; other workers are left,
    so the task soft-fails and the worker's earlier *failed* tasks of the
    job are requeued for others to run.

    statestore counts the failure being reported once: after two failed
    tasks the worker is not blocklisted yet (Flamenco, on a real database,
    counts it twice and blocklists it there, one failure early)."""
    job, tasks = await _misc_job(store)
    worker = await create_worker(store, "дрон")
    other = await create_worker(store, "other")
    # Two earlier tasks failed hard at once (fail after one worker).
    for task in tasks[:2]:
        outcome = await _fail(store, worker, task, fail_after=1)
        assert (outcome.task_status, outcome.blocklisted, outcome.requeued) == (F, False, ())
    assert await store.blocklist.entries(job) == []  # Flamenco would have blocklisted at the second
    outcome = await _fail(store, worker, tasks[2])
    assert outcome.task_status is S
    assert outcome.job_status is JobStatus.ACTIVE
    assert (outcome.failed_workers, outcome.blocklisted) == (1, True)
    assert outcome.requeued == (GivenBack(tasks[0], job, Q), GivenBack(tasks[1], job, Q))
    assert await task_statuses(store, tasks[:3]) == [Q, Q, S]
    assert (
        await store.tasks.fetch(tasks[0])
    ).activity == "Task was queued by Manager because the worker was blocklisted"
    entries = await store.blocklist.entries(job)
    assert [(entry.worker_uuid, entry.task_type) for entry in entries] == [(worker.uuid, "misc")]
    assert await store.blocklist.workers_left_to_run(job, "misc") == {other.uuid}
    assert await job_status(store, job) is JobStatus.ACTIVE


async def test_blocking_that_leaves_no_workers_fails_the_job(store: Store) -> None:
    """TestBlockingAfterFailure, second case: the blocklisting leaves no
    worker to run the type (the only other one is blocklisted already): the
    task fails hard and the job fails with Flamenco's reason; nothing is
    requeued, since the job failed. Its runnable tasks are canceled."""
    job, tasks = await _misc_job(store)
    worker = await create_worker(store, "дрон")
    other = await create_worker(store, "other")
    for task in tasks[:2]:
        assert (await _fail(store, worker, task)).task_status is S
    await store.blocklist.add(job, other.uuid, "misc")
    outcome = await _fail(store, worker, tasks[2])
    assert (outcome.task_status, outcome.job_status) == (F, JobStatus.FAILED)
    assert (outcome.blocklisted, outcome.requeued) == (True, ())
    assert await job_status(store, job) is JobStatus.FAILED
    assert await task_statuses(store, tasks[:4]) == [X, X, F, X]
    job_changes = [change for change in outcome.changes if change.task_uuid is None]
    assert [(change.old_status, change.new_status, change.reason) for change in job_changes] == [
        ("active", "failed", NO_WORKERS_LEFT)
    ]


async def test_the_other_worker_having_failed_the_task_fails_the_job(store: Store) -> None:
    """TestBlockingAfterFailure, third case: nobody is blocklisted, but the
    one other worker able to run the task has failed it already: no worker
    is left for it, so the task fails hard and the job fails."""
    job, tasks = await _misc_job(store)
    worker = await create_worker(store, "дрон")
    other = await create_worker(store, "other")
    assert (await _fail(store, other, tasks[0])).task_status is S
    outcome = await _fail(store, worker, tasks[0])
    assert (outcome.task_status, outcome.job_status, outcome.blocklisted) == (F, JobStatus.FAILED, False)
    assert outcome.failed_workers == 2
    assert await store.blocklist.entries(job) == []
    assert await job_status(store, job) is JobStatus.FAILED
    job_entries = [entry for entry in await store.status_history.of_job(job) if entry.task_uuid is None]
    assert [(entry.new_status, entry.reason, entry.who) for entry in job_entries][-1] == (
        "failed",
        NO_WORKERS_LEFT,
        str(worker.uuid),
    )


async def test_job_failure_after_worker_task_failure(store: Store) -> None:
    """TestJobFailureAfterWorkerTaskFailure: the only worker able to run the
    task fails it (its first failure, blocklisting out of the way): no
    worker is left, so the task fails hard and the job fails with "no more
    workers left to run tasks of type "misc""."""
    job, tasks = await _misc_job(store)
    worker = await create_worker(store, "дрон")
    outcome = await _fail(store, worker, tasks[0], threshold=NO_BLOCKLISTING)
    assert (outcome.task_status, outcome.job_status, outcome.failed_workers) == (F, JobStatus.FAILED, 1)
    assert await job_status(store, job) is JobStatus.FAILED
    assert (await store.jobs.fetch(job)).activity == f'Changed to status "failed": {NO_WORKERS_LEFT}'
    assert (await store.tasks.fetch(tasks[0])).activity == "exit code 1"


async def test_one_other_worker_left_soft_fails_the_task(store: Store) -> None:
    """The workers-left check of onTaskFailed, the statestore way.

    Flamenco fails the job when at most one worker is left to run the task,
    reasoning that the failing worker is not on the task's failure list yet
    and so still counted; but it already is, so on a real database Flamenco
    fails the job while another worker could still run the task. statestore
    counts the workers left with the failing one on the failure list, and
    fails the job only when none is left: with one other worker able to run
    the task, the task soft-fails and the job goes on."""
    job, tasks = await _misc_job(store)
    worker = await create_worker(store, "дрон")
    other = await create_worker(store, "other")
    outcome = await _fail(store, worker, tasks[0], threshold=NO_BLOCKLISTING)
    assert (outcome.task_status, outcome.job_status, outcome.failed_workers) == (S, JobStatus.ACTIVE, 1)
    assert await job_status(store, job) is JobStatus.ACTIVE
    assert await store.blocklist.workers_left_to_run(job, "misc") == {worker.uuid, other.uuid}
    assert await _failure_list(store, tasks[0]) == [worker.uuid]
