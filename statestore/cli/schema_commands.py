"""The schema's commands: ``upgrade``, ``downgrade``, ``current``,
``schema``, ``stats``, ``checkpoint`` and ``vacuum``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import func, inspect, select
from sqlalchemy.engine import Connection

from statestore.cli.output import console, errors, fitted_table, print_json, size
from statestore.cli.root import JsonOption, UrlOption, YesOption, app, confirm, on_store, run, store_url, with_store
from statestore.core.urls import resolve_url
from statestore.schema import migrate
from statestore.schema.check import wal_bytes
from statestore.schema.ddl import DIALECTS, ddl, write_all
from statestore.schema.metadata import metadata
from statestore.store import Store

__all__ = ["checkpoint", "current", "downgrade", "schema", "stats", "upgrade", "vacuum"]


@app.command()
def upgrade(url: UrlOption = None, revision: str = typer.Option("head", help="Target revision.")) -> None:
    """Create the schema or migrate it up to REVISION (default: this version's head).
    The one command that creates a database that does not exist."""
    run(with_store(url, lambda store: store.upgrade(revision), read_only=False, checked=False))
    console.print(f"schema at {revision}")


async def _row_counts(store: Store) -> list[tuple[str, int]]:
    """Rows per statestore table present in the database (none before ``upgrade``)."""

    def count(connection: Connection) -> list[tuple[str, int]]:
        present = set(inspect(connection).get_table_names())
        return [
            (t.name, int(connection.execute(select(func.count()).select_from(t)).scalar_one()))
            for t in metadata.sorted_tables
            if t.name in present
        ]

    return await store.read(count)


@app.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision; 'base' drops every table.")],
    url: UrlOption = None,
    yes: YesOption = False,
) -> None:
    """Migrate the schema down to REVISION. It drops tables and their rows:
    asks first, showing how many rows the database holds."""
    rows = on_store(url, _row_counts, checked=False)
    held = sum(n for _, n in rows)
    where = resolve_url(store_url(url)).given
    confirm(f"downgrade {where} to {revision}? Tables dropped on the way lose their rows ({held:,} rows now)", yes)
    on_store(url, lambda store: store.downgrade(revision), checked=False)
    console.print(f"schema at {revision}")


@app.command()
def current(url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Show the database's schema revision and the one this statestore expects."""
    revision = on_store(url, lambda store: store.schema_revision(), checked=False)
    if as_json:
        print_json({"database": revision, "code": migrate.head_revision()})
        return
    console.print(f"database: {revision or 'none'}")
    console.print(f"code:     {migrate.head_revision()}")


@app.command()
def checkpoint(url: UrlOption = None, as_json: JsonOption = False) -> None:
    """SQLite file: copy the write-ahead log into the database and truncate it.

    Never waits for a lock; exit 1 if a reader still used the log (run it
    again later). Nothing to do on PostgreSQL, MariaDB or SQLite in memory."""
    done = on_store(url, lambda store: store.checkpoint(), checked=False)
    if as_json:
        print_json(
            None
            if done is None
            else {
                "log_frames": done.log_frames,
                "checkpointed_frames": done.checkpointed_frames,
                "wal_bytes": done.wal_bytes,
                "busy": done.busy,
            }
        )
    elif done is None:
        console.print("nothing to checkpoint: this database has no write-ahead log file")
    else:
        table = fitted_table("statestore checkpoint", ("", ""), [])
        table.add_row("frames in the log", str(done.log_frames))
        table.add_row("frames copied", str(done.checkpointed_frames))
        table.add_row("write-ahead log now", size(done.wal_bytes))
        table.add_row("busy", "[red]yes: a reader still uses the log; run again later[/red]" if done.busy else "no")
        console.print(table)
    if done is not None and done.busy:
        raise typer.Exit(1)


@app.command()
def vacuum(url: UrlOption = None) -> None:
    """Give the space of deleted rows back and refresh the planner's
    statistics: SQLite's VACUUM (the file shrinks; it needs as much free
    disk again and holds the write lock meanwhile), PostgreSQL's VACUUM
    ANALYZE and MariaDB's OPTIMIZE TABLE on statestore's tables."""
    on_store(url, lambda store: store.vacuum(), checked=False)
    console.print("vacuumed")


@app.command()
def schema(
    dialect: str = typer.Option("sqlite", help=f"One of {', '.join(DIALECTS)}."),
    write: Annotated[Path | None, typer.Option(help="Write every schema file into this directory.")] = None,
) -> None:
    """Print the DDL of the models for DIALECT, or write all schema files."""
    if write is not None:
        for path in write_all(write):
            console.print(f"wrote {path}")
        return
    if dialect not in DIALECTS:
        errors.print(f"[red]error:[/red] unknown dialect {dialect!r}; use one of {', '.join(DIALECTS)}")
        raise typer.Exit(2)
    print(ddl(dialect), end="")


@app.command()
def stats(url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Count the rows of every table; show the size of a SQLite file's write-ahead log."""

    async def count(store: Store) -> tuple[list[tuple[str, int]], int | None]:
        await store.ensure_schema_current()
        return await _row_counts(store), await store.read(wal_bytes)

    counts, wal = on_store(url, count, checked=False)
    if as_json:
        print_json({"tables": dict(counts), "wal_bytes": wal})
        return
    table = fitted_table("rows per table", ("table", "rows"), [(name, f"{rows:,}") for name, rows in counts])
    table.columns[1].justify = "right"
    console.print(table)
    console.print(f"write-ahead log: {size(wal)}" if wal is not None else "write-ahead log: none (not a SQLite file)")
