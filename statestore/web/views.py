"""What each page shows, read from the store as the shapes of
:mod:`statestore.overview` — the same the CLI's ``--json`` prints and
``/api`` serves. A page renders one of these; ``/api`` returns its data.

Each view reads the change feed's cursor first: the page subscribes to the
changes after it, so a change committed while the page was being read
reaches the page as an event, never falls between the two.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from starlette.requests import Request

from statestore.farm.statuses import JobStatus, WorkerStatus
from statestore.overview.flows import book_page, book_tree
from statestore.overview.graph import job_graph
from statestore.overview.jobs import job_detail, job_row
from statestore.overview.workers import worker_detail, worker_page
from statestore.store import Store
from statestore.web.params import after_of, limit_of, statuses_of

__all__ = [
    "JOB_PAGE_TASKS",
    "LISTING_PAGE",
    "book_view",
    "flows_view",
    "job_view",
    "jobs_view",
    "worker_view",
    "workers_view",
]

LISTING_PAGE = 50
"""Rows a listing page shows unless ``limit`` says otherwise."""

JOB_PAGE_TASKS = 200
"""Tasks a job's page lists in its table (the graph shows them all, or their summary)."""


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _paged(rows: list[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """The page's rows and the ``after`` of the next page (None on the last):
    one row more than shown is read to know."""
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1]["uuid"]
    return rows, None


async def jobs_view(request: Request) -> dict[str, Any]:
    """Jobs: counts by status, a keyset page of jobs (filtered by status)."""
    store = _store(request)
    statuses, after, limit = statuses_of(request, JobStatus), after_of(request), limit_of(request, LISTING_PAGE)
    cursor = await store.changes.cursor()
    counts = await store.jobs.summarize_statuses()
    found = await store.jobs.page(statuses=statuses, after=after, limit=limit + 1)
    rows, following = _paged([job_row(job) for job in found], limit)
    return {
        "cursor": cursor,
        "counts": {status.value: counts.get(status, 0) for status in JobStatus},
        "total": sum(counts.values()),
        "statuses": [status.value for status in statuses or ()],
        "jobs": rows,
        "next": following,
        "limit": limit,
    }


async def job_view(request: Request, job: UUID) -> dict[str, Any]:
    """One job: its detail (tasks, failures, blocklist, history) and its graph."""
    store = _store(request)
    cursor = await store.changes.cursor()
    detail = await job_detail(store, job, task_limit=JOB_PAGE_TASKS)
    graph = await job_graph(store, job)
    return {"cursor": cursor, "job": detail, "graph": graph}


async def workers_view(request: Request) -> dict[str, Any]:
    """Workers: a keyset page (filtered by status)."""
    store = _store(request)
    statuses, after, limit = statuses_of(request, WorkerStatus), after_of(request), limit_of(request, LISTING_PAGE)
    cursor = await store.changes.cursor()
    rows, following = _paged(await worker_page(store, statuses=statuses, after=after, limit=limit + 1), limit)
    return {
        "cursor": cursor,
        "statuses": [status.value for status in statuses or ()],
        "workers": rows,
        "next": following,
        "limit": limit,
    }


async def worker_view(request: Request, worker: UUID) -> dict[str, Any]:
    store = _store(request)
    cursor = await store.changes.cursor()
    return {"cursor": cursor, "worker": await worker_detail(store, worker)}


async def flows_view(request: Request) -> dict[str, Any]:
    """Logbooks: a keyset page, oldest first, with their flow counts."""
    store = _store(request)
    after, limit = after_of(request), limit_of(request, LISTING_PAGE)
    cursor = await store.changes.cursor()
    rows, following = _paged(await book_page(store, after=after, limit=limit + 1), limit)
    return {"cursor": cursor, "books": rows, "next": following, "limit": limit}


async def book_view(request: Request, book: str) -> dict[str, Any]:
    """One logbook → its flow details → their atoms (the book by uuid or foreign id)."""
    store = _store(request)
    cursor = await store.changes.cursor()
    return {"cursor": cursor, "book": await book_tree(store, book)}
