"""URLs users write, mapped to the drivers statestore runs them on."""

from __future__ import annotations

import pytest

from statestore import InvalidInput
from statestore.core.urls import DEFAULT_URL, resolve_url


@pytest.mark.parametrize(
    ("url", "backend", "driver"),
    [
        ("sqlite:///x.db", "sqlite", "sqlite+pysqlite"),
        ("sqlite+aiosqlite:///x.db", "sqlite", "sqlite+pysqlite"),
        ("postgresql://u@h/db", "postgresql", "postgresql+asyncpg"),
        ("postgres://u@h/db", "postgresql", "postgresql+asyncpg"),
        ("postgresql+psycopg://u@h/db", "postgresql", "postgresql+asyncpg"),
        ("mysql://u@h/db", "mysql", "mysql+asyncmy"),
        ("mariadb://u@h/db", "mysql", "mysql+asyncmy"),
    ],
)
def test_urls_map_to_drivers(url: str, backend: str, driver: str) -> None:
    target = resolve_url(url)
    assert target.backend == backend
    assert target.url.drivername == driver


def test_environment_variable_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATESTORE_URL", "postgresql://u@h/from_env")
    assert resolve_url(None).url.database == "from_env"
    monkeypatch.delenv("STATESTORE_URL")
    assert resolve_url(None).given == DEFAULT_URL
    assert resolve_url(None).url.database == "statestore.db"


@pytest.mark.parametrize("url", ["sqlite+aiosqlite://", "sqlite://", "sqlite:///:memory:"])
def test_memory_urls(url: str) -> None:
    assert resolve_url(url).is_memory


def test_file_url_is_not_memory() -> None:
    assert not resolve_url("sqlite:///x.db").is_memory


@pytest.mark.parametrize("url", ["oracle://u@h/db", "not a url at all"])
def test_unsupported_or_garbage_urls(url: str) -> None:
    with pytest.raises(InvalidInput):
        resolve_url(url)


def test_passwords_are_hidden_in_messages() -> None:
    assert "secret" not in resolve_url("postgresql://u:secret@h/db").given
