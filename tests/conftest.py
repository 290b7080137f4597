"""Fixtures of the conformance suite: every test runs on every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete
from xdist.scheduler import LoadScopeScheduling

from statestore import Store, open_store
from statestore.schema.metadata import metadata
from tests.support.backends import BACKENDS, SERVER_ENV, TestDatabase, discard_database, new_database

UPSTREAM_TASKFLOW = "tests/taskflow/test_taskflow_upstream.py"
# Run on the second worker beside TaskFlow's suites, which mostly sleep.
SECOND_WORKER = (UPSTREAM_TASKFLOW, "tests/cli/", "tests/web/")


class _TwoGroups(LoadScopeScheduling):
    """pytest-xdist's scheduling by scope, with two scopes: the suite, which
    runs in order on one worker as it would alone, and TaskFlow's own engine
    suites, which mostly sleep in the engines' waits, with the command's
    and the dashboard's tests on the other. (xdist's ``--dist loadgroup`` marks do not group
    under this pytest.)"""

    def _split_scope(self, nodeid: str) -> str:
        return "second" if any(part in nodeid for part in SECOND_WORKER) else "suite"


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> _TwoGroups:
    """The scheduler of ``-n 2`` (pyproject's addopts)."""
    return _TwoGroups(config, log)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend in turn: sqlite-file, sqlite-memory, postgresql, mysql."""
    return str(request.param)


@pytest.fixture(scope="session")
async def server_databases() -> AsyncIterator[dict[str, TestDatabase]]:
    """One migrated database per server backend for the whole session,
    created lazily, dropped at the end."""
    made: dict[str, TestDatabase] = {}
    yield made
    for database in made.values():
        await discard_database(database)


async def _session_server_database(backend: str, made: dict[str, TestDatabase], scratch: Path) -> TestDatabase:
    if backend not in made:
        database = await new_database(backend, scratch)
        async with open_store(database.url, create=True):
            pass
        made[backend] = database
    return made[backend]


async def _empty(store: Store) -> None:
    tables = list(reversed(metadata.sorted_tables))
    await store.write(lambda conn: [conn.execute(delete(table)) for table in tables])


@pytest.fixture
async def store_url(backend: str, tmp_path: Path, server_databases: dict[str, TestDatabase]) -> str:
    """The URL of a migrated, empty database of ``backend``.

    In-memory SQLite cannot be shared between stores, so for it this is
    only a URL: each ``open_store`` gets a new, empty database.
    """
    if backend in SERVER_ENV:
        database = await _session_server_database(backend, server_databases, tmp_path)
        async with open_store(database.url) as store:
            await _empty(store)
        return database.url
    database = await new_database(backend, tmp_path)
    if backend == "sqlite-file":
        async with open_store(database.url, create=True):
            pass
    return database.url


@pytest.fixture
async def store(backend: str, store_url: str) -> AsyncIterator[Store]:
    """An open store on an empty, migrated database of ``backend``."""
    async with open_store(store_url, create=backend == "sqlite-memory") as opened:
        yield opened


@pytest.fixture
async def blank_database(backend: str, tmp_path: Path) -> AsyncIterator[TestDatabase]:
    """A brand-new database with no schema at all (for migration tests)."""
    database = await new_database(backend, tmp_path)
    yield database
    await discard_database(database)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say where the dashboard's browser tests left their screenshots."""
    from tests.web.conftest import SCREENSHOTS

    shots = sorted(SCREENSHOTS.glob("*.png")) if SCREENSHOTS.is_dir() else []
    if shots:
        terminalreporter.write_line(f"dashboard screenshots ({len(shots)}): {SCREENSHOTS}")
