"""Per-job worker blocklists: a worker barred from a task type on one job."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from statestore.store import Store

__all__ = ["JobBlocklist"]


class JobBlocklist:
    """Per-job worker blocklists: a worker barred from a task type on one job."""

    def __init__(self, store: Store) -> None:
        self._store = store
