"""The only place with dialect-specific SQL: upserts and RETURNING support."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Table
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.dml import Insert

__all__ = ["update_returning", "upsert"]


def upsert(dialect: Dialect, table: Table, key: str, update: Sequence[str]) -> Insert:
    """``INSERT … ON CONFLICT (key) DO UPDATE SET update = new values``.

    One statement, so concurrent upserts of one key cannot both insert
    (select-then-insert would race into an IntegrityError). MySQL's form has
    no conflict target; every unique key of ``table`` may trigger the update.
    """
    if dialect.name == "postgresql":
        pg_stmt = postgresql.insert(table)
        return pg_stmt.on_conflict_do_update(
            index_elements=[table.c[key]], set_={name: pg_stmt.excluded[name] for name in update}
        )
    if dialect.name == "sqlite":
        lite_stmt = sqlite.insert(table)
        return lite_stmt.on_conflict_do_update(
            index_elements=[table.c[key]], set_={name: lite_stmt.excluded[name] for name in update}
        )
    my_stmt = mysql.insert(table)
    return my_stmt.on_duplicate_key_update({name: my_stmt.inserted[name] for name in update})


def update_returning(dialect: Dialect) -> bool:
    """Whether ``UPDATE … RETURNING`` exists (not on MySQL or MariaDB)."""
    return bool(dialect.update_returning)
