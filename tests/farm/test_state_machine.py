"""``store.state_machine`` and ``store.status_history``: statestore's own
rules around Flamenco's (whose tests are in test_state_machine_flamenco.py),
on every backend.

The transition guards and the same-status no-op; worker reports accepted
only from the worker that holds the task while it is active; progress and
steps; give-backs; the failure lists and blocklist a requeue clears;
time-outs, the stuck-job check and the housekeeper; the history's pages;
and bad input, refused before any SQL with nothing written.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.engine import Connection

from statestore import InvalidInput, NotFound, Store
from statestore.core.types import utcnow
from statestore.errors import Conflict
from statestore.farm import (
    JOB_TRANSITIONS,
    TASK_TRANSITIONS,
    GivenBack,
    JobStatus,
    StatusChange,
    TaskStatus,
    TimeOutSweep,
    WorkerStatus,
    is_allowed,
)
from statestore.farm.state_machine import StateMachine
from statestore.farm.status_history import MAX_PAGE
from statestore.farm.tables import STATUS_HISTORY, TASKS, WORKERS
from tests.support.farm_fixtures import authored_job, create_worker
from tests.support.farm_job_fixtures import pending
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
    set_columns,
    snapshot,
    task_statuses,
)
from tests.support.statements import statements

HOUR = timedelta(hours=1)
TEN_MINUTES = timedelta(minutes=10)
MINUTE = timedelta(minutes=1)


# -- transitions -----------------------------------------------------------------------


async def test_refused_transitions_raise_conflict_and_change_nothing(store: Store) -> None:
    """canceled → completed and completed → active (a task must be requeued
    first), and job transitions outside the table, are Conflict; nothing is
    written, not even history."""
    job, (canceled, completed) = await job_with(store, X, C, job_status=JobStatus.CANCELED)
    machine = store.state_machine
    before = await snapshot(store)
    with pytest.raises(Conflict, match="canceled → completed"):
        await machine.task_status_change(canceled, TaskStatus.COMPLETED, reason="no")
    with pytest.raises(Conflict, match="completed → active"):
        await machine.task_status_change(completed, "active", reason="no")
    with pytest.raises(Conflict, match="canceled → completed"):
        await machine.job_status_change(job.uuid, JobStatus.COMPLETED, reason="no")
    with pytest.raises(Conflict, match="canceled → pause-requested"):
        await machine.job_status_change(job.uuid, "pause-requested", reason="no")
    assert await snapshot(store) == before
    # Requeued first, the completed task may run again.
    await machine.task_status_change(completed, "queued", reason="again")
    await machine.task_status_change(completed, "active", reason="run")
    assert await task_statuses(store, [canceled, completed]) == [X, A]


def test_is_allowed_answers_from_the_tables() -> None:
    assert not is_allowed("task", "canceled", "completed")
    assert not is_allowed("task", TaskStatus.COMPLETED, TaskStatus.ACTIVE)
    assert is_allowed("task", TaskStatus.CANCELED, "queued")
    assert is_allowed("job", "cancel-requested", JobStatus.CANCELED)
    assert not is_allowed("job", "cancel-requested", "active")
    assert not is_allowed("job", "canceled", "completed")
    # A status that does not exist, or is no status of that kind, is never allowed.
    assert not is_allowed("task", "queued", "borked")
    assert not is_allowed("task", "queued", "requeueing")
    assert not is_allowed("job", "queued", "soft-failed")
    assert not is_allowed("task", None, "queued")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="kind"):
        is_allowed("worker", "awake", "asleep")  # type: ignore[arg-type]
    for kind, table in (("task", TASK_TRANSITIONS), ("job", JOB_TRANSITIONS)):
        for old, new in table:
            assert old is not new  # the same status is not a transition
            assert is_allowed(kind, old.value, new.value)  # type: ignore[arg-type]


def test_the_tables_hold_flamencos_overrides() -> None:
    """Every task can be requeued from any other status; every job too,
    but a cancel-requested one (it is on its way to canceled)."""
    for task_status in TaskStatus:
        if task_status is not TaskStatus.QUEUED:
            assert (task_status, TaskStatus.QUEUED) in TASK_TRANSITIONS
    for status in JobStatus:
        allowed = (status, JobStatus.REQUEUEING) in JOB_TRANSITIONS
        assert allowed is (status not in (JobStatus.REQUEUEING, JobStatus.CANCEL_REQUESTED))
    assert (TaskStatus.CANCELED, TaskStatus.COMPLETED) not in TASK_TRANSITIONS
    assert (TaskStatus.COMPLETED, TaskStatus.ACTIVE) not in TASK_TRANSITIONS


async def test_the_status_a_thing_has_already_changes_nothing(store: Store) -> None:
    job, (task, other) = await job_with(store, A, Q, job_status=JobStatus.ACTIVE)
    worker = await create_worker(store)
    await activate(store, worker, other)
    before = await snapshot(store)
    assert await store.state_machine.task_status_change(task, "active", reason="again") == ()
    assert await store.state_machine.job_status_change(job.uuid, JobStatus.ACTIVE, reason="again") == ()
    assert await snapshot(store) == before
    # A worker reporting the status its task has touches it, and changes no status.
    cursor = await last_cursor(store, job.uuid)
    assert await store.state_machine.worker_task_update(worker.uuid, other, status="active") == ()
    assert await task_statuses(store, [task, other]) == [A, A]
    assert await history_of_job(store, job.uuid, after=cursor) == []
    assert (await store.tasks.fetch(other)).last_touched_at is not None


async def _schedulable(store: Store, task: UUID) -> bool:
    statement = select(TASKS.c.job_schedulable).where(TASKS.c.uuid == task)
    return bool(await store.read(lambda connection: connection.execute(statement).scalar_one()))


async def test_the_derived_columns_follow_every_change(store: Store) -> None:
    """What the scheduler's index reads is kept right by every change the
    state machine makes: a task's pending dependencies (counted again when a
    dependency completes or is requeued, alone or with its job), and whether
    its job lets it be handed out (paused, requeued, canceled)."""
    authored = authored_job(status=JobStatus.QUEUED)
    job = await store.jobs.store_authored(authored)
    first, second, video = (task.uuid for task in authored.tasks)
    machine = store.state_machine
    assert await pending(store, video) == 2
    for task in (first, second):
        await machine.task_status_change(task, "active", reason="run")
        await machine.task_status_change(task, "completed", reason="done")
    assert await pending(store, video) == 0
    await machine.task_status_change(first, "queued", reason="again")
    assert await pending(store, video) == 1
    await machine.job_status_change(job.uuid, "pause-requested", reason="pause")
    assert await job_status(store, job.uuid) is JobStatus.PAUSED
    assert [await _schedulable(store, task) for task in (first, second, video)] == [False] * 3
    await machine.job_status_change(job.uuid, "requeueing", reason="resume")
    assert await task_statuses(store, [first, second, video]) == [Q, C, Q]
    assert [await _schedulable(store, task) for task in (first, second, video)] == [True] * 3
    assert await pending(store, video) == 1
    for task in (first, video):
        await machine.task_status_change(task, "active", reason="run")
        await machine.task_status_change(task, "completed", reason="done")
    assert await job_status(store, job.uuid) is JobStatus.COMPLETED
    await machine.job_status_change(job.uuid, "requeueing", reason="all again")
    assert await task_statuses(store, [first, second, video]) == [Q, Q, Q]
    assert await pending(store, video) == 2
    await machine.job_status_change(job.uuid, "cancel-requested", reason="stop")
    assert await job_status(store, job.uuid) is JobStatus.CANCELED
    assert [await _schedulable(store, task) for task in (first, second, video)] == [False] * 3


async def test_a_state_machine_with_its_own_fail_percentage(store: Store) -> None:
    """A manager may fail jobs at another share of failed tasks than
    Flamenco's 10%: at 50%, one failed task of four leaves the job going,
    the second fails it."""
    machine = StateMachine(store.runner, fail_percentage=50)
    job, tasks = await job_with(store, A, A, Q, Q, job_status=JobStatus.ACTIVE)
    await machine.task_status_change(tasks[0], "failed", reason="broken")
    assert await job_status(store, job.uuid) is JobStatus.ACTIVE
    await machine.task_status_change(tasks[1], "failed", reason="broken")
    assert await job_status(store, job.uuid) is JobStatus.FAILED
    assert await task_statuses(store, tasks) == [F, F, X, X]


# -- worker reports ------------------------------------------------------------------


async def test_a_late_report_of_a_worker_whose_task_went_elsewhere_is_refused(store: Store) -> None:
    """A worker's task was given back and claimed by another worker; the
    first worker's late report (progress, completion, failure) is Conflict
    and changes nothing: not the task, not the job, not the worker's
    last-seen time, not the failure list."""
    job, (task,) = await job_with(store, Q, steps=4)
    first = await create_worker(store, "first")
    second = await create_worker(store, "second")
    await activate(store, first, task)
    await store.state_machine.worker_task_update(first.uuid, task, steps_completed=2)
    await store.state_machine.requeue_active_tasks_of_worker(first.uuid, reason="it went quiet")
    before = await snapshot(store)
    with pytest.raises(Conflict, match="not active on worker"):
        await store.state_machine.worker_task_update(first.uuid, task, steps_completed=3)
    assert await snapshot(store) == before
    await activate(store, second, task)
    before = await snapshot(store)
    with pytest.raises(Conflict, match="assigned elsewhere"):
        await store.state_machine.worker_task_update(first.uuid, task, status="completed", steps_completed=4)
    with pytest.raises(Conflict, match="assigned elsewhere"):
        await store.state_machine.worker_task_failed(first.uuid, task, reason="crashed")
    with pytest.raises(Conflict, match="assigned elsewhere"):
        await store.state_machine.worker_task_update(first.uuid, task, activity="still here")
    assert await snapshot(store) == before
    # The worker that holds it is heard.
    await store.state_machine.worker_task_update(second.uuid, task, status="completed")
    stored = await store.tasks.fetch(task)
    assert (stored.status, stored.worker_uuid, stored.steps_completed) == (C, second.uuid, 4)
    assert await job_status(store, job.uuid) is JobStatus.COMPLETED
    with pytest.raises(Conflict, match="it is completed"):
        await store.state_machine.worker_task_update(second.uuid, task, steps_completed=1)


async def test_worker_reports_progress_activity_and_status(store: Store) -> None:
    """Progress moves the task's and the job's steps; a report touches the
    task and marks the worker seen, without history; a status goes through
    the ripple, with the worker as ``who``."""
    job, tasks = await job_with(store, Q, Q, steps=4)
    first = await create_worker(store, "first")
    second = await create_worker(store, "second")
    await activate(store, first, tasks[0])
    await activate(store, second, tasks[1])
    cursor = await last_cursor(store, job.uuid)
    started = utcnow()
    assert (
        await store.state_machine.worker_task_update(first.uuid, tasks[0], activity="frame 2", steps_completed=2) == ()
    )
    await store.state_machine.worker_task_update(second.uuid, tasks[1], steps_completed=3)
    stored = await store.tasks.fetch(tasks[0])
    assert (stored.activity, stored.steps_completed) == ("frame 2", 2)
    assert stored.last_touched_at is not None
    assert stored.last_touched_at >= started
    seen = (await store.workers.fetch(first.uuid)).last_seen_at
    assert seen is not None
    assert seen >= started
    assert (await store.jobs.fetch(job.uuid)).steps_completed == 5
    # Steps may go back (a command restarted); the job follows.
    await store.state_machine.worker_task_update(first.uuid, tasks[0], steps_completed=1)
    assert (await store.jobs.fetch(job.uuid)).steps_completed == 4
    assert await history_of_job(store, job.uuid, after=cursor) == []

    changes = await store.state_machine.worker_task_update(first.uuid, tasks[0], status="completed", activity="done")
    assert changes == (StatusChange(job.uuid, tasks[0], "active", "completed", "done", str(first.uuid)),)
    stored = await store.tasks.fetch(tasks[0])
    assert (stored.status, stored.steps_completed, stored.activity) == (C, 4, "done")
    assert (await store.jobs.fetch(job.uuid)).steps_completed == 7
    changes = await store.state_machine.worker_task_update(second.uuid, tasks[1], status=TaskStatus.COMPLETED)
    assert changes[-1] == StatusChange(job.uuid, None, "active", "completed", "all tasks completed", str(second.uuid))
    assert (await store.jobs.fetch(job.uuid)).steps_completed == 8
    assert await job_status(store, job.uuid) is JobStatus.COMPLETED


async def test_the_last_active_task_of_a_pause_requested_job_completing_pauses_it(store: Store) -> None:
    """§3.3: a task completing while its job is pause-requested, with no
    other task active, makes the job paused."""
    job, tasks = await job_with(store, Q, Q)
    worker = await create_worker(store)
    await activate(store, worker, tasks[0])
    await store.state_machine.job_status_change(job.uuid, "pause-requested", reason="pause")
    await store.state_machine.worker_task_update(worker.uuid, tasks[0], status="completed")
    assert await task_statuses(store, tasks) == [C, P]
    assert await job_status(store, job.uuid) is JobStatus.PAUSED


async def test_the_last_two_tasks_completing_at_once_complete_the_job_once(store: Store) -> None:
    """Two workers report the last two tasks completed at the same time: the
    job's lock makes them take turns, so the second one's count sees the
    first one's task and the job completes, once."""
    job, tasks = await job_with(store, Q, Q, C)
    workers = [await create_worker(store, name) for name in ("first", "second")]
    for worker, task in zip(workers, tasks, strict=False):
        await activate(store, worker, task)
    cursor = await last_cursor(store, job.uuid)
    await asyncio.gather(
        *(
            store.state_machine.worker_task_update(worker.uuid, task, status="completed")
            for worker, task in zip(workers, tasks, strict=False)
        )
    )
    assert await job_status(store, job.uuid) is JobStatus.COMPLETED
    job_entries = [entry for entry in await history_of_job(store, job.uuid, after=cursor) if entry[0] is None]
    assert job_entries == [(None, "active", "completed")]


