"""``/api/…``: the pages' data as JSON, in the shapes the CLI's ``--json``
prints, the event stream, and the control actions.

Control actions (``POST /api/jobs/{job}/cancel|pause|requeue``,
``POST /api/tasks/{task}/requeue``) go through ``store.state_machine`` with
the reason given (or one naming the dashboard) and ``dashboard:<client
address>`` as who. They run only when the dashboard was started with
``--allow-control``, and only for a same-origin request carrying the CSRF
token (:func:`statestore.web.guard.check_control`). A form posted by the
job page is answered with a redirect back to the page; a script gets the
status changes as JSON.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from statestore.core.validate import shown
from statestore.errors import InvalidInput
from statestore.farm.records import StatusChange
from statestore.farm.statuses import JobStatus, TaskStatus
from statestore.farm.tables import LENGTHS
from statestore.overview.flows import book_tree
from statestore.overview.graph import job_graph
from statestore.overview.jobs import job_detail, status_change_row
from statestore.overview.workers import worker_detail
from statestore.web.guard import check_control
from statestore.web.live import events
from statestore.web.params import uuid_of
from statestore.web.settings import Settings
from statestore.web.views import JOB_PAGE_TASKS, books_listing, job_counts, jobs_listing, store_of, workers_listing

__all__ = ["routes"]

JOB_ACTIONS = {
    "cancel": JobStatus.CANCEL_REQUESTED,
    "pause": JobStatus.PAUSE_REQUESTED,
    "requeue": JobStatus.REQUEUEING,
}
"""The job actions and the status each asks the state machine for."""

FORM = "application/x-www-form-urlencoded"


async def jobs(request: Request) -> Response:
    return JSONResponse((await jobs_listing(request)).rows)


async def counts(request: Request) -> Response:
    return JSONResponse(await job_counts(store_of(request)))


async def job(request: Request) -> Response:
    return JSONResponse(await job_detail(store_of(request), uuid_of(request, "job"), task_limit=JOB_PAGE_TASKS))


async def graph(request: Request) -> Response:
    return JSONResponse(await job_graph(store_of(request), uuid_of(request, "job")))


async def workers(request: Request) -> Response:
    return JSONResponse((await workers_listing(request)).rows)


async def worker(request: Request) -> Response:
    return JSONResponse(await worker_detail(store_of(request), uuid_of(request, "worker")))


async def flows(request: Request) -> Response:
    return JSONResponse((await books_listing(request)).rows)


async def book(request: Request) -> Response:
    return JSONResponse(await book_tree(store_of(request), request.path_params["book"]))


async def _form(request: Request) -> dict[str, str]:
    """A posted form's fields (urlencoded; what a page's form sends)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != FORM:
        return {}
    return dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))


def _who(request: Request) -> str:
    client = request.client.host if request.client else "unknown"
    return f"dashboard:{client}"[: LENGTHS["who"]]


def _reason(form: dict[str, str], action: str) -> str:
    # The state machine checks the reason as it checks any caller's.
    return form.get("reason", "").strip() or f"by the operator (dashboard: {action})"


def _answer(request: Request, form: dict[str, str], changes: tuple[StatusChange, ...]) -> Response:
    if form:
        back = form.get("next", "")
        # Only a path of this dashboard: never an address elsewhere.
        target = back if back.startswith("/") and not back.startswith("//") else "/jobs"
        return RedirectResponse(target, status_code=303)
    return JSONResponse([status_change_row(change) for change in changes])


async def job_action(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    form = await _form(request)
    check_control(request, allowed=settings.allow_control, csrf_token=settings.csrf_token, form=form)
    action = request.path_params["action"]
    status = JOB_ACTIONS.get(action)
    if status is None:
        raise InvalidInput(f"action: {shown(action)} is not one of {', '.join(JOB_ACTIONS)}")
    store = store_of(request)
    uuid = uuid_of(request, "job")
    changes = await store.state_machine.job_status_change(
        uuid, status, reason=_reason(form, f"{action} job"), who=_who(request)
    )
    return _answer(request, form, changes)


async def task_requeue(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    form = await _form(request)
    check_control(request, allowed=settings.allow_control, csrf_token=settings.csrf_token, form=form)
    store = store_of(request)
    uuid = uuid_of(request, "task")
    changes = await store.state_machine.task_status_change(
        uuid, TaskStatus.QUEUED, reason=_reason(form, "requeue task"), who=_who(request)
    )
    return _answer(request, form, changes)


routes = [
    Route("/api/jobs", jobs),
    Route("/api/jobs/counts", counts),
    Route("/api/jobs/{job}", job),
    Route("/api/jobs/{job}/graph", graph),
    Route("/api/jobs/{job}/{action}", job_action, methods=["POST"]),
    Route("/api/tasks/{task}/requeue", task_requeue, methods=["POST"]),
    Route("/api/workers", workers),
    Route("/api/workers/{worker}", worker),
    Route("/api/flows", flows),
    Route("/api/flows/{book:path}", book),
    Route("/api/events", events),
]
