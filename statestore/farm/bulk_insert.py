"""Bulk INSERTs on the DB-API cursor, for job submission (10,000 tasks).

``Connection.execute(insert(table), rows)`` spends more time building and
processing parameters (a dict per row, every column's bind processor per
row) than the driver spends inserting. A :class:`BulkInsert` compiles the
INSERT once per dialect, runs each column's own bind processor (so UUIDs,
UTC datetimes and strict JSON bind exactly as elsewhere) once per value —
and only once for a value every row shares — and hands plain tuples to the
cursor's ``executemany``, inside the connection's transaction. Driver errors
are wrapped as SQLAlchemy wraps them, so they are classified as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, insert
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["BulkInsert"]

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    processors: tuple[Processor, ...]


class BulkInsert:
    """``INSERT INTO table (columns) VALUES (…)`` for many rows at once."""

    def __init__(self, table: Table, columns: Sequence[str]) -> None:
        self._statement = insert(table).values({name: bindparam(name) for name in columns})
        self._columns = tuple(columns)
        self._by_dialect: dict[int, _Compiled] = {}

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self._statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        names = tuple(compiled.positiontup or ())
        if not dialect.positional or sorted(names) != sorted(self._columns):
            raise TypeError("BulkInsert needs a positional paramstyle and one placeholder per column")
        processors = tuple(compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)
        return _Compiled(sql=compiled.string, names=names, processors=processors)

    def execute(
        self,
        connection: Connection,
        columns: Mapping[str, Sequence[Any]],
        shared: Mapping[str, Any],
    ) -> None:
        """Insert one row per position of the ``columns`` sequences (all of
        one length); ``shared`` values are the same in every row."""
        dialect = connection.dialect
        compiled = self._by_dialect.get(id(dialect))
        if compiled is None:
            compiled = self._by_dialect[id(dialect)] = self._compile(dialect)
        count = len(next(iter(columns.values()))) if columns else 0
        if count == 0:
            return
        values: list[Sequence[Any]] = []
        for name, process in zip(compiled.names, compiled.processors, strict=True):
            if name in shared:
                value = shared[name]
                values.append([value if process is None or value is None else process(value)] * count)
            else:
                given = columns[name]
                values.append(given if process is None else [None if v is None else process(v) for v in given])
        cursor = connection.connection.cursor()
        try:
            cursor.executemany(compiled.sql, list(zip(*values, strict=True)))
        except dialect.loaded_dbapi.Error as error:
            # Wrapped as SQLAlchemy would, so the runner classifies it by code
            # (a duplicate uuid is AlreadyExists) like any other statement's.
            raise DBAPIError.instance(compiled.sql, None, error, dialect.loaded_dbapi.Error, dialect=dialect) from error
        finally:
            cursor.close()