# -- give-backs and requeues --------------------------------------------------------


async def test_a_give_back_resets_steps_and_pauses_a_pausing_job_after_its_last_task(store: Store) -> None:
    """Given back while the job is pause-requested, a task is paused with its
    steps reset and the job's steps re-summed; the job becomes paused when
    the last active task is given back, not before."""
    job, tasks = await job_with(store, Q, Q, C, steps=4)
    first = await create_worker(store, "first")
    second = await create_worker(store, "second")
    await activate(store, first, tasks[0])
    await activate(store, second, tasks[1])
    await store.state_machine.worker_task_update(first.uuid, tasks[0], steps_completed=2)
    await store.state_machine.worker_task_update(second.uuid, tasks[1], steps_completed=3)
    await store.state_machine.job_status_change(job.uuid, "pause-requested", reason="pause")
    assert (await store.jobs.fetch(job.uuid)).steps_completed == 9
    given = await store.state_machine.requeue_active_tasks_of_worker(first.uuid, reason="it signed off")
    assert given == [GivenBack(tasks[0], job.uuid, P)]
    assert (await store.tasks.fetch(tasks[0])).steps_completed == 0
    assert (await store.jobs.fetch(job.uuid)).steps_completed == 7
    assert await job_status(store, job.uuid) is JobStatus.PAUSE_REQUESTED
    cursor = await last_cursor(store, job.uuid)
    await store.state_machine.requeue_active_tasks_of_worker(second.uuid, reason="it signed off", who="ops")
    assert (await store.jobs.fetch(job.uuid)).steps_completed == 4
    assert await job_status(store, job.uuid) is JobStatus.PAUSED
    entries = await store.status_history.of_job(job.uuid, after=cursor)
    assert [(entry.task_uuid, entry.new_status, entry.who) for entry in entries] == [
        (tasks[1], "paused", "ops"),
        (None, "paused", "ops"),
    ]
    # Nothing left to give back.
    assert await store.state_machine.requeue_active_tasks_of_worker(second.uuid, reason="again") == []


