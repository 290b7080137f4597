"""A change as the feed returns it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from statestore.changes.kinds import ChangeKind

__all__ = ["Change"]


@dataclass(frozen=True, slots=True)
class Change:
    """One change, read from the feed.

    ``cursor`` is opaque and durable: store it anywhere, and
    ``store.changes(after=cursor)`` resumes right after this change. Cursors
    of later changes compare greater, as strings too.
    """

    cursor: str
    kind: ChangeKind
    at: datetime
    job: UUID | None = None
    task: UUID | None = None
    worker: UUID | None = None
    logbook: UUID | None = None
    flow: UUID | None = None
    atom: UUID | None = None
    old: str | None = None
    new: str | None = None
    reason: str = ""
    who: str = ""
