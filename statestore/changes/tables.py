"""The ``changes`` table and ``change_feed``, its one row of bookkeeping.

A change's place in the feed is ``(tx, id)``, not ``id``: ids drawn from a
sequence are not in commit order, and a reader taking ``id > last`` would
skip a change whose id was drawn early but committed late. ``tx`` is, by
dialect (decided in :mod:`statestore.core.dialect`):

* PostgreSQL: the writing transaction's id (``pg_current_xact_id()``, a
  server default). A reader reads only ``tx`` below its snapshot's xmin,
  where every transaction has ended, so nothing can still appear there.
* MariaDB/MySQL: NULL when written; readers number committed changes in
  batches under ``change_feed``'s row lock (:mod:`statestore.changes.feed`),
  so batches are numbered in the order they are numbered.
* SQLite: 0. Its one writer commits changes in id order; ids are never
  reused (AUTOINCREMENT), even after the newest changes are purged.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast
from uuid import UUID

from sqlalchemy import BigInteger, Index, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from statestore.core.base import Base, IdType
from statestore.core.types import UTCDateTime
from statestore.farm.tables import BINARY_TEXT, LENGTHS

__all__ = ["CHANGES", "CHANGE_FEED", "ChangeFeedRow", "ChangeRow"]


class ChangeRow(Base):
    """One change, appended in the transaction that made it."""

    __tablename__ = "changes"
    __table_args__ = (
        # The feed's order, and its keyset pages.
        Index("ix_changes_tx_id", "tx", "id"),
        {**BINARY_TEXT, "sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    tx: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    job_uuid: Mapped[UUID | None]
    task_uuid: Mapped[UUID | None]
    worker_uuid: Mapped[UUID | None]
    logbook_uuid: Mapped[UUID | None]
    flow_uuid: Mapped[UUID | None]
    atom_uuid: Mapped[UUID | None]
    old_value: Mapped[str | None] = mapped_column(String(32))
    new_value: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(LENGTHS["activity"]), default="")
    who: Mapped[str] = mapped_column(String(LENGTHS["who"]), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class ChangeFeedRow(Base):
    """The feed's bookkeeping, one row (``id`` 1): the last batch number
    given (MariaDB/MySQL), and the place up to which changes were purged —
    a cursor before it is too old to resume from."""

    __tablename__ = "change_feed"
    __table_args__ = (BINARY_TEXT,)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=False)
    numbered: Mapped[int] = mapped_column(BigInteger, default=0)
    purged_tx: Mapped[int] = mapped_column(BigInteger, default=0)
    purged_id: Mapped[int] = mapped_column(BigInteger, default=0)


CHANGES = cast(Table, ChangeRow.__table__)
CHANGE_FEED = cast(Table, ChangeFeedRow.__table__)
