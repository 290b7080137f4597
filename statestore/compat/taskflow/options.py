"""A TaskFlow persistence conf → the statestore URL and ``open_store`` options.

Users switch from TaskFlow's SQL backend by changing the connection string,
so the conf keys they already pass must either keep their meaning or fail
loudly; silently ignoring a pool size or an isolation level would change
behaviour without telling anyone.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["PREFIX", "store_options"]

PREFIX = "statestore+"

# TaskFlow's fetch() copies these from the URI into conf; they are in the URL.
_FROM_URI = frozenset({"connection", "username", "password", "hostname", "port"})
# TaskFlow's SQL backend keys → SQLAlchemy pool options (servers only: a
# SQLite store has one writer connection and its own readers).
_POOL_KEYS = {
    "max_pool_size": ("pool_size", int),
    "max_overflow": ("max_overflow", int),
    "pool_timeout": ("pool_timeout", float),
    "idle_timeout": ("pool_recycle", int),
}
# TaskFlow SQL backend keys statestore cannot honour, and why.
_UNSUPPORTED = {
    "isolation_level": "statestore chooses each unit's isolation itself",
    "isolation_levels": "statestore chooses each unit's isolation itself",
    "engine_args": "pass the pool options (max_pool_size, max_overflow, pool_timeout, idle_timeout) instead",
    "log_statements": "use echo=true",
    "log_statements_level": "use echo=true",
    "checkin_yield": "statestore does not run on eventlet",
    "checkout_ping": "statestore's MariaDB connections are not pinged on checkout",
    "mysql_sql_mode": "statestore validates values itself and uses MariaDB's strict defaults",
    "max_retries": "validate() makes one attempt",
}


def _number(key: str, value: Any, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(float(value))
    except (TypeError, ValueError):
        raise ValueError(f"statestore TaskFlow backend: {key} must be a number, got {value!r}") from None


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def store_options(conf: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The statestore URL and ``open_store`` options a TaskFlow conf asks for.

    Honoured: ``echo``; ``busy_timeout`` (SQLite); ``max_pool_size``,
    ``max_overflow``, ``pool_timeout``, ``idle_timeout`` (servers; ignored
    on SQLite). Keys TaskFlow's ``fetch`` merges in from the URI (username,
    password, hostname, port, query parameters) are accepted; query
    parameters that are not conf keys stay in the URL for the driver. Any
    other key raises ValueError naming it.
    """
    connection = conf.get("connection")
    if not isinstance(connection, str) or not connection.startswith(PREFIX):
        raise ValueError(f"statestore TaskFlow backend: connection must start with {PREFIX!r}, got {connection!r}")
    try:
        url = make_url(connection[len(PREFIX) :])
    except ArgumentError as error:
        raise ValueError(f"statestore TaskFlow backend: not a database URL: {connection!r}") from error
    sqlite = url.get_backend_name() == "sqlite"
    options: dict[str, Any] = {}
    consumed: set[str] = set()
    for key, value in conf.items():
        if key in _FROM_URI:
            continue
        if key == "echo":
            options["echo"] = _flag(value)
        elif key == "busy_timeout" and sqlite:
            options["busy_timeout"] = _number(key, value, float)
        elif key in _POOL_KEYS:
            if not sqlite:
                name, kind = _POOL_KEYS[key]
                options[name] = _number(key, value, kind)
        elif key in url.query:
            continue  # a driver parameter of the URL, merged into conf by fetch()
        elif key in _UNSUPPORTED:
            raise ValueError(f"statestore TaskFlow backend: {key!r} is not supported ({_UNSUPPORTED[key]})")
        else:
            raise ValueError(f"statestore TaskFlow backend: unknown configuration key {key!r}")
        consumed.add(key)
    url = url.difference_update_query(consumed)
    return url.render_as_string(hide_password=False), options
