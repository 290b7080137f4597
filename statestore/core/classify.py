"""Driver errors → statestore's error tree, by error code only.

Message text changes between versions and locales; codes do not. Each driver
exposes its code differently: sqlite3 ``sqlite_errorname``, asyncpg
``sqlstate``, MySQL clients the errno in ``args[0]``.
"""

from __future__ import annotations

import sqlite3
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

__all__ = ["classify", "is_sqlite_busy", "reraise"]

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
}


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
    if isinstance(error, (sa_exc.DBAPIError, OSError, sqlite3.Error)):
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
