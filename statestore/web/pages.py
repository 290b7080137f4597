"""The dashboard's HTML pages: each renders a view of
:mod:`statestore.web.views` through its Jinja2 template, with what the page
needs to stay live (the event stream it follows and the cursor it was read
at) and, when control is on, the CSRF token its forms send back."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from statestore.farm.statuses import JobStatus, TaskStatus, WorkerStatus
from statestore.web.drawing import draw
from statestore.web.params import uuid_of
from statestore.web.settings import Settings
from statestore.web.views import book_view, flows_view, job_view, jobs_view, worker_view, workers_view

__all__ = ["render", "routes"]

JOB_KINDS = ("job.status", "job.stored", "job.deleted", "task.status")
WORKER_KINDS = ("worker.status", "worker.requested", "worker.forgotten", "task.status")
FLOW_KINDS = ("logbook.saved", "logbook.destroyed", "flow.state", "atom.state")


def _stream(**filters: Any) -> str:
    """The page's event stream: ``/api/events`` with its filters."""
    parts = []
    for name, value in filters.items():
        for item in value if isinstance(value, tuple) else (value,):
            parts.append(f"{name}={item}")
    return "/api/events" + ("?" + "&".join(parts) if parts else "")


def render(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> Response:
    """``template`` with ``context`` and what every page has: the section it
    belongs to, whether control is on, and the CSRF token when it is."""
    settings: Settings = request.app.state.settings
    page = {
        "control": settings.allow_control,
        "csrf_token": settings.csrf_token if settings.allow_control else "",
        "section": template.split("_")[0].removesuffix(".html"),
        **context,
    }
    return settings.templates.TemplateResponse(request, template, page, status_code=status_code)


async def home(request: Request) -> Response:
    return RedirectResponse("/jobs", status_code=303)


async def jobs_page(request: Request) -> Response:
    view = await jobs_view(request)
    return render(request, "jobs.html", {**view, "all_statuses": list(JobStatus), "stream": _stream(kind=JOB_KINDS)})


async def job_page(request: Request) -> Response:
    job = uuid_of(request, "job")
    view = await job_view(request, job)
    order = [status.value for status in TaskStatus]
    context = {**view, "drawing": draw(view["graph"], order), "task_statuses": order, "stream": _stream(job=job)}
    return render(request, "job.html", context)


async def workers_page(request: Request) -> Response:
    view = await workers_view(request)
    context = {**view, "all_statuses": list(WorkerStatus), "stream": _stream(kind=WORKER_KINDS)}
    return render(request, "workers.html", context)


async def worker_page(request: Request) -> Response:
    worker = uuid_of(request, "worker")
    view = await worker_view(request, worker)
    return render(request, "worker.html", {**view, "stream": _stream(kind=WORKER_KINDS)})


async def flows_page(request: Request) -> Response:
    view = await flows_view(request)
    return render(request, "flows.html", {**view, "stream": _stream(kind=FLOW_KINDS)})


async def book_page(request: Request) -> Response:
    view = await book_view(request, request.path_params["book"])
    return render(request, "flows_book.html", {**view, "stream": _stream(kind=FLOW_KINDS)})


routes = [
    Route("/", home),
    Route("/jobs", jobs_page),
    Route("/jobs/{job}", job_page),
    Route("/workers", workers_page),
    Route("/workers/{worker}", worker_page),
    Route("/flows", flows_page),
    Route("/flows/{book:path}", book_page),
]
