"""What the pages and ``/api`` read: keyset pages of the listings, as the
shapes of :mod:`statestore.overview` — the same the CLI's ``--json``
prints. A single job, worker or logbook is read with the overview's own
function (``job_detail``, ``worker_detail``, ``book_tree``).

Query parameters go to the library as given: it checks statuses and the
``after`` cursor (InvalidInput, 400, naming what was wrong) before any SQL.
A page reads one row more than it shows, to know whether another follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from statestore.farm.statuses import JobStatus
from statestore.overview.flows import book_page
from statestore.overview.jobs import job_row
from statestore.overview.workers import worker_page
from statestore.store import Store
from statestore.web.params import limit_of

__all__ = [
    "JOB_PAGE_TASKS",
    "LISTING_PAGE",
    "Listing",
    "books_listing",
    "job_counts",
    "jobs_listing",
    "workers_listing",
]

LISTING_PAGE = 50
"""Rows a listing page shows unless ``limit`` says otherwise."""

JOB_PAGE_TASKS = 200
"""Tasks a job's page lists in its table (the graph shows them all, or their summary)."""


@dataclass
class Listing:
    """One keyset page of a listing."""

    rows: list[dict[str, Any]]
    next: str | None
    """The ``after`` of the next page; None on the last."""
    statuses: list[str]
    """The statuses it is filtered by (none: all)."""
    limit: int


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def _listing(request: Request, read: Any) -> Listing:
    """``read(statuses, after, limit)``'s rows as a page of at most ``limit``."""
    query = request.query_params
    statuses = [value for value in query.getlist("status") if value]
    limit = limit_of(request, LISTING_PAGE)
    rows = await read(statuses or None, query.get("after") or None, limit + 1)
    if len(rows) > limit:
        return Listing(rows[:limit], rows[limit - 1]["uuid"], statuses, limit)
    return Listing(rows, None, statuses, limit)


async def jobs_listing(request: Request) -> Listing:
    """A keyset page of jobs, filtered by ``status`` (repeatable)."""
    store = store_of(request)

    async def read(statuses: list[str] | None, after: str | None, limit: int) -> list[dict[str, Any]]:
        return [job_row(job) for job in await store.jobs.page(statuses=statuses, after=after, limit=limit)]

    return await _listing(request, read)


async def workers_listing(request: Request) -> Listing:
    """A keyset page of workers, filtered by ``status`` (repeatable)."""
    store = store_of(request)

    async def read(statuses: list[str] | None, after: str | None, limit: int) -> list[dict[str, Any]]:
        return await worker_page(store, statuses=statuses, after=after, limit=limit)

    return await _listing(request, read)


async def books_listing(request: Request) -> Listing:
    """A keyset page of logbooks, oldest first (no status to filter by)."""
    store = store_of(request)

    async def read(_: list[str] | None, after: str | None, limit: int) -> list[dict[str, Any]]:
        return await book_page(store, after=after, limit=limit)

    return await _listing(request, read)


async def job_counts(store: Store) -> dict[str, int]:
    """How many jobs are in each status, every status named."""
    counts = await store.jobs.summarize_statuses()
    return {status.value: counts.get(status, 0) for status in JobStatus}
