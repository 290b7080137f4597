"""``INSERT … ON CONFLICT DO NOTHING`` on every dialect, for idempotent adds.

One statement, so two concurrent adds of the same row cannot both insert
(a select-then-insert would race into a duplicate-key error). MySQL has no
DO NOTHING: a no-op ``ON DUPLICATE KEY UPDATE`` (a key column set to itself)
does the same, where ``INSERT IGNORE`` would also swallow foreign key and
other errors.
"""

from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.dml import Insert

__all__ = ["insert_once"]


def insert_once(dialect: Dialect, table: Table) -> Insert:
    """An INSERT into ``table`` that leaves an existing row with the same key alone."""
    if dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    statement = mysql.insert(table)
    key = next(iter(table.primary_key.columns)).name
    return statement.on_duplicate_key_update({key: statement.inserted[key]})
