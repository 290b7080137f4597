"""``statestore export`` and ``statestore import``: the store as JSON Lines
(see :mod:`statestore.maintenance.dump` for the format and its guarantees)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated

import typer
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from statestore.cli.output import console, errors, fitted_table, print_json, progress
from statestore.cli.root import JsonOption, UrlOption, YesOption, app, confirm, fail, on_store, parse_when, store_url
from statestore.core.urls import resolve_url
from statestore.farm.tables import JOBS, WORKER_TAGS, WORKERS
from statestore.flows.tables import BOOKS
from statestore.maintenance.dump import ImportReport, export_lines, import_lines
from statestore.store import Store

__all__ = ["export", "import_dump"]


@app.command()
def export(
    url: UrlOption = None,
    jobs: Annotated[bool, typer.Option("--jobs", help="Export the farm: tags, workers, jobs and their tasks.")] = False,
    flows: Annotated[bool, typer.Option("--flows", help="Export the flow model: logbooks, flows, atoms.")] = False,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", metavar="WHEN", help="Only what was updated at or after WHEN (ISO 8601; naive means UTC)."
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout.", metavar="FILE")
    ] = None,
) -> None:
    """Write the store as JSON Lines, one record per line, after a header
    line. Without --jobs or --flows, both are exported. Streamed: memory
    does not grow with the store."""
    cutoff = None if since is None else parse_when(since, "--since")
    both = not jobs and not flows

    async def write(store: Store) -> int:
        target: IO[str] = sys.stdout if output is None else output.open("w", encoding="utf-8")
        written = 0
        try:
            async for line in export_lines(store, jobs=jobs or both, flows=flows or both, since=cutoff):
                target.write(line + "\n")
                written += 1
        finally:
            if output is not None:
                target.close()
            else:
                target.flush()
        return written

    written = on_store(url, write)
    if output is not None:
        errors.print(f"wrote {written:,} lines to {output}")


def _held_records(connection: Connection) -> int:
    """Whether the store holds anything an import could overwrite (a count, 0 or more)."""
    return sum(
        int(connection.execute(select(func.count()).select_from(select(table.c.id).limit(1).subquery())).scalar_one())
        for table in (JOBS, WORKERS, WORKER_TAGS, BOOKS)
    )


def _lines(source: IO[bytes], read: list[int]) -> Iterator[str]:
    """The lines of ``source`` as text, counting the bytes read into ``read[0]``."""
    for raw in source:
        read[0] += len(raw)
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as error:
            fail(f"FILE: not UTF-8 text near byte {read[0] - len(raw) + error.start}")


@app.command("import")
def import_dump(
    file: Annotated[
        str, typer.Argument(metavar="FILE", help="A file written by `statestore export`; '-' reads stdin.")
    ],
    url: UrlOption = None,
    yes: YesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Import a JSON Lines export into an existing store, in one transaction:
    all of it, or nothing if a line is bad (the error names it). Records with
    the same uuid are overwritten, so importing into a store that holds data
    asks first. The database must exist at this version's schema: run
    `statestore upgrade` first to create it."""
    path = None if file == "-" else Path(file)
    if path is not None and not path.is_file():
        fail(f"FILE: no file at {path.resolve()}")
    held = on_store(url, lambda store: store.read(_held_records))
    if held:
        where = resolve_url(store_url(url)).given
        confirm(f"import {file} into {where}, which holds data? Records with the same uuid are overwritten", yes)

    async def load(store: Store) -> ImportReport:
        total = path.stat().st_size if path is not None else None
        read = [0]
        with progress() as bar:
            task = bar.add_task("importing", total=total)
            source = sys.stdin.buffer if path is None else path.open("rb")
            try:
                return await import_lines(
                    store, _lines(source, read), progress=lambda lines: bar.update(task, completed=read[0])
                )
            finally:
                if path is not None:
                    source.close()

    report = on_store(url, load)
    if as_json:
        print_json(report.as_dict())
        return
    summary = report.as_dict()
    rows = [(kind, f"{n['inserted']:,}", f"{n['updated']:,}") for kind, n in summary["kinds"].items()]
    console.print(fitted_table(f"imported {report.lines:,} lines", ("kind", "inserted", "updated"), rows))
