"""``store.state_machine``: Flamenco's manager rules, one transaction per call.

Each call validates its input before any SQL, then runs one unit of work in
which it locks what its rules decide about (the job's row first, see
:mod:`statestore.farm.ripple`), changes statuses, follows the ripple from
task to job and back, and appends every change to the status history and
to the change feed (a worker timed out too, as ``worker.status``). A call
whose changes can make work claimable announces it in its transaction and
wakes this process's claim waiters after the commit
(:mod:`statestore.farm.enabling`). Any number of processes on any number of
hosts may make these calls at once; there is no process-wide lock.

The rules are those of Flamenco's ``task_state_machine`` and
``worker_task_updates.go`` (reference §3.3–3.7), with two corrections: a
worker's failure is counted once (Flamenco counts it twice and blocklists a
worker one failure early), and a worker report is accepted only from the
worker that holds the task while it is active (Flamenco accepts the late
report of a worker that timed out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID

from sqlalchemy import and_, bindparam, exists, or_, select, update
from sqlalchemy.engine import Connection

from statestore.changes.feed import ChangeFeed
from statestore.changes.kinds import ChangeKind
from statestore.changes.recording import change, record
from statestore.core.runner import Runner, to_its_end
from statestore.core.types import utcnow
from statestore.core.validate import INTEGER, aware_datetime, enum_value, integer, shown, text, uuid_value
from statestore.errors import Conflict, InvalidInput, NotFound, StoreError
from statestore.farm.completion import Completed, any_unfinished, complete_in_one_statement, settle_completed
from statestore.farm.enabling import WorkSignal, write_enabling
from statestore.farm.fields import activity_value, boolean
from statestore.farm.jobs import delete_job, deletion_requested
from statestore.farm.lookups import job_id_of, live_worker_id, load_job, worker_id_of
from statestore.farm.records import GivenBack, Job, StatusChange, TaskFailed, TimeOutSweep, Worker
from statestore.farm.ripple import (
    CLEAR_JOB_BLOCKS,
    CLEAR_JOB_FAILURES,
    CLEAR_TASK_FAILURES,
    DEFAULT_FAIL_PERCENTAGE,
    TASK_COLUMNS,
    HeldTask,
    Ripple,
    in_statuses,
    task_from,
)
from statestore.farm.sleep_checks import check_sleep_schedules
from statestore.farm.statuses import JobStatus, TaskStatus, WorkerStatus
from statestore.farm.tables import JOBS, LENGTHS, TASKS, WORKERS
from statestore.farm.task_failures import record_failure
from statestore.farm.workers import save_status as save_worker_status
from statestore.farm.workers import soft_delete

__all__ = ["MANAGER", "StateMachine"]

log = logging.getLogger(__name__)

_WORKER_STATUS_LOCKED = (
    select(WORKERS.c.status, WORKERS.c.status_requested)
    .where(WORKERS.c.uuid == bindparam("uuid"), WORKERS.c.deleted_at.is_(None))
    .with_for_update()
)

MANAGER = "manager"
"""``who`` of a manager call that names nobody else."""

HOUSEKEEPER = "housekeeper"

REPORTED = "reported by the worker"
"""The reason of a worker's status report that gives none."""

_PAUSING_JOBS = (JobStatus.PAUSE_REQUESTED, JobStatus.PAUSED)

_STUCK_JOBS = (JobStatus.CANCEL_REQUESTED, JobStatus.REQUEUEING, JobStatus.PAUSE_REQUESTED)

_NOT_TIMING_OUT = (WorkerStatus.ERROR.value, WorkerStatus.OFFLINE.value)


_ACTIVE_JOBS_OF_WORKER = select(TASKS.c.job_id).where(
    TASKS.c.worker_id == bindparam("worker_id"), TASKS.c.status == TaskStatus.ACTIVE.value
)

_ACTIVE_OF_WORKER = (
    select(*TASK_COLUMNS)
    .where(TASKS.c.worker_id == bindparam("worker_id"), TASKS.c.status == TaskStatus.ACTIVE.value)
    .order_by(TASKS.c.id)
    .with_for_update()
)

_FAILED_OF_WORKER_OF_JOB = (
    select(*TASK_COLUMNS)
    .where(
        TASKS.c.worker_id == bindparam("worker_id"),
        TASKS.c.job_id == bindparam("job_id"),
        TASKS.c.status == TaskStatus.FAILED.value,
    )
    .order_by(TASKS.c.id)
    .with_for_update()
)

