"""Alembic, driven through a connection the store already holds.

The stock async ``env.py`` calls ``asyncio.run``, which fails inside a running
event loop. Here the store hands alembic a synchronous connection (its own
SQLite writer, or a server connection inside ``run_sync``) through
``Config.attributes``, so migrating works from async code and from the CLI.

statestore records its revision in its own version table,
``statestore_version``, not in alembic's default ``alembic_version``: the
database may be shared with another application migrated by alembic
(TaskFlow's SQLAlchemy backend keeps its revision in ``alembic_version``),
and each must find only its own revision. A database migrated by an earlier
statestore has its revision in ``alembic_version``: reading understands it
there, and the next upgrade or downgrade moves it first
(:func:`_move_legacy_version`).
"""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, Table, column, delete, func, inspect, select, table
from sqlalchemy.engine import Connection
from sqlalchemy.schema import DropTable

__all__ = [
    "LEGACY_VERSION_TABLE",
    "VERSION_TABLE",
    "check_models",
    "current_revision",
    "downgrade",
    "head_revision",
    "upgrade",
]

VERSION_TABLE = "statestore_version"
"""The table statestore records its schema revision in."""
LEGACY_VERSION_TABLE = "alembic_version"
"""Where statestore recorded it before: alembic's default, which any other
alembic user of the database (TaskFlow) uses too."""


def _config(connection: Connection | None = None, version_table: str = VERSION_TABLE) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("statestore") / "migrations"))
    config.attributes["version_table"] = version_table  # read by env.py
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    """The revision this version of statestore's models correspond to."""
    heads = _script().get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"statestore migrations must have one head, found {heads}")
    return heads[0]


def _legacy_revisions(connection: Connection) -> tuple[str, ...]:
    """statestore's revision as an earlier statestore recorded it, in
    ``alembic_version``; none once ``statestore_version`` exists. Revisions
    there that are not statestore's (TaskFlow's) are another application's."""
    if inspect(connection).has_table(VERSION_TABLE):
        return ()
    legacy = MigrationContext.configure(connection, opts={"version_table": LEGACY_VERSION_TABLE})
    ours = {script.revision for script in _script().walk_revisions()}
    return tuple(revision for revision in legacy.get_current_heads() if revision in ours)


def _version_table(connection: Connection) -> str:
    """The table this database's statestore revision is in right now."""
    return LEGACY_VERSION_TABLE if _legacy_revisions(connection) else VERSION_TABLE


def _move_legacy_version(connection: Connection) -> None:
    """Move statestore's revision from ``alembic_version`` (an earlier
    statestore's) into ``statestore_version``, leaving any other revision
    there to its application; ``alembic_version`` is dropped if nothing is
    left in it. Runs in the migration's transaction, before alembic reads
    the revision."""
    legacy = _legacy_revisions(connection)
    if not legacy:
        return
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    for revision in legacy:
        context.stamp(_script(), revision)  # creates statestore_version
    versions = table(LEGACY_VERSION_TABLE, column("version_num"))
    connection.execute(delete(versions).where(versions.c.version_num.in_(legacy)))
    if connection.execute(select(func.count()).select_from(versions)).scalar_one() == 0:
        connection.execute(DropTable(Table(LEGACY_VERSION_TABLE, MetaData())))


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at; None for a database never migrated.
    Found in ``alembic_version`` on a database last migrated by an earlier
    statestore, which stays as it is: reading never writes."""
    legacy = _legacy_revisions(connection)
    if legacy:
        (revision,) = legacy  # statestore's history is one line: one revision at a time
        return revision
    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Migrate up to ``revision`` in one transaction (where DDL allows it)."""
    with connection.begin():
        _move_legacy_version(connection)
        command.upgrade(_config(connection), revision)


def downgrade(connection: Connection, revision: str) -> None:
    """Migrate down to ``revision`` (``"base"`` removes every table)."""
    with connection.begin():
        _move_legacy_version(connection)
        command.downgrade(_config(connection), revision)


def check_models(connection: Connection) -> None:
    """Raise ``alembic.util.AutogenerateDiffsDetected`` if the migrated schema
    and the models differ. The revision is read where it is (see
    :func:`current_revision`), never moved."""
    with connection.begin():
        command.check(_config(connection, _version_table(connection)))
