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

__all__ = ["PREFIX", "store_options", "validate_retries"]

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
# The isolation statestore's writing transactions run at, per backend
# (TaskFlow's SQL backend defaults to READ COMMITTED on servers too). A unit
# that needs a snapshot takes one itself, so no other level can be imposed.
_ISOLATION = {"postgresql": "READ COMMITTED", "mysql": "READ COMMITTED", "sqlite": "SERIALIZABLE"}
# engine_args statestore passes on to SQLAlchemy (the pool's; servers only).
_ENGINE_ARGS = frozenset({"pool_size", "max_overflow", "pool_timeout", "pool_recycle", "pool_pre_ping", "connect_args"})
# Modes under which MariaDB refuses bad data instead of mangling it, as
# statestore needs; TaskFlow's default (TRADITIONAL) is one.
_STRICT_MODES = ("TRADITIONAL", "STRICT_ALL_TABLES", "STRICT_TRANS_TABLES")
# TaskFlow SQL backend keys statestore cannot honour, and why.
_UNSUPPORTED = {
    "log_statements_level": (
        "statestore logs statements through SQLAlchemy's 'sqlalchemy.engine' logger at INFO "
        "(log_statements=true); set that logger's level instead"
    ),
}


def _number(key: str, value: Any, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(float(value))
    except (TypeError, ValueError):
        raise ValueError(f"statestore TaskFlow backend: {key} must be a number, got {value!r}") from None


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _isolation(key: str, value: Any, backend: str) -> None:
    """Refuse an isolation level other than the one statestore runs at."""
    wanted = _ISOLATION.get(backend, "READ COMMITTED")
    if str(value).strip().upper().replace("_", " ") != wanted:
        raise ValueError(
            f"statestore TaskFlow backend: {key}={value!r} is not supported: statestore's transactions "
            f"on {backend} run at {wanted} (a unit needing a snapshot takes one itself)"
        )


def _engine_args(value: Any, sqlite: bool) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"statestore TaskFlow backend: engine_args must be a dict, got {value!r}")
    unknown = sorted(set(value) - _ENGINE_ARGS - {"echo"})
    if unknown:
        raise ValueError(
            f"statestore TaskFlow backend: engine_args {unknown} are not supported "
            f"(statestore builds its own engine; it passes on {sorted(_ENGINE_ARGS | {'echo'})})"
        )
    options = {"echo": _flag(value["echo"])} if "echo" in value else {}
    if not sqlite:  # a SQLite store has one writer connection and its own readers: no pool
        options.update((key, item) for key, item in value.items() if key != "echo")
    return options


def _sql_mode(value: Any) -> None:
    modes = {mode.strip().upper() for mode in str(value).split(",")}
    if not modes & set(_STRICT_MODES):
        raise ValueError(
            f"statestore TaskFlow backend: mysql_sql_mode={value!r} is not supported: statestore needs a "
            f"strict mode (one of {', '.join(_STRICT_MODES)}) so that MariaDB refuses bad values"
        )


def validate_retries(conf: dict[str, Any]) -> int:
    """How many times ``validate()`` retries a database it cannot reach
    (``max_retries``, default 0), as TaskFlow's SQL backend does."""
    value = conf.get("max_retries", 0)
    retries = int(_number("max_retries", value, int))
    if retries < 0:
        raise ValueError(f"statestore TaskFlow backend: max_retries must be 0 or more, got {value!r}")
    return retries


def store_options(conf: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The statestore URL and ``open_store`` options a TaskFlow conf asks for.

    Honoured:

    * ``echo`` and ``log_statements`` (statements logged by SQLAlchemy);
    * ``busy_timeout`` (SQLite);
    * ``max_pool_size``, ``max_overflow``, ``pool_timeout``, ``idle_timeout``
      and ``engine_args``' pool keys (servers; ignored on SQLite);
    * ``checkout_ping`` (servers: ping a connection before use);
    * ``isolation_level`` / ``isolation_levels``, when they ask for the
      level statestore runs at (READ COMMITTED on servers, SERIALIZABLE on
      SQLite); another level is refused, naming why;
    * ``mysql_sql_mode``, when strict (statestore's MariaDB sessions are);
    * ``checkin_yield`` false (true asks for eventlet, which statestore
      does not run on);
    * ``max_retries`` is the backend's (:func:`validate_retries`).

    Keys TaskFlow's ``fetch`` merges in from the URI (username, password,
    hostname, port, query parameters) are accepted; query parameters that
    are not conf keys stay in the URL for the driver. Any other key raises
    ValueError naming it.
    """
    connection = conf.get("connection")
    if not isinstance(connection, str) or not connection.startswith(PREFIX):
        raise ValueError(f"statestore TaskFlow backend: connection must start with {PREFIX!r}, got {connection!r}")
    try:
        url = make_url(connection[len(PREFIX) :])
    except ArgumentError as error:
        raise ValueError(f"statestore TaskFlow backend: not a database URL: {connection!r}") from error
    backend = url.get_backend_name()
    sqlite = backend == "sqlite"
    options: dict[str, Any] = {}
    consumed: set[str] = set()
    for key, value in conf.items():
        if key in _FROM_URI:
            continue
        if key in ("echo", "log_statements"):
            options["echo"] = options.get("echo", False) or _flag(value)
        elif key == "isolation_level":
            _isolation(key, value, backend)
        elif key == "isolation_levels":
            if not isinstance(value, dict):
                raise ValueError(f"statestore TaskFlow backend: isolation_levels must be a dict, got {value!r}")
            for driver, level in value.items():
                if str(driver).split("+")[0] == backend:
                    _isolation(f"isolation_levels[{driver!r}]", level, backend)
        elif key == "engine_args":
            options.update(_engine_args(value, sqlite))
        elif key == "checkout_ping":
            if _flag(value) and not sqlite:
                options["pre_ping"] = True
        elif key == "checkin_yield":
            if _flag(value):
                raise ValueError(
                    "statestore TaskFlow backend: checkin_yield=true is not supported "
                    "(it yields eventlet's green threads; statestore does not run on eventlet)"
                )
        elif key == "mysql_sql_mode":
            if backend in ("mysql", "mariadb"):
                _sql_mode(value)
        elif key == "max_retries":
            validate_retries(conf)
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