_SEEN = update(WORKERS).where(WORKERS.c.id == bindparam("b_id")).values(last_seen_at=bindparam("b_now"))

_WORKER_NAME = select(WORKERS.c.name).where(WORKERS.c.id == bindparam("id"))


def _task_timed_out(cutoff: Any) -> Any:
    # A task claimed and never touched since has no last_touched_at: its
    # updated_at (the claim) stands in, so it times out too.
    return and_(
        TASKS.c.status == TaskStatus.ACTIVE.value,
        or_(
            TASKS.c.last_touched_at <= cutoff,
            and_(TASKS.c.last_touched_at.is_(None), TASKS.c.updated_at <= cutoff),
        ),
    )


def _worker_timed_out(cutoff: Any) -> Any:
    # A worker never seen counts from its creation.
    return and_(
        WORKERS.c.deleted_at.is_(None),
        WORKERS.c.status.not_in(_NOT_TIMING_OUT),
        or_(
            WORKERS.c.last_seen_at <= cutoff,
            and_(WORKERS.c.last_seen_at.is_(None), WORKERS.c.created_at <= cutoff),
        ),
    )


_TIMED_OUT_TASKS = select(TASKS.c.id, TASKS.c.job_id).where(_task_timed_out(bindparam("task_cutoff")))

_TIMED_OUT_TASK_LOCKED = (
    select(*TASK_COLUMNS, WORKERS.c.name.label("worker_name"))
    .select_from(TASKS.outerjoin(WORKERS, WORKERS.c.id == TASKS.c.worker_id))
    .where(TASKS.c.id == bindparam("id"), _task_timed_out(bindparam("task_cutoff")))
    .with_for_update(of=TASKS)
)

_TIMED_OUT_WORKERS = select(WORKERS.c.id).where(_worker_timed_out(bindparam("worker_cutoff"))).order_by(WORKERS.c.id)

_TIME_OUT_WORKER = (
    update(WORKERS)
    .where(WORKERS.c.id == bindparam("b_id"), _worker_timed_out(bindparam("b_cutoff")))
    .values(
        status=WorkerStatus.ERROR.value, status_requested="", lazy_status_request=False, updated_at=bindparam("b_now")
    )
)

_WORKER_LOCKED = select(WORKERS.c.uuid, WORKERS.c.status).where(WORKERS.c.id == bindparam("id")).with_for_update()

_STUCK = select(JOBS.c.id).where(JOBS.c.status.in_([status.value for status in _STUCK_JOBS])).order_by(JOBS.c.id)

_UNFINISHED = [status for status in TaskStatus if status is not TaskStatus.COMPLETED]

# Active or queued jobs whose tasks are all completed: left so by a crash
# between a completion's statement and its settling (see farm.completion).
_DONE_BUT_OPEN = (
    select(JOBS.c.id)
    .where(
        JOBS.c.status.in_([JobStatus.ACTIVE.value, JobStatus.QUEUED.value]),
        exists().where(TASKS.c.job_id == JOBS.c.id),
        ~exists().where(TASKS.c.job_id == JOBS.c.id, in_statuses(TASKS.c.status, _UNFINISHED)),
    )
    .order_by(JOBS.c.id)
)


def _give_back(ripple: Ripple, task: HeldTask, reason: str) -> GivenBack:
    """Queue a worker's task again, or pause it if its job is pausing or
    paused (Flamenco's worker_requeue), with steps reset; the job ripples."""
    job = ripple.held(task.job_id)
    status = TaskStatus.PAUSED if job.status in _PAUSING_JOBS else TaskStatus.QUEUED
    activity = f"Task was {status.value} by Manager because {reason}"
    ripple.task_to(task, status, reason, activity=activity, reset_steps=True)
    return GivenBack(task.uuid, job.uuid, status)


def _give_back_active(ripple: Ripple, worker_id: int, reason: str) -> list[GivenBack]:
    """Give back every active task of the worker: its jobs are locked first
    (in id order), then its tasks; a task claimed meanwhile of a job not yet
    held has its job locked then."""
    connection = ripple.connection
    ripple.hold_jobs(connection.execute(_ACTIVE_JOBS_OF_WORKER, {"worker_id": worker_id}).scalars())
    given = []
    for row in connection.execute(_ACTIVE_OF_WORKER, {"worker_id": worker_id}).all():
        task = task_from(row)
        ripple.hold_job(task.job_id)
        given.append(_give_back(ripple, task, reason))
    return given


