"""Plain JSON values of the records' fields."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

__all__ = ["plain"]


def plain(value: Any) -> Any:
    """``value`` with uuids, datetimes (ISO 8601) and enums (their values)
    as JSON's strings, tuples and sets as lists; dicts and lists recursively."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value
