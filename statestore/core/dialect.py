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
from typing import Any, Literal

from sqlalchemy import BigInteger, ColumnElement, Table, Text, cast, func, literal, null
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.dml import Insert

__all__ = ["ChangeOrder", "ClaimStrategy", "DialectFacts", "WakeupSource", "facts_of"]

ClaimStrategy = Literal["postgresql", "sqlite", "mariadb"]
"""Which claim statement a dialect runs (see ``statestore.farm.claim``)."""

ChangeOrder = Literal["transaction", "numbered", "insertion"]
"""How the change feed puts changes in commit order (see ``statestore.changes.tables``)."""

WakeupSource = Literal["notify", "data_version", "polling"]
"""How a store learns of other processes' commits (see ``statestore.core.wakeups``)."""

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
    cte_writes: bool
    """A hot write that reads, updates and appends (a worker's completion,
    ``statestore.farm.completion``; an atom's update with its change record,
    ``statestore.flows.atom_details``) is one statement of data-modifying
    CTEs in autocommit, where a round trip costs more than the SQL
    (PostgreSQL); elsewhere it is a short transaction of plain statements."""
    change_order: ChangeOrder
    """``transaction``: a change's ``tx`` is its transaction's id, and readers
    stop below their snapshot's oldest running transaction (PostgreSQL).
    ``numbered``: written NULL, numbered in batches by readers under a row
    lock (MariaDB/MySQL). ``insertion``: one writer, ids are commit order
    (SQLite)."""
    wakeups: WakeupSource
    """``notify``: LISTEN/NOTIFY, sent in the enabling transaction
    (PostgreSQL). ``data_version``: ``PRAGMA data_version`` read every few
    milliseconds tells of other connections' commits (SQLite). ``polling``:
    waiters re-claim on an adaptive interval (MariaDB/MySQL)."""

    def change_tx(self) -> ColumnElement[Any]:
        """The value of ``changes.tx`` for a change written now."""
        if self.change_order == "transaction":
            return cast(cast(func.pg_current_xact_id(), Text), BigInteger)
        if self.change_order == "insertion":
            return literal(0, BigInteger)
        return null()

    def vacuum_statements(self, tables: Sequence[str]) -> list[str]:
        """What gives deleted rows' space back and refreshes the planner's
        statistics, run outside a transaction: SQLite rewrites the whole
        file; the servers work table by table (PostgreSQL's VACUUM
        ANALYZE, MariaDB's OPTIMIZE TABLE, which rebuilds and analyzes)."""
        if self.family == "sqlite":
            return ["VACUUM", "ANALYZE"]
        if self.family == "postgresql":
            return [f'VACUUM (ANALYZE) "{name}"' for name in tables]
        return [f"OPTIMIZE TABLE `{name}`" for name in tables]

    def change_horizon(self) -> ColumnElement[Any] | None:
        """Where the feed may read up to (exclusive) in this statement's
        snapshot: below the oldest transaction still running, whose changes
        may yet appear (PostgreSQL); None where every change visible is final."""
        if self.change_order == "transaction":
            return cast(cast(func.pg_snapshot_xmin(func.pg_current_snapshot()), Text), BigInteger)
        return None

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
    cte_writes=True,
    change_order="transaction",
    wakeups="notify",
)
_SQLITE = DialectFacts(
    family="sqlite",
    update_returning=True,
    one_writer=True,
    claim="sqlite",
    coalesce_heartbeats=False,
    bulk_insert_unnest=False,
    recount_by_key=False,
    cte_writes=False,
    change_order="insertion",
    wakeups="data_version",
)
_MARIADB = DialectFacts(
    family="mysql",
    update_returning=False,
    one_writer=False,
    claim="mariadb",
    coalesce_heartbeats=False,
    bulk_insert_unnest=False,
    recount_by_key=True,
    cte_writes=False,
    change_order="numbered",
    wakeups="polling",
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
