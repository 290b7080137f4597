"""Flamenco's job, task and worker statuses, and the sets the scheduler uses."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "SCHEDULABLE_JOB_STATUSES",
    "SCHEDULABLE_TASK_STATUSES",
    "JobStatus",
    "TaskStatus",
    "WorkerStatus",
]


class JobStatus(StrEnum):
    """Statuses of a job (Flamenco's ``JobStatus``)."""

    ACTIVE = "active"
    CANCELED = "canceled"
    COMPLETED = "completed"
    FAILED = "failed"
    PAUSED = "paused"
    PAUSE_REQUESTED = "pause-requested"
    QUEUED = "queued"
    CANCEL_REQUESTED = "cancel-requested"
    REQUEUEING = "requeueing"
    UNDER_CONSTRUCTION = "under-construction"


class TaskStatus(StrEnum):
    """Statuses of a task (Flamenco's ``TaskStatus``)."""

    ACTIVE = "active"
    CANCELED = "canceled"
    COMPLETED = "completed"
    FAILED = "failed"
    QUEUED = "queued"
    SOFT_FAILED = "soft-failed"
    PAUSED = "paused"


class WorkerStatus(StrEnum):
    """Statuses of a worker (Flamenco's ``WorkerStatus``)."""

    STARTING = "starting"
    AWAKE = "awake"
    ASLEEP = "asleep"
    ERROR = "error"
    TESTING = "testing"
    OFFLINE = "offline"
    RESTART = "restart"


SCHEDULABLE_TASK_STATUSES = (TaskStatus.QUEUED, TaskStatus.SOFT_FAILED)
"""A task in one of these may be handed to a worker."""

SCHEDULABLE_JOB_STATUSES = (JobStatus.ACTIVE, JobStatus.QUEUED)
"""Only tasks of jobs in one of these may be handed to a worker."""
