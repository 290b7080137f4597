"""Worker tags and which workers carry them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from statestore.store import Store

__all__ = ["WorkerTags"]


class WorkerTags:
    """Worker tags and which workers carry them."""

    def __init__(self, store: Store) -> None:
        self._store = store
