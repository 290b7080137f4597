"""Vacuum: give deleted rows' space back and refresh the planner's
statistics, after a large purge say. The statements are the dialect's
(:meth:`~statestore.core.dialect.DialectFacts.vacuum_statements`); none of
them may run inside a transaction, so this runs on the runner's admin
connection (``store.vacuum()``)."""

from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from statestore.core.dialect import facts_of
from statestore.core.sqlite_transactions import raw_driver
from statestore.schema.metadata import metadata

__all__ = ["vacuum"]


def vacuum(connection: Connection) -> None:
    """Vacuum statestore's own tables (the whole file on SQLite)."""
    facts = facts_of(connection)
    present = set(inspect(connection).get_table_names())
    tables = [t.name for t in metadata.sorted_tables if t.name in present]
    if connection.in_transaction():  # the inspection above began one
        connection.rollback()
    if facts.family != "sqlite":
        # The pool resets the level when the connection goes back.
        connection.execution_options(isolation_level="AUTOCOMMIT")
    for statement in facts.vacuum_statements(tables):
        if facts.family == "sqlite":
            # Through the driver: SQLAlchemy would open a transaction first,
            # and SQLite refuses VACUUM inside one.
            raw_driver(connection).execute(statement)
        else:
            connection.exec_driver_sql(statement).close()
