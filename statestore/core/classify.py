"""Driver errors → statestore's error tree, by error code only.

Message text changes between versions and locales; codes do not. Each driver
exposes its code differently: sqlite3 ``sqlite_errorname``, asyncpg
``sqlstate``, MySQL clients the errno in ``args[0]``. A lost connection is
recognised by class and code too (:func:`connection_lost`): SQLAlchemy's
``connection_invalidated``, the drivers' interface errors (raised when the
connection is closed or stuck), SQLSTATE class 08 and 57P01–57P03, MySQL's
client and server disconnect errnos.
"""

from __future__ import annotations

import sqlite3
from functools import cache
from typing import NoReturn

from sqlalchemy import exc as sa_exc

from statestore.errors import (
    AlreadyExists,
    Busy,
    InvalidInput,
    InvalidReference,
    SchemaOutOfDate,
    StoreError,
    TransactionConflict,
    Unavailable,
)

__all__ = ["classify", "connection_lost", "is_sqlite_busy", "reraise", "unsent"]

_SQLITE: dict[str, type[StoreError]] = {
    "SQLITE_CONSTRAINT_UNIQUE": AlreadyExists,
    "SQLITE_CONSTRAINT_PRIMARYKEY": AlreadyExists,
    "SQLITE_CONSTRAINT_FOREIGNKEY": InvalidReference,
    "SQLITE_CONSTRAINT_NOTNULL": InvalidInput,
    "SQLITE_CONSTRAINT_CHECK": InvalidInput,
    "SQLITE_TOOBIG": InvalidInput,
    "SQLITE_MISMATCH": InvalidInput,
    "SQLITE_BUSY": Busy,
    "SQLITE_BUSY_RECOVERY": Busy,
    "SQLITE_BUSY_SNAPSHOT": Busy,
    "SQLITE_BUSY_TIMEOUT": Busy,
    "SQLITE_LOCKED": Busy,
    "SQLITE_LOCKED_SHAREDCACHE": Busy,
    "SQLITE_CANTOPEN": Unavailable,
    "SQLITE_READONLY": Unavailable,
    "SQLITE_FULL": Unavailable,
    "SQLITE_IOERR": Unavailable,
    "SQLITE_PERM": Unavailable,
}

# SQLSTATE classes and codes (PostgreSQL appendix A).
_SQLSTATE: dict[str, type[StoreError]] = {
    "23505": AlreadyExists,  # unique_violation
    "23503": InvalidReference,  # foreign_key_violation
    "23502": InvalidInput,  # not_null_violation
    "23514": InvalidInput,  # check_violation
    "40001": TransactionConflict,  # serialization_failure
    "40P01": TransactionConflict,  # deadlock_detected
    "55P03": Busy,  # lock_not_available
    "57014": Busy,  # query_canceled (statement/lock timeout)
    "42P01": SchemaOutOfDate,  # undefined_table
    "42703": SchemaOutOfDate,  # undefined_column
}
_SQLSTATE_CLASS: dict[str, type[StoreError]] = {
    "22": InvalidInput,  # data exception (too long, out of range, bad text)
    "08": Unavailable,  # connection exception
    "53": Unavailable,  # insufficient resources
    "57": Unavailable,  # operator intervention (shutdown)
    "3D": Unavailable,  # invalid catalog name (no such database)
    "28": Unavailable,  # invalid authorization
}

