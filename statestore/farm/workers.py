"""Workers of the farm model: create, fetch, save, heartbeat, soft delete."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from statestore.store import Store

__all__ = ["Workers"]


class Workers:
    """Workers of the farm model: create, fetch, save, heartbeat, soft delete."""

    def __init__(self, store: Store) -> None:
        self._store = store
