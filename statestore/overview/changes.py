"""The change feed's changes as plain JSON-ready shapes (``statestore events
--json``, and the dashboard's live updates)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from statestore.changes.records import Change
from statestore.overview.json_values import plain

__all__ = ["change_row", "subject_of"]


def change_row(change: Change) -> dict[str, Any]:
    """A change as plain JSON: every field of :class:`Change`, the cursor included."""
    row: dict[str, Any] = plain(asdict(change))
    return row


def subject_of(change: Change) -> str:
    """What changed, most specific first: an atom, a task, a flow, a job, a
    worker, a logbook."""
    for what, uuid in (
        ("atom", change.atom),
        ("task", change.task),
        ("flow", change.flow),
        ("job", change.job),
        ("worker", change.worker),
        ("logbook", change.logbook),
    ):
        if uuid is not None:
            return f"{what} {uuid}"
    return "-"
