"""Checks shared by both models' codecs, run in Python before any SQL.

SQLite enforces neither VARCHAR lengths nor types, so these make every
dialect refuse the same input with the same :class:`InvalidInput`, naming the
record and field (``where``), before anything is written.

The input policy, the same on every backend:

* text (every string field, and every string and dict key inside JSON) must
  not contain NUL (U+0000) or a lone surrogate (U+D800–U+DFFF): PostgreSQL
  refuses NUL, and no backend can encode a surrogate as UTF-8;
* JSON values are None, bools, ints in the signed 64-bit range, finite
  floats, strings, lists (tuples become lists) and dicts with string keys,
  nested at most :data:`MAX_JSON_DEPTH` lists and dicts deep;
* datetimes are timezone-aware and their instant must exist in UTC
  (``datetime.min`` at +01:00 does not).

Error messages quote values only through :func:`shown`, which never raises,
and never quote a value that contains a lone surrogate unescaped.
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar
from uuid import UUID

from statestore.errors import InvalidInput

__all__ = [
    "JSON_INTEGERS",
    "MAX_JSON_DEPTH",
    "aware_datetime",
    "check_characters",
    "ensure_json",
    "enum_value",
    "integer",
    "json_object",
    "refused_character",
    "shown",
    "text",
    "type_name",
    "utc_datetime",
    "uuid_value",
]

E = TypeVar("E", bound=Enum)

SMALLINT = (-32768, 32767)
INTEGER = (-(2**31), 2**31 - 1)
ROW_ID = (1, 2**63 - 1)
"""The range of a BIGINT primary key."""

MAX_JSON_DEPTH = 24
"""How many lists and dicts a JSON value may nest (``[[1]]`` is 2 deep).