# MySQL / MariaDB server and client error numbers.
_MYSQL: dict[int, type[StoreError]] = {
    1062: AlreadyExists,  # ER_DUP_ENTRY
    1451: InvalidReference,  # ER_ROW_IS_REFERENCED_2
    1452: InvalidReference,  # ER_NO_REFERENCED_ROW_2
    1048: InvalidInput,  # ER_BAD_NULL_ERROR
    1406: InvalidInput,  # ER_DATA_TOO_LONG
    1264: InvalidInput,  # ER_WARN_DATA_OUT_OF_RANGE
    1366: InvalidInput,  # ER_TRUNCATED_WRONG_VALUE_FOR_FIELD
    3819: InvalidInput,  # ER_CHECK_CONSTRAINT_VIOLATED (MySQL)
    4025: InvalidInput,  # ER_CONSTRAINT_FAILED (MariaDB CHECK)
    1213: TransactionConflict,  # ER_LOCK_DEADLOCK
    1205: Busy,  # ER_LOCK_WAIT_TIMEOUT
    1146: SchemaOutOfDate,  # ER_NO_SUCH_TABLE
    1054: SchemaOutOfDate,  # ER_BAD_FIELD_ERROR
    1049: Unavailable,  # ER_BAD_DB_ERROR
    1045: Unavailable,  # ER_ACCESS_DENIED_ERROR
    2002: Unavailable,
    2003: Unavailable,
    2006: Unavailable,
    2013: Unavailable,
    2055: Unavailable,
    1053: Unavailable,
    1927: Unavailable,
    4031: Unavailable,
}

# The connection itself is gone (or never came back): asyncmy/PyMySQL's
# CR_SERVER_GONE_ERROR (nothing could be sent), CR_SERVER_LOST (lost while
# waiting for the answer), CR_SERVER_LOST_EXTENDED; the server's
# ER_SERVER_SHUTDOWN, ER_CONNECTION_KILLED (MariaDB, KILL) and
# ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8, idle too long).
_MYSQL_LOST = frozenset({2006, 2013, 2055, 1053, 1927, 4031})
_MYSQL_UNSENT = frozenset({2006})
# admin_shutdown, crash_shutdown, cannot_connect_now: the server ended the session.
_SQLSTATE_LOST = frozenset({"57P01", "57P02", "57P03"})


@cache
def _driver_classes() -> dict[str, tuple[type[BaseException], ...]]:
    """Driver error classes, imported on first use (a SQLite store loads no
    server driver): ``interface`` — client-side "this connection cannot be
    used" errors: asyncpg's InterfaceError (closed, another operation in
    progress, a failed BEGIN left behind) and InternalClientError (protocol
    state after a cancellation), asyncmy's InterfaceError (closed; errno 0);
    ``values`` — asyncpg InterfaceErrors about a value or a setting instead;
    ``raw`` — everything a driver raises, for errors that reach the runner
    unwrapped (statements run on the DB-API cursor, connect, close)."""
    interface: list[type[BaseException]] = []
    values: list[type[BaseException]] = []
    raw: list[type[BaseException]] = [sa_exc.EmulatedDBAPIException]
    try:
        from asyncpg import exceptions as pg  # type: ignore[import-untyped]
    except ImportError:
        pass
    else:
        interface += [pg.InterfaceError, pg.InternalClientError]
        values += [getattr(pg, name) for name in ("DataError", "ClientConfigurationError") if hasattr(pg, name)]
        raw.append(pg.PostgresError)
    try:
        from asyncmy import errors as my
    except ImportError:
        pass
    else:
        interface.append(my.InterfaceError)
        raw.append(my.MySQLError)
    return {"interface": tuple(interface), "values": tuple(values), "raw": (*raw, *interface)}


def _unusable_connection(driver: BaseException) -> bool:
    classes = _driver_classes()
    return isinstance(driver, classes["interface"]) and not isinstance(driver, classes["values"])


def _mysql_errno(driver: BaseException) -> int | None:
    args = getattr(driver, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def connection_lost(error: BaseException) -> bool:
    """Whether ``error`` says the connection it came from is gone or unusable
    (by class and code; the runner also asks the driver whether it is closed)."""
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, sa_exc.PendingRollbackError):
        return True  # SQLAlchemy refuses a connection it invalidated mid-transaction
    driver = _driver_error(error)
    if _unusable_connection(driver) or _mysql_errno(driver) in _MYSQL_LOST:
        return True
    sqlstate = getattr(driver, "sqlstate", None) or getattr(driver, "pgcode", None)
    return isinstance(sqlstate, str) and (sqlstate.startswith("08") or sqlstate in _SQLSTATE_LOST)


