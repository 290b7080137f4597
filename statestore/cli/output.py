"""How the ``statestore`` command prints: rich tables that fit the terminal
(wide columns truncate with an ellipsis), JSON for scripts (never
truncated), and progress bars on stderr only when it is a terminal."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from statestore.overview.json_values import plain

__all__ = ["console", "errors", "fitted_table", "print_json", "progress", "size", "when"]


class _Console(Console):
    """A console that measures the terminal (and ``$COLUMNS``) at every
    print: rich reads ``$COLUMNS`` once, when a console is made, and these
    are made when the module is imported, not when a command runs."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if "width" not in options:
            self._width = None


console: Console = _Console()
errors: Console = _Console(stderr=True)


def print_json(value: Any) -> None:
    """One JSON document on stdout, whole: no wrapping, no truncation, no markup."""
    sys.stdout.write(json.dumps(plain(value), ensure_ascii=False, sort_keys=False) + "\n")
    sys.stdout.flush()


def fitted_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], **options: Any) -> Table:
    """A table whose cells stay on one line and truncate with an ellipsis
    when the terminal is narrower than the table; the last column given
    ``no_wrap=False`` in ``options['wrap']`` may fold instead."""
    wrap = set(options.pop("wrap", ()))
    table = Table(title=title, **options)
    for name in columns:
        table.add_column(name, no_wrap=name not in wrap, overflow="fold" if name in wrap else "ellipsis")
    for row in rows:
        table.add_row(
            *("" if cell is None else cell if hasattr(cell, "__rich_console__") else str(cell) for cell in row)
        )
    return table


def _cell(cell: Any) -> Any:
    """A renderable (a progress bar, styled text) as it is; anything else as text."""
    if cell is None:
        return ""
    return cell if hasattr(cell, "__rich_console__") else str(cell)


def when(value: datetime | None) -> str:
    """A time as an operator reads it: ``2026-12-02 17:58:01`` (UTC)."""
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def size(n: int) -> str:
    return f"{n:,} bytes ({n / 2**20:.1f} MiB)"


def progress(*extra: Any) -> Progress:
    """A progress bar on stderr; off when stderr is not a terminal (piped,
    CI), so only the summary prints."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        *extra,
        console=errors,
        transient=True,
        disable=not errors.is_terminal,
    )
