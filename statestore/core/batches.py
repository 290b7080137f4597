"""Splitting long ``IN (…)`` lists: every dialect caps bound parameters per
statement (SQLite 32,766, PostgreSQL 32,767, MySQL 65,535), and planners do
better with moderate lists."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

__all__ = ["IN_LIST_SIZE", "chunks"]

T = TypeVar("T")

IN_LIST_SIZE = 500
"""Values per IN (…) list, well under every dialect's parameter limit."""


def chunks(items: Sequence[T], size: int = IN_LIST_SIZE) -> Iterable[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
