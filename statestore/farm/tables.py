"""Tables of the farm model (Flamenco): jobs, tasks and the workers that run them.

Columns, lengths and ON DELETE actions follow Flamenco's schema; foreign keys
are enforced on every dialect (SQLite too: the store switches them on for
every connection). Two columns are statestore's own, maintained so that the
scheduler reads only candidates however much history the database holds:

* ``tasks.pending_dependencies`` — how many of the task's dependencies are not
  completed; kept right by every write that changes a task's status;
* ``tasks.job_priority`` — a copy of the job's priority, so one index yields
  claimable tasks already in the scheduler's order;
* ``tasks.job_schedulable`` — whether the job's status is active or queued,
  rewritten with the job's status, so that index leaves out the tasks of
  jobs that may not run (under construction, paused, …).

Flamenco lost several indexes in its table rebuilds and never had others; the
ones here are named after the queries they serve.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from statestore.core.base import Base, EntityColumns, IdType, one_of
from statestore.core.types import JSONType, UTCDateTime, utcnow
from statestore.farm.statuses import JobStatus, TaskStatus, WorkerStatus

__all__ = [
    "BLOCKS",
    "CLAIMABLE",
    "DEPENDENCIES",
    "FAILURES",
    "JOBS",
    "LAST_RENDERED",
    "LENGTHS",
    "MEMBERSHIP",
    "SLEEP_SCHEDULES",
    "STATUS_HISTORY",
    "TASKS",
    "WORKERS",
    "WORKER_TAGS",
    "JobBlockRow",
    "JobRow",
    "LastRenderedRow",
    "SleepScheduleRow",
    "StatusHistoryRow",
    "TaskDependencyRow",
    "TaskFailureRow",
    "TaskRow",
    "WorkerRow",
    "WorkerTagMembershipRow",
    "WorkerTagRow",
]

LENGTHS = {
    "name": 64,
    "type": 32,
    "activity": 255,
    "storage_checkout_id": 255,
    "address": 39,
    "platform": 16,
    "software": 32,
    "supported_task_types": 255,
    "description": 255,
    "days_of_week": 64,
    "time_of_day": 5,
    "who": 64,
}
"""VARCHAR lengths (Flamenco's). The codecs enforce them before any SQL,
because SQLite does not."""

BINARY_TEXT = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
"""MySQL/MariaDB compare text case- and accent-insensitively by default: tag
names "GPU" and "gpu" would collide and a worker's "Blender" would match
tasks of type "blender". Binary collation compares as SQLite and PostgreSQL
do."""

CLAIMABLE = "status IN ('queued', 'soft-failed') AND pending_dependencies = 0 AND job_schedulable"
"""The scheduler's candidate rows: schedulable status, every dependency done,
job active or queued. The partial index below holds only these, so a claim
reads neither history nor the tasks of jobs under construction or paused."""


class WorkerTagRow(EntityColumns, Base):
    """A worker tag: jobs with a tag run only on workers carrying it."""

    __tablename__ = "worker_tags"
    __table_args__ = (BINARY_TEXT,)

    name: Mapped[str] = mapped_column(String(LENGTHS["name"]), unique=True)
    description: Mapped[str] = mapped_column(String(LENGTHS["description"]), default="")


class WorkerRow(EntityColumns, Base):
    """A worker; ``deleted_at`` set means soft-deleted (Flamenco keeps the row)."""

    __tablename__ = "workers"
    __table_args__ = (
        CheckConstraint(one_of("status", WorkerStatus), name="status"),
        CheckConstraint(f"status_requested = '' OR {one_of('status_requested', WorkerStatus)}", name="requested"),
        Index("ix_workers_last_seen_at", "last_seen_at"),
        BINARY_TEXT,
    )

    secret_hash: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(LENGTHS["name"]))
    address: Mapped[str] = mapped_column(String(LENGTHS["address"]), default="")
    platform: Mapped[str] = mapped_column(String(LENGTHS["platform"]), default="")
    software: Mapped[str] = mapped_column(String(LENGTHS["software"]), default="")
    status: Mapped[str] = mapped_column(String(16))
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status_requested: Mapped[str] = mapped_column(String(16), default="")
    lazy_status_request: Mapped[bool] = mapped_column(Boolean, default=False)
    supported_task_types: Mapped[str] = mapped_column(String(LENGTHS["supported_task_types"]), default="")
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    can_restart: Mapped[bool] = mapped_column(Boolean, default=False)


class WorkerTagMembershipRow(Base):
    """Which worker carries which tag."""

    __tablename__ = "worker_tag_membership"
    __table_args__ = (
        PrimaryKeyConstraint("worker_tag_id", "worker_id"),
        Index("ix_worker_tag_membership_worker_id", "worker_id"),
        BINARY_TEXT,
    )

    worker_tag_id: Mapped[int] = mapped_column(IdType, ForeignKey("worker_tags.id", ondelete="CASCADE"))
    worker_id: Mapped[int] = mapped_column(IdType, ForeignKey("workers.id", ondelete="CASCADE"))


class JobRow(EntityColumns, Base):
    """A job: a named, prioritised set of tasks."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(one_of("status", JobStatus), name="status"),
        Index("ix_jobs_status", "status"),
        # Job queries ordered by creation or update time (keyset pages).
        Index("ix_jobs_created_at", "created_at"),
        Index("ix_jobs_updated_at", "updated_at"),
        Index("ix_jobs_delete_requested_at", "delete_requested_at"),
        Index("ix_jobs_worker_tag_id", "worker_tag_id"),
        BINARY_TEXT,
    )

    name: Mapped[str] = mapped_column(String(LENGTHS["name"]))
    job_type: Mapped[str] = mapped_column(String(LENGTHS["type"]))
    priority: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[str] = mapped_column(String(32))
    activity: Mapped[str] = mapped_column(String(LENGTHS["activity"]), default="")
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType)
    job_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType)
    delete_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    storage_checkout_id: Mapped[str] = mapped_column(String(LENGTHS["storage_checkout_id"]), default="")
    worker_tag_id: Mapped[int | None] = mapped_column(IdType, ForeignKey("worker_tags.id", ondelete="SET NULL"))
    steps_completed: Mapped[int] = mapped_column(Integer, default=0)
    steps_total: Mapped[int] = mapped_column(Integer, default=0)