def _give_back_failed(ripple: Ripple, worker_id: int, job_id: int, reason: str) -> list[GivenBack]:
    ripple.hold_job(job_id)
    rows = ripple.connection.execute(_FAILED_OF_WORKER_OF_JOB, {"worker_id": worker_id, "job_id": job_id}).all()
    return [_give_back(ripple, task_from(row), reason) for row in rows]


# -- units ---------------------------------------------------------------------------


def task_status_change(
    connection: Connection,
    task_uuid: UUID,
    status: TaskStatus,
    reason: str,
    who: str,
    fail_percentage: int,
    work: WorkSignal | None = None,
) -> tuple[StatusChange, ...]:
    ripple = Ripple(connection, who, fail_percentage, work=work)
    _, task = ripple.hold_task(task_uuid)
    activity = f'Changed to status "{status.value}" by {who}: {reason}'
    if ripple.task_to(task, status, reason, activity=activity) and status is TaskStatus.QUEUED:
        # Flamenco's web UI clears a requeued task's failure list (reference §3.5).
        connection.execute(CLEAR_TASK_FAILURES, {"task_id": task.id})
    return ripple.finish()


def job_status_change(
    connection: Connection,
    job_uuid: UUID,
    status: JobStatus,
    reason: str,
    who: str,
    fail_percentage: int,
    work: WorkSignal | None = None,
) -> tuple[StatusChange, ...]:
    ripple = Ripple(connection, who, fail_percentage, work=work)
    job = ripple.hold_job(job_id_of(connection, job_uuid))
    if ripple.job_to(job, status, reason) and status is JobStatus.REQUEUEING:
        # Flamenco's web UI clears the job's failure lists and blocklist on a requeue (reference §3.5).
        connection.execute(CLEAR_JOB_FAILURES, {"job_id": job.id})
        connection.execute(CLEAR_JOB_BLOCKS, {"job_id": job.id})
    return ripple.finish()


_TASKS_OF_JOB_LOCKED = (
    select(TASKS.c.uuid, TASKS.c.status)
    .where(TASKS.c.job_id == bindparam("job_id"))
    .order_by(TASKS.c.id)
    .with_for_update()
)


def delete_job_unless_active(connection: Connection, job_uuid: UUID, reason: str, who: str) -> Job:
    # The job's row is locked first, as every call here does, then all its
    # tasks: the scheduler's claim locks only a task (skipping locked ones),
    # so this is what keeps a task from becoming active between the check
    # and the deletion. The deletion would lock every task anyway.
    job_id = job_id_of(connection, job_uuid)
    connection.execute(select(JOBS.c.id).where(JOBS.c.id == job_id).with_for_update())
    tasks = connection.execute(_TASKS_OF_JOB_LOCKED, {"job_id": job_id}).all()
    active = next((task.uuid for task in tasks if task.status == TaskStatus.ACTIVE.value), None)
    if active is not None:
        raise Conflict(f"job {job_uuid} still has an active task ({active}): cancel the job first")
    job = load_job(connection, job_uuid)
    delete_job(connection, job_uuid, reason=reason, who=who)
    return job


def _reporting(ripple: Ripple, worker_uuid: UUID, task_uuid: UUID) -> tuple[HeldTask, int]:
    """The task, held, and the worker's id: Conflict unless the task is
    active and assigned to this worker (a late report of a worker that
    timed out, or of one whose task was requeued or canceled)."""
    _, task = ripple.hold_task(task_uuid)
    worker_id = live_worker_id(ripple.connection, worker_uuid)
    if task.status is not TaskStatus.ACTIVE or task.worker_id != worker_id:
        raise Conflict(
            f"task {task_uuid} is not active on worker {worker_uuid} (it is {task.status.value}"
            f"{'' if task.worker_id == worker_id else ' and assigned elsewhere'}): the report is refused"
        )
    ripple.connection.execute(_SEEN, {"b_id": worker_id, "b_now": ripple.now})
    return task, worker_id


