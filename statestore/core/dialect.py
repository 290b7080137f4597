"""What each database can do, decided once: the only module that asks a dialect its name.

Repositories and their units never compare dialect names. They ask the
:class:`DialectFacts` of their runner (``runner.facts``) or of the connection
a unit runs on (:func:`facts_of`), and build dialect-specific statements
(upserts, insert-once) through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal

from sqlalchemy import Table
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.dml import Insert

__all__ = ["ClaimStrategy", "DialectFacts", "facts_of"]

ClaimStrategy = Literal["postgresql", "sqlite", "mariadb"]
"""Which claim statement a dialect runs (see ``statestore.farm.claim``)."""

_Family = Literal["postgresql", "sqlite", "mysql"]


@dataclass(frozen=True)
class DialectFacts:
    """The capabilities and choices of one database dialect."""

    family: _Family
    update_returning: bool
    """``UPDATE … RETURNING`` exists, so an update that returns the row is
    one statement (not on MySQL or MariaDB)."""
    one_writer: bool
    """Write transactions are serial (SQLite's database lock): row locks are
    moot, and ``FOR UPDATE`` compiles to nothing anyway."""
    claim: ClaimStrategy
    """The claim statement to run."""
    coalesce_heartbeats: bool
    """Heartbeats arriving together share one UPDATE (worth a round trip on
    PostgreSQL; SQLite's group commit already batches them)."""
    bulk_insert_unnest: bool
    """Bulk inserts send one array per column through ``unnest`` (PostgreSQL)
    instead of a multi-row VALUES list."""
    recount_by_key: bool
    """Counts that read other rows of the updated table are read first and
    written by primary key: MariaDB's UPDATE with a subquery over the same
    table takes shared locks on every row it reads, which deadlocks with
    claimers."""
    completion_statement: bool
    """A worker's completion of its task is one statement of data-modifying
    CTEs in autocommit (``statestore.farm.completion``), where a round trip
    costs more than the SQL (PostgreSQL); elsewhere it is the state
    machine's transaction."""

    def upsert(self, table: Table, key: str, update: Sequence[str]) -> Insert:
        """``INSERT … ON CONFLICT (key) DO UPDATE SET update = new values``.

        One statement, so concurrent upserts of one key cannot both insert
        (select-then-insert would race into an IntegrityError). MySQL's form
        has no conflict target; every unique key of ``table`` may trigger the
        update.
        """
        if self.family == "postgresql":
            pg_stmt = postgresql.insert(table)
            return pg_stmt.on_conflict_do_update(
                index_elements=[table.c[key]], set_={name: pg_stmt.excluded[name] for name in update}
            )
        if self.family == "sqlite":
            lite_stmt = sqlite.insert(table)
            return lite_stmt.on_conflict_do_update(
                index_elements=[table.c[key]], set_={name: lite_stmt.excluded[name] for name in update}
            )
        my_stmt = mysql.insert(table)
        return my_stmt.on_duplicate_key_update({name: my_stmt.inserted[name] for name in update})

    def insert_once(self, table: Table) -> Insert:
        """An INSERT into ``table`` that leaves an existing row with the same key alone.

        One statement, so two concurrent adds of the same row cannot both
        insert. MySQL has no DO NOTHING: a no-op ``ON DUPLICATE KEY UPDATE``
        (a key column set to itself) does the same, where ``INSERT IGNORE``
        would also swallow foreign key and other errors.
        """
        if self.family == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        if self.family == "sqlite":
            return sqlite.insert(table).on_conflict_do_nothing()
        statement = mysql.insert(table)
        key = next(iter(table.primary_key.columns)).name
        return statement.on_duplicate_key_update({key: statement.inserted[key]})


_POSTGRESQL = DialectFacts(
    family="postgresql",
    update_returning=True,
    one_writer=False,
    claim="postgresql",
    coalesce_heartbeats=True,
    bulk_insert_unnest=True,
    recount_by_key=False,
    completion_statement=True,
)
_SQLITE = DialectFacts(
    family="sqlite",
    update_returning=True,
    one_writer=True,
    claim="sqlite",
    coalesce_heartbeats=False,
    bulk_insert_unnest=False,
    recount_by_key=False,
    completion_statement=False,
)
_MARIADB = DialectFacts(
    family="mysql",
    update_returning=False,
    one_writer=False,
    claim="mariadb",
    coalesce_heartbeats=False,
    bulk_insert_unnest=False,
    recount_by_key=True,
    completion_statement=False,
)


@cache
def _facts_named(name: str) -> DialectFacts:
    if name == "postgresql":
        return _POSTGRESQL
    if name == "sqlite":
        return _SQLITE
    if name in ("mysql", "mariadb"):
        return _MARIADB
    raise ValueError(f"statestore does not support the {name!r} dialect")


def facts_of(where: Dialect | Connection) -> DialectFacts:
    """The facts of a dialect, or of the dialect a connection speaks."""
    dialect = where.dialect if isinstance(where, Connection) else where
    return _facts_named(dialect.name)
