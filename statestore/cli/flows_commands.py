"""``statestore flows``: the flow model's logbooks, listed a keyset page at a
time, and ``statestore flows show BOOK``: one logbook as a tree of its flow
details and their atoms. The shapes are :mod:`statestore.overview.flows`'s."""

from __future__ import annotations

import json
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from statestore.cli.output import console, fitted_table, print_json
from statestore.cli.root import JsonOption, UrlOption, app, fail, on_store
from statestore.overview.flows import book_page, book_tree

__all__ = ["book_view", "clip", "flows", "flows_app", "short", "show"]

DEFAULT_LIMIT = 100
WIDE = 110
"""Columns from which the logbooks' table also shows when each was updated."""

flows_app = typer.Typer(
    name="flows",
    help="The flow model (TaskFlow): list logbooks, show one as a tree.",
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode="markdown",
)
app.add_typer(flows_app)

# The longest a result or a failure message is rendered before the terminal
# truncates it: a result may be megabytes of JSON, and the line is cut anyway.
SHORT = 200

_STATE_STYLES = {
    "SUCCESS": "green",
    "FAILURE": "red",
    "REVERT_FAILURE": "red",
    "REVERTED": "yellow",
    "REVERTING": "yellow",
    "RETRYING": "yellow",
    "RUNNING": "cyan",
    "SUSPENDED": "magenta",
    "SUSPENDING": "magenta",
    "RESUMING": "cyan",
    "IGNORE": "dim",
}


