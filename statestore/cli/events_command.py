"""``statestore events``: the change feed (:mod:`statestore.changes.feed`),
one line per change, or JSON Lines for scripts; ``--follow`` keeps reading
as changes are committed, until Ctrl-C.

Every line carries the change's cursor: ``--after CURSOR`` resumes right
after it, so a script that keeps the last cursor it saw misses nothing and
sees nothing twice."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.markup import escape

from statestore.changes.feed import position_of
from statestore.changes.kinds import ChangeKind
from statestore.changes.records import Change
from statestore.cli.output import console, print_json, when
from statestore.cli.root import UrlOption, app, fail, run, with_store
from statestore.errors import InvalidInput
from statestore.overview.changes import change_row, subject_of
from statestore.store import Store

__all__ = ["change_line", "events"]


def change_line(change: Change) -> str:
    """One change for the terminal: time, kind, subject, old → new, reason,
    who, cursor (rich markup; values escaped)."""
    parts = [
        when(change.at),
        f"[bold]{change.kind.value}[/bold]",
        escape(subject_of(change)),
    ]
    if change.old is not None or change.new is not None:
        parts.append(escape(f"{change.old or '-'} → {change.new or '-'}"))
    if change.reason:
        parts.append(escape(repr(change.reason) if "\n" in change.reason else change.reason))
    if change.who:
        parts.append(escape(f"by {change.who}"))
    parts.append(f"[dim]{change.cursor}[/dim]")
    return "  ".join(parts)


def _uuid_option(value: str | None, option: str) -> UUID | None:
    if value is None:
        return None
    try:
        return UUID(value)
    except ValueError:
        fail(f"{option}: {value!r} is not a uuid")


async def _print_changes(
    store: Store,
    *,
    after: str | None,
    kinds: list[ChangeKind] | None,
    job: UUID | None,
    flow: UUID | None,
    follow: bool,
    limit: int | None,
    as_json: bool,
) -> None:
    shown = 0
    feed = store.changes(after, kinds=kinds or None, job=job, flow=flow, follow=follow)
    async with contextlib.aclosing(feed) as changes:
        async for change in changes:
            if as_json:
                print_json(change_row(change))  # flushed: a follower's reader sees it at once
            else:
                console.print(change_line(change), highlight=False, soft_wrap=True)
                console.file.flush()
            shown += 1
            if limit is not None and shown >= limit:
                return


async def _until_interrupted(action: Any) -> None:
    """Run ``action``; Ctrl-C ends it quietly. ``asyncio.run`` turns Ctrl-C
    into the cancellation of this, its main task (the feed and the store
    close on the way out); ending normally instead tells it the stop was
    asked for, so no KeyboardInterrupt follows."""
    with contextlib.suppress(asyncio.CancelledError):
        await action


@app.command()
def events(
    url: UrlOption = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing changes as they are committed, until Ctrl-C.")
    ] = False,
    after: Annotated[
        str | None,
        typer.Option("--after", metavar="CURSOR", help="Start right after this change (a cursor printed earlier)."),
    ] = None,
    kinds: Annotated[
        list[ChangeKind] | None,
        typer.Option("--kind", help="Only changes of this kind (repeatable)."),
    ] = None,
    job: Annotated[
        str | None, typer.Option("--job", metavar="JOB", help="Only the changes of this job and its tasks.")
    ] = None,
    flow: Annotated[
        str | None, typer.Option("--flow", metavar="FLOW", help="Only the changes of this flow detail and its atoms.")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Stop after this many changes (with --follow too).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON Lines: one object per change, its cursor included.")
    ] = False,
) -> None:
    """Print the change feed in commit order: jobs', tasks' and workers'
    statuses, logbooks saved and destroyed, flows' and atoms' states. Each
    line ends with the change's cursor; ``--after CURSOR`` resumes right
    after it. A cursor older than the feed's retention is an error."""
    if after is not None:
        try:
            position_of(after)
        except InvalidInput:
            fail(f"--after: {after!r} is not a change cursor (a cursor looks like 0000000000000000000-…)")
    job_uuid, flow_uuid = _uuid_option(job, "--job"), _uuid_option(flow, "--flow")
    action = with_store(
        url,
        lambda store: _print_changes(
            store,
            after=after,
            kinds=kinds,
            job=job_uuid,
            flow=flow_uuid,
            follow=follow,
            limit=limit,
            as_json=as_json,
        ),
    )
    run(_until_interrupted(action) if follow else action)
