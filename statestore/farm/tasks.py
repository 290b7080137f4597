"""Tasks of the farm model one at a time: fetch, save, touch, time out."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from statestore.store import Store

__all__ = ["Tasks"]


class Tasks:
    """Tasks of the farm model one at a time: fetch, save, touch, time out."""

    def __init__(self, store: Store) -> None:
        self._store = store
