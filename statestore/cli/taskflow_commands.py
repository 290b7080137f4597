"""``statestore import-taskflow`` and ``export-taskflow``: logbooks in from
and out to any TaskFlow persistence backend (see
:mod:`statestore.compat.taskflow.migration`)."""

from __future__ import annotations

from typing import Annotated, Literal

import typer
from rich.markup import escape
from rich.progress import TextColumn

from statestore.cli.output import console, progress
from statestore.cli.root import UrlOption, app, fail, require_database, store_url
from statestore.core.urls import resolve_url
from statestore.errors import StoreError

__all__ = ["export_taskflow", "import_taskflow"]

TASKFLOW_HELP = (
    "TaskFlow connection: dir:///path, sqlite:////path.db, postgresql+psycopg2://…, mysql+pymysql://…, "
    "zookeeper://host:2181/path."
)


@app.command("import-taskflow")
def import_taskflow(
    source: Annotated[str, typer.Argument(help=f"{TASKFLOW_HELP} Only read.")], url: UrlOption = None
) -> None:
    """Copy every logbook of a TaskFlow persistence backend into the store (its
    schema created or migrated first), then verify the copy. A re-run updates
    and completes; it never duplicates."""
    _taskflow_transfer("import", source, url)


@app.command("export-taskflow")
def export_taskflow(
    target: Annotated[str, typer.Argument(help=f"{TASKFLOW_HELP} Upgraded, then written.")], url: UrlOption = None
) -> None:
    """Copy every logbook of the store into a TaskFlow persistence backend, then
    verify the copy. A re-run updates and completes; it never duplicates."""
    _taskflow_transfer("export", target, url)


def _taskflow_transfer(direction: Literal["import", "export"], taskflow: str, url: str | None) -> None:
    """One transfer with a progress bar on stderr, then its summary; an error
    is one red line and exit code 2."""
    try:
        # Imported here: the command works without TaskFlow until these two are used.
        from taskflow.exceptions import TaskFlowException

        from statestore.compat.taskflow import migration
    except ImportError as error:
        fail(f"the TaskFlow extra is not installed (pip install 'statestore[taskflow]'): {error}")
    store = store_url(url)
    if direction == "export":
        require_database(store)
    bar = progress(TextColumn("flow details, {task.fields[atoms]:,} atoms"))
    try:
        with bar:
            if direction == "import":
                report = migration.import_taskflow(taskflow, store, progress=bar)
            else:
                report = migration.export_taskflow(store, taskflow, progress=bar)
    except (StoreError, TaskFlowException) as error:
        fail(f"{type(error).__name__}: {error}")
    ends = (migration.display_connection(taskflow), resolve_url(store).given)  # passwords hidden
    where = "from {} into {}".format(*(ends if direction == "import" else reversed(ends)))
    console.print(
        f"{direction}ed {report.books} logbooks, {report.flows} flow details, {report.atoms} atoms {escape(where)}",
        highlight=False,
        soft_wrap=True,
    )
    console.print("verified: both sides hold the same counts and content", highlight=False)
    console.print(f"checksum: sha256 {report.checksum}", highlight=False, soft_wrap=True)
