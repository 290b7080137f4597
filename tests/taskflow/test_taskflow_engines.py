"""Real TaskFlow engines on statestore end with the logbook TaskFlow's memory
backend produces — except where statestore fixes TaskFlow's retry bug."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import taskflow.engines
from taskflow.persistence import backends, models

from tests.support.taskflow_flows import FLOWS
from tests.support.taskflow_support import drop_database, make_database

STORE = {"x": 2, "y": 3}


@pytest.fixture
def statestore_backend(backend: str) -> Iterator[Any]:
    database, url = make_database(backend)
    taskflow_backend = backends.fetch({"connection": url})
    with contextlib.closing(taskflow_backend.get_connection()) as conn:
        conn.upgrade()
    try:
        yield taskflow_backend
    finally:
        taskflow_backend.close()
        drop_database(database)


def _failure(value: Any) -> Any:
    return None if value is None else (value.exception_str, tuple(value.to_dict()["exc_type_names"]))


def _results(atom: Any) -> Any:
    if isinstance(atom, models.RetryDetail):
        # (data, failures) per attempt; data compared separately (TaskFlow's bug).
        return [sorted((name, _failure(failure)) for name, failure in failures.items()) for _, failures in atom.results]
    return atom.results


def _summary(taskflow_backend: Any, book_uuid: str) -> dict[str, Any]:
    """The persisted outcome, read back through a fresh connection."""
    with contextlib.closing(taskflow_backend.get_connection()) as conn:
        book = conn.get_logbook(book_uuid)
    (flow,) = list(book)
    return {
        "flow": flow.state,
        "atoms": {
            atom.name: (
                type(atom).__name__,
                atom.state,
                atom.intention,
                _results(atom),
                _failure(atom.failure),
                atom.revert_results,
                _failure(atom.revert_failure),
            )
            for atom in flow
        },
    }


def _run(flow_name: str, engine: str, taskflow_backend: Any) -> tuple[str, BaseException | None]:
    book = models.LogBook(f"{flow_name}-{engine}")
    loaded = taskflow.engines.load(
        FLOWS[flow_name](), store=dict(STORE), engine=engine, backend=taskflow_backend, book=book
    )
    try:
        loaded.run()
    except Exception as error:  # the failing flow re-raises its task's error
        return book.uuid, error
    return book.uuid, None


@pytest.mark.parametrize("engine", ["serial", "parallel"])
@pytest.mark.parametrize("flow_name", sorted(FLOWS))
def test_engine_outcome_matches_the_memory_backend(statestore_backend: Any, flow_name: str, engine: str) -> None:
    memory = backends.fetch({"connection": "memory://"})
    expected_uuid, expected_error = _run(flow_name, engine, memory)
    actual_uuid, actual_error = _run(flow_name, engine, statestore_backend)
    assert repr(actual_error) == repr(expected_error)
    expected, actual = _summary(memory, expected_uuid), _summary(statestore_backend, actual_uuid)
    assert actual == expected
    assert actual["flow"] == ("REVERTED" if flow_name == "failing" else "SUCCESS")


def test_retry_history_data_survives_where_taskflow_loses_it(statestore_backend: Any) -> None:
    memory = backends.fetch({"connection": "memory://"})
    expected_uuid, _ = _run("retrying", "serial", memory)
    actual_uuid, _ = _run("retrying", "serial", statestore_backend)

    def history(taskflow_backend: Any, book_uuid: str) -> list[Any]:
        with contextlib.closing(taskflow_backend.get_connection()) as conn:
            (flow,) = list(conn.get_logbook(book_uuid))
        (times,) = [atom for atom in flow if atom.name == "times"]
        return [data for data, _ in times.results]

    assert history(statestore_backend, actual_uuid) == [1, 2, 3]
    # TaskFlow's decoder replaces the data of attempts that saw a failure.
    assert history(memory, expected_uuid) != [1, 2, 3]