def clip(text: str, width: int = SHORT) -> str:
    """``text`` on one line (newlines and runs of spaces read as one space),
    at most ``width`` characters; an ellipsis ends a cut."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def short(value: Any, width: int = SHORT) -> str:
    """A JSON value (a result) as JSON on one line, at most ``width`` characters."""
    return clip(json.dumps(value, ensure_ascii=False), width)


def _failure_text(failure: dict[str, Any]) -> str:
    return clip(f"{failure['type'] or 'failure'}: {failure['message']}")


def _state(value: str | None) -> tuple[str, str]:
    shown = value or "-"
    return shown, _STATE_STYLES.get(shown, "")


def _line(*parts: str | tuple[str, str]) -> Text:
    """One tree label: stays on one line, an ellipsis where the terminal ends it."""
    return Text.assemble(*parts, no_wrap=True, overflow="ellipsis")


def _atom_label(atom: dict[str, Any]) -> Text:
    parts: list[str | tuple[str, str]] = [(clip(atom["name"]), "bold")]
    if atom["type"] == "retry":
        parts.append((" (retry)", "dim"))
    parts += ["  ", _state(atom["state"]), "  ", (atom["intention"], "dim")]
    if atom["version"]:
        parts.append((f"  v{atom['version']}", "dim"))
    if atom["failure"] is not None:
        parts += ["  ", ("✗ " + _failure_text(atom["failure"]), "red")]
    elif atom["result"] is not None:
        parts.append("  → " + short(atom["result"]))
    if atom["revert_failure"] is not None:
        parts += ["  ", ("revert ✗ " + _failure_text(atom["revert_failure"]), "red")]
    return _line(*parts)


def _attempt_label(number: int, attempt: dict[str, Any]) -> Text:
    parts: list[str | tuple[str, str]] = [(f"attempt {number}", "dim"), "  → " + short(attempt["result"])]
    for name, failure in attempt["failures"].items():
        parts += ["  ", (f"✗ {clip(name)}: " + _failure_text(failure), "red")]
    return _line(*parts)


def _identity(record: dict[str, Any]) -> str:
    foreign = record["foreign_id"]
    return record["uuid"] if foreign is None else f"{record['uuid']}, foreign id {clip(foreign, 80)}"


def book_view(book: dict[str, Any]) -> Tree:
    """A logbook's tree (:func:`~statestore.overview.flows.book_tree`) for the
    terminal: each line one flow or atom, truncated to fit."""
    tree = Tree(
        _line(
            (clip(book["name"]), "bold"),
            (f"  ({_identity(book)})", "dim"),
            f"  {book['flow_count']} flows, updated {_when(book['updated_at'])}",
        )
    )
    for flow in book["flows"]:
        branch = tree.add(
            _line(
                (clip(flow["name"]), "bold"),
                "  ",
                _state(flow["state"]),
                (f"  {len(flow['atoms'])} atoms  ({_identity(flow)})", "dim"),
            )
        )
        for atom in flow["atoms"]:
            leaf = branch.add(_atom_label(atom))
            for number, attempt in enumerate(atom["history"] or (), start=1):
                leaf.add(_attempt_label(number, attempt))
    return tree


@flows_app.callback()
def flows(
    ctx: typer.Context,
    url: UrlOption = None,
    after: Annotated[
        str | None, typer.Option("--after", metavar="BOOK", help="Start after this logbook (a uuid): the next page.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many logbooks.")] = DEFAULT_LIMIT,
    as_json: JsonOption = False,
) -> None:
    """List logbooks, oldest first, a page at a time: the next page starts
    after the last one shown (``--after``). ``flows show BOOK`` shows one."""
    ctx.obj = url  # a subcommand without its own --url uses the one given here
    if ctx.invoked_subcommand is not None:
        return
    start = _after(after)
    # One more than asked: whether there is a next page to point to.
    rows = on_store(url, lambda store: book_page(store, after=start, limit=limit + 1))
    more, rows = len(rows) > limit, rows[:limit]
    if as_json:
        print_json(rows)
        return
    console.print(_books_table(rows, more))
    if more:
        console.print(f"more: statestore flows --after {rows[-1]['uuid']}", style="dim", highlight=False)


def _books_table(rows: list[dict[str, Any]], more: bool) -> Table:
    """The logbooks as a table that fits the terminal. A uuid is what the
    next command takes, so it is never cut: the foreign id column shows only
    when a book has one, the update time only on a terminal wide enough for
    it beside the rest, and names fold rather than vanish."""
    columns = ["name", "uuid", "flows"]
    foreign = any(row["foreign_id"] is not None for row in rows)
    if foreign:
        columns.append("foreign id")
    wide = console.width >= WIDE
    if wide:
        columns.append("updated")
    table = fitted_table(
        f"logbooks ({len(rows)}{'+' if more else ''})",
        columns,
        [
            [
                row["name"],
                row["uuid"],
                row["flow_count"],
                *([row["foreign_id"]] if foreign else []),
                *([_when(row["updated_at"])] if wide else []),
            ]
            for row in rows
        ],
        wrap=("name", "foreign id"),
    )
    table.columns[1].min_width = 36
    table.columns[2].justify = "right"
    return table


def _after(after: str | None) -> str | None:
    """``--after`` checked before the store opens: a typo is not a miss."""
    if after is None:
        return None
    try:
        return str(UUID(after))
    except ValueError:
        fail(f"--after: {after!r} is not a logbook uuid")


def _when(iso: str | None) -> str:
    return "" if iso is None else iso[:19].replace("T", " ")


@flows_app.command()
def show(
    ctx: typer.Context,
    book: Annotated[
        str,
        typer.Argument(
            metavar="BOOK",
            help="The logbook's uuid, or its foreign id: the identifier TaskFlow gave it when not a uuid.",
            show_default=False,
        ),
    ],
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show logbook BOOK as a tree: its flow details, their atoms with state,
    intention and a short result or failure, and a retry's attempts. A
    logbook imported from TaskFlow under a non-uuid name is found by that
    name too (its foreign id, which ``statestore flows`` lists)."""
    if not book.strip():
        fail("BOOK: an empty name is neither a logbook uuid nor a foreign id")
    tree = on_store(url or ctx.obj, lambda store: book_tree(store, book))
    if as_json:
        print_json(tree)
        return
    console.print(book_view(tree))
