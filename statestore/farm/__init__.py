"""The farm model: Flamenco's jobs, tasks, workers, tags and scheduler."""

from statestore.farm.job_queries import JobOrder
from statestore.farm.records import (
    AuthoredJob,
    AuthoredTask,
    BlocklistEntry,
    Command,
    FailureRecorded,
    GivenBack,
    Job,
    ScheduledTask,
    SleepSchedule,
    Task,
    TaskSummary,
    TimedOutTask,
    Worker,
    WorkerTag,
)
from statestore.farm.statuses import (
    SCHEDULABLE_JOB_STATUSES,
    SCHEDULABLE_TASK_STATUSES,
    JobStatus,
    TaskStatus,
    WorkerStatus,
)

__all__ = [
    "SCHEDULABLE_JOB_STATUSES",
    "SCHEDULABLE_TASK_STATUSES",
    "AuthoredJob",
    "AuthoredTask",
    "BlocklistEntry",
    "Command",
    "FailureRecorded",
    "GivenBack",
    "Job",
    "JobOrder",
    "JobStatus",
    "ScheduledTask",
    "SleepSchedule",
    "Task",
    "TaskStatus",
    "TaskSummary",
    "TimedOutTask",
    "Worker",
    "WorkerStatus",
    "WorkerTag",
]
