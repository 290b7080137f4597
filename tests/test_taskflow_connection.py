"""The TaskFlow adapter beyond the mixin: entry point, conf, generators, errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from oslo_utils import uuidutils
from taskflow import exceptions as tf_exceptions
from taskflow.persistence import backends, models

from statestore.compat.taskflow import StatestoreBackend, store_options
from tests.taskflow_support import drop_database, make_database


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
    url, options = store_options(
        {
            "connection": "statestore+postgresql://u:p@db:5432/flows?echo=true",
            "username": "u",
            "password": "p",
            "hostname": "db:5432",
            "port": 5432,
            "echo": "true",
            "max_pool_size": "7",
            "idle_timeout": 60,
        }
    )
    assert url == "postgresql://u:p@db:5432/flows"
    assert options == {"echo": True, "pool_size": 7, "pool_recycle": 60}
    url, options = store_options({"connection": "statestore+sqlite:///x.db", "max_pool_size": 7, "busy_timeout": 2})
    assert (url, options) == ("sqlite:///x.db", {"busy_timeout": 2.0})
    with pytest.raises(ValueError, match="'frobnicate'"):
        store_options({"connection": "statestore+sqlite://", "frobnicate": 1})
    with pytest.raises(ValueError, match="statestore\\+"):
        store_options({"connection": "sqlite://"})


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


def test_book_timestamps_follow_taskflow(connection: Any) -> None:
    book = _book(0, 0)
    connection.save_logbook(book)
    stored = connection.get_logbook(book.uuid)
    assert stored.updated_at is None
    assert stored.created_at is not None
    assert stored.created_at.tzinfo is None  # TaskFlow's timestamps are naive UTC
    connection.save_logbook(book)
    assert connection.get_logbook(book.uuid).updated_at is not None
