"""Jobs of the farm model, with their tasks as a whole: store, fetch, save, delete, count."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from statestore.store import Store

__all__ = ["Jobs"]


class Jobs:
    """Jobs of the farm model, with their tasks as a whole: store, fetch, save, delete, count."""

    def __init__(self, store: Store) -> None:
        self._store = store
