"""The change feed's retention: old changes are purged, oldest first.

Changes are deleted in feed order (``(tx, id)``) from the oldest, a chunk
per transaction, stopping at the first change not older than the cut-off:
the feed's order follows commits, not clocks, so a change a little older
than one kept may stay until the next purge, but the deleted ones are
always a prefix of the feed. ``change_feed`` keeps the place of the last
change deleted; a reader whose cursor is before it would skip changes and
is refused (:class:`~statestore.errors.CursorExpired`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection, Row

from statestore.changes.tables import CHANGE_FEED, CHANGES
from statestore.core.dialect import facts_of

__all__ = ["feed_row", "purge_chunk"]

_C = CHANGES


_FEED_ROW = select(CHANGE_FEED.c.numbered).where(CHANGE_FEED.c.id == 1).with_for_update()


def feed_row(connection: Connection) -> Row[Any]:
    """``change_feed``'s row, locked until the transaction ends; put back
    first if it is gone (a database emptied by hand)."""
    row = connection.execute(_FEED_ROW).first()
    if row is None:
        connection.execute(
            facts_of(connection).insert_once(CHANGE_FEED), {"id": 1, "numbered": 0, "purged_tx": 0, "purged_id": 0}
        )
        row = connection.execute(_FEED_ROW).one()
    return row


def purge_chunk(connection: Connection, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` of the oldest changes made before ``before``;
    how many were deleted. Holds ``change_feed``'s row: purges take turns."""
    feed_row(connection)
    query = select(_C.c.id, _C.c.tx, _C.c.at).where(_C.c.tx.is_not(None))
    horizon = facts_of(connection).change_horizon()
    if horizon is not None:
        query = query.where(_C.c.tx < horizon)
    rows = connection.execute(query.order_by(_C.c.tx, _C.c.id).limit(limit)).all()
    doomed: list[tuple[int, int]] = []
    for row in rows:
        if row.at >= before:
            break
        doomed.append((int(row.tx), int(row.id)))
    if not doomed:
        return 0
    connection.execute(delete(_C).where(_C.c.id.in_([row_id for _, row_id in doomed])))
    last_tx, last_id = doomed[-1]
    connection.execute(update(CHANGE_FEED).where(CHANGE_FEED.c.id == 1).values(purged_tx=last_tx, purged_id=last_id))
    return len(doomed)