def worker_task_update(
    connection: Connection,
    worker_uuid: UUID,
    task_uuid: UUID,
    status: TaskStatus | None,
    activity: str | None,
    steps_completed: int | None,
    failure: dict[str, int],
    work: WorkSignal | None = None,
) -> tuple[StatusChange, ...]:
    ripple = Ripple(connection, str(worker_uuid), failure["fail_percentage"], work=work)
    task, worker_id = _reporting(ripple, worker_uuid, task_uuid)
    values: dict[str, Any] = {"last_touched_at": ripple.now, "updated_at": ripple.now}
    if activity is not None:
        values["activity"] = activity
    if steps_completed is not None and steps_completed != task.steps_completed:
        values["steps_completed"] = steps_completed
        connection.execute(
            update(JOBS)
            .where(JOBS.c.id == task.job_id)
            .values(steps_completed=JOBS.c.steps_completed + (steps_completed - task.steps_completed))
        )
        task = replace(task, steps_completed=steps_completed)
    connection.execute(update(TASKS).where(TASKS.c.id == task.id).values(**values))
    if status is TaskStatus.FAILED:
        _failed(ripple, task, worker_id, worker_uuid, activity or "the worker reported a failure", failure)
    elif status is not None and status is not TaskStatus.ACTIVE:
        ripple.task_to(task, status, activity or REPORTED)
    return ripple.finish()


def _failed(
    ripple: Ripple, task: HeldTask, worker_id: int, worker_uuid: UUID, reason: str, failure: dict[str, int]
) -> TaskFailed:
    """Flamenco's onTaskFailed (reference §3.6), counting the failure once."""
    recorded = record_failure(ripple.connection, task.uuid, worker_uuid, failure["blocklist_threshold"])
    job = ripple.held(task.job_id)
    requeued: list[GivenBack] = []
    if not recorded.workers_left:
        ripple.task_to(task, TaskStatus.FAILED, reason, activity=reason)
        if job.status is not JobStatus.FAILED and job.status not in (JobStatus.CANCELED, JobStatus.COMPLETED):
            why = f'no more workers left to run tasks of type "{task.type}"'
            ripple.job_to(job, JobStatus.FAILED, why, check=False)
        status = TaskStatus.FAILED
    else:
        if recorded.blocklisted:
            requeued = _give_back_failed(ripple, worker_id, task.job_id, "the worker was blocklisted")
        hard = recorded.failed_workers >= failure["fail_after_workers"]
        status = TaskStatus.FAILED if hard else TaskStatus.SOFT_FAILED
        ripple.task_to(task, status, reason, activity=reason)
    return TaskFailed(status, job.status, recorded.failed_workers, recorded.blocklisted, tuple(requeued), ())


def worker_task_failed(
    connection: Connection,
    worker_uuid: UUID,
    task_uuid: UUID,
    reason: str,
    failure: dict[str, int],
    work: WorkSignal | None = None,
) -> TaskFailed:
    ripple = Ripple(connection, str(worker_uuid), failure["fail_percentage"], work=work)
    task, worker_id = _reporting(ripple, worker_uuid, task_uuid)
    connection.execute(
        update(TASKS).where(TASKS.c.id == task.id).values(last_touched_at=ripple.now, updated_at=ripple.now)
    )
    outcome = _failed(ripple, task, worker_id, worker_uuid, reason, failure)
    return replace(outcome, changes=ripple.finish())


def requeue_active_tasks_of_worker(
    connection: Connection, worker_uuid: UUID, reason: str, who: str, work: WorkSignal | None = None
) -> tuple[list[GivenBack], tuple[StatusChange, ...]]:
    ripple = Ripple(connection, who, work=work)
    given = _give_back_active(ripple, worker_id_of(connection, worker_uuid), reason)
    return given, ripple.finish()


def request_worker_status(
    connection: Connection,
    worker_uuid: UUID,
    status: WorkerStatus,
    lazy: bool,
    reason: str,
    who: str,
    work: WorkSignal | None = None,
) -> Worker:
    """Flamenco's status change request: the worker is asked to go to
    ``status`` (lazily: after its current task); asking for the status it
    already has clears any request instead."""
    old = connection.execute(_WORKER_STATUS_LOCKED, {"uuid": worker_uuid}).one_or_none()
    if old is None:
        raise NotFound(f"worker {worker_uuid} not found")
    requested = "" if old.status == status.value else status.value
    values = {"status": old.status, "status_requested": requested, "lazy_status_request": lazy and bool(requested)}
    worker = save_worker_status(connection, worker_uuid, values, work)
    at = utcnow()
    asked = change(
        ChangeKind.WORKER_REQUESTED,
        at=at,
        worker=worker_uuid,
        old=old.status,
        new=requested or None,
        reason=reason,
        who=who,
    )
    record(connection, [asked])
    return worker


