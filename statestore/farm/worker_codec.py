"""Workers, worker tags and sleep schedules: checks before any SQL, rows → records.

SQLite enforces neither VARCHAR lengths nor types, so every value is checked
here, with a message naming the record and the field, and every dialect
refuses the same input. Messages name fields, never a worker's secret.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from statestore.core.validate import aware_datetime, enum_value, text, uuid_value
from statestore.errors import InvalidInput
from statestore.farm.records import BlocklistEntry, SleepSchedule, Worker, WorkerTag
from statestore.farm.statuses import WorkerStatus
from statestore.farm.tables import LENGTHS

__all__ = [
    "blocklist_entry_from_row",
    "boolean",
    "optional_datetime",
    "schedule_from_row",
    "schedule_values",
    "split_task_types",
    "tag_from_row",
    "tag_values",
    "task_type",
    "task_types",
    "time_of_day",
    "uuids",
    "worker_from_row",
    "worker_values",
]

_TIME_OF_DAY = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]")


def boolean(value: object, where: str) -> bool:
    """A real bool (1 and "yes" are refused: they are usually a mistake)."""
    if not isinstance(value, bool):
        raise InvalidInput(f"{where}: expected a bool, got {type(value).__name__}")
    return value


def optional_datetime(value: object, where: str) -> datetime | None:
    """None, or a timezone-aware datetime."""
    return None if value is None else aware_datetime(value, where)


def task_type(value: object, where: str) -> str:
    """One task type: non-empty, at most 32 characters, without a comma
    (workers store their types comma-separated)."""
    value = text(value, LENGTHS["type"], where)
    if not value:
        raise InvalidInput(f"{where}: a task type must not be empty")
    if "," in value:
        raise InvalidInput(f"{where}: {value!r} contains a comma, which separates stored task types")
    return value


def split_task_types(stored: str) -> tuple[str, ...]:
    """``supported_task_types`` as stored (comma-separated) → the types."""
    return tuple(stored.split(",")) if stored else ()


def task_types(value: object, where: str) -> str:
    """A worker's task types, joined with commas as the column stores them."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidInput(f"{where}: expected a sequence of task type strings, got {type(value).__name__}")
    joined = ",".join(task_type(item, f"{where}[{index}]") for index, item in enumerate(value))
    if len(joined) > LENGTHS["supported_task_types"]:
        raise InvalidInput(
            f"{where}: {len(joined)} characters when joined, at most {LENGTHS['supported_task_types']} allowed"
        )
    return joined


def uuids(value: object, where: str) -> list[UUID]:
    """Distinct uuids of a collection, in first-seen order."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Collection):
        raise InvalidInput(f"{where}: expected a collection of uuid.UUID, got {type(value).__name__}")
    return list(dict.fromkeys(uuid_value(item, f"{where}[{index}]") for index, item in enumerate(value)))


def worker_values(
    *,
    name: object,
    address: object,
    platform: object,
    software: object,
    status: object,
    last_seen_at: object,
    status_requested: object,
    lazy_status_request: object,
    supported_task_types: object,
    can_restart: object,
) -> dict[str, Any]:
    """Validated values of a worker's mutable columns."""
    where = f"worker {name!r}" if isinstance(name, str) else "worker"
    requested = (
        None if status_requested is None else enum_value(WorkerStatus, status_requested, f"{where}.status_requested")
    )
    return {
        "name": text(name, LENGTHS["name"], f"{where}.name"),
        "address": text(address, LENGTHS["address"], f"{where}.address"),
        "platform": text(platform, LENGTHS["platform"], f"{where}.platform"),
        "software": text(software, LENGTHS["software"], f"{where}.software"),
        "status": enum_value(WorkerStatus, status, f"{where}.status").value,
        "last_seen_at": optional_datetime(last_seen_at, f"{where}.last_seen_at"),
        "status_requested": "" if requested is None else requested.value,
        "lazy_status_request": boolean(lazy_status_request, f"{where}.lazy_status_request"),
        "supported_task_types": task_types(supported_task_types, f"{where}.supported_task_types"),
        "can_restart": boolean(can_restart, f"{where}.can_restart"),
    }


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


def tag_values(*, name: object, description: object) -> dict[str, Any]:
    """Validated values of a worker tag; its name is its second key, so not empty."""
    where = f"worker tag {name!r}" if isinstance(name, str) else "worker tag"
    checked = text(name, LENGTHS["name"], f"{where}.name")
    if not checked:
        raise InvalidInput(f"{where}.name: must not be empty")
    return {"name": checked, "description": text(description, LENGTHS["description"], f"{where}.description")}


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


def time_of_day(value: object, where: str) -> str:
    """ "" (not set) or "HH:MM" from 00:00 to 23:59."""
    value = text(value, LENGTHS["time_of_day"], where)
    if value and not _TIME_OF_DAY.fullmatch(value):
        raise InvalidInput(f"{where}: {value!r} is not a time of day HH:MM (00:00 to 23:59)")
    return value


def schedule_values(
    *, is_active: object, days_of_week: object, start_time: object, end_time: object, next_check: object
) -> dict[str, Any]:
    """Validated values of a sleep schedule; ``days_of_week`` is kept as given
    (Flamenco's sleep scheduler normalises it when it reads it)."""
    where = "sleep schedule"
    return {
        "is_active": boolean(is_active, f"{where}.is_active"),
        "days_of_week": text(days_of_week, LENGTHS["days_of_week"], f"{where}.days_of_week"),
        "start_time": time_of_day(start_time, f"{where}.start_time"),
        "end_time": time_of_day(end_time, f"{where}.end_time"),
        "next_check": optional_datetime(next_check, f"{where}.next_check"),
    }


def schedule_from_row(row: Mapping[Any, Any]) -> SleepSchedule:
    """A sleep schedule record from its columns joined with its worker's uuid and name."""
    return SleepSchedule(
        id=row["id"],
        uuid=row["uuid"],
        worker_id=row["worker_id"],
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