class TaskRow(EntityColumns, Base):
    """A task of a job: commands a worker runs, in dependency order."""

    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(one_of("status", TaskStatus), name="status"),
        CheckConstraint("pending_dependencies >= 0", name="pending_dependencies"),
        UniqueConstraint("job_id", "index_in_job"),
        # Timed-out tasks (status = active AND last_touched_at <= t) and counts by status.
        Index("ix_tasks_status_last_touched_at", "status", "last_touched_at"),
        # A worker's tasks, by status (the scheduler's "already assigned" step).
        Index("ix_tasks_worker_id_status", "worker_id", "status"),
        # A job's tasks by status: the state machine's "is any task not completed?".
        Index("ix_tasks_job_id_status", "job_id", "status"),
        BINARY_TEXT,
    )

    job_id: Mapped[int] = mapped_column(IdType, ForeignKey("jobs.id", ondelete="CASCADE"))
    index_in_job: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(LENGTHS["name"]))
    type: Mapped[str] = mapped_column(String(LENGTHS["type"]))
    priority: Mapped[int] = mapped_column(SmallInteger, default=50)
    status: Mapped[str] = mapped_column(String(16))
    worker_id: Mapped[int | None] = mapped_column(IdType, ForeignKey("workers.id", ondelete="SET NULL"))
    last_touched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    commands: Mapped[list[Any]] = mapped_column(JSONType)
    activity: Mapped[str] = mapped_column(String(LENGTHS["activity"]), default="")
    steps_completed: Mapped[int] = mapped_column(Integer, default=0)
    steps_total: Mapped[int] = mapped_column(Integer, default=0)
    job_priority: Mapped[int] = mapped_column(SmallInteger)
    pending_dependencies: Mapped[int] = mapped_column(Integer, default=0)
    job_schedulable: Mapped[bool] = mapped_column(Boolean)


# Claimable tasks in the scheduler's order; only candidates are in it.
Index(
    "ix_tasks_claimable",
    TaskRow.job_priority.desc(),
    TaskRow.priority.desc(),
    TaskRow.id,
    postgresql_where=text(CLAIMABLE),
    sqlite_where=text(CLAIMABLE),
)


class TaskDependencyRow(Base):
    """``task_id`` may run only once ``dependency_id`` is completed."""

    __tablename__ = "task_dependencies"
    __table_args__ = (
        PrimaryKeyConstraint("task_id", "dependency_id"),
        CheckConstraint("task_id <> dependency_id", name="not_self"),
        # Dependents of a task that changed status (pending_dependencies upkeep).
        Index("ix_task_dependencies_dependency_id", "dependency_id"),
        BINARY_TEXT,
    )

    task_id: Mapped[int] = mapped_column(IdType, ForeignKey("tasks.id", ondelete="CASCADE"))
    dependency_id: Mapped[int] = mapped_column(IdType, ForeignKey("tasks.id", ondelete="CASCADE"))