def forget_worker(
    connection: Connection, worker_uuid: UUID, reason: str, who: str, work: WorkSignal | None = None
) -> tuple[list[GivenBack], tuple[StatusChange, ...]]:
    """Soft-delete the worker and give back its active tasks, in one
    transaction. The worker's row is written first: a claim for it either
    committed before (its task is then found and given back) or waits on the
    row and then finds the row changed, and claims nothing."""
    old = connection.execute(_WORKER_STATUS_LOCKED, {"uuid": worker_uuid}).one_or_none()
    if old is None:
        raise NotFound(f"worker {worker_uuid} not found")
    worker_id = worker_id_of(connection, worker_uuid)
    soft_delete(connection, worker_uuid)
    ripple = Ripple(connection, who, work=work)
    given = _give_back_active(ripple, worker_id, reason)
    forgotten = change(
        ChangeKind.WORKER_FORGOTTEN, at=utcnow(), worker=worker_uuid, old=old.status, reason=reason, who=who
    )
    record(connection, [forgotten])
    return given, ripple.finish()


def requeue_failed_tasks_of_worker_of_job(
    connection: Connection,
    worker_uuid: UUID,
    job_uuid: UUID,
    reason: str,
    who: str,
    work: WorkSignal | None = None,
) -> tuple[list[GivenBack], tuple[StatusChange, ...]]:
    ripple = Ripple(connection, who, work=work)
    job_id = job_id_of(connection, job_uuid)
    given = _give_back_failed(ripple, worker_id_of(connection, worker_uuid), job_id, reason)
    return given, ripple.finish()


def time_out(
    connection: Connection,
    task_cutoff: datetime,
    worker_cutoff: datetime,
    now: datetime,
    fail_percentage: int,
    work: WorkSignal | None = None,
) -> TimeOutSweep:
    ripple = Ripple(connection, HOUSEKEEPER, fail_percentage, now=now, work=work)
    tasks = connection.execute(_TIMED_OUT_TASKS, {"task_cutoff": task_cutoff}).all()
    workers = list(connection.execute(_TIMED_OUT_WORKERS, {"worker_cutoff": worker_cutoff}).scalars())
    jobs = {int(row.job_id) for row in tasks}
    for worker_id in workers:
        jobs.update(connection.execute(_ACTIVE_JOBS_OF_WORKER, {"worker_id": worker_id}).scalars())
    ripple.hold_jobs(jobs)
    failed = []
    for task_id, _ in tasks:
        # Re-read under the locks: a heartbeat since the listing wins.
        row = connection.execute(_TIMED_OUT_TASK_LOCKED, {"id": task_id, "task_cutoff": task_cutoff}).one_or_none()
        if row is None:
            continue
        task = task_from(row)
        name = row.worker_name if row.worker_name is not None else "(none)"
        # Failed through the state machine, skipping the failure list and the blocklist.
        reason = f"task timed out on worker {name}"
        ripple.task_to(task, TaskStatus.FAILED, reason, activity=f"Task timed out on worker {name}")
        failed.append(task.uuid)
    timed_out = []
    given: list[GivenBack] = []
    for worker_id in workers:
        # Locked before the UPDATE (which would lock it anyway): the status it
        # replaces is the one the change feed reports.
        before = connection.execute(_WORKER_LOCKED, {"id": worker_id}).one()
        params = {"b_id": worker_id, "b_cutoff": worker_cutoff, "b_now": now}
        if connection.execute(_TIME_OUT_WORKER, params).rowcount:
            timed_out.append(before.uuid)
            worker_change = change(
                ChangeKind.WORKER_STATUS, at=now, worker=before.uuid, old=before.status, new=WorkerStatus.ERROR.value
            )
            ripple.feed(worker_change)
            given.extend(_give_back_active(ripple, worker_id, "the worker timed out"))
    return TimeOutSweep(tuple(failed), tuple(timed_out), tuple(given), ripple.finish())


def check_stuck(connection: Connection, work: WorkSignal | None = None) -> tuple[StatusChange, ...]:
    ripple = Ripple(connection, HOUSEKEEPER, work=work)
    stuck = set(connection.execute(_STUCK).scalars())
    done = set(connection.execute(_DONE_BUT_OPEN).scalars())
    for job in ripple.hold_jobs(stuck | done):
        if job.status in _STUCK_JOBS:
            ripple.reapply(job, f'the job was stuck in "{job.status.value}"')
        elif job.id in done:
            ripple.settle(job, TaskStatus.COMPLETED)
    return ripple.finish()


# -- the repository --------------------------------------------------------------------

_PERCENT = (0, 100)
_POSITIVE = (1, INTEGER[1])
_STEPS = (0, INTEGER[1])