async def test_requeueing_a_task_clears_its_failure_list(store: Store) -> None:
    """A task going to queued has its failure list emptied (Flamenco's web
    UI does that); the other tasks' lists stay."""
    job, tasks = await job_with(store, Q, Q, Q, Q)
    workers = [await create_worker(store, name) for name in ("first", "second", "third")]
    for task in tasks[:2]:
        await activate(store, workers[0], task)
        await store.state_machine.worker_task_failed(workers[0].uuid, task, reason="crashed")
    assert await task_statuses(store, tasks[:2]) == [S, S]
    await store.state_machine.task_status_change(tasks[0], "queued", reason="try again")
    assert await store.task_failures.workers(tasks[0]) == []
    assert [worker.uuid for worker in await store.task_failures.workers(tasks[1])] == [workers[0].uuid]
    assert await job_status(store, job.uuid) is JobStatus.ACTIVE


async def test_requeue_failed_tasks_of_worker_of_job(store: Store) -> None:
    """The worker's failed tasks of one job come back (queued, or paused in
    a pausing job) with their steps reset; its other tasks, another
    worker's, and another job's stay failed."""
    job, tasks = await job_with(store, *[Q] * 40, steps=2)  # 3 failed: below 10%
    other, other_tasks = await job_with(store, *[Q] * 30, name="other")
    worker = await create_worker(store, "first")
    second = await create_worker(store, "second")
    for failing, task in ((worker, tasks[0]), (worker, tasks[1]), (second, tasks[2]), (worker, other_tasks[0])):
        await activate(store, failing, task)
        await store.state_machine.worker_task_update(failing.uuid, task, steps_completed=1)
        await store.state_machine.worker_task_failed(failing.uuid, task, reason="crashed", fail_after_workers=1)
    assert await task_statuses(store, [*tasks[:3], other_tasks[0]]) == [F, F, F, F]
    await store.state_machine.job_status_change(job.uuid, "pause-requested", reason="pause")
    given = await store.state_machine.requeue_failed_tasks_of_worker_of_job(worker.uuid, job.uuid, reason="retry")
    assert given == [GivenBack(tasks[0], job.uuid, P), GivenBack(tasks[1], job.uuid, P)]
    assert await task_statuses(store, [*tasks[:3], other_tasks[0]]) == [P, P, F, F]
    assert [(await store.tasks.fetch(task)).steps_completed for task in tasks[:3]] == [0, 0, 1]
    assert (await store.tasks.fetch(tasks[0])).activity == "Task was paused by Manager because retry"
    assert await job_status(store, other.uuid) is JobStatus.ACTIVE


