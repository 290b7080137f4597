"""Workers' sleep schedules (at most one per worker)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from statestore.store import Store

__all__ = ["SleepSchedules"]


class SleepSchedules:
    """Workers' sleep schedules (at most one per worker)."""

    def __init__(self, store: Store) -> None:
        self._store = store
