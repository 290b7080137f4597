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


def test_taskflow_sql_conf_keys_keep_their_meaning() -> None:
    """The SQL backend's keys users' configurations carry (reference §4.5)."""
    pg = "statestore+postgresql://db/flows"
    _, options = store_options(
        {
            "connection": pg,
            "isolation_level": "READ_COMMITTED",
            "isolation_levels": {"postgresql": "read committed", "mysql": "SERIALIZABLE"},
            "engine_args": {"pool_size": 3, "pool_pre_ping": True, "echo": "true"},
            "checkout_ping": True,
            "checkin_yield": False,
            "log_statements": "true",
            "max_retries": 3,
            "mysql_sql_mode": "ANSI",  # TaskFlow applies it on MySQL only; so does statestore
        }
    )
    assert options == {"echo": True, "pool_size": 3, "pool_pre_ping": True, "pre_ping": True}
    mysql = "statestore+mysql://db/flows"
    assert store_options({"connection": mysql, "mysql_sql_mode": "TRADITIONAL", "checkout_ping": "0"})[1] == {}
    # On SQLite the pool keys have no pool to apply to; isolation is SQLite's own.
    lite = "statestore+sqlite:///x.db"
    assert store_options({"connection": lite, "engine_args": {"pool_size": 3}, "isolation_level": "SERIALIZABLE"})[
        1
    ] == {}
    for conf, message in [
        ({"connection": mysql, "isolation_level": "REPEATABLE READ"}, "run at READ COMMITTED"),
        ({"connection": pg, "isolation_levels": {"postgresql+psycopg2": "SERIALIZABLE"}}, "run at READ COMMITTED"),
        ({"connection": lite, "isolation_level": "READ COMMITTED"}, "run at SERIALIZABLE"),
        ({"connection": pg, "engine_args": {"poolclass": object}}, r"\['poolclass'\] are not supported"),
        ({"connection": pg, "engine_args": "pool_size=3"}, "engine_args must be a dict"),
        ({"connection": pg, "checkin_yield": "true"}, "eventlet"),
        ({"connection": mysql, "mysql_sql_mode": "ANSI"}, "needs a strict mode"),
        ({"connection": pg, "max_retries": -1}, "max_retries must be 0 or more"),
        ({"connection": pg, "max_retries": "often"}, "max_retries must be a number"),
        ({"connection": pg, "log_statements_level": 5}, "'sqlalchemy.engine' logger"),
    ]:
        with pytest.raises(ValueError, match=message):
            store_options(conf)


def test_validate_retries_an_unreachable_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """max_retries: validate() tries again, waiting 1, 2 … seconds, as TaskFlow's SQL backend does."""
    waits: list[float] = []
    monkeypatch.setattr("statestore.compat.taskflow.backend.time.sleep", waits.append)
    unreachable = "statestore+postgresql://postgres@127.0.0.1:1/none"
    for retries in (0, 2):
        backend = backends.fetch({"connection": unreachable, "max_retries": retries})
        try:
            with contextlib.closing(backend.get_connection()) as conn, pytest.raises(tf_exceptions.StorageFailure):
                conn.validate()
        finally:
            backend.close()
    assert waits == [1, 2]


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
    with pytest.raises(ValueError, match=r"isolation_level='SERIALIZABLE' is not supported.*READ COMMITTED"):
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
    threads = set(threading.enumerate())
    backend = backends.fetch({"connection": f"statestore+sqlite:///{tmp_path / 'f.db'}"})
    try:
        started = time.perf_counter()
        for _ in range(10_000):
            backend.get_connection().close()
        assert time.perf_counter() - started < 1.0
        assert set(threading.enumerate()) == threads  # no thread started
        assert not (tmp_path / "f.db").exists()
    finally:
        backend.close()


def test_backend_is_usable_from_many_threads_and_after_close(tmp_path: Any) -> None:
    threads = set(threading.enumerate())
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
    assert set(threading.enumerate()) <= threads  # every thread the store started has ended
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


IDENTIFIERS = ["42", "nightly-2024-06-01", "", " padded ", "ÜNICODE-✓", "x" * 64, "ABC" + "-" * 33]


def test_any_string_identifier_round_trips_exactly(connection: Any) -> None:
    """TaskFlow names records by any string; each comes back exactly as given."""
    canonical = uuidutils.generate_uuid()
    identifiers = [*IDENTIFIERS, canonical, canonical.upper()]
    for index, name in enumerate(identifiers):
        book = models.LogBook(f"book-{index}", uuid=f"book:{name}")
        flow = models.FlowDetail("flow", uuid=f"flow:{name}")
        atom = models.TaskDetail("task", uuid=name)
        flow.add(atom)
        book.add(flow)
        connection.save_logbook(book)
        stored = connection.get_logbook(f"book:{name}")
        assert stored.uuid == f"book:{name}"
        assert [f.uuid for f in stored] == [f"flow:{name}"]
        assert [a.uuid for a in connection.get_flow_details(f"flow:{name}")] == [name]
        assert connection.get_atom_details(name).uuid == name
        atom.state = "SUCCESS"
        assert connection.update_atom_details(atom).uuid == name
        assert [a.uuid for a in connection.update_flow_details(flow)] == [name]
    # Two spellings of one uuid are two identifiers, as they are to TaskFlow.
    assert connection.get_atom_details(canonical).uuid == canonical
    assert connection.get_atom_details(canonical.upper()).uuid == canonical.upper()
    assert sorted(b.uuid for b in connection.get_logbooks()) == sorted(f"book:{n}" for n in identifiers)
    connection.destroy_logbook("book:42")
    with pytest.raises(tf_exceptions.NotFound):
        connection.get_logbook("book:42")
    with pytest.raises(tf_exceptions.NotFound):
        connection.get_atom_details("never-stored")