async def test_requeueing_a_job_clears_its_failure_lists_and_blocklist(store: Store) -> None:
    """A job going to requeueing loses its failure lists and blocklist (as in
    Flamenco's web UI); another job keeps its own. A job released from
    under construction by a requeue just becomes queued."""
    job, tasks = await job_with(store, S, S, C, job_status=JobStatus.ACTIVE)
    other, other_tasks = await job_with(store, S, job_status=JobStatus.ACTIVE, name="other")
    worker = await create_worker(store)
    for task in (*tasks[:2], *other_tasks):
        await store.task_failures.add(task, worker.uuid)
    for blocked in (job, other):
        await store.blocklist.add(blocked.uuid, worker.uuid, "blender")
    await store.state_machine.job_status_change(job.uuid, "requeueing", reason="again")
    assert await job_status(store, job.uuid) is JobStatus.QUEUED
    assert await task_statuses(store, tasks) == [Q, Q, C]
    assert [await store.task_failures.workers(task) for task in tasks[:2]] == [[], []]
    assert await store.blocklist.entries(job.uuid) == []
    assert [w.uuid for w in await store.task_failures.workers(other_tasks[0])] == [worker.uuid]
    assert len(await store.blocklist.entries(other.uuid)) == 1

    building, _ = await job_with(store, Q, job_status=JobStatus.UNDER_CONSTRUCTION, name="building")
    await store.state_machine.job_status_change(building.uuid, "requeueing", reason="released")
    assert await job_status(store, building.uuid) is JobStatus.QUEUED
    assert await history_of_job(store, building.uuid) == [
        (None, "under-construction", "requeueing"),
        (None, "requeueing", "queued"),
    ]


async def test_a_task_requeued_on_a_completed_job_keeps_the_jobs_blocklist(store: Store) -> None:
    """Only a manager's requeue of the job clears its failure lists and
    blocklist (Flamenco's web UI): a task requeued on a completed job
    requeues the job through the ripple, clears its own failure list, and
    leaves the other tasks' lists and the blocklist alone."""
    job, tasks = await job_with(store, C, C, job_status=JobStatus.COMPLETED)
    worker = await create_worker(store)
    for task in tasks:
        await store.task_failures.add(task, worker.uuid)
    await store.blocklist.add(job.uuid, worker.uuid, "blender")
    await store.state_machine.task_status_change(tasks[0], "queued", reason="again")
    assert await job_status(store, job.uuid) is JobStatus.QUEUED
    assert await store.task_failures.workers(tasks[0]) == []
    assert [w.uuid for w in await store.task_failures.workers(tasks[1])] == [worker.uuid]
    assert len(await store.blocklist.entries(job.uuid)) == 1


# -- time-outs -------------------------------------------------------------------------


