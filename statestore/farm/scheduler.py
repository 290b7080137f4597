"""The task scheduler: hands the next runnable task to a worker."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from statestore.store import Store

__all__ = ["Scheduler"]


class Scheduler:
    """The task scheduler: hands the next runnable task to a worker."""

    def __init__(self, store: Store) -> None:
        self._store = store