def test_identifiers_that_are_not_strings_are_refused(connection: Any) -> None:
    with pytest.raises(tf_exceptions.StorageFailure, match="must be a string"):
        connection.save_logbook(models.LogBook("book", uuid=42))
    with pytest.raises(tf_exceptions.NotFound):
        connection.get_logbook(42)
    # A NUL cannot be stored by PostgreSQL; it is refused alike everywhere.
    with pytest.raises(tf_exceptions.StorageFailure, match="foreign_id"):
        connection.save_logbook(models.LogBook("book", uuid="nul\x00"))


def test_failures_with_unstorable_arguments_are_kept(connection: Any) -> None:
    book = _book(1, 1)
    connection.save_logbook(book)
    atom = next(iter(next(iter(book))))
    try:
        raise ValueError({1, 2}, "plain")
    except ValueError:
        atom.failure = tf_failure.Failure()
    atom.state = "FAILURE"
    # The caller keeps its own failure (with its exc_info); the stored one holds the set's repr.
    assert connection.update_atom_details(atom).failure is atom.failure
    stored = connection.get_atom_details(atom.uuid).failure
    assert stored.check(ValueError)
    assert stored.exception_str == str(ValueError({1, 2}, "plain"))
    assert stored.exception_args == ("{1, 2}", "plain")  # the set as its repr


def test_listings_page_through_large_flows(connection: Any) -> None:
    book = _book(1, 1234)
    connection.save_logbook(book)
    flow = next(iter(book))
    names = [atom.name for atom in connection.get_atoms_for_flow(flow.uuid)]
    assert names == [f"task-{a}" for a in range(1234)]


def test_book_timestamps_are_kept_as_taskflow_sql_keeps_them(connection: Any, tmp_path: Any) -> None:
    """Saved, read and saved again, a book's timestamps are what TaskFlow's
    own SQL backend stores for the same calls. (Read whole, TaskFlow's
    reports the time of reading as updated_at when the book has flows:
    its add() stamps it. statestore reports what is stored.)"""
    reference = backends.fetch({"connection": f"sqlite:///{tmp_path / 'taskflow.db'}"})
    try:
        with contextlib.closing(reference.get_connection()) as theirs:
            theirs.upgrade()
            for book in (_book(0, 0), _book(2, 1)):
                for _ in range(2):
                    mine_saved, theirs_saved = connection.save_logbook(book), theirs.save_logbook(book)
                    assert (mine_saved.created_at, mine_saved.updated_at) == (
                        theirs_saved.created_at,
                        theirs_saved.updated_at,
                    )
                    mine, expected = connection.get_logbook(book.uuid), theirs.get_logbook(book.uuid, lazy=True)
                    assert (mine.created_at, mine.updated_at) == (expected.created_at, expected.updated_at)
                    assert mine.created_at.tzinfo is None  # TaskFlow's timestamps are naive UTC
                book.created_at = datetime(2001, 2, 3, 4, 5, 6, 7)
                book.updated_at = None
                connection.save_logbook(book)
                theirs.save_logbook(book)
                mine, expected = connection.get_logbook(book.uuid), theirs.get_logbook(book.uuid, lazy=True)
                assert (mine.created_at, mine.updated_at) == (expected.created_at, expected.updated_at)
    finally:
        reference.close()


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


def test_updates_hand_back_the_callers_values(connection: Any) -> None:
    """As from TaskFlow's SQL backend: a tuple stays a tuple and a failure
    keeps its exc_info (so a resumed engine re-raises the original error),
    while what is stored is JSON."""
    book = _book(1, 2)
    connection.save_logbook(book)
    flow = next(iter(book))
    first, second = list(flow)
    first.state, first.results = "SUCCESS", (1, 3, 5)
    try:
        raise RuntimeError("Woot!")
    except RuntimeError:
        second.state, second.failure = "FAILURE", tf_failure.Failure()
    updated = connection.update_atom_details(first)
    assert updated is not first
    assert updated.results == (1, 3, 5)
    assert type(updated.results) is tuple
    merged = connection.update_flow_details(flow)
    assert merged.find(second.uuid).failure.exc_info is not None
    with pytest.raises(RuntimeError, match="Woot!"):
        merged.find(second.uuid).failure.reraise()
    assert connection.get_atom_details(first.uuid).results == [1, 3, 5]
    assert connection.get_atom_details(second.uuid).failure.exc_info is None


def test_ignore_missing_hands_back_what_is_not_stored(connection: Any) -> None:
    """TaskFlow's path-based backends take ``ignore_missing``; statestore
    answers without NotFound and, keeping no detail outside its parent,
    stores nothing."""
    atom = models.TaskDetail("loose", uuid=uuidutils.generate_uuid())
    flow = models.FlowDetail("loose", uuid=uuidutils.generate_uuid())
    assert connection.update_atom_details(atom, ignore_missing=True) is atom
    assert connection.update_flow_details(flow, ignore_missing=True) is flow
    for update, record in ((connection.update_atom_details, atom), (connection.update_flow_details, flow)):
        with pytest.raises(tf_exceptions.NotFound):
            update(record)
        with pytest.raises(TypeError):
            update(record, frobnicate=True)
    with pytest.raises(tf_exceptions.NotFound):
        connection.get_atom_details(atom.uuid)
