"""``statestore check``: integrity, foreign keys, the schema revision and
drift of the farm model's maintained columns; ``--repair`` fixes the drift."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from statestore.cli.output import console, fitted_table, print_json, size
from statestore.cli.root import JsonOption, UrlOption, app, on_store
from statestore.maintenance.repair import Drift, find_drift, repair
from statestore.schema.check import CheckReport
from statestore.store import Store

__all__ = ["check"]

DEFAULT_SHOWN = 50
"""Drifted values the table lists unless asked for another number."""

_DRIFT_COLUMNS = ("table", "uuid", "column", "stored", "expected")
_REPAIRED_COLUMNS = ("table", "uuid", "column", "was", "now")


@dataclass(frozen=True)
class _Checked:
    report: CheckReport
    drift: list[Drift] | None
    """None: not looked for, the schema not being this version's."""
    repaired: list[Drift] | None
    """None: no ``--repair``."""

    @property
    def ok(self) -> bool:
        return self.report.ok and not self.drift


async def _check(store: Store, repairing: bool) -> _Checked:
    report = await store.check()
    if not report.schema_at_head:  # the maintained columns may not even exist
        return _Checked(report, None, None)
    repaired = await repair(store) if repairing else None
    # Looked for again after a repair: what a writer broke meanwhile still counts.
    return _Checked(report, await find_drift(store), repaired)


def _json(checked: _Checked) -> dict[str, Any]:
    report = checked.report
    return {
        "ok": checked.ok,
        "backend": report.backend,
        "revision": report.revision,
        "head": report.head,
        "foreign_keys_enforced": report.foreign_keys_enforced,
        "wal_bytes": report.wal_bytes,
        "problems": list(report.problems),
        "drift": None if checked.drift is None else [drift.as_dict() for drift in checked.drift],
        "repaired": None if checked.repaired is None else [drift.as_dict() for drift in checked.repaired],
    }


def _drift_summary(checked: _Checked) -> str:
    if checked.drift is None:
        return "not checked (schema not at this version's revision)"
    if not checked.drift:
        return "no drift"
    return f"[red]{len(checked.drift):,} drifted[/red] (run `statestore check --repair`)"


def _print_drift(title: str, columns: Sequence[str], drift: Sequence[Drift], shown: int) -> None:
    rows = [(d.table, d.uuid, d.column, d.stored, d.expected) for d in drift[:shown]]
    console.print(fitted_table(f"{title}: {len(drift):,}", columns, rows))
    if len(drift) > shown:
        console.print(f"… and {len(drift) - shown:,} more (--limit shows more; --json lists all)")


@app.command()
def check(
    url: UrlOption = None,
    as_json: JsonOption = False,
    repairing: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Rewrite drifted maintained columns, then report what changed. Writes (derived data only).",
        ),
    ] = False,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="Drifted values the table lists (--json lists all).")
    ] = DEFAULT_SHOWN,
) -> None:
    """Check integrity, foreign keys, the schema revision and the farm
    model's maintained columns; exit 1 on any problem.

    Maintained columns are derived ones the writers keep right: a task's
    count of dependencies not completed, its copies of its job's priority
    and of whether the job may run, a job's sums of its tasks' steps. One
    that differs from its sources (drift: a hand-made UPDATE, a partial
    restore) is a problem: a task can be left never claimable.

    `--repair` writes: it recomputes the drifted columns job by job, each in
    a short transaction under the locks the writers take, so it is safe
    while workers run, and changes nothing else. It asks no confirmation.
    Exit 0 if all is well afterwards, 1 if a problem remains (drift is
    looked for again after the repair)."""
    checked = on_store(url, lambda store: _check(store, repairing), checked=False)
    report = checked.report
    if as_json:
        print_json(_json(checked))
    else:
        table = fitted_table(f"statestore check ({report.backend})", ("check", "result"), [], wrap=("result",))
        table.add_row("schema revision", f"{report.revision or 'none'} (expects {report.head})")
        table.add_row("foreign keys enforced", "yes" if report.foreign_keys_enforced else "NO")
        if report.wal_bytes is not None:
            table.add_row("write-ahead log", size(report.wal_bytes))
        if checked.repaired is not None:
            table.add_row("repaired", f"{len(checked.repaired):,} maintained values rewritten")
        table.add_row("maintained columns", _drift_summary(checked))
        for problem in report.problems:
            table.add_row("[red]problem[/red]", problem)
        console.print(table)
        if checked.repaired:
            _print_drift("repaired", _REPAIRED_COLUMNS, checked.repaired, limit)
        if checked.drift:
            _print_drift("drift", _DRIFT_COLUMNS, checked.drift, limit)
    if not checked.ok:
        raise typer.Exit(1)
