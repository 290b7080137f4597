"""Hot statements compiled once and run on the DB-API cursor.

SQLAlchemy's ``Connection.execute`` spends ~40 µs per statement here
(cache-key lookup, execution context, event dispatch, result setup) and
~160 µs for an ``UPDATE … RETURNING`` with JSON parameters, against ~8 µs
for sqlite3 itself: on SQLite that overhead is most of a hot path's cost, on
PostgreSQL a third of it. A :class:`DirectStatement` keeps what matters of
SQLAlchemy — the SQL is compiled from the Core statement for the dialect,
values go through the column types' own bind and result processors (UUIDs,
UTC datetimes, strict JSON), and the cursor is SQLAlchemy's DB-API cursor, so
asyncpg's adapter still begins transactions and caches prepared statements —
and drops the rest.

Only for statements whose every value is an explicit ``bindparam`` (no
Python-side defaults, no expanding IN) and whose types bind None as NULL. Running on the connection's cursor
keeps the statement inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.selectable import Select, TextualSelect
from sqlalchemy.types import TypeEngine

__all__ = ["DirectResult", "DirectStatement"]

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class DirectResult:
    """Rows of RETURNING (processed) and the number of rows matched."""

    rowcount: int
    rows: list[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    bind_processors: tuple[Processor, ...]
    result_processors: tuple[Processor, ...]
    # Only the positions that have a processor: most columns (ints, strings)
    # have none, and skipping them halves the per-row cost of a wide RETURNING.
    binding: tuple[tuple[int, Callable[[Any], Any]], ...] = ()
    converting: tuple[tuple[int, Callable[[Any], Any]], ...] = ()

    @classmethod
    def of(
        cls, sql: str, names: tuple[str, ...], binds: tuple[Processor, ...], results: tuple[Processor, ...]
    ) -> _Compiled:
        return cls(
            sql,
            names,
            binds,
            results,
            tuple((index, process) for index, process in enumerate(binds) if process is not None),
            tuple((index, process) for index, process in enumerate(results) if process is not None),
        )

    def parameters(self, values: Mapping[str, Any]) -> list[Any]:
        # None is SQL NULL for every type statestore binds (JSON columns are
        # none_as_null), so its processor need not run; likewise on results.
        bound = [values[name] for name in self.names]
        for index, process in self.binding:
            value = bound[index]
            if value is not None:
                bound[index] = process(value)
        return bound

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        values = list(raw)
        for index, process in self.converting:
            value = values[index]
            if value is not None:
                values[index] = process(value)
        return tuple(values)


def _result_types(statement: UpdateBase | Select[Any] | TextualSelect) -> list[TypeEngine[Any]]:
    if isinstance(statement, UpdateBase):
        return [column["type"] for column in statement.returning_column_descriptions]
    return [column.type for column in statement.selected_columns]


class DirectStatement:
    """A DML statement (optionally with RETURNING) or a SELECT — a Core one or
    ``text(…).columns(…)`` — for hot paths."""

    def __init__(self, statement: UpdateBase | Select[Any] | TextualSelect) -> None:
        self._statement = statement
        self._by_dialect: dict[int, _Compiled] = {}

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self._statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        names = tuple(compiled.positiontup or ())
        if not dialect.positional or set(names) != set(compiled.binds):
            raise TypeError("DirectStatement needs a positional paramstyle and a placeholder for every bind parameter")
        return _Compiled.of(
            compiled.string,
            names,
            tuple(compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names),
            tuple(
                type_.dialect_impl(dialect).result_processor(dialect, None) for type_ in _result_types(self._statement)
            ),
        )

    def sql(self, dialect: Dialect) -> str:
        """The SQL as run on ``dialect`` (for EXPLAIN and docs)."""
        return self._compiled(dialect).sql

    def _compiled(self, dialect: Dialect) -> _Compiled:
        compiled = self._by_dialect.get(id(dialect))
        if compiled is None:
            compiled = self._by_dialect[id(dialect)] = self._compile(dialect)
        return compiled

    def execute(self, connection: Connection, values: Mapping[str, Any]) -> DirectResult:
        """Run with ``values`` (every bind parameter by name) in the
        connection's current transaction."""
        compiled = self._compiled(connection.dialect)
        cursor = connection.connection.cursor()
        try:
            cursor.execute(compiled.sql, compiled.parameters(values))
            rows = [compiled.row(raw) for raw in cursor.fetchall()] if compiled.result_processors else []
            return DirectResult(rowcount=len(rows) if rows else cursor.rowcount, rows=rows)
        finally:
            cursor.close()
