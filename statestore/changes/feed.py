"""``store.changes()``: the change feed, read in commit order, then followed.

A change's place is ``(tx, id)`` (see :mod:`statestore.changes.tables` for
why not ``id``); its cursor is that pair written as a string whose order is
the pair's, so cursors compare as strings too. A page is a keyset read after
the last cursor, in one snapshot with the purge mark, so a cursor that a
purge passed is refused (:class:`~statestore.errors.CursorExpired`) rather
than resumed with a gap:

* PostgreSQL reads only ``tx`` below its snapshot's oldest running
  transaction: a transaction that drew its id early and commits late holds
  the feed back until it ends, and is then read in its place — never
  skipped. A transaction left open anywhere on the server delays the feed
  by as long.
* MariaDB/MySQL writes ``tx`` NULL; before reading, a follower numbers the
  committed, unnumbered changes in one batch under ``change_feed``'s row
  lock (uncommitted ones are skipped, ``SKIP LOCKED``, and numbered by a
  later batch), so batch numbers follow the order batches were made in.
* SQLite has one writer: ids are commit order, ``tx`` is 0.

Following: after catching up, a follower sleeps until woken (see
:mod:`statestore.core.wakeups`): by this process's commits at once, on a
SQLite file by any process's commit within a few milliseconds, on
PostgreSQL by commits that enable work (NOTIFY) — other processes' changes
are found by re-reading on an interval that starts at 10 ms and doubles to
half a second while nothing new comes — and on MariaDB/MySQL by that
interval alone.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncGenerator, Iterable
from datetime import datetime, timedelta
from functools import cache, partial
from typing import Any, Final
from uuid import UUID

from sqlalchemy import BigInteger, Integer, and_, bindparam, literal_column, or_, select, tuple_, update
from sqlalchemy.engine import Connection

from statestore.changes.kinds import ChangeKind
from statestore.changes.records import Change
from statestore.changes.retention import feed_row, purge_chunk
from statestore.changes.tables import CHANGE_FEED, CHANGES
from statestore.core.dialect import DialectFacts, facts_of
from statestore.core.direct import DirectStatement
from statestore.core.runner import Runner
from statestore.core.types import utcnow
from statestore.core.validate import enum_value, shown, type_name, uuid_value
from statestore.errors import CursorExpired, InvalidInput

__all__ = ["BATCH", "ChangeFeed", "cursor_of", "position_of"]

BATCH: Final = 1000
"""Changes read per round trip."""

_FOLLOW_FIRST: Final = 0.01
_FOLLOW_MOST: Final = 0.5

_Position = tuple[int, int]
_START: Final[_Position] = (0, 0)
"""Before every change: transaction ids and row ids start above 0."""
_CURSOR = re.compile(r"(\d{19})-(\d{19})")


def cursor_of(tx: int, row_id: int) -> str:
    """The cursor of the change at ``(tx, id)``."""
    return f"{tx:019d}-{row_id:019d}"


def position_of(cursor: object) -> _Position:
    """The ``(tx, id)`` a cursor names; InvalidInput for anything else."""
    if not isinstance(cursor, str):
        raise InvalidInput(f"after: expected a change cursor (str), got {type_name(cursor)}")
    match = _CURSOR.fullmatch(cursor)
    if match is None:
        raise InvalidInput(f"after: {shown(cursor)} is not a change cursor")
    return int(match[1]), int(match[2])


_C = CHANGES

_COLUMNS = (
    _C.c.tx,
    _C.c.id,
    _C.c.kind,
    _C.c.at,
    _C.c.job_uuid,
    _C.c.task_uuid,
    _C.c.worker_uuid,
    _C.c.logbook_uuid,
    _C.c.flow_uuid,
    _C.c.atom_uuid,
    _C.c.old_value,
    _C.c.new_value,
    _C.c.reason,
    _C.c.who,
)


@cache
def _page_statement(facts: DialectFacts, kinds: tuple[ChangeKind, ...], job: bool, flow: bool) -> DirectStatement:
    """A page of the feed after ``(:tx, :id)``, as a keyset seek on
    ``ix_changes_tx_id`` (or the primary key), compiled once per filter.

    The seek must be an index range on both columns, or every page costs as
    much as all the pages before it: PostgreSQL ranges a row comparison
    ``(tx, id) > (:tx, :id)`` but reads ``tx > :tx OR (tx = :tx AND id >
    :id)`` as a filter over the whole index; MariaDB ranges the OR on both
    columns and the row comparison on ``tx`` alone (a numbered batch holds
    thousands of changes). On SQLite ``tx`` is always 0 and ``id`` alone is
    the order. Kinds are written into the SQL (enum values only), so a page
    is one prepared statement without an expanding list."""
    query = select(*_COLUMNS)
    after_tx, after_id = bindparam("tx", type_=BigInteger), bindparam("id", type_=BigInteger)
    if facts.change_order == "insertion":
        query = query.where(_C.c.id > after_id).order_by(_C.c.id)
    else:
        if facts.change_order == "transaction":
            after = tuple_(_C.c.tx, _C.c.id) > tuple_(after_tx, after_id)
        else:  # MariaDB ranges a row comparison on its first column only, and this on both
            after = or_(_C.c.tx > after_tx, and_(_C.c.tx == after_tx, _C.c.id > after_id))
        query = query.where(_C.c.tx.is_not(None), after).order_by(_C.c.tx, _C.c.id)
    horizon = facts.change_horizon()
    if horizon is not None:
        query = query.where(_C.c.tx < horizon)
    if kinds:
        query = query.where(_C.c.kind.in_([literal_column(f"'{kind.value}'") for kind in kinds]))
    if job:
        query = query.where(_C.c.job_uuid == bindparam("job", type_=_C.c.job_uuid.type))
    if flow:
        query = query.where(_C.c.flow_uuid == bindparam("flow", type_=_C.c.flow_uuid.type))
    # Both named: SQLite renders a LIMIT as ``LIMIT ? OFFSET ?``.
    return DirectStatement(query.limit(bindparam("limit", type_=Integer)).offset(bindparam("offset", type_=Integer)))


_MARK = select(CHANGE_FEED.c.purged_tx, CHANGE_FEED.c.purged_id).where(CHANGE_FEED.c.id == 1)


def _purged(connection: Connection) -> _Position:
    """Where the purge got to; the start if ``change_feed``'s row is gone
    (a database emptied by hand: nothing was purged that it knows of)."""
    mark = connection.execute(_MARK).first()
    return _START if mark is None else (int(mark.purged_tx), int(mark.purged_id))


_KINDS = {kind.value: kind for kind in ChangeKind}


def _change(row: tuple[Any, ...]) -> Change:
    tx, row_id, kind, at, job, task, worker, logbook, flow, atom, old, new, reason, who = row
    return Change(
        f"{tx:019d}-{row_id:019d}", _KINDS[kind], at, job, task, worker, logbook, flow, atom, old, new, reason, who
    )


def read_page(
    connection: Connection,
    position: _Position,
    kinds: tuple[ChangeKind, ...],
    job: UUID | None,
    flow: UUID | None,
    limit: int,
    resumed: bool,
) -> tuple[list[Change], _Position]:
    """The changes after ``position``, in order, and where the next page
    starts; CursorExpired if a purge passed ``position`` and the reader
    ``resumed`` from a cursor (reading from the start reads what is kept).

    With a filter, a page that is not full has looked at every change
    readable in this snapshot: the next page starts after the newest of
    them, matched or not, so a follower of a quiet job neither rescans the
    other jobs' changes at every poll nor falls behind the purge."""
    mark = _purged(connection)
    if resumed and position < mark:
        raise CursorExpired(
            f"after: cursor {cursor_of(*position)} is older than the change feed's retention "
            f"(changes up to {cursor_of(*mark)} were purged)"
        )
    statement = _page_statement(facts_of(connection), kinds, job is not None, flow is not None)
    params: dict[str, Any] = {
        "tx": position[0],
        "id": position[1],
        "job": job,
        "flow": flow,
        "limit": limit,
        "offset": 0,
    }
    changes = [_change(row) for row in statement.execute(connection, params).rows]
    if changes:
        last = position_of(changes[-1].cursor)
        if len(changes) == limit or not (kinds or job or flow):
            return changes, last
    elif not (kinds or job or flow):
        return changes, position
    return changes, max(position, latest_position(connection))


