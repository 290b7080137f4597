"""The backends the conformance suite runs on, and their throwaway databases.

Server URLs come from ``STATESTORE_TEST_POSTGRES_URL`` and
``STATESTORE_TEST_MYSQL_URL`` (an administrative URL; the suite creates its own
databases beside it and drops them), defaulting to the local servers of the
project's machines. Outside CI an unreachable backend is skipped with the
reason; with ``CI`` set it is a failure.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from statestore.core.urls import resolve_url

BACKENDS = ("sqlite-file", "sqlite-memory", "postgresql", "mysql")
SERVER_ENV = {"postgresql": "STATESTORE_TEST_POSTGRES_URL", "mysql": "STATESTORE_TEST_MYSQL_URL"}
# Where the servers listen on the project's machines; the variables override.
SERVER_DEFAULT = {
    "postgresql": "postgresql://postgres@127.0.0.1:5432/postgres",
    "mysql": "mysql://root@127.0.0.1:3306/mysql",
}
IN_CI = bool(os.environ.get("CI"))


@dataclass(frozen=True)
class TestDatabase:
    """A database made for the tests; ``url`` is what a user would pass."""

    __test__ = False  # not a test class, despite its name

    backend: str
    url: str


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI: CI must never pass by not testing."""
    if IN_CI:
        pytest.fail(f"{reason} (CI requires every backend)", pytrace=False)
    pytest.skip(reason)


def admin_url(backend: str) -> str:
    return os.environ.get(SERVER_ENV[backend]) or SERVER_DEFAULT[backend]


async def create_server_database(backend: str) -> TestDatabase:
    base = admin_url(backend)
    name = f"statestore_test_{uuid.uuid4().hex[:12]}"
    engine = create_async_engine(resolve_url(base).url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(f"CREATE DATABASE {name}"))
    except Exception as error:  # unreachable server, bad credentials
        unavailable(f"{backend} at {make_url(base).render_as_string()} is unreachable: {error}")
    finally:
        await engine.dispose()
    return TestDatabase(backend, make_url(base).set(database=name).render_as_string(hide_password=False))


async def drop_server_database(database: TestDatabase) -> None:
    url = make_url(database.url)
    admin = resolve_url(admin_url(database.backend)).url
    engine = create_async_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            if database.backend == "postgresql":
                await connection.execute(text(f"DROP DATABASE IF EXISTS {url.database} WITH (FORCE)"))
            else:
                await connection.execute(text(f"DROP DATABASE IF EXISTS {url.database}"))
    finally:
        await engine.dispose()


def sqlite_file_database(directory: Path) -> TestDatabase:
    return TestDatabase("sqlite-file", f"sqlite:///{directory / 'store.db'}")


async def new_database(backend: str, directory: Path) -> TestDatabase:
    """A brand-new, empty database (no schema) of ``backend``."""
    if backend == "sqlite-file":
        return sqlite_file_database(directory)
    if backend == "sqlite-memory":
        return TestDatabase(backend, "sqlite+aiosqlite://")
    return await create_server_database(backend)


async def discard_database(database: TestDatabase) -> None:
    if database.backend in SERVER_ENV:
        await drop_server_database(database)
