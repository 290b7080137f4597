"""The ``statestore`` command: create, migrate, inspect and check a database."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Literal, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select

from statestore.core.urls import DEFAULT_URL, ENV_VAR, resolve_url
from statestore.errors import StoreError
from statestore.schema import migrate
from statestore.schema.check import wal_bytes
from statestore.schema.ddl import DIALECTS, ddl, write_all
from statestore.schema.metadata import metadata
from statestore.store import Store, open_store_unchecked

__all__ = ["app", "main"]

app = typer.Typer(help="Create, migrate, inspect and check a statestore database.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)
T = TypeVar("T")

UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="Database URL (default: $STATESTORE_URL, else sqlite+aiosqlite:///statestore.db)."),
]


def _run(url: str | None, action: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``action`` on an open store; library errors become one red line
    and exit code 2, never a traceback."""

    async def go() -> T:
        async with open_store_unchecked(url) as store:
            return await action(store)

    try:
        return asyncio.run(go())
    except StoreError as error:
        errors.print(f"[red]error:[/red] {type(error).__name__}: {error}", highlight=False)
        raise typer.Exit(2) from None


@app.command()
def upgrade(url: UrlOption = None, revision: str = typer.Option("head", help="Target revision.")) -> None:
    """Create the schema or migrate it up to REVISION (default: this version's head)."""
    _run(url, lambda store: store.upgrade(revision))
    console.print(f"schema at {revision}")


@app.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision; 'base' drops every table.")], url: UrlOption = None
) -> None:
    """Migrate the schema down to REVISION."""
    _run(url, lambda store: store.downgrade(revision))
    console.print(f"schema at {revision}")


@app.command()
def current(url: UrlOption = None) -> None:
    """Show the database's schema revision and the one this statestore expects."""
    revision = _run(url, lambda store: store.schema_revision())
    console.print(f"database: {revision or 'none'}")
    console.print(f"code:     {migrate.head_revision()}")


@app.command()
def check(url: UrlOption = None) -> None:
    """Check integrity, foreign keys and schema revision; exit 1 on any problem."""
    report = _run(url, lambda store: store.check())
    table = Table(title=f"statestore check ({report.backend})")
    table.add_column("check")
    table.add_column("result")
    table.add_row("schema revision", f"{report.revision or 'none'} (expects {report.head})")
    table.add_row("foreign keys enforced", "yes" if report.foreign_keys_enforced else "NO")
    if report.wal_bytes is not None:
        table.add_row("write-ahead log", _size(report.wal_bytes))
    for problem in report.problems:
        table.add_row("[red]problem[/red]", problem)
    console.print(table)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def checkpoint(url: UrlOption = None) -> None:
    """SQLite file: copy the write-ahead log into the database and truncate it.

    Never waits for a lock; exit 1 if a reader still used the log (run it
    again later). Nothing to do on PostgreSQL, MariaDB or SQLite in memory."""
    done = _run(url, lambda store: store.checkpoint())
    if done is None:
        console.print("nothing to checkpoint: this database has no write-ahead log file")
        return
    table = Table(title="statestore checkpoint")
    table.add_column("")
    table.add_column("")
    table.add_row("frames in the log", str(done.log_frames))
    table.add_row("frames copied", str(done.checkpointed_frames))
    table.add_row("write-ahead log now", _size(done.wal_bytes))
    table.add_row("busy", "[red]yes: a reader still uses the log; run again later[/red]" if done.busy else "no")
    console.print(table)
    if done.busy:
        raise typer.Exit(1)


def _size(size: int) -> str:
    return f"{size:,} bytes ({size / 2**20:.1f} MiB)"


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
def stats(url: UrlOption = None) -> None:
    """Count the rows of every table; show the size of a SQLite file's write-ahead log."""

    async def count(store: Store) -> tuple[list[tuple[str, int]], int | None]:
        await store.ensure_schema_current()
        tables = metadata.sorted_tables
        rows = await store.read(
            lambda conn: [(t.name, conn.execute(select(func.count()).select_from(t)).scalar_one()) for t in tables]
        )
        return rows, await store.read(wal_bytes)

    table = Table(title="rows per table")
    table.add_column("table")
    table.add_column("rows", justify="right")
    counts, wal = _run(url, count)
    for name, rows in counts:
        table.add_row(name, str(rows))
    console.print(table)
    if wal is not None:
        console.print(f"write-ahead log: {_size(wal)}")


TASKFLOW_HELP = (
    "TaskFlow connection: dir:///path, sqlite:////path.db, postgresql+psycopg2://…, mysql+pymysql://…, "
    "zookeeper://host:2181/path."
)


@app.command("import-taskflow")
def import_taskflow(
    source: Annotated[str, typer.Argument(help=f"{TASKFLOW_HELP} Only read.")], url: UrlOption = None
) -> None:
    """Copy every logbook of a TaskFlow persistence backend into the store (its
    schema created or migrated first), then verify the copy. A re-run updates
    and completes; it never duplicates."""
    _taskflow_transfer("import", source, url)


@app.command("export-taskflow")
def export_taskflow(
    target: Annotated[str, typer.Argument(help=f"{TASKFLOW_HELP} Upgraded, then written.")], url: UrlOption = None
) -> None:
    """Copy every logbook of the store into a TaskFlow persistence backend, then
    verify the copy. A re-run updates and completes; it never duplicates."""
    _taskflow_transfer("export", target, url)


def _taskflow_transfer(direction: Literal["import", "export"], taskflow: str, url: str | None) -> None:
    """One transfer with a progress bar on stderr, then its summary; an error
    is one red line and exit code 2."""
    try:
        # Imported here: the command works without TaskFlow until these two are used.
        from taskflow.exceptions import TaskFlowException

        from statestore.compat.taskflow import migration
    except ImportError as error:
        _fail(f"the TaskFlow extra is not installed (pip install 'statestore[taskflow]'): {error}")
    store = url or os.environ.get(ENV_VAR) or DEFAULT_URL
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    bar = Progress(
        *columns,
        TextColumn("flow details, {task.fields[atoms]:,} atoms"),
        console=errors,
        transient=True,
        disable=not errors.is_terminal,  # piped or in CI: no bar, only the summary
    )
    try:
        with bar:
            if direction == "import":
                report = migration.import_taskflow(taskflow, store, progress=bar)
            else:
                report = migration.export_taskflow(store, taskflow, progress=bar)
    except (StoreError, TaskFlowException) as error:
        _fail(f"{type(error).__name__}: {error}")
    ends = (migration.display_connection(taskflow), resolve_url(store).given)  # passwords hidden
    where = "from {} into {}".format(*(ends if direction == "import" else reversed(ends)))
    console.print(
        f"{direction}ed {report.books} logbooks, {report.flows} flow details, {report.atoms} atoms {escape(where)}",
        highlight=False,
        soft_wrap=True,
    )
    console.print("verified: both sides hold the same counts and content", highlight=False)
    console.print(f"checksum: sha256 {report.checksum}", highlight=False, soft_wrap=True)


def _fail(message: str) -> NoReturn:
    """One red line on stderr (a message's extra lines joined into it), exit 2."""
    line = "; ".join(part.strip() for part in message.splitlines() if part.strip())
    errors.print(f"[red]error:[/red] {escape(line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def main() -> None:
    """Entry point of the ``statestore`` console script."""
    app()