_UNNUMBERED = select(_C.c.id).where(_C.c.tx.is_(None)).limit(1)


def any_unnumbered(connection: Connection) -> bool:
    """Whether committed changes wait for a number (MariaDB/MySQL)."""
    return connection.execute(_UNNUMBERED).first() is not None


def number_changes(connection: Connection, limit: int = 10 * BATCH) -> int:
    """Give committed, unnumbered changes the next batch number, holding
    ``change_feed``'s row so batches are numbered one after another.
    Changes of transactions still running are locked by them and skipped."""
    last = feed_row(connection).numbered
    ids = list(
        connection.execute(
            select(_C.c.id).where(_C.c.tx.is_(None)).order_by(_C.c.id).limit(limit).with_for_update(skip_locked=True)
        ).scalars()
    )
    if not ids:
        return 0
    number = int(last) + 1
    connection.execute(update(_C).where(_C.c.id.in_(ids)).values(tx=number))
    connection.execute(update(CHANGE_FEED).where(CHANGE_FEED.c.id == 1).values(numbered=number))
    return len(ids)


_LATEST = select(_C.c.tx, _C.c.id).where(_C.c.tx.is_not(None)).order_by(_C.c.tx.desc(), _C.c.id.desc()).limit(1)


def latest_position(connection: Connection) -> _Position:
    """The place of the newest change a reader may read now."""
    horizon = facts_of(connection).change_horizon()
    query = _LATEST if horizon is None else _LATEST.where(_C.c.tx < horizon)
    row = connection.execute(query).first()
    if row is None:
        return _purged(connection)
    return int(row.tx), int(row.id)