async def test_time_out_fails_untouched_tasks_and_errors_unseen_workers(store: Store) -> None:
    """An active task untouched for the task time-out fails (through the
    state machine: not on the failure list, not blocklisting anyone); a
    worker unseen for the worker time-out goes to error with its status
    request cleared, and its active task is given back. Fresh ones, and
    workers already offline, are left alone; a second sweep finds nothing."""
    job, tasks = await job_with(store, *[Q] * 20)
    busy = await create_worker(store, "busy")
    gone = await create_worker(store, "gone")
    idle = await create_worker(store, "idle")
    fresh = await create_worker(store, "fresh")
    offline = await create_worker(store, "offline", status=WorkerStatus.OFFLINE)
    await activate(store, busy, tasks[0])
    await activate(store, gone, tasks[1])
    await activate(store, fresh, tasks[2])
    await store.workers.save_status(gone.uuid, WorkerStatus.AWAKE, requested=WorkerStatus.ASLEEP, lazy=True)
    now = utcnow()
    await set_columns(store, TASKS, tasks[0], last_touched_at=now - HOUR)
    for worker in (gone, idle, offline):
        await set_columns(store, WORKERS, worker.uuid, last_seen_at=now - HOUR)
    cursor = await last_cursor(store, job.uuid)

    sweep = await store.state_machine.time_out(task_timeout=TEN_MINUTES, worker_timeout=MINUTE)
    assert sweep.tasks_failed == (tasks[0],)
    assert sweep.workers_timed_out == (gone.uuid, idle.uuid)
    assert sweep.given_back == (GivenBack(tasks[1], job.uuid, Q),)
    assert [(change.task_uuid, change.new_status, change.who) for change in sweep.changes] == [
        (tasks[0], "failed", "housekeeper"),
        (tasks[1], "queued", "housekeeper"),
    ]
    assert await history_of_job(store, job.uuid, after=cursor) == [
        (tasks[0], "active", "failed"),
        (tasks[1], "active", "queued"),
    ]
    assert await task_statuses(store, tasks[:3]) == [F, Q, A]
    assert (await store.tasks.fetch(tasks[0])).activity == "Task timed out on worker busy"
    assert (await store.tasks.fetch(tasks[1])).activity == "Task was queued by Manager because the worker timed out"
    assert await store.task_failures.workers(tasks[0]) == []
    assert await store.blocklist.entries(job.uuid) == []
    assert await job_status(store, job.uuid) is JobStatus.ACTIVE  # 1 of 20 failed
    statuses = {worker.name: (worker.status, worker.status_requested) for worker in await store.workers.list()}
    assert statuses == {
        "busy": (WorkerStatus.AWAKE, None),
        "gone": (WorkerStatus.ERROR, None),
        "idle": (WorkerStatus.ERROR, None),
        "fresh": (WorkerStatus.AWAKE, None),
        "offline": (WorkerStatus.OFFLINE, None),
    }
    again = await store.state_machine.time_out(task_timeout=TEN_MINUTES, worker_timeout=MINUTE)
    assert again == TimeOutSweep((), (), (), ())


async def test_a_worker_that_claimed_and_sent_no_heartbeat_times_out(store: Store) -> None:
    """A worker created awake that claimed a task and was not heard of since
    times out, and its task is given back; so does one never seen at all
    (handed a task by the manager), counted from its creation."""
    job, tasks = await job_with(store, Q, Q, Q)
    worker = await create_worker(store, "claimer")
    claimed = await store.scheduler.claim(worker.uuid)
    assert claimed is not None
    never_seen = await create_worker(store, "never seen")
    handed = next(task for task in tasks if task != claimed.task.uuid)
    await activate(store, never_seen, handed)
    assert (await store.workers.fetch(never_seen.uuid)).last_seen_at is None
    machine = store.state_machine
    assert await machine.time_out(task_timeout=TEN_MINUTES, worker_timeout=MINUTE) == TimeOutSweep((), (), (), ())
    later = utcnow() + 2 * MINUTE
    sweep = await machine.time_out(task_timeout=TEN_MINUTES, worker_timeout=MINUTE, now=later)
    assert (sweep.tasks_failed, sweep.workers_timed_out) == ((), (worker.uuid, never_seen.uuid))
    assert set(sweep.given_back) == {GivenBack(claimed.task.uuid, job.uuid, Q), GivenBack(handed, job.uuid, Q)}
    assert [(await store.workers.fetch(w.uuid)).status for w in (worker, never_seen)] == [WorkerStatus.ERROR] * 2
    assert await task_statuses(store, tasks) == [Q, Q, Q]


async def test_a_heartbeat_after_the_cutoff_wins(store: Store) -> None:
    """A worker whose heartbeat, or a task whose touch, came after the
    cutoff is not timed out, however long it was silent before: whether it
    came before the sweep, or after the sweep listed it as timed out and
    before the sweep's re-check under the locks (injected there, just
    before the re-check's statement)."""
    job, tasks = await job_with(store, *[Q] * 20)
    late = await create_worker(store, "late")
    racing = await create_worker(store, "racing")
    silent = await create_worker(store, "silent")
    for worker, task in zip((late, racing, silent), tasks, strict=False):
        await activate(store, worker, task)
    long_ago = utcnow() - HOUR
    for worker, task in zip((late, racing, silent), tasks, strict=False):
        await set_columns(store, WORKERS, worker.uuid, last_seen_at=long_ago)
        await set_columns(store, TASKS, task, last_touched_at=long_ago)
    # Before the sweep: the report touches the task and marks the worker seen.
    await store.state_machine.worker_task_update(late.uuid, tasks[0], activity="still rendering")
    injected: set[str] = set()

    def heartbeat_in_between(connection: Connection, _cursor: object, sql: str, *_rest: object) -> None:
        if "worker" not in injected and sql.lstrip().upper().startswith("UPDATE WORKERS SET STATUS"):
            injected.add("worker")
            connection.execute(update(WORKERS).where(WORKERS.c.uuid == racing.uuid).values(last_seen_at=utcnow()))
        if "task" not in injected and "AS worker_name" in sql:
            injected.add("task")
            connection.execute(update(TASKS).where(TASKS.c.uuid == tasks[1]).values(last_touched_at=utcnow()))

    engine = store.runner.sync_engine
    event.listen(engine, "before_cursor_execute", heartbeat_in_between)
    try:
        sweep = await store.state_machine.time_out(task_timeout=TEN_MINUTES, worker_timeout=MINUTE)
    finally:
        event.remove(engine, "before_cursor_execute", heartbeat_in_between)
    assert injected == {"worker", "task"}
    assert (sweep.tasks_failed, sweep.workers_timed_out, sweep.given_back) == ((tasks[2],), (silent.uuid,), ())
    assert await task_statuses(store, tasks[:3]) == [A, A, F]
    statuses = [(await store.workers.fetch(worker.uuid)).status for worker in (late, racing, silent)]
    assert statuses == [WorkerStatus.AWAKE, WorkerStatus.AWAKE, WorkerStatus.ERROR]
    assert await job_status(store, job.uuid) is JobStatus.ACTIVE  # 1 of 20 failed


