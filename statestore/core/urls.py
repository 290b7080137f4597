"""Which database a URL names, and the driver statestore uses for it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from statestore.errors import InvalidInput

__all__ = ["DEFAULT_URL", "ENV_VAR", "Target", "resolve_url"]

DEFAULT_URL = "sqlite+aiosqlite:///statestore.db"
"""The embedded default: a SQLite file in the working directory."""

ENV_VAR = "STATESTORE_URL"

Backend = Literal["sqlite", "postgresql", "mysql"]

_ASYNC_DRIVERS: dict[Backend, str] = {"postgresql": "asyncpg", "mysql": "asyncmy"}
_BACKEND_OF_SCHEME: dict[str, Backend] = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
}


@dataclass(frozen=True)
class Target:
    """A resolved database: its backend and the SQLAlchemy URL to reach it."""

    backend: Backend
    url: URL
    given: str
    """The URL as the user wrote it (password hidden), for messages."""

    @property
    def is_memory(self) -> bool:
        """An in-memory SQLite database (gone when the store closes)."""
        return self.backend == "sqlite" and self.url.database in (None, "", ":memory:")


def resolve_url(url: str | URL | None = None) -> Target:
    """Map a user's URL to the driver statestore runs it on.

    ``None`` means ``$STATESTORE_URL``, else :data:`DEFAULT_URL`. Plain
    ``sqlite://``, ``postgresql://`` and ``mysql://`` URLs are accepted.
    SQLite URLs, including ``sqlite+aiosqlite://``, run on the standard
    library's sqlite3 driven by statestore's own scheduling (see
    ``core/sqlite_runner.py`` for why); servers run on their asyncio drivers.
    """
    text = url if url is not None else os.environ.get(ENV_VAR) or DEFAULT_URL
    try:
        parsed = make_url(text)
    except ArgumentError as error:
        raise InvalidInput(f"not a database URL: {text!r}") from error
    scheme = parsed.get_backend_name()
    backend = _BACKEND_OF_SCHEME.get(scheme)
    if backend is None:
        raise InvalidInput(
            f"unsupported database {scheme!r} in {parsed.render_as_string(hide_password=True)!r}; "
            "use sqlite, postgresql or mysql/mariadb"
        )
    if backend == "sqlite":
        driver_url = parsed.set(drivername="sqlite+pysqlite")
    else:
        driver_url = parsed.set(drivername=f"{backend}+{_ASYNC_DRIVERS[backend]}")
    return Target(backend=backend, url=driver_url, given=parsed.render_as_string(hide_password=True))
