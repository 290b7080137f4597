"""The ``statestore`` command: create, migrate, inspect and check a database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from statestore.schema import migrate
from statestore.errors import StoreError
from statestore.schema.metadata import metadata
from statestore.schema.ddl import DIALECTS, ddl, write_all
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
    for problem in report.problems:
        table.add_row("[red]problem[/red]", problem)
    console.print(table)
    if not report.ok:
        raise typer.Exit(1)


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
    """Count the rows of every table."""

    async def count(store: Store) -> list[tuple[str, int]]:
        await store.ensure_schema_current()
        tables = metadata.sorted_tables
        return await store.read(
            lambda conn: [(t.name, conn.execute(select(func.count()).select_from(t)).scalar_one()) for t in tables]
        )

    table = Table(title="rows per table")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in _run(url, count):
        table.add_row(name, str(rows))
    console.print(table)


def main() -> None:
    """Entry point of the ``statestore`` console script."""
    app()