def _reason(reason: object) -> str:
    # Half an activity: the activity text built around it must still fit.
    return text(reason, LENGTHS["activity"] // 2, "reason")


def _who(who: object) -> str:
    return text(who, LENGTHS["who"], "who")


def _timeout(value: object, where: str) -> timedelta:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise InvalidInput(f"{where}: expected a positive timedelta, got {shown(value)}")
    return value


class StateMachine:
    """Flamenco's manager rules over the farm model, one transaction per call."""

    def __init__(self, runner: Runner, *, fail_percentage: int = DEFAULT_FAIL_PERCENTAGE) -> None:
        self._runner = runner
        self._fail_percentage = integer(fail_percentage, "fail_percentage", _PERCENT)

    async def task_status_change(
        self, task: UUID | str, status: TaskStatus | str, *, reason: str, who: str = MANAGER
    ) -> tuple[StatusChange, ...]:
        """A manager sets a task's status; the job follows (reference §3.3).

        A transition :data:`~statestore.farm.TASK_TRANSITIONS` does not hold
        raises Conflict and changes nothing; the status the task already has
        changes nothing. A task going to queued has its failure list cleared
        and its steps reset; one going to completed has all its steps done.
        Returns the changes made, the ripple included, in order."""
        unit = partial(
            task_status_change,
            task_uuid=uuid_value(task, "task"),
            status=enum_value(TaskStatus, status, "task status"),
            reason=_reason(reason),
            who=_who(who),
            fail_percentage=self._fail_percentage,
        )
        return await write_enabling(self._runner, unit)

    async def job_status_change(
        self, job: UUID | str, status: JobStatus | str, *, reason: str, who: str = MANAGER
    ) -> tuple[StatusChange, ...]:
        """A manager sets a job's status; its tasks follow, and the job
        again, until it settles (reference §3.4): cancel-requested cancels
        what may still run and ends canceled; pause-requested pauses what
        waits and ends paused once nothing runs; requeueing queues the
        unfinished tasks (all of them after completed), clears the job's
        failure lists and blocklist, and ends queued. Conflict for a
        transition :data:`~statestore.farm.JOB_TRANSITIONS` does not hold."""
        unit = partial(
            job_status_change,
            job_uuid=uuid_value(job, "job"),
            status=enum_value(JobStatus, status, "job status"),
            reason=_reason(reason),
            who=_who(who),
            fail_percentage=self._fail_percentage,
        )
        return await write_enabling(self._runner, unit)

    async def delete_job(self, job: UUID | str, *, reason: str, who: str = MANAGER) -> Job:
        """Delete the job with its tasks, as :meth:`Jobs.delete` does, and
        put ``reason`` and ``who`` on the feed's ``job.deleted``. Conflict
        (nothing deleted) while a task of it is active: cancel it first.
        NotFound for an unknown job. Returns the job as it was."""
        unit = partial(delete_job_unless_active, job_uuid=uuid_value(job, "job"), reason=_reason(reason), who=_who(who))
        return await self._runner.write(unit)

    async def worker_task_update(
        self,
        worker: UUID | str,
        task: UUID | str,
        *,
        status: TaskStatus | str | None = None,
        activity: str | None = None,
        steps_completed: int | None = None,
        blocklist_threshold: int = 3,
        fail_after_workers: int = 3,
    ) -> tuple[StatusChange, ...]:
        """A worker reports on its task: progress, activity, a new status.

        Accepted only while the task is active and assigned to this worker,
        else Conflict and nothing changes. The report touches the task and
        marks the worker seen. A status goes through the same ripple as
        :meth:`task_status_change`; ``failed`` goes through
        :meth:`worker_task_failed` with ``activity`` as the reason."""
        unit = partial(
            worker_task_update,
            worker_uuid=uuid_value(worker, "worker"),
            task_uuid=uuid_value(task, "task"),
            status=None if status is None else enum_value(TaskStatus, status, "task status"),
            activity=None if activity is None else activity_value(activity, "task"),
            steps_completed=None if steps_completed is None else integer(steps_completed, "steps_completed", _STEPS),
            failure=self._failure_settings(blocklist_threshold, fail_after_workers),
        )
        if unit.keywords["status"] is TaskStatus.COMPLETED and self._runner.facts.cte_writes:
            return await self._complete(unit)
        return await write_enabling(self._runner, unit)

    async def _complete(self, report: partial[tuple[StatusChange, ...]]) -> tuple[StatusChange, ...]:
        """A worker's completion in one statement where the dialect does it
        so (see :mod:`statestore.farm.completion`); ``report``, the state
        machine's transaction, where the common case does not hold."""
        worker, activity = report.keywords["worker_uuid"], report.keywords["activity"]
        unit = partial(
            complete_in_one_statement,
            worker_uuid=worker,
            task_uuid=report.keywords["task_uuid"],
            activity=activity,
            reason=activity or REPORTED,
            now=utcnow(),
        )
        completed = await self._runner.write(unit, single_statement=True)
        if completed is None:
            return await write_enabling(self._runner, report)
        if completed.work:
            # A dependent may be claimed now: the statement notified other processes.
            self._runner.wakeups.work()
        # Committed: the job's side runs to its end even if the caller is
        # cancelled meanwhile, so a cancelled completion never leaves a job
        # active with every task completed.
        return await to_its_end(self._after_completion(completed, worker))

    async def _after_completion(self, completed: Completed, worker: UUID) -> tuple[StatusChange, ...]:
        """The job's side of a completion committed by its statement."""
        if completed.exact and not completed.all_done:
            return (completed.change,)
        if not completed.exact:
            check = partial(any_unfinished, job_id=completed.job_id)
            if await self._runner.read(check, single_statement=True):
                return (completed.change,)
        settle = partial(
            settle_completed, job_id=completed.job_id, who=str(worker), fail_percentage=self._fail_percentage
        )
        return (completed.change, *await write_enabling(self._runner, settle))

    async def worker_task_failed(
        self,
        worker: UUID | str,
        task: UUID | str,
        *,
        reason: str,
        blocklist_threshold: int = 3,
        fail_after_workers: int = 3,
    ) -> TaskFailed:
        """Flamenco's onTaskFailed (reference §3.6), in one transaction.

        The worker goes on the task's failure list. Once it has failed
        ``blocklist_threshold`` tasks of this type on the job (this one
        counted once) it is blocklisted for the type, and its earlier failed
        tasks of the job are given back. If no worker is left to run the
        task (blocklists, the job's tag, the failure list), the task fails
        and the job fails with Flamenco's reason. Otherwise the task fails
        once ``fail_after_workers`` workers have failed it, and soft-fails
        before that. Conflict unless the task is active on this worker."""
        unit = partial(
            worker_task_failed,
            worker_uuid=uuid_value(worker, "worker"),
            task_uuid=uuid_value(task, "task"),
            reason=_reason(reason),
            failure=self._failure_settings(blocklist_threshold, fail_after_workers),
        )
        return await write_enabling(self._runner, unit)

    async def requeue_active_tasks_of_worker(
        self, worker: UUID | str, *, reason: str, who: str = MANAGER
    ) -> list[GivenBack]:
        """Give back the worker's active tasks (it signed off, or vanished):
        paused where the job is pause-requested or paused, else queued, with
        Flamenco's activity, steps reset; each job ripples (a pause-requested
        job whose last active task this was becomes paused). Returns the
        tasks given back, by id. NotFound for an unknown worker."""
        unit = partial(
            requeue_active_tasks_of_worker,
            worker_uuid=uuid_value(worker, "worker"),
            reason=_reason(reason),
            who=_who(who),
        )
        given, _ = await write_enabling(self._runner, unit)
        return given

    async def request_worker_status(
        self, worker: UUID | str, status: WorkerStatus | str, *, lazy: bool = False, reason: str, who: str = MANAGER
    ) -> Worker:
        """Ask a worker to change status, as Flamenco's manager does: the
        request (``status_requested``, and ``lazy``: after its current task)
        is what the worker finds when it next asks; asking for the status it
        has clears a pending request. Recorded in the change feed
        (``worker.requested``) with the reason. Returns the worker as
        stored; NotFound for an unknown or soft-deleted worker."""
        unit = partial(
            request_worker_status,
            worker_uuid=uuid_value(worker, "worker"),
            status=enum_value(WorkerStatus, status, "worker status"),
            lazy=boolean(lazy, "lazy"),
            reason=_reason(reason),
            who=_who(who),
        )
        return await write_enabling(self._runner, unit)

    async def forget_worker(self, worker: UUID | str, *, reason: str, who: str = MANAGER) -> list[GivenBack]:
        """Soft-delete a worker and give back its active tasks (as
        :meth:`requeue_active_tasks_of_worker` does), in one transaction, so
        a claim running meanwhile never leaves a task with a deleted worker.
        Recorded in the change feed (``worker.forgotten``) with the reason.
        Returns the tasks given back; NotFound for an unknown worker."""
        unit = partial(forget_worker, worker_uuid=uuid_value(worker, "worker"), reason=_reason(reason), who=_who(who))
        given, _ = await write_enabling(self._runner, unit)
        return given

    async def requeue_failed_tasks_of_worker_of_job(
        self, worker: UUID | str, job: UUID | str, *, reason: str, who: str = MANAGER
    ) -> list[GivenBack]:
        """Give back the worker's failed tasks of the job, as
        :meth:`requeue_active_tasks_of_worker` does its active ones."""
        unit = partial(
            requeue_failed_tasks_of_worker_of_job,
            worker_uuid=uuid_value(worker, "worker"),
            job_uuid=uuid_value(job, "job"),
            reason=_reason(reason),
            who=_who(who),
        )
        given, _ = await write_enabling(self._runner, unit)
        return given

    async def time_out(
        self, *, task_timeout: timedelta, worker_timeout: timedelta, now: datetime | None = None
    ) -> TimeOutSweep:
        """One time-out sweep (reference §3.7), in one transaction.

        Active tasks not touched for ``task_timeout`` fail through the state
        machine (not through the failure list or the blocklist). Workers not
        seen for ``worker_timeout`` (never seen: since they were created) go
        to ``error`` with their status request cleared, and their active
        tasks are given back. Everything is re-checked under the locks, so a
        heartbeat that arrives meanwhile wins, and sweeps running at once in
        several processes do each thing once."""
        when = utcnow() if now is None else aware_datetime(now, "now")
        unit = partial(
            time_out,
            task_cutoff=when - _timeout(task_timeout, "task_timeout"),
            worker_cutoff=when - _timeout(worker_timeout, "worker_timeout"),
            now=when,
            fail_percentage=self._fail_percentage,
        )
        return await write_enabling(self._runner, unit)

    async def check_stuck(self) -> tuple[StatusChange, ...]:
        """Re-apply the statuses cancel-requested, requeueing and
        pause-requested of the jobs that have them (reference §3.5), and
        complete the active or queued jobs whose tasks are all completed:
        after a crash, their ripple is finished. For a manager's start-up;
        the housekeeper runs it every round."""
        return await write_enabling(self._runner, check_stuck)

    async def housekeeper(
        self,
        *,
        task_timeout: timedelta = timedelta(minutes=10),
        worker_timeout: timedelta = timedelta(minutes=1),
        interval: timedelta = timedelta(minutes=1),
        change_retention: timedelta = timedelta(days=7),
    ) -> None:
        """Run until cancelled: every ``interval`` (the first round at once)
        :meth:`check_stuck`, a :meth:`time_out` sweep, the deletion of jobs
        whose deletion was requested, the sleep schedules due for a check,
        and the purge of change-feed records older than ``change_retention``
        (``store.changes.purge``).

        Several processes may run it at once: each step re-checks under
        locks, so nothing is done twice. An error in one round (the database
        unreachable for a while) is logged and the next round runs."""
        task_timeout = _timeout(task_timeout, "task_timeout")
        worker_timeout = _timeout(worker_timeout, "worker_timeout")
        pause = _timeout(interval, "interval").total_seconds()
        retention = _timeout(change_retention, "change_retention")
        try:
            utcnow() - retention
        except OverflowError:
            raise InvalidInput(f"change_retention: {shown(retention)} reaches before the year 1") from None
        purge_changes = partial(ChangeFeed(self._runner).purge, older_than=retention)
        while True:
            await self._round(self.check_stuck)
            await self._round(partial(self.time_out, task_timeout=task_timeout, worker_timeout=worker_timeout))
            await self._round(self._delete_requested)
            await self._round(self._check_sleep_schedules)
            await self._round(purge_changes)
            await asyncio.sleep(pause)

    async def _round(self, step: Any) -> None:
        try:
            await step()
        except StoreError:
            name = getattr(step, "__name__", step)
            log.exception("statestore housekeeper: %s failed; the next round tries again", name)

    async def _delete_requested(self) -> None:
        for job_uuid in await self._runner.read(deletion_requested, single_statement=True):
            with contextlib.suppress(NotFound):  # another housekeeper was first
                await self._runner.write(partial(delete_job, uuid=job_uuid))

    async def _check_sleep_schedules(self) -> None:
        await self._runner.write(partial(check_sleep_schedules, now=utcnow()))

    def _failure_settings(self, blocklist_threshold: object, fail_after_workers: object) -> dict[str, int]:
        return {
            "blocklist_threshold": integer(blocklist_threshold, "blocklist_threshold", _POSITIVE),
            "fail_after_workers": integer(fail_after_workers, "fail_after_workers", _POSITIVE),
            "fail_percentage": self._fail_percentage,
        }