class TaskFailureRow(Base):
    """A worker failed a task (the task's failure list)."""

    __tablename__ = "task_failures"
    __table_args__ = (
        PrimaryKeyConstraint("task_id", "worker_id"),
        Index("ix_task_failures_worker_id", "worker_id"),
        BINARY_TEXT,
    )

    task_id: Mapped[int] = mapped_column(IdType, ForeignKey("tasks.id", ondelete="CASCADE"))
    worker_id: Mapped[int] = mapped_column(IdType, ForeignKey("workers.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class JobBlockRow(Base):
    """A worker may no longer run tasks of ``task_type`` on a job (the job blocklist)."""

    __tablename__ = "job_blocks"
    __table_args__ = (
        PrimaryKeyConstraint("job_id", "worker_id", "task_type"),
        Index("ix_job_blocks_worker_id", "worker_id"),
        BINARY_TEXT,
    )

    job_id: Mapped[int] = mapped_column(IdType, ForeignKey("jobs.id", ondelete="CASCADE"))
    worker_id: Mapped[int] = mapped_column(IdType, ForeignKey("workers.id", ondelete="CASCADE"))
    task_type: Mapped[str] = mapped_column(String(LENGTHS["type"]))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SleepScheduleRow(EntityColumns, Base):
    """When a worker should sleep; at most one per worker."""

    __tablename__ = "sleep_schedules"
    __table_args__ = (Index("ix_sleep_schedules_is_active_next_check", "is_active", "next_check"), BINARY_TEXT)

    worker_id: Mapped[int] = mapped_column(IdType, ForeignKey("workers.id", ondelete="CASCADE"), unique=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    days_of_week: Mapped[str] = mapped_column(String(LENGTHS["days_of_week"]), default="")
    start_time: Mapped[str] = mapped_column(String(LENGTHS["time_of_day"]), default="")
    end_time: Mapped[str] = mapped_column(String(LENGTHS["time_of_day"]), default="")
    next_check: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LastRenderedRow(EntityColumns, Base):
    """The job whose output was rendered last: one row, ``id`` 1, always
    written by an upsert on that id (MariaDB refuses a CHECK on an
    auto-increment column, so the repository keeps the invariant)."""

    __tablename__ = "last_rendered"
    __table_args__ = (BINARY_TEXT,)

    job_id: Mapped[int] = mapped_column(IdType, ForeignKey("jobs.id", ondelete="CASCADE"))


class StatusHistoryRow(Base):
    """One job or task status change, appended by the state machine in the
    transaction that made it. ``id`` is the cursor (see
    :mod:`statestore.farm.status_history` for the order it follows).

    ``job_id`` and ``task_id`` have no foreign key, on purpose: checking one
    share-locks the job's row, so a claim appending its entry (holding task
    rows) would wait for a state-machine call holding the job (and waiting
    for those task rows) — a deadlock MariaDB met under load. The store's
    job deletion deletes the job's history with it."""

    __tablename__ = "status_history"
    __table_args__ = (
        # A job's history and a task's history, oldest first, in keyset pages.
        Index("ix_status_history_job_id", "job_id", "id"),
        Index("ix_status_history_task_id", "task_id", "id"),
        BINARY_TEXT,
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(IdType)
    task_id: Mapped[int | None] = mapped_column(IdType)
    old_status: Mapped[str] = mapped_column(String(32))
    new_status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(LENGTHS["activity"]))
    who: Mapped[str] = mapped_column(String(LENGTHS["who"]))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


# Core handles of the tables above, for units of work that build Core statements.
WORKER_TAGS = cast(Table, WorkerTagRow.__table__)
WORKERS = cast(Table, WorkerRow.__table__)
MEMBERSHIP = cast(Table, WorkerTagMembershipRow.__table__)
JOBS = cast(Table, JobRow.__table__)
TASKS = cast(Table, TaskRow.__table__)
DEPENDENCIES = cast(Table, TaskDependencyRow.__table__)
FAILURES = cast(Table, TaskFailureRow.__table__)
BLOCKS = cast(Table, JobBlockRow.__table__)
SLEEP_SCHEDULES = cast(Table, SleepScheduleRow.__table__)
LAST_RENDERED = cast(Table, LastRenderedRow.__table__)
STATUS_HISTORY = cast(Table, StatusHistoryRow.__table__)
