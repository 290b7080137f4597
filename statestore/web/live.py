"""``/api/events``: the change feed as server-sent events.

Each stream is a follower of ``store.changes`` of its own, filtered as the
page asks (``job``, ``flow``, ``kind``). Every event's id is the change's
cursor, so a browser that loses the connection reconnects with
``Last-Event-ID`` and resumes exactly after the last change it got; a page
passes the cursor it was rendered at as ``after``, so nothing committed
between rendering and subscribing is missed. A cursor older than the feed's
retention gets a ``reset`` event (the page reloads its content) and the
stream goes on from the newest change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.requests import Request

from statestore.changes.records import Change
from statestore.errors import CursorExpired, Unavailable
from statestore.overview.changes import change_row
from statestore.store import Store
from statestore.web.views import store_of

__all__ = ["PING_SECONDS", "events"]

PING_SECONDS = 15
"""A comment line this often keeps proxies from closing an idle stream."""

RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)
"""Waits before following again while the database cannot be reached."""


async def _stream(
    store: Store, changes: AsyncGenerator[Change, None], after: str, filters: dict[str, Any]
) -> AsyncIterator[dict[str, str]]:
    failures = 0
    while True:
        try:
            async with contextlib.aclosing(changes) as following:
                async for change in following:
                    after, failures = change.cursor, 0
                    yield {"event": "change", "id": change.cursor, "data": json.dumps(change_row(change))}
        except CursorExpired:
            after = await store.changes.cursor()
            yield {"event": "reset", "id": after, "data": after}
        except Unavailable:
            # The database is away (a restart, a network fault): follow again from the last
            # change sent once it is back; the page shows nothing wrong meanwhile.
            try:
                store.runner.wakeups.check_open()
            except Unavailable:
                return  # the store is closing: the dashboard is stopping
            await asyncio.sleep(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)])
            failures += 1
        changes = store.changes(after, follow=True, **filters)


async def events(request: Request) -> EventSourceResponse:
    """Follow the change feed: ``after`` (or ``Last-Event-ID``) a cursor,
    else from now; ``job``, ``flow``, ``kind`` (repeatable) filter."""
    store = store_of(request)
    query = request.query_params
    after = request.headers.get("last-event-id") or query.get("after") or None
    filters: dict[str, Any] = {
        "kinds": query.getlist("kind") or None,
        "job": query.get("job") or None,
        "flow": query.get("flow") or None,
    }
    start = after if after is not None else await store.changes.cursor()
    # The feed checks its arguments when called: InvalidInput (400) before the stream starts.
    changes = store.changes(start, follow=True, **filters)
    return EventSourceResponse(_stream(store, changes, start, filters), ping=PING_SECONDS)
