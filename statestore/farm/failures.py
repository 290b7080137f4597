"""Task failure lists: which workers failed which task."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from statestore.store import Store

__all__ = ["TaskFailures"]


class TaskFailures:
    """Task failure lists: which workers failed which task."""

    def __init__(self, store: Store) -> None:
        self._store = store
