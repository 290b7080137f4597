"""The last-rendered job: one pointer for the whole farm."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from statestore.store import Store

__all__ = ["LastRendered"]


class LastRendered:
    """The last-rendered job: one pointer for the whole farm."""

    def __init__(self, store: Store) -> None:
        self._store = store
