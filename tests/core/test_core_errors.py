"""Driver errors reach callers as statestore's error tree, classified by code."""

from __future__ import annotations

from uuid import uuid4

import pytest
from sqlalchemy import insert

from statestore import (
    AlreadyExists,
    Busy,
    Conflict,
    InvalidInput,
    InvalidReference,
    SchemaOutOfDate,
    Store,
    StoreError,
    TransactionConflict,
    Unavailable,
    open_store,
)
from statestore.core.classify import classify
from statestore.schema.metadata import FlowDetailRow, LogBookRow

FLOWS = FlowDetailRow.__table__
BOOKS = LogBookRow.__table__


def _flow(**values: object) -> dict[str, object]:
    return {"name": "f", "meta": {}, "state": None, "logbook_id": 1, **values}


async def test_unique_violation_is_already_exists(store: Store) -> None:
    chosen = uuid4()
    await store.write(lambda conn: conn.execute(insert(BOOKS), {"uuid": chosen, "name": "b", "meta": {}}))
    with pytest.raises(AlreadyExists) as raised:
        await store.write(lambda conn: conn.execute(insert(BOOKS), {"uuid": chosen, "name": "b2", "meta": {}}))
    assert isinstance(raised.value, Conflict)
    assert isinstance(raised.value, StoreError)
    assert raised.value.__cause__ is not None


async def test_foreign_key_violation_is_invalid_reference(store: Store) -> None:
    with pytest.raises(InvalidReference) as raised:
        await store.write(lambda conn: conn.execute(insert(FLOWS), _flow(logbook_id=987654)))
    assert isinstance(raised.value, InvalidInput)
    assert raised.value.__cause__ is not None


async def test_not_null_violation_is_invalid_input(store: Store) -> None:
    with pytest.raises(InvalidInput):
        await store.write(lambda conn: conn.execute(insert(BOOKS), {"name": None, "meta": {}}))


async def test_check_violation_is_invalid_input(store: Store) -> None:
    book = uuid4()
    await store.write(lambda conn: conn.execute(insert(BOOKS), {"uuid": book, "name": "b", "meta": {}}))
    book_id = await store.read(lambda conn: conn.execute(BOOKS.select()).one().id)
    with pytest.raises(InvalidInput):
        await store.write(lambda conn: conn.execute(insert(FLOWS), _flow(logbook_id=book_id, state="BOGUS")))


async def test_too_long_for_the_column(store: Store, backend: str) -> None:
    """Servers refuse; SQLite stores it — which is why every repository checks
    lengths in Python before writing (see the flow model's bad-input tests)."""
    write = store.write(lambda conn: conn.execute(insert(BOOKS), {"name": "x" * 256, "meta": {}}))
    if backend.startswith("sqlite"):
        await write
        stored = await store.read(lambda conn: conn.execute(BOOKS.select()).one().name)
        assert len(stored) == 256
    else:
        with pytest.raises(InvalidInput):
            await write


async def test_unreachable_server_is_unavailable() -> None:
    with pytest.raises(Unavailable):
        async with open_store("postgresql://postgres@127.0.0.1:1/nowhere"):
            pass


class _SqliteError(Exception):
    def __init__(self, name: str) -> None:
        super().__init__("message text is ignored")
        self.sqlite_errorname = name


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__("message text is ignored")
        self.sqlstate = sqlstate


class _MySQLError(Exception):
    sqlstate = "23000"  # MySQL clients carry a generic SQLSTATE too


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_SqliteError("SQLITE_CONSTRAINT_UNIQUE"), AlreadyExists),
        (_SqliteError("SQLITE_CONSTRAINT_FOREIGNKEY"), InvalidReference),
        (_SqliteError("SQLITE_BUSY"), Busy),
        (_SqliteError("SQLITE_IOERR_WRITE"), Unavailable),
        (_PgError("23505"), AlreadyExists),
        (_PgError("23503"), InvalidReference),
        (_PgError("40P01"), TransactionConflict),
        (_PgError("22001"), InvalidInput),
        (_PgError("08006"), Unavailable),
        (_MySQLError(1062, "dup"), AlreadyExists),
        (_MySQLError(1452, "fk"), InvalidReference),
        (_MySQLError(1213, "deadlock"), TransactionConflict),
        (_MySQLError(2003, "cannot connect"), Unavailable),
    ],
)
def test_classification_is_by_code(error: Exception, expected: type[StoreError]) -> None:
    from sqlalchemy.exc import DBAPIError

    wrapped = DBAPIError("statement", {}, error)
    classified = classify(wrapped)
    assert type(classified) is expected


def test_an_error_without_a_known_code_is_a_plain_store_error() -> None:
    from sqlalchemy.exc import DBAPIError

    classified = classify(DBAPIError("statement", {}, Exception("UNIQUE constraint failed")))
    assert type(classified) is StoreError


def test_schema_errors_by_code() -> None:
    from sqlalchemy.exc import DBAPIError

    assert type(classify(DBAPIError("s", {}, _PgError("42P01")))) is SchemaOutOfDate
