"""JSON columns keep the text written: json (not jsonb) on PostgreSQL, TEXT on SQLite

Every JSON value must come back equal and of the same type on every backend.

* PostgreSQL: jsonb stores numbers as numeric and gives them back
  normalised: the float 1.5e16 as the integer 15000000000000000, 1e300 as a
  301-digit integer, -0.0 as 0.0. json keeps the text as written. No index
  or operator uses jsonb.
* SQLite: a column declared JSON has NUMERIC affinity, so the text of a
  top-level JSON number (an atom's results) is stored as a number: 1.0 came
  back as the integer 1. Declared TEXT, the text is kept. SQLite cannot
  change a column's declared type in place: each table is rebuilt from its
  own stored CREATE statement (only the type words change), and its indexes
  from theirs, as SQLite's documentation prescribes (foreign keys are off
  during migrations).
* MariaDB: JSON is a LONGTEXT already; nothing to do.

Values stored before this revision keep what the old type made of them (a
float already turned integer stays one).

Revision ID: 0004_json_not_jsonb
Revises: 0003_jobs_created_at
Create Date: 2026-12-08
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_json_not_jsonb"
down_revision: str | None = "0003_jobs_created_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_COLUMNS = {
    "log_books": ("meta",),
    "flow_details": ("meta",),
    "atom_details": ("results", "failure", "revert_results", "revert_failure", "meta"),
    "jobs": ("settings", "metadata"),
    "tasks": ("commands",),
}


def _json_columns(bind: sa.Connection) -> dict[str, tuple[str, ...]]:
    """JSON_COLUMNS under the table names of this database: a database made
    by the earlier 0001 has "logbooks" where today's has "log_books", until
    0007 renames it (one without log_books is such a database)."""
    if sa.inspect(bind).has_table("log_books"):
        return JSON_COLUMNS
    return {("logbooks" if table == "log_books" else table): columns for table, columns in JSON_COLUMNS.items()}


def _postgresql(bind: sa.Connection, source: type[postgresql.JSON], target: str) -> None:
    """Every JSON column now of type ``source`` becomes ``target``, one ALTER
    (one table rewrite) per table. A database created at an earlier revision
    by this version already has json columns: nothing is converted then."""
    quote = bind.dialect.identifier_preparer.quote
    inspector = sa.inspect(bind)
    for table, columns in _json_columns(bind).items():
        types = {column["name"]: column["type"] for column in inspector.get_columns(table)}
        changing = [name for name in columns if type(types[name]) is source]  # JSONB is a JSON
        if changing:
            alterations = ", ".join(
                f"ALTER COLUMN {quote(name)} TYPE {target} USING {quote(name)}::{target}" for name in changing
            )
            op.execute(f"ALTER TABLE {quote(table)} {alterations}")


def _sqlite(bind: sa.Connection, source: str, target: str) -> None:
    """Every JSON column declared ``source`` is declared ``target``: the
    table is made anew from its own CREATE statement with only those words
    changed, filled from the old one, which is dropped; then its indexes are
    made again from their own statements."""
    for table, columns in _json_columns(bind).items():
        create = bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).scalar_one()
        changed = create
        for name in columns:
            changed = re.sub(
                rf'(?m)^(\s*"?{name}"?\s+){source}\b', lambda match: f"{match.group(1)}{target}", changed, count=1
            )
        if changed == create:
            continue  # made by this version at an earlier revision: already so
        indexes = bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND tbl_name = ? AND sql IS NOT NULL",
            (table,),
        ).scalars()
        rebuilt = f"_rebuilt_{table}"
        new_create, replaced = re.subn(rf'^CREATE TABLE\s+"?{table}"?', f'CREATE TABLE "{rebuilt}"', changed)
        assert replaced == 1, f"unexpected CREATE TABLE statement for {table}"
        statements = list(indexes)
        op.execute(new_create)
        op.execute(f'INSERT INTO "{rebuilt}" SELECT * FROM "{table}"')
        op.execute(f'DROP TABLE "{table}"')
        op.execute(f'ALTER TABLE "{rebuilt}" RENAME TO "{table}"')
        for statement in statements:
            op.execute(statement)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        _postgresql(bind, postgresql.JSONB, "json")
    elif bind.dialect.name == "sqlite":
        _sqlite(bind, "JSON", "TEXT")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        _postgresql(bind, postgresql.JSON, "jsonb")
    elif bind.dialect.name == "sqlite":
        _sqlite(bind, "TEXT", "JSON")
