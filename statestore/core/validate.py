"""Checks shared by both models' codecs, run in Python before any SQL.

SQLite enforces neither VARCHAR lengths nor types, so these make every
dialect refuse the same input with the same :class:`InvalidInput`, naming the
record and field (``where``), before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar
from uuid import UUID

from statestore.core.types import ensure_json
from statestore.errors import InvalidInput

__all__ = ["aware_datetime", "enum_value", "integer", "json_object", "text", "uuid_value"]

E = TypeVar("E", bound=Enum)

SMALLINT = (-32768, 32767)
INTEGER = (-(2**31), 2**31 - 1)
ROW_ID = (1, 2**63 - 1)
"""The range of a BIGINT primary key."""


def enum_value(enum: type[E], value: object, where: str) -> E:
    """``value`` as a member of ``enum`` (members and their values are accepted)."""
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(str(member.value) for member in enum)
        raise InvalidInput(f"{where}: {value!r} is not one of {allowed}") from None


def text(value: object, limit: int, where: str) -> str:
    """A string of at most ``limit`` characters."""
    if not isinstance(value, str):
        raise InvalidInput(f"{where}: expected a string, got {type(value).__name__}")
    if len(value) > limit:
        raise InvalidInput(f"{where}: {len(value)} characters, at most {limit} allowed")
    return value


def uuid_value(value: object, where: str) -> UUID:
    """A :class:`uuid.UUID`, given as one or as its string form.

    A malformed string is InvalidInput here, before any SQL: a typo must not
    look like a miss, and every backend must answer it alike.
    """
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            raise InvalidInput(f"{where}: {value[:64]!r} is not a uuid") from None
    raise InvalidInput(f"{where}: expected a uuid.UUID or its string, got {type(value).__name__}")


def integer(value: object, where: str, bounds: tuple[int, int] = INTEGER) -> int:
    """An int (not a bool) within the column's range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{where}: expected an integer, got {type(value).__name__}")
    low, high = bounds
    if not low <= value <= high:
        raise InvalidInput(f"{where}: {value} is outside {low}..{high}")
    return value


def aware_datetime(value: object, where: str) -> datetime:
    """A timezone-aware datetime (naive ones have no defined instant)."""
    if not isinstance(value, datetime):
        raise InvalidInput(f"{where}: expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{where}: naive datetime {value.isoformat()} has no time zone; pass an aware one")
    return value


def json_object(value: object, where: str) -> dict[str, Any]:
    """A dict JSON can store unchanged."""
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{where}: expected a dict, got {type(value).__name__}")
    return dict(ensure_json(dict(value), where))
