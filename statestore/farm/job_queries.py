"""Querying jobs (Flamenco's former ``QueryJobs``): filters, an order, keyset pages.

Filters combine (AND): statuses, metadata and settings entries, created and
updated time ranges. The order is by id, ``created_at`` or ``updated_at``,
ascending or descending (``"-updated_at"``), ties broken by id in the same
direction, so paging is exact however many jobs share a timestamp.

JSON entries compare identically on every backend: ``metadata={"project":
"Sprite Fright"}`` matches jobs whose metadata holds the *JSON string*
"Sprite Fright" under "project" — exactly (case, accents and trailing spaces
count; numbers, booleans, null, lists and objects never match a string).

The repository gets these methods by inheriting :class:`JobQueries`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Literal, get_args
from uuid import UUID

from sqlalchemy import Column, ColumnElement, String, and_, cast, select
from sqlalchemy.engine import Connection

from statestore.core.pages import (
    DEFAULT_PAGE,
    Cursor,
    Page,
    SortKey,
    check_anchors,
    cursor_value,
    keyset_after,
    last_position,
    stream,
)
from statestore.core.runner import Runner
from statestore.core.validate import aware_datetime, shown
from statestore.errors import InvalidInput
from statestore.farm.listings import DEFAULT_LIMIT, OFFLOAD_ROWS, in_statuses, listing_limit, statuses_value
from statestore.farm.records import Job
from statestore.farm.rows import JOB_COLUMNS, job_from_row
from statestore.farm.statuses import JobStatus
from statestore.farm.tables import JOBS

__all__ = ["JobFilter", "JobOrder", "JobQueries", "job_filter", "json_string_equals", "page_jobs", "sort_key"]

JobOrder = Literal["id", "-id", "created_at", "-created_at", "updated_at", "-updated_at"]
"""How a job query is ordered: by a column, ascending, or descending with a leading "-"."""

_ORDERS: tuple[str, ...] = get_args(JobOrder)


def sort_key(order: object) -> SortKey:
    """The sort key a :data:`JobOrder` names (InvalidInput for any other value)."""
    if not isinstance(order, str) or order not in _ORDERS:
        raise InvalidInput(f"order: {shown(order)} is not one of {', '.join(_ORDERS)}")
    column = order.removeprefix("-")
    return SortKey(None if column == "id" else column, descending=order.startswith("-"))


def _json_key(key: object, where: str) -> str:
    # SQLite and MariaDB address the key in a quoted JSON path ($."key"),
    # which a quote, a backslash or a control character would break.
    if not isinstance(key, str):
        raise InvalidInput(f"{where}: keys must be strings, got {type(key).__name__}")
    if any(char in '"\\' or unicodedata.category(char) == "Cc" for char in key):
        raise InvalidInput(f"{where}: key {key[:64]!r} holds a quote, a backslash or a control character")
    return key


def _json_text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{where}: values must be strings, got {type(value).__name__}")
    if "\x00" in value:
        raise InvalidInput(f"{where}: a value holds a NUL character, which no stored text can")
    return value


def _json_entries(entries: object, where: str) -> tuple[tuple[str, str], ...]:
    if entries is None:
        return ()
    if not isinstance(entries, Mapping):
        raise InvalidInput(f"{where}: expected a dict of str to str, got {type(entries).__name__}")
    return tuple((_json_key(key, where), _json_text(value, where)) for key, value in entries.items())


def json_string_equals(column: Column[Any], key: str, value: str) -> ColumnElement[bool]:
    """``column[key]`` is the JSON string ``value``, alike on every backend.

    The value's JSON text must start with a quote (a string; ``->>`` would
    turn the number 3 into "3" on PostgreSQL and MariaDB but not SQLite), and
    its decoded text must equal ``value`` — with a sentinel appended on both
    sides, because MariaDB's PAD SPACE collations ignore trailing spaces.
    """
    element = column[key]
    return and_(cast(element, String).like('"%'), element.as_string() + "|" == value + "|")


@dataclass(frozen=True)
class JobFilter:
    """Checked filters of a job query; every one that is set must hold."""

    statuses: list[JobStatus] | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    settings: tuple[tuple[str, str], ...] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        """The WHERE terms of these filters on ``jobs``."""
        terms = in_statuses(JOBS.c.status, self.statuses)
        terms += [json_string_equals(JOBS.c.metadata, key, value) for key, value in self.metadata]
        terms += [json_string_equals(JOBS.c.settings, key, value) for key, value in self.settings]
        bounds = (
            (JOBS.c.created_at, self.created_after, self.created_before),
            (JOBS.c.updated_at, self.updated_after, self.updated_before),
        )
        for column, since, before in bounds:
            if since is not None:
                terms.append(column >= since)
            if before is not None:
                terms.append(column < before)
        return terms


def _optional_datetime(value: object, where: str) -> datetime | None:
    return None if value is None else aware_datetime(value, where)


def job_filter(
    *,
    statuses: object = None,
    metadata: object = None,
    settings: object = None,
    created_after: object = None,
    created_before: object = None,
    updated_after: object = None,
    updated_before: object = None,
) -> JobFilter:
    """The filters of a job query, checked (InvalidInput naming the bad one)."""
    return JobFilter(
        statuses=statuses_value(JobStatus, statuses, "job statuses"),
        metadata=_json_entries(metadata, "metadata"),
        settings=_json_entries(settings, "settings"),
        created_after=_optional_datetime(created_after, "created_after"),
        created_before=_optional_datetime(created_before, "created_before"),
        updated_after=_optional_datetime(updated_after, "updated_after"),
        updated_before=_optional_datetime(updated_before, "updated_before"),
    )


def page_jobs(connection: Connection, *, where: JobFilter, key: SortKey, after: Cursor, limit: int) -> Page[Job]:
    """Up to ``limit`` jobs meeting ``where`` in the order of ``key``, after ``after``."""
    statement = (
        select(*JOB_COLUMNS)
        .where(*where.conditions(), keyset_after(JOBS, after, key))
        .order_by(*key.order_by(JOBS))
        .limit(limit)
    )
    rows = connection.execute(statement).mappings().all()
    if not rows:
        check_anchors(connection, JOBS, after, "job")
    return [job_from_row(row) for row in rows], last_position(rows, key)


class JobQueries:
    """Job queries with keyset pages (methods of ``store.jobs``)."""

    _runner: Runner

    async def page(
        self,
        *,
        statuses: Collection[JobStatus | str] | None = None,
        metadata: Mapping[str, str] | None = None,
        settings: Mapping[str, str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        updated_after: datetime | None = None,
        updated_before: datetime | None = None,
        order: JobOrder = "id",
        after: UUID | str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[Job]:
        """Up to ``limit`` jobs meeting every filter given, in ``order``,
        after job ``after`` (the last job of the previous page; NotFound if
        no job has that uuid).

        ``statuses``: any of these; ``metadata``/``settings``: each key holds
        exactly this JSON string; ``*_after``: at or after (inclusive);
        ``*_before``: strictly before. Datetimes must be timezone-aware.
        """
        where = job_filter(
            statuses=statuses,
            metadata=metadata,
            settings=settings,
            created_after=created_after,
            created_before=created_before,
            updated_after=updated_after,
            updated_before=updated_before,
        )
        unit = partial(
            page_jobs, where=where, key=sort_key(order), after=cursor_value(after), limit=listing_limit(limit)
        )
        return (await self._runner.read(unit, offload=limit > OFFLOAD_ROWS))[0]

    def iterate(
        self,
        *,
        statuses: Collection[JobStatus | str] | None = None,
        metadata: Mapping[str, str] | None = None,
        settings: Mapping[str, str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        updated_after: datetime | None = None,
        updated_before: datetime | None = None,
        order: JobOrder = "id",
        page_size: int = DEFAULT_PAGE,
    ) -> AsyncIterator[Job]:
        """Every job meeting the filters (as :meth:`page` takes them), in
        ``order``, fetched ``page_size`` at a time; each page continues after
        the previous page's last position, so jobs deleted meanwhile neither
        end nor repeat the iteration. Arguments are checked here."""
        where = job_filter(
            statuses=statuses,
            metadata=metadata,
            settings=settings,
            created_after=created_after,
            created_before=created_before,
            updated_after=updated_after,
            updated_before=updated_before,
        )
        unit = partial(page_jobs, where=where, key=sort_key(order), limit=listing_limit(page_size, "page_size"))
        return stream(lambda after: self._runner.read(partial(unit, after=after), offload=page_size > OFFLOAD_ROWS))