MariaDB refuses a JSON document nested 32 deep (its ``JSON_VALID`` check), and
the store wraps some values in up to 3 levels of its own (a retry's history
holds each failure 3 deep, a task's commands hold parameters 2 deep), so
24 keeps every stored document within every backend's limit with room to
spare, and far from Python's recursion limit."""

JSON_INTEGERS = (-(2**63), 2**63 - 1)
"""The integers JSON values may hold: the signed 64-bit range, which every
backend and most JSON readers (SQLite's and MariaDB's JSON functions, Go,
Java) keep exactly; Python would write a 5,000-digit int that it cannot read
back."""

# --------------------------------------------------------------------------- messages

_SHOWN = 64
"""About how many characters of a value an error message quotes."""


class _SafeRepr(reprlib.Repr):
    """``reprlib`` bounds the size of containers and strings and survives a
    failing ``__repr__``; ints need their own bound: on Python 3.11+ the repr
    of an int of more than 4,300 digits raises, and a long one is slow."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxstring = self.maxother = self.maxlong = _SHOWN
        self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = self.maxdeque = self.maxarray = 6
        self.maxdict = 4

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 4 * _SHOWN:
            return f"<{'negative ' if x < 0 else ''}int of {x.bit_length()} bits>"
        return super().repr_int(x, level)


_REPR = _SafeRepr()


def _printable(message: str) -> str:
    """``message`` with any lone surrogate escaped (a message carrying one
    cannot be printed or logged as UTF-8)."""
    if message.isascii():
        return message
    return message.encode("utf-8", "backslashreplace").decode("utf-8")


def type_name(value: object) -> str:
    """The name of ``value``'s type, for an error message."""
    return _printable(str(type(value).__name__))


def shown(value: object) -> str:
    """A short repr of ``value`` for an error message: at most about 64
    characters, and it never raises (a huge int, a failing ``__repr__``, a
    self-referencing list), never takes long, never carries a lone surrogate."""
    try:
        quoted = _REPR.repr(value)
        if not isinstance(quoted, str):
            raise TypeError("repr returned a non-string")
    except Exception:  # whatever __repr__ does, the message must be built
        return f"<{type_name(value)} object>"
    quoted = _printable(quoted)
    return quoted if len(quoted) <= 2 * _SHOWN else f"{quoted[:_SHOWN]}…"


# --------------------------------------------------------------------------- text

_REFUSED = re.compile("[\x00\ud800-\udfff]")
"""What no text field stores: NUL and surrogates (a str can hold one, UTF-8
cannot: paired or not, in a str each one is alone)."""


def _first_refused(value: str) -> int:
    """The index of the first refused character of ``value``, or -1."""
    if value.isascii():  # O(1) for the usual string, then one memchr
        return value.find("\x00")
    match = _REFUSED.search(value)
    return -1 if match is None else match.start()


def refused_character(value: str) -> str | None:
    """Why no backend can store ``value`` as text, or None if it can."""
    index = _first_refused(value)
    if index < 0:
        return None
    char = value[index]
    what = "NUL (U+0000)" if char == "\x00" else f"a lone surrogate (U+{ord(char):04X})"
    return f"contains {what} at index {index}; NUL and lone surrogates are refused in text"


def check_characters(value: str, where: str) -> str:
    """``value`` if every backend can store it as text (no NUL, no lone surrogate)."""
    reason = refused_character(value)
    if reason is not None:
        raise InvalidInput(f"{where}: {reason}")
    return value


def enum_value(enum: type[E], value: object, where: str) -> E:
    """``value`` as a member of ``enum`` (members and their values are accepted)."""
    try:
        return enum(value)
    except (ValueError, TypeError):
        pass  # the message is built outside the handler: nothing of value is chained
    allowed = ", ".join(str(member.value) for member in enum)
    raise InvalidInput(f"{where}: {shown(value)} is not one of {allowed}")


def text(value: object, limit: int, where: str) -> str:
    """A string of at most ``limit`` characters, without NUL or a lone surrogate."""
    if not isinstance(value, str):
        raise InvalidInput(f"{where}: expected a string, got {type_name(value)}")
    if len(value) > limit:
        raise InvalidInput(f"{where}: {len(value)} characters, at most {limit} allowed")
    return check_characters(value, where)


def uuid_value(value: object, where: str) -> UUID:
    """A :class:`uuid.UUID`, given as one or as its string form.

    A malformed string is InvalidInput here, before any SQL: a typo must not
    look like a miss, and every backend must answer it alike.
    """
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
        raise InvalidInput(f"{where}: {shown(value)} is not a uuid")
    raise InvalidInput(f"{where}: expected a uuid.UUID or its string, got {type_name(value)}")


def integer(value: object, where: str, bounds: tuple[int, int] = INTEGER) -> int:
    """An int (not a bool) within the column's range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{where}: expected an integer, got {type_name(value)}")
    low, high = bounds
    if not low <= value <= high:
        raise InvalidInput(f"{where}: {shown(value)} is outside {low}..{high}")
    return value


def seconds(value: object, where: str, most: float) -> float:
    """A duration in seconds: an int or float (not a bool), finite, from 0
    to ``most``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{where}: expected a number of seconds, got {type_name(value)}")
    if not (isinstance(value, int) or math.isfinite(value)) or not 0 <= value <= most:
        raise InvalidInput(f"{where}: {shown(value)} is outside 0..{most:g} seconds")
    return float(value)


def aware_datetime(value: object, where: str) -> datetime:
    """A timezone-aware datetime (naive ones have no defined instant) whose
    instant exists in UTC."""
    if not isinstance(value, datetime):
        raise InvalidInput(f"{where}: expected a datetime, got {type_name(value)}")
    utc_datetime(value, where)
    return value


def utc_datetime(value: datetime, where: str) -> datetime:
    """``value``, timezone-aware, converted to UTC.

    Naive datetimes are refused (the store cannot know which zone they
    meant), and so are aware ones whose instant falls outside the years
    1–9999 in UTC (``datetime.min`` at +01:00): Python cannot even convert them.
    """
    try:
        converted = None if value.utcoffset() is None else value.astimezone(UTC)
    except (OverflowError, ValueError, TypeError):
        raise InvalidInput(
            f"{where}: {shown(value)} is outside the datetimes that exist in UTC (years 1 to 9999)"
        ) from None
    if converted is None:
        raise InvalidInput(f"{where}: naive datetime {value.isoformat()} has no time zone; pass an aware one")
    return converted


def json_object(value: object, where: str) -> dict[str, Any]:
    """A dict JSON can store unchanged."""
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{where}: expected a dict, got {type_name(value)}")
    return dict(ensure_json(dict(value), where))


# --------------------------------------------------------------------------- JSON


def ensure_json(value: Any, what: str) -> Any:
    """Return ``value`` as JSON will store it, or raise InvalidInput.

    Tuples are accepted and become lists (JSON's only sequence), so the value
    returned compares equal to what a later read gives back. Sets, bytes,
    datetimes, other objects, non-string dict keys, non-finite floats, ints
    outside :data:`JSON_INTEGERS`, strings (values or keys) with NUL or a lone
    surrogate, and values nested deeper than :data:`MAX_JSON_DEPTH` are
    rejected, because storing them would change them or fail on some backend
    (SQLite would coerce, PostgreSQL or MariaDB would refuse): ``what`` names
    the field in the error.
    """
    try:
        return _normalized_quickly(value, MAX_JSON_DEPTH)
    except _NotJSON:
        pass  # the path is built outside the handler: nothing is chained
    except RecursionError:
        pass  # a container too deep for Python itself is far too deep
    return _normalized(value, what, MAX_JSON_DEPTH)  # again, naming where it went wrong


class _NotJSON(Exception):
    pass


_LOW, _HIGH = JSON_INTEGERS
_isfinite = math.isfinite


def _normalized_quickly(value: object, levels: int) -> Any:
    """:func:`_normalized` without building a path per element (most values
    are fine, and the paths cost more than the checks). ``levels``: how many
    more lists and dicts may nest here.

    Speed matters (a 10,000-task job has some 300,000 values): the plain
    types are told by ``type(…) is``, and the leaves of a dict or list are
    checked in its loop, without a call each.
    """
    kind = type(value)
    if kind is dict or kind is list:
        if not levels:
            raise _NotJSON
        levels -= 1
        items: Any = value
        if kind is dict:
            normal: dict[str, Any] = {}
            for key, item in items.items():
                if not isinstance(key, str):
                    raise _NotJSON
                if not (key.isascii() and "\x00" not in key) and _REFUSED.search(key) is not None:
                    raise _NotJSON
                kind = type(item)
                if kind is str:
                    if not (item.isascii() and "\x00" not in item) and _REFUSED.search(item) is not None:
                        raise _NotJSON
                    normal[key] = item
                elif kind is int:
                    if not _LOW <= item <= _HIGH:
                        raise _NotJSON
                    normal[key] = item
                elif kind is float:
                    if not _isfinite(item):
                        raise _NotJSON
                    normal[key] = item
                elif item is None or kind is bool:
                    normal[key] = item
                else:
                    normal[key] = _normalized_quickly(item, levels)
            return normal
        listed: list[Any] = []
        append = listed.append
        for item in items:
            kind = type(item)
            if kind is str:
                if not (item.isascii() and "\x00" not in item) and _REFUSED.search(item) is not None:
                    raise _NotJSON
                append(item)
            elif kind is int:
                if not _LOW <= item <= _HIGH:
                    raise _NotJSON
                append(item)
            elif kind is float:
                if not _isfinite(item):
                    raise _NotJSON
                append(item)
            elif item is None or kind is bool:
                append(item)
            else:
                append(_normalized_quickly(item, levels))
        return listed
    # A scalar at the top, a tuple, or a subclass of a JSON type.
    if isinstance(value, str):
        if _first_refused(value) >= 0:
            raise _NotJSON
        return value
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if _LOW <= value <= _HIGH:
            return value
        raise _NotJSON
    if isinstance(value, float):
        if not _isfinite(value):
            raise _NotJSON
        return value
    if not levels:
        raise _NotJSON
    if isinstance(value, (list, tuple)):
        return [_normalized_quickly(item, levels - 1) for item in value]
    if isinstance(value, dict):
        return _normalized_quickly(dict(value), levels)
    raise _NotJSON


def _normalized(value: object, path: str, levels: int) -> Any:
    if isinstance(value, str):
        reason = refused_character(value)
        if reason is not None:
            raise InvalidInput(f"{path}: the string {reason}")
        return value
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if _LOW <= value <= _HIGH:
            return value
        raise InvalidInput(
            f"{path}: the integer {shown(value)} is outside the signed 64-bit range JSON values may hold"
            f" ({_LOW}..{_HIGH}); store it as a string"
        )
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"{path}: {shown(value)} is not representable in JSON")
        return value
    if isinstance(value, (list, tuple, dict)) and not levels:
        raise InvalidInput(f"{path}: nested deeper than {MAX_JSON_DEPTH} levels of lists and dicts")
    if isinstance(value, (list, tuple)):
        return [_normalized(item, f"{path}[{index}]", levels - 1) for index, item in enumerate(value)]
    if isinstance(value, dict):
        normal: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(f"{path}: dict key {shown(key)} is not a string; JSON would turn it into one")
            reason = refused_character(key)
            if reason is not None:
                raise InvalidInput(f"{path}: the dict key {shown(key)} {reason}")
            normal[key] = _normalized(item, f"{path}[{shown(key)}]", levels - 1)
        return normal
    raise InvalidInput(f"{path}: {type_name(value)} is not representable in JSON")
