"""TaskFlow's own PersistenceTestMixin (18 tests) on every backend."""

from __future__ import annotations

import contextlib
import unittest
from typing import Any, ClassVar

from taskflow.persistence import backends
from taskflow.tests.unit.persistence.base import PersistenceTestMixin

from statestore.compat.taskflow import StatestoreBackend
from tests.support.backends import TestDatabase
from tests.support.taskflow_support import drop_database, make_database


class _OnStatestore(PersistenceTestMixin, unittest.TestCase):  # type: ignore[misc]
    __test__ = False
    backend_kind: ClassVar[str]
    database: ClassVar[TestDatabase]
    backend: ClassVar[StatestoreBackend]

    @classmethod
    def setUpClass(cls) -> None:
        cls.database, connection = make_database(cls.backend_kind)
        cls.backend = backends.fetch({"connection": connection})
        with contextlib.closing(cls.backend.get_connection()) as conn:
            conn.upgrade()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.backend.close()
        drop_database(cls.database)

    def setUp(self) -> None:
        with contextlib.closing(self.backend.get_connection()) as conn:
            conn.clear_all()

    def _get_connection(self) -> Any:
        return self.backend.get_connection()


class TestMixinOnSqliteFile(_OnStatestore):
    __test__ = True
    backend_kind = "sqlite-file"


class TestMixinOnSqliteMemory(_OnStatestore):
    __test__ = True
    backend_kind = "sqlite-memory"


class TestMixinOnPostgresql(_OnStatestore):
    __test__ = True
    backend_kind = "postgresql"


class TestMixinOnMysql(_OnStatestore):
    __test__ = True
    backend_kind = "mysql"
