"""Stored rows → records: how each farm record is built from the columns it is read from.

Units select the columns a record needs (joined uuids of its job or worker
included) and hand the row mapping here; no function here runs SQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select

from statestore.farm.records import BlocklistEntry, Command, Job, SleepSchedule, Task, TaskSummary, Worker, WorkerTag
from statestore.farm.statuses import JobStatus, TaskStatus, WorkerStatus
from statestore.farm.tables import JOBS, WORKER_TAGS, WORKERS

WORKER_COLUMNS = tuple(column for column in WORKERS.c if column.name != "secret_hash")
"""Every column but the secret hash: what a :class:`Worker` is built from."""

JOB_COLUMNS = (
    *JOBS.c,
    select(WORKER_TAGS.c.uuid)
    .where(WORKER_TAGS.c.id == JOBS.c.worker_tag_id)
    .scalar_subquery()
    .label("worker_tag_uuid"),
)
"""What a :class:`Job` is built from: the ``jobs`` columns and its worker
tag's uuid, a correlated subquery on ``jobs`` (a primary-key probe of
``worker_tags``), so it fits a SELECT and an ``UPDATE … RETURNING`` alike."""


def commands_from_json(value: Sequence[Mapping[str, Any]]) -> tuple[Command, ...]:
    """Stored commands back as records."""
    return tuple(
        Command(command["name"], command.get("parameters") or {}, command.get("total_step_count", 0))
        for command in value
    )


def job_from_row(row: Mapping[Any, Any]) -> Job:
    """A job record from its :data:`JOB_COLUMNS`."""
    return Job(
        id=row["id"],
        uuid=row["uuid"],
        name=row["name"],
        job_type=row["job_type"],
        priority=row["priority"],
        status=JobStatus(row["status"]),
        activity=row["activity"],
        settings=row["settings"],
        metadata=row["metadata"],
        delete_requested_at=row["delete_requested_at"],
        storage_checkout_id=row["storage_checkout_id"],
        worker_tag_uuid=row["worker_tag_uuid"],
        steps_completed=row["steps_completed"],
        steps_total=row["steps_total"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def task_from_row(row: Mapping[Any, Any]) -> Task:
    """A task record from its ``tasks`` row with ``job_uuid`` and ``worker_uuid``."""
    return Task(
        id=row["id"],
        uuid=row["uuid"],
        job_uuid=row["job_uuid"],
        index_in_job=row["index_in_job"],
        name=row["name"],
        type=row["type"],
        priority=row["priority"],
        status=TaskStatus(row["status"]),
        worker_uuid=row["worker_uuid"],
        last_touched_at=row["last_touched_at"],
        commands=commands_from_json(row["commands"]),
        activity=row["activity"],
        steps_completed=row["steps_completed"],
        steps_total=row["steps_total"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def summary_from_row(row: Mapping[Any, Any]) -> TaskSummary:
    """A task summary from the columns :func:`task_summaries` selects."""
    return TaskSummary(
        id=row["id"],
        uuid=row["uuid"],
        name=row["name"],
        index_in_job=row["index_in_job"],
        priority=row["priority"],
        status=TaskStatus(row["status"]),
        type=row["type"],
        updated_at=row["updated_at"],
        steps_completed=row["steps_completed"],
        steps_total=row["steps_total"],
        worker_uuid=row["worker_uuid"],
    )


def split_task_types(stored: str) -> tuple[str, ...]:
    """``supported_task_types`` as stored (comma-separated) → the types."""
    return tuple(stored.split(",")) if stored else ()


def worker_from_row(row: Mapping[Any, Any]) -> Worker:
    """A worker record from its stored columns (the secret hash is never read into one)."""
    return Worker(
        id=row["id"],
        uuid=row["uuid"],
        name=row["name"],
        address=row["address"],
        platform=row["platform"],
        software=row["software"],
        status=WorkerStatus(row["status"]),
        last_seen_at=row["last_seen_at"],
        status_requested=WorkerStatus(row["status_requested"]) if row["status_requested"] else None,
        lazy_status_request=bool(row["lazy_status_request"]),
        supported_task_types=split_task_types(row["supported_task_types"]),
        deleted_at=row["deleted_at"],
        can_restart=bool(row["can_restart"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def tag_from_row(row: Mapping[Any, Any]) -> WorkerTag:
    """A worker tag record from its stored columns."""
    return WorkerTag(
        id=row["id"],
        uuid=row["uuid"],
        name=row["name"],
        description=row["description"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def schedule_from_row(row: Mapping[Any, Any]) -> SleepSchedule:
    """A sleep schedule record from its columns joined with its worker's uuid and name."""
    return SleepSchedule(
        id=row["id"],
        uuid=row["uuid"],
        worker_uuid=row["worker_uuid"],
        worker_name=row["worker_name"],
        is_active=bool(row["is_active"]),
        days_of_week=row["days_of_week"],
        start_time=row["start_time"],
        end_time=row["end_time"],
        next_check=row["next_check"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def blocklist_entry_from_row(row: Mapping[Any, Any]) -> BlocklistEntry:
    """A blocklist entry from ``job_blocks`` joined with its job's and worker's uuids."""
    return BlocklistEntry(
        job_uuid=row["job_uuid"],
        worker_uuid=row["worker_uuid"],
        worker_name=row["worker_name"],
        task_type=row["task_type"],
        created_at=row["created_at"],
    )
