"""taskflow coexistence: statestore's logbooks live in log_books; a legacy logbooks table is renamed

TaskFlow's own SQLAlchemy backend keeps its logbooks in a table named
``logbooks``, so a database shared with it could not also hold statestore's
table of that name (``statestore upgrade`` failed with "table logbooks already
exists"). statestore's table is now ``log_books`` and, by the naming
convention, its constraints are ``pk_log_books``, ``uq_log_books_uuid`` and
``fk_flow_details_logbook_id_log_books`` (the column stays ``logbook_id``).

Revision 0001 was changed to make ``log_books`` directly: on a database that
already holds TaskFlow's tables it could not make ``logbooks`` for this
revision to rename. A database therefore reaches this revision in one of two
layouts:

* made by the changed 0001: ``log_books`` exists and nothing is done (a
  ``logbooks`` table beside it is TaskFlow's and is left alone);
* made by the earlier 0001: ``log_books`` does not exist, and ``logbooks`` is
  statestore's (TaskFlow's could not have been made beside it). It becomes
  exactly what the changed 0001 makes:

  - PostgreSQL: the table is renamed, then its primary key and unique
    constraints (their indexes follow), its id sequence, and the foreign key
    of flow_details that refers to it;
  - MariaDB: the table is renamed (InnoDB moves the foreign keys that refer
    to it) and its unique index; a foreign key cannot be renamed, so
    flow_details' is dropped and made again under its new name; a primary
    key is always named PRIMARY there;
  - SQLite keeps constraint names and referenced tables only inside each
    table's CREATE statement, which ALTER cannot change: log_books is made
    from logbooks' own statement with the names changed and filled from it,
    flow_details is rebuilt from its own statement the same way (as 0004
    does; foreign keys are off during migrations), and logbooks is dropped.

Downgrade does nothing: the schema of 0006, as 0001 now defines it, already
has ``log_books``, and taking the old name back would collide with TaskFlow's
table on a shared database.

Revision ID: 0007_taskflow_coexistence
Revises: 0006_changes
Create Date: 2026-12-10
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_taskflow_coexistence"
down_revision: str | None = "0006_changes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEGACY_TABLE = "logbooks"
TABLE = "log_books"
RENAMED_CONSTRAINTS = {
    "pk_logbooks": "pk_log_books",
    "uq_logbooks_uuid": "uq_log_books_uuid",
    "fk_flow_details_logbook_id_logbooks": "fk_flow_details_logbook_id_log_books",
}
"""The legacy table's constraint names and the ones the naming convention gives under its new name."""


def _postgresql(bind: sa.Connection) -> None:
    quote = bind.dialect.identifier_preparer.quote
    # The sequence behind the BIGSERIAL id is named after the table it was made for.
    sequence = bind.execute(sa.text("SELECT pg_get_serial_sequence(:name, 'id')"), {"name": LEGACY_TABLE}).scalar()
    op.rename_table(LEGACY_TABLE, TABLE)
    for old, new in RENAMED_CONSTRAINTS.items():
        table = "flow_details" if old.startswith("fk_") else TABLE
        op.execute(f"ALTER TABLE {quote(table)} RENAME CONSTRAINT {quote(old)} TO {quote(new)}")
    if sequence is not None:  # already qualified and quoted as needed
        op.execute(f"ALTER SEQUENCE {sequence} RENAME TO {quote(f'{TABLE}_id_seq')}")


def _mariadb() -> None:
    op.rename_table(LEGACY_TABLE, TABLE)
    op.execute(f"ALTER TABLE {TABLE} RENAME INDEX uq_logbooks_uuid TO uq_log_books_uuid")
    op.drop_constraint(op.f("fk_flow_details_logbook_id_logbooks"), "flow_details", type_="foreignkey")
    op.create_foreign_key(
        op.f("fk_flow_details_logbook_id_log_books"),
        "flow_details",
        TABLE,
        ["logbook_id"],
        ["id"],
        ondelete="CASCADE",
    )


def _renamed(statement: str) -> str:
    """``statement`` with the legacy table's name and the constraint names
    replaced, as whole identifiers (``logbook_id`` and the like are kept)."""
    for old, new in {LEGACY_TABLE: TABLE, **RENAMED_CONSTRAINTS}.items():
        statement = re.sub(rf"\b{old}\b", new, statement)
    return statement


def _sqlite(bind: sa.Connection) -> None:
    def create_statement(table: str) -> str:
        return str(
            bind.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
            ).scalar_one()
        )

    books = _renamed(create_statement(LEGACY_TABLE))
    flows, replaced = re.subn(
        r'^CREATE TABLE\s+"?flow_details"?',
        'CREATE TABLE "_rebuilt_flow_details"',
        _renamed(create_statement("flow_details")),
    )
    assert replaced == 1, "unexpected CREATE TABLE statement for flow_details"
    flow_indexes = list(
        bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND tbl_name = 'flow_details'"
            " AND sql IS NOT NULL"
        ).scalars()
    )
    op.execute(books)
    op.execute(f'INSERT INTO "{TABLE}" SELECT * FROM "{LEGACY_TABLE}"')
    op.execute(flows)
    op.execute('INSERT INTO "_rebuilt_flow_details" SELECT * FROM "flow_details"')
    op.execute('DROP TABLE "flow_details"')
    op.execute('ALTER TABLE "_rebuilt_flow_details" RENAME TO "flow_details"')
    op.execute(f'DROP TABLE "{LEGACY_TABLE}"')  # nothing refers to it any more
    for statement in flow_indexes:
        op.execute(statement)


def upgrade() -> None:
    bind = op.get_bind()
    if sa.inspect(bind).has_table(TABLE):
        return  # made by the changed 0001: already the new layout
    if bind.dialect.name == "postgresql":
        _postgresql(bind)
    elif bind.dialect.name == "sqlite":
        _sqlite(bind)
    else:
        _mariadb()


def downgrade() -> None:
    pass  # see the docstring: 0006, as 0001 now makes it, already has log_books
