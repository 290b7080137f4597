"""Alembic environment: migrations run on a connection the store provides."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from alembic.runtime.environment import NameFilterParentNames, NameFilterType

import statestore.schema.metadata  # noqa: F401  (registers every table on Base.metadata)
from statestore.core.base import Base
from statestore.core.types import UTCDateTime
from statestore.schema.migrate import VERSION_TABLE

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("statestore migrations run through `statestore upgrade` or `await store.upgrade()`")


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render statestore's own column types importably in new migrations."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        autogen_context.imports.add("from statestore.core.types import UTCDateTime")
        return "UTCDateTime()"
    return False


def include_name(name: str | None, type_: NameFilterType, parent_names: NameFilterParentNames) -> bool:
    """Compare only statestore's own tables with the models: the database may
    be shared with another application (TaskFlow's SQLAlchemy backend makes
    logbooks, flowdetails, atomdetails and alembic_version), whose tables are
    not drift."""
    return type_ != "table" or name in Base.metadata.tables


context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTERs by rebuilding
    compare_type=True,
    render_item=render_item,
    include_name=include_name,
    # Not alembic_version, which TaskFlow uses; migrate.py reads an earlier statestore's revision there.
    version_table=config.attributes.get("version_table", VERSION_TABLE),
)
with context.begin_transaction():
    context.run_migrations()
