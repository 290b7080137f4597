"""The TaskFlow adapter beyond the mixin: entry point, conf, generators, errors."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pytest
from oslo_utils import uuidutils
from taskflow import exceptions as tf_exceptions
from taskflow.persistence import backends, models
from taskflow.types import failure as tf_failure

from statestore.compat.taskflow import StatestoreBackend, store_options
from tests.support.taskflow_support import drop_database, make_database


@pytest.fixture
def connection(backend: str) -> Iterator[Any]:
    database, url = make_database(backend)
    taskflow_backend = backends.fetch({"connection": url})
    try:
        with contextlib.closing(taskflow_backend.get_connection()) as conn:
            conn.upgrade()
            yield conn
    finally:
        taskflow_backend.close()
        drop_database(database)


def _book(flows: int = 2, atoms: int = 3) -> Any:
    book = models.LogBook("book", uuid=uuidutils.generate_uuid())
    for f in range(flows):
        flow = models.FlowDetail(f"flow-{f}", uuid=uuidutils.generate_uuid())
        for a in range(atoms):
            flow.add(models.TaskDetail(f"task-{a}", uuid=uuidutils.generate_uuid()))
        book.add(flow)
    return book


def test_fetch_finds_the_backend_by_its_entry_point(tmp_path: Any) -> None:
    backend = backends.fetch({"connection": f"statestore+sqlite:///{tmp_path / 'f.db'}"})
    try:
        assert isinstance(backend, StatestoreBackend)
    finally:
        backend.close()


def test_conf_keys_are_honoured_or_refused() -> None:
    # fetch() merges the URI's parts and query into conf: they are accepted.
    url, options = store_options(
        {
            "connection": "statestore+postgresql://u:p@db:5432/flows?echo=true&ssl=require",
            "username": "u",
            "password": "p",
            "hostname": "db:5432",
            "port": 5432,
            "echo": "true",
            "ssl": "require",
            "max_pool_size": "7",
            "pool_timeout": "2.5",
            "idle_timeout": 60,
        }
    )
    # Conf keys are taken out of the URL; driver parameters stay in it.
    assert url == "postgresql://u:p@db:5432/flows?ssl=require"
    assert options == {"echo": True, "pool_size": 7, "pool_timeout": 2.5, "pool_recycle": 60}
    url, options = store_options({"connection": "statestore+sqlite:///x.db", "max_pool_size": 7, "busy_timeout": 2})
    assert (url, options) == ("sqlite:///x.db", {"busy_timeout": 2.0})
    assert store_options({"connection": "statestore+sqlite://"}) == ("sqlite://", {})
    with pytest.raises(ValueError, match="'frobnicate'"):
        store_options({"connection": "statestore+sqlite://", "frobnicate": 1})
    with pytest.raises(ValueError, match="'isolation_level' is not supported"):
        store_options({"connection": "statestore+postgresql://db/flows", "isolation_level": "SERIALIZABLE"})
    with pytest.raises(ValueError, match="max_overflow must be a number"):
        store_options({"connection": "statestore+postgresql://db/flows", "max_overflow": "many"})
    with pytest.raises(ValueError, match="statestore\\+"):
        store_options({"connection": "sqlite://"})
    with pytest.raises(ValueError, match="'frobnicate'"):
        backends.fetch({"connection": "statestore+sqlite://", "frobnicate": 1})


def test_statestore_imports_without_taskflow() -> None:
    blocker = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('taskflow', 'oslo_utils'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import statestore, statestore.flows\n"
        "assert 'taskflow' not in sys.modules\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, check=False)
    assert done.stdout.strip() == "ok", done.stderr


def test_connections_are_cheap_and_open_nothing(tmp_path: Any) -> None:
    backend = backends.fetch({"connection": f"statestore+sqlite:///{tmp_path / 'f.db'}"})
    try:
        started = time.perf_counter()
        for _ in range(10_000):
            backend.get_connection().close()
        assert time.perf_counter() - started < 1.0
        assert not any(thread.name == "statestore-taskflow" for thread in threading.enumerate())
        assert not (tmp_path / "f.db").exists()
    finally:
        backend.close()


def test_backend_is_usable_from_many_threads_and_after_close(tmp_path: Any) -> None:
    backend = backends.fetch({"connection": f"statestore+sqlite:///{tmp_path / 'f.db'}"})
    with contextlib.closing(backend.get_connection()) as conn:
        conn.upgrade()
        book = _book(1, 64)
        conn.save_logbook(book)
    atoms = list(next(iter(book)))

    def work(atom: Any) -> str:
        with contextlib.closing(backend.get_connection()) as conn:
            atom.state = "RUNNING"
            return str(conn.update_atom_details(atom).state)

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(work, atoms)) == {"RUNNING"}
    backend.close()
    assert not any(thread.name == "statestore-taskflow" for thread in threading.enumerate())
    # A closed backend opens its store again on the next call, as TaskFlow's own do.
    with contextlib.closing(backend.get_connection()) as conn:
        assert {atom.state for atom in conn.get_atoms_for_flow(next(iter(book)).uuid)} == {"RUNNING"}
    backend.close()


def test_listings_are_lazy_generators(connection: Any) -> None:
    book = _book()
    connection.save_logbook(book)
    books = connection.get_logbooks()
    assert not isinstance(books, list)
    (stored,) = list(books)
    assert [flow.name for flow in stored] == ["flow-0", "flow-1"]
    flows = list(connection.get_flows_for_book(book.uuid))
    assert [flow.name for flow in flows] == ["flow-0", "flow-1"]
    atoms = list(connection.get_atoms_for_flow(flows[0].uuid))
    assert [atom.name for atom in atoms] == ["task-0", "task-1", "task-2"]
    assert connection.get_atom_details(atoms[1].uuid).name == "task-1"


def test_missing_objects_raise_taskflows_not_found(connection: Any) -> None:
    missing = uuidutils.generate_uuid()
    for call in (
        connection.get_logbook,
        connection.get_flow_details,
        connection.get_atom_details,
        connection.destroy_logbook,
    ):
        with pytest.raises(tf_exceptions.NotFound):
            call(missing)
    with pytest.raises(tf_exceptions.NotFound):
        list(connection.get_atoms_for_flow(missing))


def test_unrepresentable_results_are_a_storage_failure(connection: Any) -> None:
    book = _book(1, 1)
    connection.save_logbook(book)
    atom = next(iter(next(iter(book))))
    atom.results = {"when": datetime(2026, 1, 1)}
    with pytest.raises(tf_exceptions.StorageFailure, match="task-0"):
        connection.update_atom_details(atom)


def test_updates_accept_extra_keywords_and_validate_passes(connection: Any) -> None:
    book = _book(1, 1)
    connection.save_logbook(book)
    flow = next(iter(book))
    atom = next(iter(flow))
    atom.state = "RUNNING"
    assert connection.update_atom_details(atom, ignore_missing=True).state == "RUNNING"
    assert connection.update_flow_details(flow, ignore_missing=True).find(atom.uuid).state == "RUNNING"
    connection.validate()


def test_non_uuid_identifiers_are_refused(connection: Any) -> None:
    with pytest.raises(tf_exceptions.StorageFailure, match="UUID"):
        connection.save_logbook(models.LogBook("book", uuid="not-a-uuid"))
    # A UUID spelled differently would come back spelled canonically, and the
    # engine, which compares uuid strings, would lose track of it.
    with pytest.raises(tf_exceptions.StorageFailure, match="canonical"):
        connection.save_logbook(models.LogBook("book", uuid=uuidutils.generate_uuid().upper()))
    # A lookup of something that cannot be a UUID finds nothing.
    with pytest.raises(tf_exceptions.NotFound):
        connection.get_logbook("not-a-uuid")
    with pytest.raises(tf_exceptions.NotFound):
        connection.get_atom_details("not-a-uuid")


def test_failures_with_unstorable_arguments_are_kept(connection: Any) -> None:
    book = _book(1, 1)
    connection.save_logbook(book)
    atom = next(iter(next(iter(book))))
    try:
        raise ValueError({1, 2}, "plain")
    except ValueError:
        atom.failure = tf_failure.Failure()
    atom.state = "FAILURE"
    stored = connection.update_atom_details(atom).failure
    assert stored.check(ValueError)
    assert stored.exception_str == str(ValueError({1, 2}, "plain"))
    assert stored.exception_args == ("{1, 2}", "plain")  # the set as its repr


def test_listings_page_through_large_flows(connection: Any) -> None:
    book = _book(1, 1234)
    connection.save_logbook(book)
    flow = next(iter(book))
    names = [atom.name for atom in connection.get_atoms_for_flow(flow.uuid)]
    assert names == [f"task-{a}" for a in range(1234)]


def test_book_timestamps_follow_taskflow(connection: Any) -> None:
    for book in (_book(0, 0), _book(2, 1)):
        connection.save_logbook(book)
        stored = connection.get_logbook(book.uuid)
        assert stored.updated_at is None  # even with flow details added to it
        assert stored.created_at is not None
        assert stored.created_at.tzinfo is None  # TaskFlow's timestamps are naive UTC
        connection.save_logbook(book)
        assert connection.get_logbook(book.uuid).updated_at is not None


def test_flow_update_returns_every_stored_atom(connection: Any) -> None:
    """The engine replaces its atoms with the ones returned (reference §2.3)."""
    book = _book(1, 3)
    connection.save_logbook(book)
    stored = next(iter(book))
    partial = models.FlowDetail(stored.name, uuid=stored.uuid)
    partial.state = "RUNNING"
    extra = models.TaskDetail("added", uuid=uuidutils.generate_uuid())
    partial.add(extra)
    merged = connection.update_flow_details(partial)
    assert merged.state == "RUNNING"
    assert [atom.name for atom in merged] == ["task-0", "task-1", "task-2", "added"]
    assert merged.find(extra.uuid) is extra  # the caller's own object, updated in place
