"""TaskFlow's own storage, engine, retry, suspend and argument-passing suites,
run on statestore backends fetched through TaskFlow's entry point.

Every concrete test class of those upstream modules that takes its
persistence backend from ``self.backend`` is subclassed here once per
statestore backend; the subclass swaps the memory backend TaskFlow's
``setUp`` made for ``backends.fetch({"connection": "statestore+<url>"})``.
Nothing else of the upstream tests is changed, so what passes here passes
as written upstream. TaskFlow's memory backend is the reference: the same
classes, unmodified, are what TaskFlow's own CI runs.

One database per backend serves the whole module (the upstream tearDown
calls ``clear_all``); an in-memory SQLite store lives and dies with its
backend object, so each test upgrades its own.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import unittest
from collections.abc import Iterator
from typing import Any

import pytest
from taskflow.persistence import backends
from taskflow.tests import utils as taskflow_test_utils
from taskflow.tests.unit import test_storage

from tests.support.backends import TestDatabase
from tests.support.taskflow_support import drop_database, make_database

UPSTREAM_MODULES = (
    "taskflow.tests.unit.test_storage",
    "taskflow.tests.unit.test_engines",
    "taskflow.tests.unit.test_retries",
    "taskflow.tests.unit.test_suspend",
    "taskflow.tests.unit.test_arguments_passing",
)
KINDS = {"sqlite-file": "OnSqliteFile", "sqlite-memory": "OnSqliteMemory", "postgresql": "OnPostgresql"}

_URLS: dict[str, str] = {}
_DATABASES: list[TestDatabase] = []


def _upgraded(url: str) -> Any:
    backend = backends.fetch({"connection": url})
    with contextlib.closing(backend.get_connection()) as conn:
        conn.upgrade()
    return backend


def _statestore_backend(kind: str) -> Any:
    """A fresh TaskFlow backend object on the module's database of ``kind``."""
    url = _URLS[kind]
    return _upgraded(url) if kind == "sqlite-memory" else backends.fetch({"connection": url})


@pytest.fixture(scope="module", autouse=True)
def _databases() -> Iterator[None]:
    # Made here, not in a test: oslotest points tempfile at a directory it
    # removes when each test ends, and a SQLite file must outlive the test.
    try:
        for kind in KINDS:
            database, url = make_database(kind)
            _DATABASES.append(database)
            if kind != "sqlite-memory":
                _upgraded(url).close()
            _URLS[kind] = url
        yield
    finally:
        _URLS.clear()
        while _DATABASES:
            drop_database(_DATABASES.pop())


def _uses_backend(cls: type) -> bool:
    return issubclass(cls, (taskflow_test_utils.EngineTestBase, test_storage.StorageTestMixin))


def _on_statestore(cls: type[unittest.TestCase], kind: str) -> type[unittest.TestCase]:
    original_set_up = cls.setUp

    def setUp(self: Any) -> None:
        original_set_up(self)
        with contextlib.closing(self.backend):  # the memory backend upstream's setUp made
            pass
        self.backend = _statestore_backend(kind)

    short = cls.__module__.rsplit(".", 1)[1].removeprefix("test_").title().replace("_", "")
    return type(f"Test{short}{cls.__name__}{KINDS[kind]}", (cls,), {"setUp": setUp, "__module__": __name__})


def _upstream_classes() -> Iterator[type[unittest.TestCase]]:
    for name in UPSTREAM_MODULES:
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                cls.__module__ == name
                and issubclass(cls, unittest.TestCase)
                and _uses_backend(cls)
                # Both build the same storage tests; only the backend differs.
                and cls is not test_storage.StorageSQLTest
            ):
                yield cls


for _cls in _upstream_classes():
    for _kind in KINDS:
        _generated = _on_statestore(_cls, _kind)
        globals()[_generated.__name__] = _generated
del _cls, _kind, _generated