def _kinds(kinds: object) -> tuple[ChangeKind, ...]:
    if kinds is None:
        return ()
    if isinstance(kinds, str | ChangeKind):
        kinds = [kinds]
    if not isinstance(kinds, Iterable):
        raise InvalidInput(f"kinds: expected change kinds, got {type_name(kinds)}")
    chosen = tuple(sorted({enum_value(ChangeKind, kind, "kinds") for kind in kinds}))
    if not chosen:
        raise InvalidInput("kinds: an empty set of kinds would never match; pass None for every kind")
    return chosen


class ChangeFeed:
    """The store's change feed (``store.changes``); see the module docstring."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    def __call__(
        self,
        after: str | None = None,
        *,
        kinds: Iterable[ChangeKind | str] | ChangeKind | str | None = None,
        job: UUID | str | None = None,
        flow: UUID | str | None = None,
        follow: bool = True,
    ) -> AsyncGenerator[Change, None]:
        """The changes after ``after`` (a cursor; None: from the oldest kept),
        in commit order, then — with ``follow`` — each new one as it is
        committed, without end. ``kinds`` keeps only those kinds; ``job``
        only the changes of one job and its tasks; ``flow`` only those of
        one flow detail and its atoms. Close the iterator (``aclosing``) or
        break out of the loop to stop following.

        Raises InvalidInput (at once) for a malformed argument, and
        CursorExpired when ``after`` is older than the retention."""
        position = _START if after is None else position_of(after)
        chosen = _kinds(kinds)
        job_uuid = None if job is None else uuid_value(job, "job")
        flow_uuid = None if flow is None else uuid_value(flow, "flow")
        if not isinstance(follow, bool):
            raise InvalidInput(f"follow: expected a bool, got {type_name(follow)}")
        return self._changes(position, chosen, job_uuid, flow_uuid, follow, resumed=after is not None)

    async def _changes(
        self,
        position: _Position,
        kinds: tuple[ChangeKind, ...],
        job: UUID | None,
        flow: UUID | None,
        follow: bool,
        *,
        resumed: bool,
    ) -> AsyncGenerator[Change, None]:
        runner = self._runner
        numbered = runner.facts.change_order == "numbered"
        wakeups = runner.wakeups
        following = wakeups.following(ready_within=1.0) if follow else contextlib.nullcontext()
        async with following as follower:
            idle = _FOLLOW_FIRST
            while True:
                if numbered and await runner.read(any_unnumbered, single_statement=True):
                    await runner.write(number_changes)
                page, after = await runner.read(
                    partial(read_page, position=position, kinds=kinds, job=job, flow=flow, limit=BATCH, resumed=resumed)
                )
                for change in page:
                    yield change
                if after != position:
                    position, resumed = after, True
                if page:
                    idle = _FOLLOW_FIRST
                    if len(page) == BATCH:
                        continue
                if follower is None:
                    return
                # Woken by a commit: read again at once. Where a watcher hears every commit (a SQLite
                # file), nothing is missed by sleeping until woken; elsewhere re-read on an interval.
                hears_all = runner.facts.wakeups == "data_version" and wakeups.listening
                woken = await follower.wait(1.0 if hears_all else idle)
                wakeups.check_open()
                idle = _FOLLOW_FIRST if woken else min(idle * 2, _FOLLOW_MOST)

    async def cursor(self) -> str:
        """The cursor of the newest change readable now: follow only what
        comes after it with ``changes(after=await store.changes.cursor())``."""
        if self._runner.facts.change_order == "numbered" and await self._runner.read(
            any_unnumbered, single_statement=True
        ):
            await self._runner.write(number_changes)
        return cursor_of(*await self._runner.read(latest_position))

    async def purge(self, *, older_than: timedelta) -> int:
        """Delete the changes older than ``older_than``, oldest first, in
        short transactions; cursors up to the last one deleted are then
        refused (CursorExpired). Returns how many were deleted."""
        if not isinstance(older_than, timedelta) or older_than < timedelta(0):
            raise InvalidInput(f"older_than: expected a non-negative timedelta, got {shown(older_than)}")
        try:
            before: datetime = utcnow() - older_than
        except OverflowError:
            raise InvalidInput(f"older_than: {shown(older_than)} reaches before the year 1") from None
        total = 0
        while True:
            deleted = await self._runner.write(partial(purge_chunk, before=before, limit=BATCH))
            total += deleted
            if deleted < BATCH:
                return total
