"""Column types shared by both models: UTC datetimes and strict JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import TypeCompiler
from sqlalchemy.types import TypeDecorator, TypeEngine

from statestore.core.validate import ensure_json, type_name, utc_datetime
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
            raise InvalidInput(f"expected a datetime, got {type_name(value)}")
        value = utc_datetime(value, "datetime")
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


_SURROGATE = re.compile("[\ud800-\udfff]")


def dump_json(value: JSONValue) -> str:
    """Serialise strictly: no NaN/Infinity, no silent ``str()`` of unknown types.

    Used as every engine's ``json_serializer`` so that all dialects accept and
    reject exactly the same values. Fields are checked by :func:`ensure_json`
    before any SQL; this is the last guard, for a value that skipped it: a
    lone surrogate (which no driver can encode) or what the encoder refuses
    is InvalidInput, not a driver's error quoting the value.
    """
    try:
        encoded = _ENCODER.encode(value)
    except (TypeError, ValueError, RecursionError):
        problem = "it is not strict JSON (see statestore.core.validate.ensure_json)"
    else:
        if encoded.isascii() or _SURROGATE.search(encoded) is None:
            return encoded
        problem = "a string in it contains a lone surrogate"
    raise InvalidInput(f"a JSON value cannot be stored: {problem}")


class _SQLiteJSONText(sqlite.JSON):
    """SQLAlchemy's JSON on SQLite, declared ``TEXT`` instead of ``JSON``.

    A column declared ``JSON`` has NUMERIC affinity: SQLite stores the text
    of a top-level JSON number as a number, so an atom's results ``1.0`` came
    back as the int 1, -0.0 as 0 and 1.5e16 as an int. With TEXT affinity
    the text is kept as written. Only the DDL differs (see the ``compiles``
    below); values are bound and read by SQLAlchemy's SQLite JSON as before.
    """


@compiles(_SQLiteJSONText, "sqlite")
def _declared_text(type_: _SQLiteJSONText, compiler: TypeCompiler, **kw: Any) -> str:
    return "TEXT"


JSONType: TypeEngine[Any] = JSON(none_as_null=True).with_variant(_SQLiteJSONText(none_as_null=True), "sqlite")
"""JSON on every dialect, Python None as SQL NULL, kept as the text written
(migration 0004), so every value comes back equal and of the same type on
every backend:

* PostgreSQL: ``json``, not ``jsonb``, which stores numbers as ``numeric``
  and gives back 1.5e16 as the integer 15000000000000000, 1e300 as a
  301-digit integer and -0.0 as 0.0. No index or operator uses ``jsonb``.
* SQLite: declared ``TEXT`` (see :class:`_SQLiteJSONText`).
* MariaDB: ``JSON``, a LONGTEXT checked by ``JSON_VALID``."""
