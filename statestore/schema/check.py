"""``store.check()``: is this database sound and what statestore expects?"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.engine import Connection

from statestore.schema import migrate

__all__ = ["CheckReport", "run_checks", "wal_bytes"]


@dataclass(frozen=True)
class CheckReport:
    """What :meth:`Store.check` found; ``ok`` when there is nothing to fix."""

    backend: str
    revision: str | None
    head: str
    foreign_keys_enforced: bool
    problems: tuple[str, ...] = field(default=())
    wal_bytes: int | None = None
    """Size of a SQLite file's write-ahead log (``<database>-wal``) on disk;
    None for SQLite in memory and for servers."""

    @property
    def schema_at_head(self) -> bool:
        """The database has every migration this version ships, and no other."""
        return self.revision == self.head

    @property
    def ok(self) -> bool:
        """Nothing wrong was found."""
        return not self.problems


def wal_bytes(connection: Connection) -> int | None:
    """The size of the SQLite write-ahead log of the database ``connection``
    is on (0 when there is none right now); None for SQLite in memory and
    for servers. Costs one PRAGMA and one ``stat``."""
    if connection.dialect.name != "sqlite":
        return None
    driver = connection.connection.driver_connection
    assert driver is not None
    path = next((str(row[2]) for row in driver.execute("PRAGMA database_list") if row[1] == "main"), "")
    if not path:
        return None
    try:
        return os.stat(f"{path}-wal").st_size
    except FileNotFoundError:
        return 0


def run_checks(connection: Connection) -> CheckReport:
    """Inspect the database the connection is on; never changes anything."""
    backend = connection.dialect.name
    problems: list[str] = []
    revision = migrate.current_revision(connection)
    head = migrate.head_revision()
    if revision != head:
        problems.append(f"schema at revision {revision or 'none'}, this statestore expects {head}")
    foreign_keys = True
    if backend == "sqlite":
        foreign_keys = bool(connection.exec_driver_sql("PRAGMA foreign_keys").scalar())
        integrity = [row[0] for row in connection.exec_driver_sql("PRAGMA integrity_check")]
        if integrity != ["ok"]:
            problems.extend(f"integrity: {line}" for line in integrity)
        for table, rowid, parent, _ in connection.exec_driver_sql("PRAGMA foreign_key_check"):
            problems.append(f"foreign key: {table} row {rowid} refers to a missing {parent} row")
    elif backend in ("mysql", "mariadb"):
        foreign_keys = bool(connection.execute(text("SELECT @@foreign_key_checks")).scalar())
    if not foreign_keys:
        problems.append("foreign keys are not enforced on this connection")
    return CheckReport(
        backend=backend,
        revision=revision,
        head=head,
        foreign_keys_enforced=foreign_keys,
        problems=tuple(problems),
        wal_bytes=wal_bytes(connection),
    )