async def test_sweeps_at_once_do_each_thing_once(store: Store) -> None:
    """Two sweeps run at once (on the servers, on two connections): each
    re-checks under the locks, so every task fails and every worker times
    out exactly once between them."""
    job, tasks = await job_with(store, *[Q] * 12)
    workers = [await create_worker(store, f"w{index}") for index in range(3)]
    for worker, task in zip(workers, tasks, strict=False):
        await activate(store, worker, task)
    long_ago = utcnow() - HOUR
    await set_columns(store, TASKS, tasks[0], last_touched_at=long_ago)
    for worker in workers[1:]:
        await set_columns(store, WORKERS, worker.uuid, last_seen_at=long_ago)
    cursor = await last_cursor(store, job.uuid)
    sweeps = await asyncio.gather(
        *(store.state_machine.time_out(task_timeout=TEN_MINUTES, worker_timeout=MINUTE) for _ in range(2))
    )
    assert sorted(uuid for sweep in sweeps for uuid in sweep.tasks_failed) == [tasks[0]]
    assert sorted(uuid for sweep in sweeps for uuid in sweep.workers_timed_out) == sorted(w.uuid for w in workers[1:])
    assert sorted(given.task_uuid for sweep in sweeps for given in sweep.given_back) == sorted(tasks[1:3])
    assert await task_statuses(store, tasks[:3]) == [F, Q, Q]
    assert in_task_order(await history_of_job(store, job.uuid, after=cursor), tasks) == [
        (tasks[0], "active", "failed"),
        (tasks[1], "active", "queued"),
        (tasks[2], "active", "queued"),
    ]


# -- check_stuck and the housekeeper ------------------------------------------------


async def test_check_stuck_finishes_cancels_and_pauses(store: Store) -> None:
    """Jobs stuck in cancel-requested or pause-requested (a crash between
    the job's change and its tasks') have their change finished; a
    pause-requested job with a task still running stays pause-requested."""
    canceling, canceling_tasks = await job_with(store, A, Q, C, job_status=JobStatus.CANCEL_REQUESTED, name="c")
    pausing, pausing_tasks = await job_with(store, Q, S, job_status=JobStatus.PAUSE_REQUESTED, name="p")
    running, running_tasks = await job_with(store, A, Q, job_status=JobStatus.PAUSE_REQUESTED, name="r")
    changes = await store.state_machine.check_stuck()
    assert {change.who for change in changes} == {"housekeeper"}
    assert await job_status(store, canceling.uuid) is JobStatus.CANCELED
    assert await task_statuses(store, canceling_tasks) == [X, X, C]
    assert await job_status(store, pausing.uuid) is JobStatus.PAUSED
    assert await task_statuses(store, pausing_tasks) == [P, P]
    assert await job_status(store, running.uuid) is JobStatus.PAUSE_REQUESTED
    assert await task_statuses(store, running_tasks) == [A, P]
    assert await store.state_machine.check_stuck() == ()


async def test_the_housekeeper_times_out_and_deletes_until_cancelled(store: Store) -> None:
    """Run as a task with a short interval, the housekeeper finishes a stuck
    job at start, times out a worker that is never heard of, and deletes a
    job whose deletion was requested, round after round, until cancelled."""
    stuck, _ = await job_with(store, Q, job_status=JobStatus.CANCEL_REQUESTED, name="stuck")
    doomed, _ = await job_with(store, C, job_status=JobStatus.COMPLETED, name="doomed")
    kept, _ = await job_with(store, C, job_status=JobStatus.COMPLETED, name="kept")
    await store.jobs.request_deletion(doomed.uuid)
    worker = await create_worker(store, "quiet")
    housekeeper = asyncio.create_task(
        store.state_machine.housekeeper(
            task_timeout=timedelta(seconds=0.3),
            worker_timeout=timedelta(seconds=0.3),
            interval=timedelta(milliseconds=50),
        )
    )
    try:
        deadline = asyncio.get_running_loop().time() + 5
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
            remaining = {job.uuid for job in await store.jobs.list()}
            if doomed.uuid not in remaining and (await store.workers.fetch(worker.uuid)).status is WorkerStatus.ERROR:
                break
        assert not housekeeper.done()
    finally:
        housekeeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await housekeeper
    assert {job.uuid for job in await store.jobs.list()} == {stuck.uuid, kept.uuid}
    assert (await store.workers.fetch(worker.uuid)).status is WorkerStatus.ERROR
    assert await job_status(store, stuck.uuid) is JobStatus.CANCELED


# -- status history ------------------------------------------------------------------


async def test_the_history_pages_by_cursor(store: Store) -> None:
    job, tasks = await job_with(store, Q, Q, Q)
    other, _ = await job_with(store, Q, name="other")
    quiet, quiet_tasks = await job_with(store, Q, name="quiet")
    before = utcnow()
    await store.state_machine.job_status_change(job.uuid, "pause-requested", reason="pause", who="ops")
    await store.state_machine.job_status_change(job.uuid, "requeueing", reason="go on", who="ops")
    await store.state_machine.job_status_change(other.uuid, "pause-requested", reason="pause")
    everything = await store.status_history.of_job(job.uuid)
    assert len(everything) == 10  # 5 for the pause, 5 for the requeue
    assert [entry.cursor for entry in everything] == sorted({entry.cursor for entry in everything})
    assert {(entry.job_uuid, entry.who) for entry in everything} == {(job.uuid, "ops")}
    assert all(entry.at >= before - timedelta(seconds=1) for entry in everything)
    assert (everything[0].task_uuid, everything[0].old_status, everything[0].new_status) == (
        None,
        "queued",
        "pause-requested",
    )
    assert everything[0].reason == "pause"

    pages, after = [], None
    while page := await store.status_history.of_job(job.uuid, after=after, limit=4):
        pages.append(page)
        after = page[-1].cursor
    assert [len(page) for page in pages] == [4, 4, 2]
    assert [entry for page in pages for entry in page] == everything

    of_task = await store.status_history.of_task(tasks[0])
    assert [(entry.old_status, entry.new_status) for entry in of_task] == [("queued", "paused"), ("paused", "queued")]
    assert of_task == [entry for entry in everything if entry.task_uuid == tasks[0]]
    first = await store.status_history.of_task(str(tasks[0]), limit=1)
    assert first == of_task[:1]
    assert await store.status_history.of_task(tasks[0], after=first[0].cursor) == of_task[1:]
    assert await store.status_history.of_job(job.uuid, after=everything[-1].cursor) == []
    # Known, with no history: an empty page.
    assert await store.status_history.of_job(quiet.uuid) == []
    assert await store.status_history.of_task(quiet_tasks[0]) == []