def unsent(error: BaseException) -> bool:
    """Whether ``error`` proves its statement never reached the server: the
    driver found its connection closed before writing (asyncpg's
    InterfaceError, asyncmy's errno 0 InterfaceError and CR_SERVER_GONE_ERROR).
    A connection lost while waiting for the answer is not such proof."""
    driver = _driver_error(error)
    return _unusable_connection(driver) or _mysql_errno(driver) in _MYSQL_UNSENT


def _driver_error(error: BaseException) -> BaseException:
    """The innermost driver exception behind SQLAlchemy's adapters."""
    seen = error
    while True:
        inner = getattr(seen, "orig", None) or getattr(seen, "__cause__", None)
        if inner is None or inner is seen:
            return seen
        if getattr(seen, "sqlstate", None) or getattr(seen, "sqlite_errorname", None):
            return seen
        seen = inner


def _code_class(driver: BaseException) -> type[StoreError] | None:
    name = getattr(driver, "sqlite_errorname", None)
    if isinstance(name, str):
        # Extended codes (SQLITE_IOERR_WRITE) fall back to their primary code.
        return _SQLITE.get(name) or _SQLITE.get("_".join(name.split("_")[:2]))
    # MySQL clients also carry a SQLSTATE, but a generic one (23000 for every
    # integrity error): their errno is the precise code, so it comes first.
    args = getattr(driver, "args", ())
    if args and isinstance(args[0], int) and args[0] in _MYSQL:
        return _MYSQL[args[0]]
    sqlstate = getattr(driver, "sqlstate", None) or getattr(driver, "pgcode", None)
    if isinstance(sqlstate, str) and len(sqlstate) == 5:
        return _SQLSTATE.get(sqlstate) or _SQLSTATE_CLASS.get(sqlstate[:2])
    return None


def classify(error: BaseException) -> BaseException:
    """Return the statestore error for ``error`` (the caller raises it ``from``).

    A StoreError raised inside a type's bind processor comes back wrapped in a
    StatementError: unwrap it. Errors with no known code become a plain
    StoreError so callers can still catch the root.
    """
    if isinstance(error, StoreError):
        return error
    if isinstance(error, sa_exc.StatementError) and isinstance(error.orig, StoreError):
        return error.orig
    if isinstance(error, sa_exc.TimeoutError):
        return Busy(f"no database connection free in time: {error}")
    if isinstance(error, (ConnectionError, TimeoutError)):
        return Unavailable(f"database unreachable: {error}")
    if connection_lost(error):
        driver = _driver_error(error)
        return Unavailable(f"lost the database connection: {str(driver).strip() or type(driver).__name__}")
    if isinstance(error, UnicodeEncodeError):
        # MySQL clients encode the whole statement themselves; asyncpg's
        # equivalent arrives as a data exception (class 22, InvalidInput).
        return InvalidInput(f"a value cannot be encoded for the database: {error}")
    if isinstance(error, (sa_exc.DBAPIError, OSError, sqlite3.Error, *_driver_classes()["raw"])):
        driver = _driver_error(error)
        kind = _code_class(driver) or (Unavailable if isinstance(driver, OSError) else StoreError)
        return kind(str(driver).strip() or type(driver).__name__)
    return error


def is_sqlite_busy(error: BaseException) -> bool:
    """Whether ``error`` is SQLite saying another connection holds the lock."""
    driver = _driver_error(error)
    name = getattr(driver, "sqlite_errorname", "")
    return isinstance(name, str) and name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))


def reraise(error: BaseException) -> NoReturn:
    """Raise the statestore error for ``error``, chained to it; an error that
    already is one is re-raised as it is, keeping its own cause."""
    classified = classify(error)
    if classified is error:
        raise error
    raise classified from error
