"""Helpers for running TaskFlow against statestore in the test suite."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from tests.backends import TestDatabase, discard_database, new_database


def make_database(backend: str) -> tuple[TestDatabase, str]:
    """A throwaway database and the TaskFlow connection string for it."""
    directory = Path(tempfile.mkdtemp(prefix="statestore-taskflow-"))
    database = asyncio.run(new_database(backend, directory))
    return database, "statestore+" + database.url


def drop_database(database: TestDatabase) -> None:
    asyncio.run(discard_database(database))
