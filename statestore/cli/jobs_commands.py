"""``statestore jobs``, ``statestore tasks`` and ``statestore blocklist``:
see the farm's jobs and steer them through the state machine.

Seeing: ``jobs`` lists, ``jobs show JOB`` details one job (the shapes of
:mod:`statestore.overview.jobs`). Steering: ``jobs cancel|pause|requeue``,
``jobs delete``, ``tasks requeue``, ``blocklist clear``; every change is
made by ``store.state_machine`` with a reason and ``operator:$USER`` as who,
so the status history says who did it and why.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Sequence
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.cells import cell_len
from rich.progress_bar import ProgressBar
from rich.table import Table

from statestore.cli.output import console, fitted_table, print_json, when
from statestore.cli.root import JsonOption, UrlOption, YesOption, app, confirm, fail, on_store
from statestore.farm.listings import MAX_LIMIT
from statestore.farm.records import Job, StatusChange
from statestore.farm.statuses import JobStatus, TaskStatus
from statestore.farm.tables import LENGTHS
from statestore.overview.jobs import DEFAULT_TASK_LIMIT, job_detail, job_row, status_change_row
from statestore.store import Store

__all__ = ["blocklist_app", "jobs_app", "tasks_app"]

jobs_app = typer.Typer(help="List, show and steer the farm's jobs.", invoke_without_command=True)
tasks_app = typer.Typer(help="Steer single tasks.", no_args_is_help=True)
blocklist_app = typer.Typer(help="The workers blocked from a job's task types.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
app.add_typer(tasks_app, name="tasks")
app.add_typer(blocklist_app, name="blocklist")

JobArgument = Annotated[str, typer.Argument(metavar="JOB", help="The job's uuid.", show_default=False)]
TaskArgument = Annotated[str, typer.Argument(metavar="TASK", help="The task's uuid.", show_default=False)]
ReasonOption = Annotated[
    str | None, typer.Option("--reason", help="Why, for the status history (default: names the command).")
]
StatusOption = Annotated[
    list[str] | None,
    typer.Option("--status", help=f"Only jobs in this status (repeatable): {', '.join(JobStatus)}."),
]
LimitOption = Annotated[int, typer.Option("--limit", min=1, max=MAX_LIMIT, help="List at most this many jobs.")]


def operator() -> str:
    """``who`` of the command's changes: ``operator:$USER``."""
    try:
        user = os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):  # no user name to be found (a bare container)
        user = "unknown"
    return f"operator:{user}"[: LENGTHS["who"]]


def parsed_uuid(value: str, argument: str) -> UUID:
    """``value`` as a uuid, or one red line naming ``argument`` (exit 2)."""
    try:
        return UUID(value)
    except ValueError:
        fail(f"{argument}: {value!r} is not a uuid")


def job_statuses(values: Sequence[str] | None) -> list[JobStatus] | None:
    if not values:
        return None
    try:
        return [JobStatus(value) for value in values]
    except ValueError:
        bad = next(value for value in values if value not in set(JobStatus))
        fail(f"--status: {bad!r} is not a job status (one of {', '.join(JobStatus)})")


_LIST_OPTIONAL = ("type", "prio", "updated", "progress")
_TASK_OPTIONAL = ("type", "deps", "worker", "progress")
_ROOMY = 110
"""Below this many columns of terminal the optional columns go, in order, one per 12 columns short."""

_BAR_WIDTH = 12


