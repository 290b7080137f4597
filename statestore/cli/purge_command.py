"""``statestore purge``: remove finished work older than a date, in short
chunks, with a progress bar (see :mod:`statestore.maintenance.purge`)."""

from __future__ import annotations

from typing import Annotated

import typer

from statestore.cli.output import console, fitted_table, print_json, progress
from statestore.cli.root import JsonOption, UrlOption, YesOption, app, confirm, on_store, parse_when, store_url
from statestore.core.urls import resolve_url
from statestore.maintenance.purge import DEFAULT_CHUNK, PurgeReport, purge
from statestore.store import Store

__all__ = ["purge_command"]

_LABELS = {
    "jobs": "jobs",
    "tasks": "tasks",
    "logbooks": "logbooks",
    "flow_details": "flow details",
    "atom_details": "atom details",
    "history": "status history entries",
    "changes": "change-feed records",
}


def _table(title: str, report: PurgeReport) -> None:
    rows = [(_LABELS[kind], f"{n:,}") for kind, n in report.as_dict().items()]
    table = fitted_table(title, ("what", "rows"), rows)
    table.columns[1].justify = "right"
    console.print(table)


@app.command("purge")
def purge_command(
    finished_before: Annotated[
        str,
        typer.Option(
            "--finished-before",
            metavar="WHEN",
            help="ISO 8601 date or date-time (naive means UTC).",
            show_default=False,
        ),
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would go.")] = False,
    chunk: Annotated[int, typer.Option("--chunk", min=1, help="Rows per transaction.")] = DEFAULT_CHUNK,
    yes: YesOption = False,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove jobs completed, canceled or failed before WHEN with their tasks,
    logbooks whose flows all finished before WHEN, and status history and
    change-feed records older than WHEN. Works in short transactions while
    workers go on; asks first unless --yes; --dry-run counts only."""
    cutoff = parse_when(finished_before, "--finished-before")
    would = on_store(url, lambda store: purge(store, finished_before=cutoff, dry_run=True))
    if dry_run:
        if as_json:
            print_json({"dry_run": True, "finished_before": cutoff, **would.as_dict()})
        else:
            _table(f"would purge (finished before {cutoff.isoformat()})", would)
        return
    where = resolve_url(store_url(url)).given
    confirm(f"purge {would.total:,} rows finished before {cutoff.isoformat()} from {where}?", yes)
    bar = progress()

    async def run_purge(store: Store) -> PurgeReport:
        with bar:
            task = bar.add_task("purging", total=would.total)
            return await purge(
                store, finished_before=cutoff, chunk_size=chunk, progress=lambda what, n: bar.advance(task, n)
            )

    done = on_store(url, run_purge)
    if as_json:
        print_json({"dry_run": False, "finished_before": cutoff, **done.as_dict()})
    else:
        _table(f"purged (finished before {cutoff.isoformat()})", done)