async def test_the_history_of_unknown_things_and_bad_pages(store: Store) -> None:
    job, tasks = await job_with(store, Q)
    await store.state_machine.task_status_change(tasks[0], "canceled", reason="stop")
    with pytest.raises(NotFound, match="job"):
        await store.status_history.of_job(uuid4())
    with pytest.raises(NotFound, match="task"):
        await store.status_history.of_task(uuid4())
    with pytest.raises(NotFound, match="task"):
        await store.status_history.of_task(job.uuid)  # a job's uuid is no task's
    with statements(store) as sent:
        for limit in (0, -1, MAX_PAGE + 1, True, 2.0, "10"):
            with pytest.raises(InvalidInput, match="limit"):
                await store.status_history.of_job(job.uuid, limit=limit)  # type: ignore[arg-type]
        for after in (-1, "1", 1.5, 2**63):
            with pytest.raises(InvalidInput, match="after"):
                await store.status_history.of_task(tasks[0], after=after)  # type: ignore[arg-type]
        for uuid in ("not-a-uuid", 42, None, ""):
            with pytest.raises(InvalidInput):
                await store.status_history.of_job(uuid)  # type: ignore[arg-type]
    assert sent == []
    assert len(await store.status_history.of_job(job.uuid, after=0, limit=MAX_PAGE)) == 2


# -- bad input -------------------------------------------------------------------------


async def test_bad_input_is_refused_before_any_sql(store: Store) -> None:
    job, (task,) = await job_with(store, Q)
    worker = await create_worker(store)
    await activate(store, worker, task)
    machine = store.state_machine
    long_reason = "r" * 128  # half an activity, plus one
    calls = [
        ("task", machine.task_status_change("not-a-uuid", "queued", reason="x")),
        ("task", machine.task_status_change(12, "queued", reason="x")),  # type: ignore[arg-type]
        ("task status", machine.task_status_change(task, "borked", reason="x")),
        ("task status", machine.task_status_change(task, "Queued", reason="x")),
        ("reason", machine.task_status_change(task, "queued", reason=long_reason)),
        ("reason", machine.task_status_change(task, "queued", reason="nul\x00")),
        ("reason", machine.task_status_change(task, "queued", reason=None)),  # type: ignore[arg-type]
        ("who", machine.task_status_change(task, "queued", reason="x", who="w" * 65)),
        ("job", machine.job_status_change("nope", "queued", reason="x")),
        ("job status", machine.job_status_change(job.uuid, "finished", reason="x")),
        ("job status", machine.job_status_change(job.uuid, "soft-failed", reason="x")),
        ("worker", machine.worker_task_update("nope", task, steps_completed=1)),
        ("task", machine.worker_task_update(worker.uuid, "nope", steps_completed=1)),
        ("steps_completed", machine.worker_task_update(worker.uuid, task, steps_completed=-1)),
        ("steps_completed", machine.worker_task_update(worker.uuid, task, steps_completed="3")),  # type: ignore[arg-type]
        ("steps_completed", machine.worker_task_update(worker.uuid, task, steps_completed=2**31)),
        ("task status", machine.worker_task_update(worker.uuid, task, status="borked")),
        ("activity", machine.worker_task_update(worker.uuid, task, activity="a" * 256)),
        ("blocklist_threshold", machine.worker_task_update(worker.uuid, task, status="failed", blocklist_threshold=0)),
        ("fail_after_workers", machine.worker_task_failed(worker.uuid, task, reason="x", fail_after_workers=0)),
        ("reason", machine.worker_task_failed(worker.uuid, task, reason=long_reason)),
        ("worker", machine.requeue_active_tasks_of_worker("nope", reason="x")),
        ("reason", machine.requeue_active_tasks_of_worker(worker.uuid, reason=long_reason)),
        ("job", machine.requeue_failed_tasks_of_worker_of_job(worker.uuid, "nope", reason="x")),
        ("task_timeout", machine.time_out(task_timeout=600, worker_timeout=HOUR)),  # type: ignore[arg-type]
        ("task_timeout", machine.time_out(task_timeout=timedelta(0), worker_timeout=HOUR)),
        ("worker_timeout", machine.time_out(task_timeout=HOUR, worker_timeout=-HOUR)),
        ("worker_timeout", machine.time_out(task_timeout=HOUR, worker_timeout="1m")),  # type: ignore[arg-type]
        ("now", machine.time_out(task_timeout=HOUR, worker_timeout=HOUR, now=datetime(2030, 1, 1))),
        ("task_timeout", machine.housekeeper(task_timeout=5)),  # type: ignore[arg-type]
        ("interval", machine.housekeeper(interval=timedelta(0))),
    ]
    before = await snapshot(store)
    with statements(store) as sent:
        for where, call in calls:
            with pytest.raises(InvalidInput, match=where):
                await call
    assert sent == []
    assert await snapshot(store) == before
    with pytest.raises(InvalidInput, match="fail_percentage"):
        StateMachine(store.runner, fail_percentage=101)


