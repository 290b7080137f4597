"""Column types shared by both models: UTC datetimes and strict JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from statestore.errors import InvalidInput

__all__ = ["JSONValue", "UTCDateTime", "dump_json", "ensure_json", "utcnow"]

JSONValue = Any
"""What a JSON column holds: None, bool, int, float, str, list, dict[str, …]."""


def utcnow() -> datetime:
    """The current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


class _SQLiteDateTime(sqlite.DATETIME):
    """SQLite's DATETIME (same DDL, same stored text), parsed with the C
    ``datetime.fromisoformat`` instead of a regular expression: a 1,000-atom
    load parses 2,000 of them."""

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], datetime | None]:
        def parse(value: Any) -> datetime | None:
            return None if value is None else datetime.fromisoformat(value)

        return parse


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every dialect.

    ``DateTime(timezone=True)`` comes back naive on SQLite and MySQL and, on
    SQLite, silently drops the offset (12:00+02:00 is stored as 12:00). This
    type converts every value to UTC before it is bound, stores naive UTC where
    the dialect has no zone, and always returns an aware UTC datetime. Naive
    inputs are rejected: the store cannot know which zone they meant.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            # Microsecond precision; MySQL's DATETIME defaults to whole seconds.
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        if dialect.name == "sqlite":
            return _SQLiteDateTime()  # type: ignore[no-untyped-call]
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise InvalidInput(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidInput(f"naive datetime {value.isoformat()} has no time zone; pass an aware one")
        value = value.astimezone(UTC)
        if dialect.name == "postgresql":
            return value
        return value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _reject_unknown(value: object) -> Any:
    raise TypeError(f"{type(value).__name__} is not representable in JSON")


_ENCODER = json.JSONEncoder(allow_nan=False, default=_reject_unknown, ensure_ascii=False)
"""One encoder for every value: ``json.dumps`` with these options builds a new
one per call (~1 µs each, thousands of times per submitted job)."""


def dump_json(value: JSONValue) -> str:
    """Serialise strictly: no NaN/Infinity, no silent ``str()`` of unknown types.

    Used as every engine's ``json_serializer`` so that all dialects accept and
    reject exactly the same values.
    """
    return _ENCODER.encode(value)


def ensure_json(value: JSONValue, what: str) -> JSONValue:
    """Return ``value`` as JSON will store it, or raise InvalidInput.

    Tuples are accepted and become lists (JSON's only sequence), so the value
    returned compares equal to what a later read gives back. Sets, bytes,
    datetimes, other objects, non-string dict keys and non-finite floats are
    rejected, because storing them would change them (SQLite would coerce,
    PostgreSQL would refuse): ``what`` names the field in the error.
    """
    try:
        return _normalized_quickly(value)
    except _NotJSON:
        return _normalized(value, what)  # again, naming where it went wrong


class _NotJSON(Exception):
    pass


def _normalized_quickly(value: object) -> JSONValue:
    """:func:`_normalized` without building a path per element (most values
    are fine, and the paths cost more than the checks)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotJSON
        return value
    if isinstance(value, (list, tuple)):
        return [_normalized_quickly(item) for item in value]
    if isinstance(value, dict):
        normal: dict[str, JSONValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _NotJSON
            normal[key] = _normalized_quickly(item)
        return normal
    raise _NotJSON


def _normalized(value: object, path: str) -> JSONValue:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"{path}: {value!r} is not representable in JSON")
        return value
    if isinstance(value, (list, tuple)):
        return [_normalized(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, dict):
        normal: dict[str, JSONValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(f"{path}: dict key {key!r} is not a string; JSON would turn it into one")
            normal[key] = _normalized(item, f"{path}[{key!r}]")
        return normal
    raise InvalidInput(f"{path}: {type(value).__name__} is not representable in JSON")


JSONType: TypeEngine[Any] = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
"""JSON everywhere, JSONB on PostgreSQL; Python None is SQL NULL."""
