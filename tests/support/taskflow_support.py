"""Helpers for running TaskFlow against statestore in the test suite."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from tests.support.backends import TestDatabase, discard_database, new_database

_DIRECTORIES: dict[str, Path] = {}


def make_database(backend: str) -> tuple[TestDatabase, str]:
    """A throwaway database and the TaskFlow connection string for it.

    A server that cannot be reached is skipped locally and fails in CI
    (``tests.support.backends.unavailable``).
    """
    directory = Path(tempfile.mkdtemp(prefix="statestore-taskflow-"))
    try:
        database = asyncio.run(new_database(backend, directory))
    except BaseException:  # skipped or failed: an unreachable server
        directory.rmdir()
        raise
    if backend == "sqlite-file":
        _DIRECTORIES[database.url] = directory  # the path is unique: a key
    else:
        directory.rmdir()
    return database, "statestore+" + database.url


def drop_database(database: TestDatabase) -> None:
    """Drop a server database, or remove a SQLite file's directory."""
    asyncio.run(discard_database(database))
    directory = _DIRECTORIES.pop(database.url, None)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)
