"""import_taskflow / export_taskflow: logbooks in from and out to every kind
of TaskFlow backend, read back and compared here independently of the
module's own verification."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2
import pymysql
import pytest
import taskflow.engines
from oslo_utils import uuidutils
from rich.console import Console
from rich.progress import Progress
from sqlalchemy.engine import make_url
from taskflow.persistence import backends, models
from taskflow.persistence.backends import impl_zookeeper
from taskflow.types import failure as tf_failure
from typer.testing import CliRunner
from zake.fake_client import FakeClient

from statestore.cli import app
from statestore.cli import output as cli_output
from statestore.compat.taskflow import (
    StatestoreBackend,
    StatestoreConnection,
    TransferProgress,
    export_taskflow,
    import_taskflow,
)
from statestore.compat.taskflow.migration import taskflow_conf
from statestore.errors import InvalidInput, SchemaOutOfDate, TransferMismatch
from tests.support.backends import admin_url, unavailable
from tests.support.taskflow_flows import FLOWS
from tests.support.taskflow_support import drop_database, make_database

STORE = {"x": 2, "y": 3}
ENGINE_FLOWS = ("linear", "graph", "failing", "retrying")
runner = CliRunner()


# -- TaskFlow backends to copy from and to -----------------------------------------------------------------------------


@contextlib.contextmanager
def _taskflow_sql_database(kind: str) -> Iterator[str]:
    """A throwaway database on the test server for TaskFlow's own SQL
    backend (its sync drivers); its connection string."""
    admin = make_url(admin_url(kind))
    name = f"taskflow_test_{uuid.uuid4().hex[:12]}"
    connect: Callable[[], Any]
    if kind == "postgresql":
        driver = "postgresql+psycopg2"

        def connect() -> Any:
            connection = psycopg2.connect(
                host=admin.host, port=admin.port or 5432, user=admin.username, password=admin.password or None,
                dbname=admin.database,
            )  # fmt: skip
            connection.autocommit = True
            return connection
    else:
        driver = "mysql+pymysql"

        def connect() -> Any:
            return pymysql.connect(
                host=admin.host, port=admin.port or 3306, user=admin.username, password=admin.password or "",
                autocommit=True,
            )  # fmt: skip

    try:
        admin_connection = connect()
    except Exception as error:  # unreachable server, bad credentials
        unavailable(f"{kind} at {admin.render_as_string()} is unreachable: {error}")
    try:
        with admin_connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
        yield admin.set(drivername=driver, database=name).render_as_string(hide_password=False)
    finally:
        with admin_connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name}" + (" WITH (FORCE)" if kind == "postgresql" else ""))
        admin_connection.close()


@contextlib.contextmanager
def taskflow_backend(kind: str, directory: Path) -> Iterator[tuple[Any, Any]]:
    """``(what import/export are given, a backend object on the same data)``
    for a TaskFlow backend of ``kind``, upgraded and empty."""
    with contextlib.ExitStack() as stack:
        spec: Any
        if kind == "dir":
            (directory / "taskflow").mkdir()
            spec = f"dir://{directory / 'taskflow'}"
            backend = backends.fetch({"connection": "dir:", "path": str(directory / "taskflow")})
        elif kind == "sqlite":
            spec = f"sqlite:///{directory / 'taskflow.db'}"
            backend = backends.fetch({"connection": spec})
        elif kind in ("postgresql", "mysql"):
            spec = stack.enter_context(_taskflow_sql_database(kind))
            backend = backends.fetch({"connection": spec})
        elif kind == "memory":
            spec = backend = backends.fetch({"connection": "memory://"})
        else:  # zookeeper, on zake's in-process fake of a server
            spec = backend = impl_zookeeper.ZkBackend({"path": "/taskflow"}, client=FakeClient())
        stack.callback(backend.close)
        with contextlib.closing(backend.get_connection()) as conn:
            conn.upgrade()
        yield spec, backend


@contextlib.contextmanager
def statestore_url(kind: str) -> Iterator[str]:
    """A throwaway statestore database of ``kind`` (no schema yet); its URL."""
    database, connection = make_database(kind)
    try:
        yield connection.removeprefix("statestore+")
    finally:
        drop_database(database)


def _statestore(url: str) -> Any:
    return backends.fetch({"connection": "statestore+" + url})


# -- content: real engine runs and hand-built books ------------------------------------------------------------------


def _run_engines(backend: Any) -> None:
    """Each flow of ENGINE_FLOWS on the serial engine, in a book of its own;
    'failing' reverts, 'retrying' fails twice and succeeds."""
    for name in ENGINE_FLOWS:
        book = models.LogBook(f"engine-{name}")
        engine = taskflow.engines.load(FLOWS[name](), store=dict(STORE), backend=backend, book=book)
        try:
            engine.run()
        except RuntimeError:
            assert name == "failing"


def _failure(message: str) -> Any:
    """A Failure with a cause, as an engine would capture it."""
    try:
        try:
            raise KeyError(f"{message}: inner")
        except KeyError as inner:
            raise ValueError(message, 42) from inner
    except ValueError:
        return tf_failure.Failure()


def _hand_built(backend: Any) -> None:
    """Books an engine would not make: meta everywhere, set timestamps, a
    book with no flow details, a flow detail with no atoms, every failure
    field, a retry history by hand."""
    book = models.LogBook("hand-built", uuid=uuidutils.generate_uuid())
    book.meta = {"owner": "ops", "nested": {"values": [1, 2.5, None, True]}, "text": "žluťoučký kůň"}
    flow = models.FlowDetail("hand-flow", uuid=uuidutils.generate_uuid())
    flow.state, flow.meta = "REVERTED", {"reason": "by hand"}
    failed = models.TaskDetail("failed", uuid=uuidutils.generate_uuid())
    failed.state, failed.intention, failed.version = "REVERT_FAILURE", "REVERT", "2.1"
    failed.failure, failed.revert_failure = _failure("execute broke"), _failure("revert broke")
    failed.meta = {"progress": 0.5}
    reverted = models.TaskDetail("reverted", uuid=uuidutils.generate_uuid())
    reverted.state, reverted.intention = "REVERTED", "REVERT"
    reverted.results, reverted.revert_results = {"made": [1, 2, 3]}, {"undone": True}
    retried = models.RetryDetail("retried", uuid=uuidutils.generate_uuid())
    retried.state, retried.intention, retried.version = "SUCCESS", "EXECUTE", "1.0"
    retried.results = [("first try", {"failed": _failure("first")}), ({"second": "try"}, {})]
    for atom in (failed, reverted, retried):
        flow.add(atom)
    book.add(flow)
    book.add(models.FlowDetail("no-atoms", uuid=uuidutils.generate_uuid()))
    book.created_at = datetime(2024, 6, 1, 12, 30, 15, 123456)
    book.updated_at = datetime(2024, 6, 2, 8, 0, 0, 654321)
    empty = models.LogBook("empty", uuid=uuidutils.generate_uuid())
    empty.created_at = datetime(2023, 1, 2, 3, 4, 5)
    with contextlib.closing(backend.get_connection()) as conn:
        conn.save_logbook(book)
        conn.save_logbook(empty)


def _fill(backend: Any) -> None:
    _run_engines(backend)
    _hand_built(backend)


# -- reading a backend back, independently of migration.py -----------------------------------------------------------


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _atom(atom: Any) -> dict[str, Any]:
    """Everything of an atom; failures as their to_dict() (traceback included:
    every backend here stores it), retry histories as (data, failures)."""
    return _json({**atom.to_dict(), "type": type(atom).__name__})


def snapshot(backend: Any) -> dict[str, Any]:
    """Every book, flow detail and atom of ``backend`` by identifier.

    Books are read lazily: assembling a whole book, TaskFlow's backends
    call ``LogBook.add``, which stamps ``updated_at`` with the current time.
    """
    books: dict[str, Any] = {}
    with contextlib.closing(backend.get_connection()) as conn:
        for book in conn.get_logbooks(lazy=True):
            books[book.uuid] = {
                "name": book.name,
                "meta": _json(book.meta),
                "created_at": book.created_at,
                # statestore stores "never updated" as updated_at == created_at
                # and reads that back as None; on MySQL, whose DATETIME keeps
                # whole seconds, TaskFlow's books often have them equal.
                "updated_at": None if book.updated_at == book.created_at else book.updated_at,
                "flows": {
                    flow.uuid: {
                        "name": flow.name,
                        "state": flow.state,
                        "meta": _json(flow.meta),
                        "atoms": {atom.uuid: _atom(atom) for atom in flow},
                    }
                    for flow in conn.get_flows_for_book(book.uuid)
                },
            }
    return books


def _counts(books: dict[str, Any]) -> tuple[int, int, int]:
    flows = [flow for book in books.values() for flow in book["flows"].values()]
    return len(books), len(flows), sum(len(flow["atoms"]) for flow in flows)


# -- imports from every kind of source -------------------------------------------------------------------------------


@pytest.mark.parametrize("source_kind", ["dir", "sqlite", "postgresql", "mysql", "memory", "zookeeper"])
def test_import_copies_everything_from_each_kind_of_source(source_kind: str, tmp_path: Path) -> None:
    with taskflow_backend(source_kind, tmp_path) as (spec, source), statestore_url("sqlite-file") as url:
        _fill(source)
        expected = snapshot(source)
        report = import_taskflow(spec, url)
        target = _statestore(url)
        try:
            assert snapshot(target) == expected
        finally:
            target.close()
    assert (report.books, report.flows, report.atoms) == _counts(expected)
    assert report.books == len(ENGINE_FLOWS) + 2
    assert len(report.checksum) == 64


def _retry_history(books: dict[str, Any]) -> list[Any]:
    (retry,) = [
        atom
        for book in books.values()
        for flow in book["flows"].values()
        for atom in flow["atoms"].values()
        if atom["name"] == "times"
    ]
    return list(retry["results"])


@pytest.mark.parametrize("store_kind", ["sqlite-file", "postgresql"])
@pytest.mark.parametrize("taskflow_kind", ["dir", "sqlite"])
def test_round_trip_through_statestore_is_exact(taskflow_kind: str, store_kind: str, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    with (
        taskflow_backend(taskflow_kind, tmp_path / "in") as (source_spec, source),
        taskflow_backend(taskflow_kind, tmp_path / "out") as (target_spec, target),
        statestore_url(store_kind) as url,
    ):
        _fill(source)
        imported = import_taskflow(source_spec, url)
        exported = export_taskflow(url, target_spec)
        before, after = snapshot(source), snapshot(target)
    assert after == before  # failures, retry histories and book timestamps included
    assert imported == exported
    history = _retry_history(after)
    assert [sorted(failures) for _, failures in history] == [["flaky"], ["flaky"], []]
    assert history[-1][0] == 3
    assert history[0][1]["flaky"]["exception_str"] == "attempt 1 failed"


def test_export_of_retry_history_verifies_despite_taskflows_decoder(tmp_path: Path) -> None:
    """statestore keeps every attempt's data; TaskFlow's RetryDetail.from_dict
    hands back the last failure's dict instead for attempts with failures.
    The checksum leaves exactly that data out, so the export verifies."""
    with statestore_url("sqlite-file") as url, taskflow_backend("dir", tmp_path) as (spec, target):
        store = _statestore(url)
        try:
            with contextlib.closing(store.get_connection()) as conn:
                conn.upgrade()
            _run_engines(store)
            kept = _retry_history(snapshot(store))
        finally:
            store.close()
        report = export_taskflow(url, spec)
        exported = _retry_history(snapshot(target))
    assert [data for data, _ in kept] == [1, 2, 3]
    assert [data for data, _ in exported][2] == 3
    assert [data for data, _ in exported][:2] == [failures["flaky"] for _, failures in exported[:2]]
    assert [failures for _, failures in exported] == [failures for _, failures in kept]
    assert report.books == len(ENGINE_FLOWS)


def test_export_to_taskflow_on_mysql_keeps_whole_seconds_and_verifies(tmp_path: Path) -> None:
    """TaskFlow's SQL tables on MySQL/MariaDB keep whole seconds: timestamps
    are verified to the second there, everything else exactly."""
    (tmp_path / "in").mkdir()
    with (
        taskflow_backend("dir", tmp_path / "in") as (source_spec, source),
        taskflow_backend("mysql", tmp_path) as (target_spec, target),
        statestore_url("sqlite-file") as url,
    ):
        _fill(source)
        imported = import_taskflow(source_spec, url)
        exported = export_taskflow(url, target_spec)
        before, after = snapshot(source), snapshot(target)
    assert imported == exported

    def moments(book: dict[str, Any]) -> list[datetime]:
        created, updated = book.pop("created_at"), book.pop("updated_at")
        return [created, updated or created]

    for book_uuid, book in before.items():
        kept = moments(after[book_uuid])
        assert [moment.microsecond for moment in kept] == [0, 0]
        assert all(abs(k - m) < timedelta(seconds=1) for k, m in zip(kept, moments(book), strict=True))
    assert after == before


@pytest.mark.parametrize(
    ("created_at", "differs"),
    [
        (datetime(2024, 6, 1, 12, 30, 15, 423456), True),  # both with fractions: must be equal
        (datetime(2024, 6, 1, 12, 30, 17), True),  # a whole second, but not that one
        (datetime(2024, 6, 1, 12, 30, 15), False),  # the whole second of 12:30:15.123456
    ],
)
def test_book_timestamps_are_compared_to_the_second_kept(created_at: datetime, differs: bool, tmp_path: Path) -> None:
    with taskflow_backend("memory", tmp_path) as (source, _), statestore_url("sqlite-file") as url:
        _hand_built(source)

        def move_the_books_creation(progress: TransferProgress) -> None:
            if progress.phase == "copy" and progress.books == progress.total_books:
                with contextlib.closing(source.get_connection()) as conn:
                    book = next(book for book in conn.get_logbooks(lazy=True) if book.name == "hand-built")
                    book.created_at = created_at
                    conn.save_logbook(book)

        with contextlib.ExitStack() as raised:
            if differs:
                raised.enter_context(pytest.raises(TransferMismatch, match=r"'hand-built'.*the logbook's created_at$"))
            import_taskflow(source, url, progress=move_the_books_creation)


def test_round_trip_keeps_identifiers_that_are_not_uuids(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    with (
        taskflow_backend("dir", tmp_path / "in") as (source_spec, source),
        taskflow_backend("dir", tmp_path / "out") as (target_spec, target),
        statestore_url("sqlite-file") as url,
    ):
        book = models.LogBook("nightly", uuid="nightly-2024-06-01")
        flow = models.FlowDetail("build", uuid="42")
        task = models.TaskDetail("compile", uuid="42-compile")
        task.state, task.results = "SUCCESS", {"artifacts": 3}
        flow.add(task)
        book.add(flow)
        with contextlib.closing(source.get_connection()) as conn:
            conn.save_logbook(book)
        import_taskflow(source_spec, url)
        export_taskflow(url, target_spec)
        before, after = snapshot(source), snapshot(target)
    assert after == before
    assert list(after) == ["nightly-2024-06-01"]
    assert list(after["nightly-2024-06-01"]["flows"]) == ["42"]


# -- a store given as a backend object, and the errors of the ends -----------------------------------------------------


def test_a_statestore_backend_object_is_used_and_left_open(tmp_path: Path) -> None:
    """An in-memory store lives as long as its backend object: import into
    it, then export from it."""
    store = StatestoreBackend({"connection": "statestore+sqlite://"})
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    try:
        with (
            taskflow_backend("memory", tmp_path / "in") as (_, source),
            taskflow_backend("zookeeper", tmp_path / "out") as (_, target),
        ):
            _hand_built(source)
            imported = import_taskflow(source, store)
            exported = export_taskflow(store, target)
            assert snapshot(target) == snapshot(source)
        assert imported == exported
        assert snapshot(store)  # still open and still holding the books
    finally:
        store.close()


def test_export_from_a_store_without_schema_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(SchemaOutOfDate, match="no statestore schema"):
        export_taskflow(f"sqlite:///{tmp_path / 'blank.db'}", f"dir://{tmp_path / 'out'}")
    assert not (tmp_path / "out").exists()


def test_bad_ends_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no directory"):
        import_taskflow(f"dir://{tmp_path / 'missing'}", f"sqlite:///{tmp_path / 's.db'}")
    with pytest.raises(InvalidInput, match="no file"):
        import_taskflow(f"sqlite:///{tmp_path / 'missing.db'}", f"sqlite:///{tmp_path / 's.db'}")
    with pytest.raises(InvalidInput, match="nosuch"):
        import_taskflow("nosuch://somewhere", f"sqlite:///{tmp_path / 's.db'}")
    with pytest.raises(InvalidInput, match="oracle"):
        import_taskflow(backends.fetch({"connection": "memory://"}), "oracle://db/flows")
    assert not (tmp_path / "missing.db").exists()  # TaskFlow would have created it


def test_taskflow_conf_takes_the_path_fetch_leaves_out() -> None:
    assert taskflow_conf("dir:///var/flows") == {
        "connection": "dir:///var/flows",
        "path": "/var/flows",
        "max_cache_size": 1024,
    }
    assert taskflow_conf("file:///var/flows?max_cache_size=8")["path"] == "/var/flows"
    assert "max_cache_size" not in taskflow_conf("file:///var/flows?max_cache_size=8")
    assert taskflow_conf("zookeeper://zk1:2181,zk2:2181/flows") == {
        "connection": "zookeeper://zk1:2181,zk2:2181/flows",
        "path": "/flows",
        "hosts": "zk1:2181,zk2:2181",
    }
    assert taskflow_conf("sqlite:////var/flows.db") == {"connection": "sqlite:////var/flows.db"}


# -- re-runs: idempotent, resumable, verified ------------------------------------------------------------------------


def test_a_rerun_updates_and_never_duplicates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saved: list[str] = []
    save_logbook = StatestoreConnection.save_logbook

    def counted(self: StatestoreConnection, book: Any) -> Any:
        saved.append(book.name)
        return save_logbook(self, book)

    # A re-run saves no book it finds unchanged with all its flow details:
    # a save hands back the whole stored book, every atom of it.
    monkeypatch.setattr(StatestoreConnection, "save_logbook", counted)
    with taskflow_backend("dir", tmp_path) as (spec, source), statestore_url("postgresql") as url:
        _fill(source)
        first = import_taskflow(spec, url)
        assert len(saved) == first.books
        assert import_taskflow(spec, url) == first
        assert len(saved) == first.books
        # The source moves on; the next import carries the change over.
        with contextlib.closing(source.get_connection()) as conn:
            book = next(book for book in conn.get_logbooks() if book.name == "hand-built")
            atom = next(atom for flow in book for atom in flow if atom.name == "reverted")
            atom.meta = {"note": "changed after the first import"}
            conn.update_atom_details(atom)
        with contextlib.closing(source.get_connection()) as conn:
            book = next(book for book in conn.get_logbooks(lazy=True) if book.name == "engine-linear")
            book.meta = {"moved": True}
            conn.save_logbook(book)
        saved.clear()
        again = import_taskflow(spec, url)
        assert saved == ["engine-linear"]
        target = _statestore(url)
        try:
            copied = snapshot(target)
        finally:
            target.close()
        expected = snapshot(source)
    assert (again.books, again.flows, again.atoms) == (first.books, first.flows, first.atoms)
    assert again.checksum != first.checksum
    assert copied == expected
    assert _counts(copied) == (first.books, first.flows, first.atoms)


class Interrupted(Exception):
    pass


def test_an_interrupted_import_is_completed_by_running_it_again(tmp_path: Path) -> None:
    seen: list[TransferProgress] = []

    def stop_after_two_flows(progress: TransferProgress) -> None:
        seen.append(progress)
        if progress.phase == "copy" and progress.flows == 2:
            raise Interrupted

    with taskflow_backend("sqlite", tmp_path) as (spec, source), statestore_url("sqlite-file") as url:
        _fill(source)
        expected = snapshot(source)
        with pytest.raises(Interrupted):
            import_taskflow(spec, url, progress=stop_after_two_flows)
        target = _statestore(url)
        try:
            partial = snapshot(target)
            report = import_taskflow(spec, url)
            complete = snapshot(target)
        finally:
            target.close()
    total_flows = _counts(expected)[1]
    assert seen[-1].flows == 2
    assert seen[-1].total_flows == total_flows
    assert partial != expected
    assert sum(1 for book in partial.values() for flow in book["flows"].values() if flow["atoms"]) <= 2
    assert complete == expected
    assert (report.books, report.flows, report.atoms) == _counts(expected)


def test_a_source_written_during_the_copy_fails_verification(tmp_path: Path) -> None:
    """Another writer changes an atom already copied: the copy no longer
    matches, and the error names the atom and the field."""
    with taskflow_backend("memory", tmp_path) as (source, _), statestore_url("sqlite-file") as url:
        _hand_built(source)

        def meddle(progress: TransferProgress) -> None:
            if progress.phase == "copy" and progress.books == progress.total_books:
                with contextlib.closing(source.get_connection()) as conn:
                    book = next(book for book in conn.get_logbooks() if book.name == "hand-built")
                    atom = next(atom for flow in book for atom in flow if atom.name == "reverted")
                    atom.state = "PENDING"
                    conn.update_atom_details(atom)

        with pytest.raises(TransferMismatch, match=r"atom 'reverted' \(.*\): its state") as raised:
            import_taskflow(source, url, progress=meddle)
    assert "'hand-built'" in str(raised.value)
    assert "'hand-flow'" in str(raised.value)


def test_a_flow_added_to_the_source_during_the_copy_fails_verification(tmp_path: Path) -> None:
    with taskflow_backend("memory", tmp_path) as (source, _), statestore_url("sqlite-file") as url:
        _hand_built(source)
        added = models.FlowDetail("late", uuid=uuidutils.generate_uuid())

        def add_a_flow(progress: TransferProgress) -> None:
            if progress.phase == "copy" and progress.books == progress.total_books:
                with contextlib.closing(source.get_connection()) as conn:
                    book = next(book for book in conn.get_logbooks(lazy=True) if book.name == "hand-built")
                    updated_at = book.updated_at
                    book.add(added)
                    book.updated_at = updated_at  # add() stamps it: only the flow details differ
                    conn.save_logbook(book)

        with pytest.raises(TransferMismatch, match=f"missing from the target: \\['{added.uuid}'\\]"):
            import_taskflow(source, url, progress=add_a_flow)


async def test_works_from_a_coroutine_but_blocks_its_loop(tmp_path: Path) -> None:
    """The store never runs on the caller's loop: a call from inside a
    running loop completes (blocking that loop meanwhile)."""
    with taskflow_backend("memory", tmp_path) as (source, _):
        _hand_built(source)
        report = import_taskflow(source, f"sqlite:///{tmp_path / 'store.db'}")
        assert await asyncio.to_thread(import_taskflow, source, f"sqlite:///{tmp_path / 'store.db'}") == report
    assert (report.books, report.flows, report.atoms) == (2, 2, 3)


# -- memory ----------------------------------------------------------------------------------------------------------

BOOKS, FLOWS_PER_BOOK, ATOMS_PER_FLOW = 4, 25, 100
PAYLOAD = 1000
# tracemalloc peaks measured on a 2-vCPU VM, from TaskFlow's SQL backend on a
# SQLite file into statestore on one: the import 1.6 MB (one flow's 100 atoms
# ≈ 0.17 MB, the rest the drivers' and statement caches); reading the whole
# source at once 17.4 MB (10k atoms ≈ 1.7 kB each); one whole book, 2,500
# atoms, ≈ 4.3 MB on top of the import's own. So 4 MiB leaves the import 2.5×
# headroom yet fails an import holding all atoms, or one book's, at once.
MEMORY_BOUND = 4 * 2**20


def _large_source(backend: Any) -> None:
    with contextlib.closing(backend.get_connection()) as conn:
        for b in range(BOOKS):
            book = models.LogBook(f"book-{b}", uuid=uuidutils.generate_uuid())
            for f in range(FLOWS_PER_BOOK):
                flow = models.FlowDetail(f"flow-{f}", uuid=uuidutils.generate_uuid())
                flow.state = "SUCCESS"
                for a in range(ATOMS_PER_FLOW):
                    atom = models.TaskDetail(f"task-{a}", uuid=uuidutils.generate_uuid())
                    atom.state, atom.results = "SUCCESS", {"index": a, "payload": f"{a:04d}" * (PAYLOAD // 4)}
                    flow.add(atom)
                book.add(flow)
            conn.save_logbook(book)


def _traced_peak(action: Callable[[], Any]) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        return action(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow  # ~11 s: tracemalloc triples the import's 2.5 s
def test_importing_10k_atoms_holds_one_flow_at_a_time(tmp_path: Path) -> None:
    with taskflow_backend("sqlite", tmp_path) as (spec, source), statestore_url("sqlite-file") as url:
        _large_source(source)

        def everything() -> Any:
            with contextlib.closing(source.get_connection()) as conn:
                return list(conn.get_logbooks())

        held, held_peak = _traced_peak(everything)
        assert sum(len(flow) for book in held for flow in book) == BOOKS * FLOWS_PER_BOOK * ATOMS_PER_FLOW
        del held
        started = time.perf_counter()
        report, peak = _traced_peak(lambda: import_taskflow(spec, url))
        elapsed = time.perf_counter() - started
    assert (report.books, report.flows, report.atoms) == (BOOKS, BOOKS * FLOWS_PER_BOOK, 10_000)
    assert held_peak > 3 * MEMORY_BOUND, held_peak  # the bound tells the two apart
    assert peak < MEMORY_BOUND, (peak, held_peak, elapsed)


# -- the command -------------------------------------------------------------------------------------------------------


def test_cli_imports_and_exports_with_progress_and_a_summary(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    with (
        taskflow_backend("dir", tmp_path / "in") as (source_spec, source),
        taskflow_backend("dir", tmp_path / "out") as (target_spec, target),
    ):
        _fill(source)
        url = f"sqlite:///{tmp_path / 'flows.db'}"
        imported = runner.invoke(app, ["import-taskflow", source_spec, "--url", url])
        assert imported.exit_code == 0, imported.output
        exported = runner.invoke(app, ["export-taskflow", target_spec, "--url", url])
        assert exported.exit_code == 0, exported.output
        assert snapshot(target) == snapshot(source)
        books, flows, atoms = _counts(snapshot(source))
    report = import_taskflow(target_spec, url)  # already there: only verifies, same checksum
    for result in (imported, exported):
        assert f"{books} logbooks, {flows} flow details, {atoms} atoms" in result.output
        assert report.checksum in result.output
        assert "verified" in result.output


def test_a_rich_progress_gets_a_bar_per_phase(tmp_path: Path) -> None:
    bar = Progress(disable=True)
    with taskflow_backend("memory", tmp_path) as (source, _), bar:
        _fill(source)
        report = import_taskflow(source, f"sqlite:///{tmp_path / 'store.db'}", progress=bar)
    copying, verifying = bar.tasks
    for task in (copying, verifying):
        assert (task.completed, task.total) == (report.flows, report.flows)
        assert task.fields["atoms"] == report.atoms
    assert (copying.description, copying.visible) == ("copying", False)
    assert (verifying.description, verifying.visible) == ("verifying", True)


def test_cli_shows_a_progress_bar_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_output, "errors", Console(stderr=True, force_terminal=True, width=160))
    with taskflow_backend("dir", tmp_path) as (spec, source):
        _fill(source)
        _, flows, atoms = _counts(snapshot(source))
        result = runner.invoke(app, ["import-taskflow", spec, "--url", f"sqlite:///{tmp_path / 'flows.db'}"])
    assert result.exit_code == 0, result.output
    # The bar's last frame, before it is erased: every flow detail verified.
    assert re.search(rf"verifying.*{flows}/{flows}.*flow details, {atoms} atoms", result.output)


def test_cli_takes_the_store_from_statestore_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with taskflow_backend("dir", tmp_path) as (spec, source):
        _hand_built(source)
        monkeypatch.setenv("STATESTORE_URL", f"sqlite:///{tmp_path / 'env.db'}")
        result = runner.invoke(app, ["import-taskflow", spec])
    assert result.exit_code == 0, result.output
    assert "2 logbooks, 2 flow details, 3 atoms" in result.output
    assert (tmp_path / "env.db").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["import-taskflow", "nosuch://somewhere"], "InvalidInput: TaskFlow source nosuch://somewhere"),
        (["import-taskflow", "dir:///no/such/directory"], "no directory /no/such/directory"),
        (["export-taskflow", "dir:///tmp/unused"], "no database at"),  # a store to export must exist
    ],
)
def test_cli_errors_are_one_line_and_exit_2(arguments: list[str], message: str, tmp_path: Path) -> None:
    result = runner.invoke(app, [*arguments, "--url", f"sqlite:///{tmp_path / 'blank.db'}"])
    assert result.exit_code == 2
    assert message in result.output
    assert result.output.startswith("error: ")
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.output


def test_cli_without_taskflow_says_which_extra_to_install(tmp_path: Path) -> None:
    blocker = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'taskflow':\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from typer.testing import CliRunner\n"
        "from statestore.cli import app\n"
        f"result = CliRunner().invoke(app, ['import-taskflow', 'dir:///x', '--url', 'sqlite:///{tmp_path}/s.db'])\n"
        "print(result.exit_code)\n"
        "print(result.output)\n"
    )
    done = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, check=False)
    code, output = done.stdout.split("\n", 1)
    assert code == "2", done.stdout + done.stderr
    assert "pip install 'statestore[taskflow]'" in output