async def test_unknown_things_are_not_found_and_nothing_is_written(store: Store) -> None:
    _, (task,) = await job_with(store, Q)
    worker = await create_worker(store)
    await activate(store, worker, task)
    machine = store.state_machine
    before = await snapshot(store)
    unknown = uuid4()
    for call, what in (
        (machine.task_status_change(unknown, "queued", reason="x"), "task"),
        (machine.job_status_change(unknown, "queued", reason="x"), "job"),
        (machine.worker_task_update(worker.uuid, unknown, steps_completed=1), "task"),
        (machine.worker_task_update(unknown, task, steps_completed=1), "worker"),
        (machine.worker_task_failed(unknown, task, reason="x"), "worker"),
        (machine.requeue_active_tasks_of_worker(unknown, reason="x"), "worker"),
        (machine.requeue_failed_tasks_of_worker_of_job(worker.uuid, unknown, reason="x"), "job"),
    ):
        with pytest.raises(NotFound, match=what):
            await call
    assert await snapshot(store) == before
    # A soft-deleted worker is not heard either.
    await store.workers.delete(worker.uuid)
    with pytest.raises(NotFound, match="worker"):
        await machine.worker_task_update(worker.uuid, task, steps_completed=1)
    assert (await store.tasks.fetch(task)).steps_completed == 0


# -- faults: cancellation, a call after an error ---------------------------------------


async def test_a_cancelled_completion_is_whole_or_absent_and_the_next_call_works(store: Store) -> None:
    """Worker completions cancelled at varying points (PostgreSQL's one
    statement with its follow-up, the others' transaction). Read in one
    snapshot at any moment, a task is either completed with its one history
    entry or still active with none (a server may still be running a
    statement the caller gave up on: its outcome is then unknown, never
    half). A repeated report completes it (or finds it completed meanwhile:
    Conflict); the job ends completed with its steps summed — a completion
    cancelled after its statement returned still settles its job."""
    job, tasks = await job_with(store, *[Q] * 12, steps=2)
    worker = await create_worker(store)
    cancelled = 0
    for index, task in enumerate(tasks):
        await activate(store, worker, task)
        report = asyncio.ensure_future(store.state_machine.worker_task_update(worker.uuid, task, status="completed"))
        for _ in range(index % 4):
            await asyncio.sleep(0)
        report.cancel()
        try:
            await report
        except asyncio.CancelledError:
            cancelled += 1
        status, completions = await store.read(lambda connection, task=task: _completion_of(connection, task))
        assert (status, completions) in (("active", 0), ("completed", 1)), (index, status, completions)
        if status == "active":
            with contextlib.suppress(Conflict):  # the cancelled statement landed meanwhile
                await store.state_machine.worker_task_update(worker.uuid, task, status="completed")
    assert cancelled  # the cancellations did land (index 0 is cancelled before it starts)
    assert await task_statuses(store, tasks) == [C] * len(tasks)
    for task in tasks:
        entries = await store.status_history.of_task(task)
        assert [entry.new_status for entry in entries] == ["active", "completed"]
    # On PostgreSQL a completion cancelled while its statement ran may commit
    # after the caller gave up, with no follow-up to settle the job (a known
    # limit, in the README): check_stuck, which the housekeeper runs every
    # round, completes such a job. Elsewhere it changes nothing here.
    await store.state_machine.check_stuck()
    assert await job_status(store, job.uuid) is JobStatus.COMPLETED
    stored = await store.jobs.fetch(job.uuid)
    assert (stored.steps_completed, stored.steps_total) == (24, 24)


def _completion_of(connection: Connection, task: UUID) -> tuple[str, int]:
    """The task's status and its completions in the history, in one snapshot."""
    task_id = select(TASKS.c.id).where(TASKS.c.uuid == task).scalar_subquery()
    completed = STATUS_HISTORY.c.new_status == "completed"
    entries = select(func.count()).where(STATUS_HISTORY.c.task_id == task_id, completed)
    row = connection.execute(select(TASKS.c.status, entries.scalar_subquery()).where(TASKS.c.uuid == task)).one()
    return str(row[0]), int(row[1])


async def test_every_kind_of_error_leaves_the_next_state_machine_call_working(store: Store) -> None:
    """Conflict, NotFound and InvalidInput from the state machine, one after
    another on the same job and worker, each change nothing; the next
    completion then goes through."""
    job, (first, second) = await job_with(store, Q, Q)
    worker = await create_worker(store)
    await activate(store, worker, first)
    before = await snapshot(store)
    failures: list[tuple[type[Exception], object]] = [
        (Conflict, store.state_machine.worker_task_update(worker.uuid, second, status="completed")),
        (Conflict, store.state_machine.task_status_change(second, "completed", reason="skip ahead")),
        (NotFound, store.state_machine.worker_task_update(worker.uuid, uuid4(), status="completed")),
        (NotFound, store.state_machine.job_status_change(uuid4(), "canceled", reason="gone")),
        (InvalidInput, store.state_machine.worker_task_update(worker.uuid, "not-a-uuid", status="completed")),
        (InvalidInput, store.state_machine.worker_task_update(worker.uuid, first, status="borked")),
    ]
    for error, call in failures:
        with pytest.raises(error):
            await call  # type: ignore[misc]
        assert await snapshot(store) == before
    await store.state_machine.worker_task_update(worker.uuid, first, status="completed")
    assert await task_statuses(store, [first, second]) == [C, Q]
    assert await job_status(store, job.uuid) is JobStatus.ACTIVE
