"""Field checks shared by several farm aggregates, made before any SQL.

SQLite enforces neither VARCHAR lengths nor types, so every value is checked
here, with a message naming the record and the field, and every dialect
refuses the same input. Messages name fields, never a worker's secret.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from statestore.core.validate import (
    INTEGER,
    aware_datetime,
    check_characters,
    json_object,
    shown,
    text,
    type_name,
    uuid_value,
)
from statestore.errors import InvalidInput
from statestore.farm.records import Command
from statestore.farm.tables import LENGTHS

STEPS_MAX = INTEGER[1]
"""The most steps a task or a job may count (an INTEGER column)."""


def boolean(value: object, where: str) -> bool:
    """A real bool (1 and "yes" are refused: they are usually a mistake)."""
    if not isinstance(value, bool):
        raise InvalidInput(f"{where}: expected a bool, got {type(value).__name__}")
    return value


def optional_datetime(value: object, where: str) -> datetime | None:
    """None, or a timezone-aware datetime."""
    return None if value is None else aware_datetime(value, where)


def task_type_value(value: object, where: str) -> str:
    """One task type: non-empty, at most 32 characters, without a comma
    (workers store their types comma-separated), not ending in a space
    (MariaDB compares "ffmpeg " equal to "ffmpeg", even in binary collation,
    so a blocklist entry for one would be the other's)."""
    value = text(value, LENGTHS["type"], where)
    if not value:
        raise InvalidInput(f"{where}: a task type must not be empty")
    if "," in value:
        raise InvalidInput(f"{where}: {shown(value)} contains a comma, which separates stored task types")
    if value.endswith(" "):
        raise InvalidInput(f"{where}: {shown(value)} ends with a space, which some backends ignore in comparisons")
    return value


def task_types(value: object, where: str) -> str:
    """A worker's task types, joined with commas as the column stores them."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidInput(f"{where}: expected a sequence of task type strings, got {type(value).__name__}")
    joined = ",".join(task_type_value(item, f"{where}[{index}]") for index, item in enumerate(value))
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


def encode_commands(commands: object, where: str) -> tuple[list[dict[str, Any]], int]:
    """Commands as stored JSON, and the task's ``steps_total``
    (the sum of ``max(1, total_step_count)``)."""
    if not isinstance(commands, (list, tuple)):
        raise InvalidInput(f"{where}.commands: expected a list of Command, got {type(commands).__name__}")
    encoded: list[dict[str, Any]] = []
    steps = 0
    for position, command in enumerate(commands):
        if not isinstance(command, Command):
            raise InvalidInput(f"{where}.commands[{position}]: expected a Command, got {type_name(command)}")
        count = command.total_step_count
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= STEPS_MAX:
            expected = f"expected an integer 0..{STEPS_MAX}, got {shown(count)}"
            raise InvalidInput(f"{where}.commands[{position}].total_step_count: {expected}")
        name = command.name
        if not isinstance(name, str):
            raise InvalidInput(f"{where}.commands[{position}].name: expected a string, got {type_name(name)}")
        check_characters(name, f"{where}.commands[{position}].name")
        parameters = command.parameters
        if parameters:
            parameters = json_object(parameters, f"{where}.commands[{position}].parameters")
        elif not isinstance(parameters, Mapping):
            raise InvalidInput(f"{where}.commands[{position}].parameters: expected a dict")
        else:
            parameters = {}
        encoded.append({"name": name, "parameters": parameters, "total_step_count": count})
        steps += count if count > 1 else 1
    if steps > STEPS_MAX:
        raise InvalidInput(f"{where}.commands: {steps} steps in total, at most {STEPS_MAX} allowed")
    return encoded, steps


def activity_value(activity: object, where: str) -> str:
    """An activity text (VARCHAR 255)."""
    return text(activity, LENGTHS["activity"], f"{where}.activity")
