"""``statestore check``: integrity, foreign keys, the schema revision."""

from __future__ import annotations

import typer

from statestore.cli.output import console, fitted_table, print_json, size
from statestore.cli.root import JsonOption, UrlOption, app, on_store

__all__ = ["check"]


@app.command()
def check(url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Check integrity, foreign keys and schema revision; exit 1 on any problem."""
    report = on_store(url, lambda store: store.check(), checked=False)
    if as_json:
        print_json(
            {
                "ok": report.ok,
                "backend": report.backend,
                "revision": report.revision,
                "head": report.head,
                "foreign_keys_enforced": report.foreign_keys_enforced,
                "wal_bytes": report.wal_bytes,
                "problems": list(report.problems),
            }
        )
    else:
        table = fitted_table(f"statestore check ({report.backend})", ("check", "result"), [], wrap=("result",))
        table.add_row("schema revision", f"{report.revision or 'none'} (expects {report.head})")
        table.add_row("foreign keys enforced", "yes" if report.foreign_keys_enforced else "NO")
        if report.wal_bytes is not None:
            table.add_row("write-ahead log", size(report.wal_bytes))
        for problem in report.problems:
            table.add_row("[red]problem[/red]", problem)
        console.print(table)
    if not report.ok:
        raise typer.Exit(1)
