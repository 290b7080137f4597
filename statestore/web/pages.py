"""The dashboard's HTML pages: each renders the overview's shapes (through
:mod:`statestore.web.views` for the listings) with its Jinja2 template,
with what the page needs to stay live — the event stream it follows and the
change feed's cursor, read before anything else, so a change made while the
page is read reaches it as an event — and, when control is on, the CSRF
token its forms send back."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from statestore.farm.statuses import JobStatus, TaskStatus, WorkerStatus
from statestore.overview.flows import book_tree
from statestore.overview.graph import job_graph
from statestore.overview.jobs import job_detail
from statestore.overview.workers import worker_detail
from statestore.web.drawing import draw
from statestore.web.params import uuid_of
from statestore.web.settings import Settings
from statestore.web.views import (
    JOB_PAGE_TASKS,
    books_listing,
    job_counts,
    jobs_listing,
    store_of,
    workers_listing,
)

__all__ = ["render", "routes"]

JOB_KINDS = ("job.status", "job.stored", "job.deleted", "task.status")
WORKER_KINDS = ("worker.status", "worker.requested", "worker.forgotten", "task.status")
FLOW_KINDS = ("logbook.saved", "logbook.destroyed", "flow.state", "atom.state")


def _stream(**filters: Any) -> str:
    """The page's event stream: ``/api/events`` with its filters (a tuple: the parameter repeated)."""
    return "/api/events?" + urlencode(filters, doseq=True)


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
    cursor = await store_of(request).changes.cursor()  # first: a change made while reading reaches the page
    counts = await job_counts(store_of(request))
    listing = await jobs_listing(request)
    context = {
        "cursor": cursor,
        "counts": counts,
        "total": sum(counts.values()),
        "jobs": listing.rows,
        "listing": listing,
        "all_statuses": list(JobStatus),
        "stream": _stream(kind=JOB_KINDS),
    }
    return render(request, "jobs.html", context)


async def job_page(request: Request) -> Response:
    store = store_of(request)
    job = uuid_of(request, "job")
    cursor = await store.changes.cursor()
    detail = await job_detail(store, job, task_limit=JOB_PAGE_TASKS)
    graph = await job_graph(store, job)
    order = [status.value for status in TaskStatus]
    context = {
        "cursor": cursor,
        "job": detail,
        "graph": graph,
        "drawing": draw(graph, order),
        "task_statuses": order,
        "stream": _stream(job=job),
    }
    return render(request, "job.html", context)


async def workers_page(request: Request) -> Response:
    cursor = await store_of(request).changes.cursor()
    listing = await workers_listing(request)
    context = {
        "cursor": cursor,
        "workers": listing.rows,
        "listing": listing,
        "all_statuses": list(WorkerStatus),
        "stream": _stream(kind=WORKER_KINDS),
    }
    return render(request, "workers.html", context)


async def worker_page(request: Request) -> Response:
    store = store_of(request)
    worker = uuid_of(request, "worker")
    cursor = await store.changes.cursor()
    context = {"cursor": cursor, "worker": await worker_detail(store, worker), "stream": _stream(kind=WORKER_KINDS)}
    return render(request, "worker.html", context)


async def flows_page(request: Request) -> Response:
    cursor = await store_of(request).changes.cursor()
    listing = await books_listing(request)
    context = {"cursor": cursor, "books": listing.rows, "listing": listing, "stream": _stream(kind=FLOW_KINDS)}
    return render(request, "flows.html", context)


async def book_page(request: Request) -> Response:
    store = store_of(request)
    cursor = await store.changes.cursor()
    book = await book_tree(store, request.path_params["book"])
    return render(request, "flows_book.html", {"cursor": cursor, "book": book, "stream": _stream(kind=FLOW_KINDS)})


routes = [
    Route("/", home),
    Route("/jobs", jobs_page),
    Route("/jobs/{job}", job_page),
    Route("/workers", workers_page),
    Route("/workers/{worker}", worker_page),
    Route("/flows", flows_page),
    Route("/flows/{book:path}", book_page),
]
