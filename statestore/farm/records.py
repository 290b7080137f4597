"""Plain values of the farm model, safe to keep after any transaction ends.

Two kinds: what a caller *authors* (``AuthoredJob``, ``AuthoredTask``,
``Command``; mutable, validated when stored) and what the store *returns*
(frozen records carrying ids, uuids and timestamps). A returned record never
reaches back into the database; change it with ``dataclasses.replace`` and
pass it to a repository's ``save``.

Worker secrets never appear in any record: the store keeps only a salted
hash (see :mod:`statestore.farm.secrets`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID, uuid4

from statestore.core.types import JSONValue
from statestore.farm.statuses import JobStatus, TaskStatus, WorkerStatus

__all__ = [
    "AuthoredJob",
    "AuthoredTask",
    "BlocklistEntry",
    "Command",
    "FailureRecorded",
    "GivenBack",
    "Job",
    "ScheduledTask",
    "SleepSchedule",
    "Task",
    "TaskSummary",
    "TimedOutTask",
    "Worker",
    "WorkerTag",
]


@dataclass(frozen=True, slots=True)
class Command:
    """One command of a task, run by the worker in order."""

    name: str
    parameters: dict[str, JSONValue] = field(default_factory=dict)
    total_step_count: int = 0
    """How many steps the command reports; a task's ``steps_total`` is the sum
    of ``max(1, total_step_count)`` over its commands."""


@dataclass(slots=True)
class AuthoredTask:
    """A task as submitted."""

    name: str
    type: str
    priority: int = 50
    commands: list[Command] = field(default_factory=list)
    # A task given as a dependency is a reference to it: serialised as its uuid.
    dependencies: list[UUID | str | AuthoredTask] = field(default_factory=list, metadata={"references": True})
    """Tasks of the same job this one runs after, each given as a uuid, its
    string form, an ``AuthoredTask`` (one of the same submission or batch, or
    a task stored before) or a task's name. A string that ``uuid.UUID``
    parses is a uuid, never a name; a name must belong to exactly one task of
    the job (for ``add_tasks``: stored or added)."""
    uuid: UUID = field(default_factory=uuid4)


@dataclass(slots=True)
class AuthoredJob:
    """A job as submitted, with its tasks in authoring order."""

    name: str
    job_type: str
    priority: int = 50
    status: JobStatus = JobStatus.QUEUED
    settings: dict[str, JSONValue] = field(default_factory=dict)
    metadata: dict[str, JSONValue] = field(default_factory=dict)
    tasks: list[AuthoredTask] = field(default_factory=list)
    worker_tag: UUID | None = None
    """The uuid of the worker tag the job is limited to (None: any worker)."""
    storage_checkout_id: str = ""
    uuid: UUID = field(default_factory=uuid4)


@dataclass(frozen=True, slots=True)
class Job:
    """A stored job."""

    id: int
    uuid: UUID
    name: str
    job_type: str
    priority: int
    status: JobStatus
    activity: str
    settings: dict[str, JSONValue]
    metadata: dict[str, JSONValue]
    delete_requested_at: datetime | None
    storage_checkout_id: str
    worker_tag_uuid: UUID | None
    """The uuid of the worker tag the job is limited to (None: any worker)."""
    steps_completed: int
    steps_total: int
    created_at: datetime
    updated_at: datetime

    @property
    def delete_requested(self) -> bool:
        """Whether deletion of the job has been requested."""
        return self.delete_requested_at is not None


@dataclass(frozen=True, slots=True)
class Task:
    """A stored task, with the uuids of its job and of its (last) worker.

    For a queued or soft-failed task ``worker_uuid`` only names the worker it
    was last assigned to; the worker may since have been soft-deleted.
    """

    id: int
    uuid: UUID
    job_uuid: UUID
    index_in_job: int
    name: str
    type: str
    priority: int
    status: TaskStatus
    worker_uuid: UUID | None
    last_touched_at: datetime | None
    commands: tuple[Command, ...]
    activity: str
    steps_completed: int
    steps_total: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class TaskSummary:
    """The columns of a task a job overview shows."""

    id: int
    uuid: UUID
    name: str
    index_in_job: int
    priority: int
    status: TaskStatus
    type: str
    updated_at: datetime
    steps_completed: int
    steps_total: int
    worker_uuid: UUID | None


@dataclass(frozen=True, slots=True)
class TimedOutTask:
    """An active task its worker stopped touching."""

    task: Task
    worker_name: str | None


@dataclass(frozen=True, slots=True)
class GivenBack:
    """A task the scheduler took back from a worker (it signed off or timed out)."""

    task_uuid: UUID
    job_uuid: UUID
    status: TaskStatus
    """What it became: ``queued``, or ``paused`` where its job is pausing or paused."""


@dataclass(frozen=True, slots=True)
class Worker:
    """A stored worker (its secret is not part of it)."""

    id: int
    uuid: UUID
    name: str
    address: str
    platform: str
    software: str
    status: WorkerStatus
    last_seen_at: datetime | None
    status_requested: WorkerStatus | None
    lazy_status_request: bool
    supported_task_types: tuple[str, ...]
    deleted_at: datetime | None
    can_restart: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class WorkerTag:
    """A stored worker tag."""

    id: int
    uuid: UUID
    name: str
    description: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class BlocklistEntry:
    """A worker blocked from one task type on one job."""

    job_uuid: UUID
    worker_uuid: UUID
    worker_name: str
    task_type: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SleepSchedule:
    """When a worker sleeps: ``days_of_week`` as given, times as "HH:MM"."""

    id: int
    uuid: UUID
    worker_uuid: UUID
    worker_name: str
    is_active: bool
    days_of_week: str
    start_time: str
    end_time: str
    next_check: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ScheduledTask:
    """A task handed to a worker, with what the worker needs of its job."""

    task: Task
    job_priority: int
    job_type: str
    newly_claimed: bool
    """False when the worker already had this task active (rule 2)."""


@dataclass(frozen=True, slots=True)
class FailureRecorded:
    """What recording one task failure found (:meth:`TaskFailures.record`)."""

    failed_workers: int
    """Distinct workers in the task's failure list, this one included."""
    worker_failures_on_job: int
    """This worker's failed tasks of this job and task type, the current one counted once."""
    blocklisted: bool
    """Whether the worker is now blocked from the type on the job, because
    ``worker_failures_on_job`` reached the threshold."""
    workers_left: frozenset[UUID]
    """Live workers still able to run the type on the job (not blocked, in
    the job's tag if it has one), minus those that failed this task."""


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One job or task status change the state machine made (and wrote to
    the status history in the same transaction)."""

    job_uuid: UUID
    task_uuid: UUID | None
    """None for a change of the job's own status."""
    old_status: str
    new_status: str
    reason: str
    who: str
    """Who asked: ``manager`` (or the name a manager call gave), a worker's
    uuid, or ``housekeeper``."""


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """A status change as the history holds it, oldest first in pages."""

    cursor: int
    """Monotonic within the job: pass it as ``after`` for the next page."""
    job_uuid: UUID
    task_uuid: UUID | None
    old_status: str
    new_status: str
    reason: str
    who: str
    at: datetime


@dataclass(frozen=True, slots=True)
class TaskFailed:
    """What :meth:`StateMachine.worker_task_failed` did with one failure."""

    task_status: TaskStatus
    """soft-failed, or failed (a hard failure)."""
    job_status: JobStatus
    failed_workers: int
    """Distinct workers on the task's failure list, this one included."""
    blocklisted: bool
    """Whether the worker is now blocked from the task's type on the job."""
    requeued: tuple[GivenBack, ...]
    """The worker's earlier failed tasks of the job, given back because it was blocklisted."""
    changes: tuple[StatusChange, ...]


@dataclass(frozen=True, slots=True)
class TimeOutSweep:
    """What one :meth:`StateMachine.time_out` sweep did."""

    tasks_failed: tuple[UUID, ...]
    """Active tasks not touched within the task time-out, now failed."""
    workers_timed_out: tuple[UUID, ...]
    """Workers not seen within the worker time-out, now ``error``."""
    given_back: tuple[GivenBack, ...]
    """Those workers' active tasks, queued (or paused) again."""
    changes: tuple[StatusChange, ...]
