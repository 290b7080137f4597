"""Every statement SQLAlchemy sends meanwhile: for tests that count round
trips or check that bad input sent nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from statestore import Store


@contextmanager
def statements(store: Store) -> Iterator[list[str]]:
    """The SQL of every statement sent while the block runs, in order."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_rest: Any) -> None:
        seen.append(sql)

    engine = store.runner.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