def _fitting(columns: Sequence[str], optional: Sequence[str]) -> list[str]:
    """The columns that fit the terminal: on a narrow one the optional ones go first."""
    short = max(0, _ROOMY - console.width)
    dropped = set(optional[: -(-short // 12)]) if short else set()
    return [name for name in columns if name not in dropped]


def _cell_width(cell: object) -> int:
    return _BAR_WIDTH if isinstance(cell, ProgressBar) else cell_len(str(cell))


def _squeezed(table: Table, rows: Sequence[Sequence[object]], elastic: tuple[str, str]) -> Table:
    """The table narrowed to the terminal by its two elastic columns (a uuid
    and a name, which truncate with an ellipsis). Left to itself rich shrinks
    every column alike, so the short ones (status, steps) would vanish first."""
    headers = [str(column.header) for column in table.columns]
    natural = [max([cell_len(h)] + [_cell_width(row[i]) for row in rows]) for i, h in enumerate(headers)]
    spare = console.width - (3 * len(headers) + 1)  # a border and two spaces of padding per column
    spare -= sum(width for header, width in zip(headers, natural, strict=True) if header not in elastic)
    uuid_natural, name_natural = (natural[headers.index(name)] for name in elastic)
    if uuid_natural + name_natural <= spare:
        return table
    # The uuid gets a third of what is left (at least 8 characters and the ellipsis), the name the rest.
    uuid_width = max(9, min(uuid_natural, spare // 3))
    name_width = max(6, min(name_natural, spare - uuid_width))
    uuid_width = max(uuid_width, spare - name_width)  # what a short name leaves over
    widths = {elastic[0]: uuid_width, elastic[1]: name_width}
    for column in table.columns:
        column.width = widths.get(str(column.header), column.width)
    return table


def _at(iso: str | None) -> str:
    """An ISO 8601 time of a detail as an operator reads it (UTC, to the second)."""
    return "" if iso is None else iso[:19].replace("T", " ")


def _bar(done: int, total: int) -> ProgressBar:
    return ProgressBar(total=max(total, 1), completed=done if total else 0, width=12)


# -- seeing ----------------------------------------------------------------------------


@jobs_app.callback()
def jobs(
    context: typer.Context,
    url: UrlOption = None,
    status: StatusOption = None,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
) -> None:
    """List the jobs (by id), with their progress in steps."""
    if context.invoked_subcommand is not None:
        return
    statuses = job_statuses(status)
    found: list[Job] = on_store(url, lambda store: store.jobs.page(statuses=statuses, limit=limit))
    if as_json:
        print_json([job_row(job) for job in found])
        return
    columns = ("job", "name", "type", "status", "prio", "progress", "steps", "updated")
    rows = [
        (
            str(job.uuid),
            job.name,
            job.job_type,
            job.status.value,
            job.priority,
            _bar(job.steps_completed, job.steps_total),
            f"{job.steps_completed}/{job.steps_total}",
            when(job.updated_at),
        )
        for job in found
    ]
    shown = _fitting(columns, _LIST_OPTIONAL)
    picked = [[row[columns.index(name)] for name in shown] for row in rows]
    table = fitted_table(f"jobs ({len(found)})", shown, picked)
    console.print(_squeezed(table, picked, ("job", "name")))


@jobs_app.command("show")
def show(
    job: JobArgument,
    url: UrlOption = None,
    tasks: Annotated[int, typer.Option("--tasks", min=0, max=MAX_LIMIT, help="List at most this many tasks.")] = (
        DEFAULT_TASK_LIMIT
    ),
    as_json: JsonOption = False,
) -> None:
    """Show a job: its tasks with their progress, failures, blocklist and status history."""
    uuid = parsed_uuid(job, "JOB")
    detail = on_store(url, lambda store: job_detail(store, uuid, task_limit=tasks))
    if as_json:
        print_json(detail)
        return
    _print_detail(detail)


def _print_detail(detail: dict[str, Any]) -> None:
    about = fitted_table(f"job {detail['uuid']}", ("field", "value"), [], wrap=("value",))
    for label, key in (("name", "name"), ("type", "type"), ("status", "status"), ("priority", "priority")):
        about.add_row(label, str(detail[key]))
    about.add_row("activity", detail["activity"])
    about.add_row("progress", f"{detail['steps_completed']}/{detail['steps_total']} steps")
    counts = ", ".join(f"{count} {status}" for status, count in sorted(detail["task_counts"].items()))
    about.add_row("tasks", f"{detail['tasks_total']} ({counts})" if counts else "none")
    about.add_row("worker tag", detail["worker_tag"] or "any worker")
    about.add_row("created / updated", f"{_at(detail['created_at'])} / {_at(detail['updated_at'])}")
    if detail["delete_requested"]:
        about.add_row("[red]deletion requested[/red]", _at(detail["delete_requested_at"]))
    console.print(about)
    task_rows = [
        (
            task["uuid"],
            task["name"],
            task["type"],
            task["status"],
            _bar(task["steps_completed"], task["steps_total"]),
            f"{task['steps_completed']}/{task['steps_total']}",
            "" if task["worker"] is None else task["worker"]["name"] or task["worker"]["uuid"],
            len(task["dependencies"]),
        )
        for task in detail["tasks"]
    ]
    title = f"tasks ({len(task_rows)} of {detail['tasks_total']})"
    columns = ("task", "name", "type", "status", "progress", "steps", "worker", "deps")
    shown = _fitting(columns, _TASK_OPTIONAL)
    picked = [[row[columns.index(name)] for name in shown] for row in task_rows]
    console.print(_squeezed(fitted_table(title, shown, picked), picked, ("task", "name")))
    if detail["tasks_not_listed"]:
        console.print(f"… {detail['tasks_not_listed']} more tasks (--tasks N lists more)")
    failures = [
        (task["name"], worker["name"], worker["uuid"]) for task in detail["tasks"] for worker in task["failed_by"]
    ]
    if failures:
        console.print(fitted_table("failures of the listed tasks", ("task", "failed by", "worker"), failures))
    blocks = [(block["worker"]["name"], block["worker"]["uuid"], block["task_type"]) for block in detail["blocklist"]]
    console.print(fitted_table("blocklist", ("worker", "uuid", "task type"), blocks) if blocks else "blocklist: empty")
    history = [
        (
            _at(entry["at"]),
            entry["task"] or "(job)",
            f"{entry['old_status']} → {entry['new_status']}",
            entry["who"],
            entry["reason"],
        )
        for entry in detail["history"]
    ]
    if not history:
        console.print("status history: none")
        return
    table = fitted_table("status history", ("at", "of", "change", "who", "reason"), history, wrap=("reason",))
    console.print(_squeezed(table, history, ("of", "reason")))
    if detail["history_more"]:
        console.print(f"… the history goes on: only its first {len(history)} changes are shown")


# -- steering ----------------------------------------------------------------------------


def _print_changes(changes: Sequence[StatusChange], as_json: bool, what: str) -> None:
    shapes = [status_change_row(change) for change in changes]
    if as_json:
        print_json(shapes)
        return
    if not changes:
        console.print(f"{what}: nothing changed (already in that status)")
        return
    rows = [
        (shape["task"] or f"job {shape['job']}", f"{shape['old_status']} → {shape['new_status']}") for shape in shapes
    ]
    console.print(fitted_table(f"{what}: {len(rows)} changes", ("of", "change"), rows))


def _job_change(job: str, status: JobStatus, command: str, reason: str | None, url: str | None, as_json: bool) -> None:
    uuid = parsed_uuid(job, "JOB")
    because = reason or f"by the operator (statestore jobs {command})"

    async def change(store: Store) -> tuple[StatusChange, ...]:
        return await store.state_machine.job_status_change(uuid, status, reason=because, who=operator())

    _print_changes(on_store(url, change), as_json, f"job {uuid} {command}")


@jobs_app.command("cancel")
def cancel(job: JobArgument, reason: ReasonOption = None, url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Cancel a job: what may still run is canceled (cancel-requested, then canceled)."""
    _job_change(job, JobStatus.CANCEL_REQUESTED, "cancel", reason, url, as_json)


@jobs_app.command("pause")
def pause(job: JobArgument, reason: ReasonOption = None, url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Pause a job: waiting tasks pause, and the job once nothing runs."""
    _job_change(job, JobStatus.PAUSE_REQUESTED, "pause", reason, url, as_json)


@jobs_app.command("requeue")
def requeue(job: JobArgument, reason: ReasonOption = None, url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Requeue a job: its unfinished tasks (all after completed) queue again; failures and blocklist clear."""
    _job_change(job, JobStatus.REQUEUEING, "requeue", reason, url, as_json)


@jobs_app.command("delete")
def delete(
    job: JobArgument,
    reason: ReasonOption = None,
    yes: YesOption = False,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete a job with its tasks and history. Refused while a task of it is active: cancel it first."""
    uuid = parsed_uuid(job, "JOB")
    found = on_store(url, lambda store: store.jobs.fetch(uuid))
    confirm(f"delete job {uuid} ({found.name!r}, {found.status.value}) with all its tasks?", yes)
    because = reason or "by the operator (statestore jobs delete)"
    deleted = on_store(url, lambda store: store.state_machine.delete_job(uuid, reason=because, who=operator()))
    if as_json:
        print_json({"deleted": job_row(deleted), "reason": because})
    else:
        console.print(f"deleted job {uuid} ({deleted.name})")


@tasks_app.command("requeue")
def requeue_task(
    task: TaskArgument, reason: ReasonOption = None, url: UrlOption = None, as_json: JsonOption = False
) -> None:
    """Queue a task again (its failure list clears, its steps reset); its job follows."""
    uuid = parsed_uuid(task, "TASK")
    because = reason or "by the operator (statestore tasks requeue)"

    async def change(store: Store) -> tuple[StatusChange, ...]:
        return await store.state_machine.task_status_change(uuid, TaskStatus.QUEUED, reason=because, who=operator())

    _print_changes(on_store(url, change), as_json, f"task {uuid} requeue")


@blocklist_app.command("clear")
def clear(job: JobArgument, yes: YesOption = False, url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Let every blocked worker run the job's tasks again."""
    uuid = parsed_uuid(job, "JOB")
    entries = on_store(url, lambda store: store.blocklist.entries(uuid))
    if not entries:
        if as_json:
            print_json({"job": uuid, "cleared": 0})
        else:
            console.print(f"job {uuid}: the blocklist is empty")
        return
    confirm(f"clear the {len(entries)} blocklist entries of job {uuid}?", yes)
    cleared = on_store(url, lambda store: store.blocklist.clear(uuid))
    if as_json:
        print_json({"job": uuid, "cleared": cleared})
    else:
        console.print(f"job {uuid}: cleared {cleared} blocklist entries")
