"""The ``statestore`` command's root and the conventions every command keeps.

* ``--url`` / ``$STATESTORE_URL`` name the database (:data:`UrlOption`).
* Exit codes: 0 ok, 1 a check failed, 2 a usage error or any other error.
* An error is one red line on stderr; ``statestore --debug …`` adds the stack.
* Read-only commands open with :func:`read_store`, which never creates a
  database: a missing SQLite file is an error naming the path.
* Destructive commands call :func:`confirm` first: it asks on a terminal,
  refuses without one, and is skipped by ``--yes``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from rich.markup import escape

from statestore.cli.output import errors
from statestore.core.urls import DEFAULT_URL, ENV_VAR, resolve_url
from statestore.store import Store, open_store, open_store_unchecked

__all__ = [
    "JsonOption",
    "UrlOption",
    "YesOption",
    "app",
    "confirm",
    "fail",
    "on_store",
    "parse_when",
    "require_database",
    "run",
    "store_url",
    "with_store",
]

T = TypeVar("T")

app = typer.Typer(
    help="Create, migrate, inspect, steer and maintain a statestore database.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # docstrings are paragraphs: lines rejoin to fit the terminal
    context_settings={"help_option_names": ["-h", "--help"]},
)

UrlOption = Annotated[
    str | None,
    typer.Option("--url", envvar=ENV_VAR, show_envvar=True, help=f"Database URL (default: {DEFAULT_URL})."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts (never truncated).")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do it without asking.")]

_debug = False


def _version(value: bool) -> None:
    if value:
        try:
            print(f"statestore {version('statestore')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            print("statestore (not installed)")
        raise typer.Exit(0)


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", help="Show the stack of an error.")] = False,
    show_version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Create, migrate, inspect, steer and maintain a statestore database."""
    global _debug
    _debug = debug


def fail(message: str) -> NoReturn:
    """One red line on stderr (a message's extra lines joined into it), exit 2."""
    line = "; ".join(part.strip() for part in message.splitlines() if part.strip())
    errors.print(f"[red]error:[/red] {escape(line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def run(action: Awaitable[T]) -> T:
    """Run a command's coroutine. Any error but an exit becomes one red line
    and exit code 2 (the stack too under ``--debug``); Ctrl-C exits 130."""
    try:
        return asyncio.run(_awaited(action))
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        errors.print("[red]interrupted[/red]")
        raise typer.Exit(130) from None
    except Exception as error:
        if _debug:
            traceback.print_exc(file=sys.stderr)
        fail(f"{type(error).__name__}: {error}")


async def _awaited(action: Awaitable[T]) -> T:
    return await action


def store_url(url: str | None) -> str:
    """The URL a command works on: ``--url``, else ``$STATESTORE_URL``, else the default."""
    return url or os.environ.get(ENV_VAR) or DEFAULT_URL


def require_database(url: str) -> None:
    """Fail, naming the path, if ``url`` is a SQLite file that does not exist."""
    target = resolve_url(url)
    if target.backend == "sqlite" and not target.is_memory:
        path = Path(target.url.database or "")
        if not path.exists():
            fail(f"no database at {path.resolve()}: the file does not exist (check --url / ${ENV_VAR})")


async def with_store(
    url: str | None, action: Callable[[Store], Awaitable[T]], *, read_only: bool = True, checked: bool = True
) -> T:
    """Open the store at ``url``, run ``action`` on it, close it.

    ``read_only``: a missing SQLite file is an error, never created.
    ``checked``: the schema must be at this version's head
    (:class:`~statestore.SchemaOutOfDate` otherwise); the schema commands
    pass False."""
    where = store_url(url)
    if read_only:
        require_database(where)
    opener = open_store(where) if checked else open_store_unchecked(where)
    async with opener as store:
        return await action(store)


def on_store(url: str | None, action: Callable[[Store], Awaitable[T]], *, checked: bool = True) -> T:
    """:func:`run` ``action`` on the store at ``url``, which must exist: every
    command but ``upgrade`` and the imports, which create it, opens this way."""
    return run(with_store(url, action, read_only=True, checked=checked))


def parse_when(value: str, where: str) -> datetime:
    """An ISO 8601 date or date-time; naive means UTC (exit 2 naming ``where`` if malformed)."""
    try:
        if len(value) == 10:
            moment = datetime.combine(date.fromisoformat(value), time())
        else:
            moment = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{where}: {value!r} is not an ISO 8601 date or date-time (e.g. 2026-12-01 or 2026-12-01T08:00:00Z)")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def interactive() -> bool:
    """Whether someone at a terminal can answer a question."""
    return sys.stdin.isatty()


def confirm(question: str, yes: bool) -> None:
    """Ask before destroying anything. ``--yes`` answers for the operator;
    without it and without a terminal (a script, a pipe, cron) the command
    refuses with exit code 2 rather than guess."""
    if yes:
        return
    if not interactive():
        fail(f"{question} — refused: no terminal to confirm on; pass --yes to do it")
    if not typer.confirm(question, default=False, err=True):
        errors.print("nothing done")
        raise typer.Exit(1)
