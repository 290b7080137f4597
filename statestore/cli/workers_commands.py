"""``statestore workers``: see the farm's workers and steer them through the
state machine. ``workers`` lists, ``workers show WORKER`` details one (the
shapes of :mod:`statestore.overview.workers`); ``workers sleep|wake`` ask a
worker to change status as Flamenco's manager does, ``workers forget``
soft-deletes one and gives its tasks back. A worker's secret is never shown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import typer

from statestore.cli.jobs_commands import operator, parsed_uuid
from statestore.cli.output import console, fitted_table, print_json
from statestore.cli.root import JsonOption, UrlOption, YesOption, app, confirm, fail, on_store
from statestore.farm.listings import MAX_LIMIT
from statestore.farm.statuses import WorkerStatus
from statestore.overview.workers import worker_detail, worker_page, worker_row
from statestore.store import Store

__all__ = ["workers_app"]

workers_app = typer.Typer(help="List, show and steer the farm's workers.", invoke_without_command=True)
app.add_typer(workers_app, name="workers")

WorkerArgument = Annotated[str, typer.Argument(metavar="WORKER", help="The worker's uuid.", show_default=False)]
ReasonOption = Annotated[
    str | None, typer.Option("--reason", help="Why, for the change feed (default: names the command).")
]
LazyOption = Annotated[bool, typer.Option("--lazy", help="After its current task, not at once.")]
StatusOption = Annotated[
    list[str] | None,
    typer.Option("--status", help=f"Only workers in this status (repeatable): {', '.join(WorkerStatus)}."),
]


def _statuses(values: Sequence[str] | None) -> list[WorkerStatus] | None:
    if not values:
        return None
    for value in values:
        if value not in set(WorkerStatus):
            fail(f"--status: {value!r} is not a worker status (one of {', '.join(WorkerStatus)})")
    return [WorkerStatus(value) for value in values]


def _at(iso: str | None) -> str:
    return "never" if iso is None else iso[:19].replace("T", " ")


def _status(row: dict[str, Any]) -> str:
    asked = row["status_requested"]
    if not asked:
        return str(row["status"])
    return f"{row['status']} → {asked}{' (lazy)' if row['lazy_status_request'] else ''}"


def _task(row: dict[str, Any]) -> str:
    task = row["current_task"]
    return "" if task is None else f"{task['name']} ({task['job_name']})"


@workers_app.callback()
def workers(
    context: typer.Context,
    url: UrlOption = None,
    status: StatusOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=MAX_LIMIT, help="List at most this many.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """List the workers (by id): status, last seen, current task, tags."""
    if context.invoked_subcommand is not None:
        return
    statuses = _statuses(status)
    rows = on_store(url, lambda store: worker_page(store, statuses=statuses, limit=limit))
    if as_json:
        print_json(rows)
        return
    columns = ("worker", "name", "status", "last seen", "current task", "tags")
    cells = [
        (
            row["uuid"],
            row["name"],
            _status(row),
            _at(row["last_seen_at"]),
            _task(row),
            ", ".join(tag["name"] for tag in row["tags"]),
        )
        for row in rows
    ]
    table = fitted_table(f"workers ({len(rows)})", columns, cells)
    # On a narrow terminal the uuid gives way first, down to its first block:
    # rich would shrink every column alike and the short ones would vanish.
    natural = [max([len(name)] + [len(str(cell[i])) for cell in cells]) for i, name in enumerate(columns)]
    floors = (13, 8, 8, 10, 8, 4)
    room = console.width - (3 * len(columns) + 1)
    if sum(natural) > room:
        table.columns[0].width = max(floors[0], min(natural[0], room - sum(natural[1:])))
        for column, width, floor in zip(table.columns[1:], natural[1:], floors[1:], strict=True):
            column.min_width = min(width, floor)
    console.print(table)


@workers_app.command("show")
def show(worker: WorkerArgument, url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Show a worker: status, last seen, current task, tags, sleep schedule."""
    uuid = parsed_uuid(worker, "WORKER")
    detail = on_store(url, lambda store: worker_detail(store, uuid))
    if as_json:
        print_json(detail)
        return
    table = fitted_table(f"worker {detail['uuid']}", ("field", "value"), [], wrap=("value",))
    table.add_row("name", detail["name"])
    table.add_row("status", _status(detail))
    table.add_row("last seen", _at(detail["last_seen_at"]))
    table.add_row("current task", _task(detail) or "none")
    if detail["current_task"]:
        table.add_row("  task / job", f"{detail['current_task']['uuid']} / {detail['current_task']['job']}")
    table.add_row("tags", ", ".join(tag["name"] for tag in detail["tags"]) or "none")
    table.add_row("task types", ", ".join(detail["supported_task_types"]))
    table.add_row("address / platform", f"{detail['address']} / {detail['platform']}")
    table.add_row("software", detail["software"])
    schedule = detail["sleep_schedule"]
    if schedule is None:
        table.add_row("sleep schedule", "none")
    else:
        days = schedule["days_of_week"] or "every day"
        state = "active" if schedule["is_active"] else "inactive"
        table.add_row("sleep schedule", f"{state}: {days} {schedule['start_time']}–{schedule['end_time']}")
    console.print(table)


def _request(
    worker: str, status: WorkerStatus, lazy: bool, reason: str | None, command: str, url: str | None, as_json: bool
) -> None:
    uuid = parsed_uuid(worker, "WORKER")
    why = reason or f"by the operator (statestore workers {command})"

    async def ask(store: Store) -> dict[str, Any]:
        done = await store.state_machine.request_worker_status(uuid, status, lazy=lazy, reason=why, who=operator())
        return worker_row(done)

    row = on_store(url, ask)
    if as_json:
        print_json(row)
        return
    if row["status_requested"]:
        console.print(f"worker {row['uuid']} ({row['name']}): {_status(row)} requested", highlight=False)
    else:
        console.print(f"worker {row['uuid']} ({row['name']}) is {row['status']}: no request pending", highlight=False)


@workers_app.command("sleep")
def sleep(
    worker: WorkerArgument,
    lazy: LazyOption = False,
    reason: ReasonOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ask a worker to go to sleep (asleep): it takes no more work."""
    _request(worker, WorkerStatus.ASLEEP, lazy, reason, "sleep", url, as_json)


@workers_app.command("wake")
def wake(
    worker: WorkerArgument,
    lazy: LazyOption = False,
    reason: ReasonOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ask a worker to wake up (awake): it takes work again."""
    _request(worker, WorkerStatus.AWAKE, lazy, reason, "wake", url, as_json)


@workers_app.command("forget")
def forget(
    worker: WorkerArgument,
    yes: YesOption = False,
    reason: ReasonOption = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Soft-delete a worker and give its active tasks back to the queue.
    Asks first unless --yes."""
    uuid = parsed_uuid(worker, "WORKER")
    found = on_store(url, lambda store: store.workers.fetch(uuid))  # NotFound before asking
    confirm(f"forget worker {found.uuid} ({found.name})? Its active tasks go back to the queue", yes)
    why = reason or "by the operator (statestore workers forget)"
    given = on_store(url, lambda store: store.state_machine.forget_worker(uuid, reason=why, who=operator()))
    if as_json:
        print_json(
            {
                "worker": str(uuid),
                "given_back": [{"task": g.task_uuid, "job": g.job_uuid, "status": g.status} for g in given],
            }
        )
        return
    console.print(f"forgot worker {found.uuid} ({found.name}); {len(given)} task(s) given back", highlight=False)
