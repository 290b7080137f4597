"""Records ↔ JSON-ready data, driven by each dataclass's fields and type hints.

Records leave the store for queues, HTTP APIs, caches and log lines, and come
back from them. :func:`to_data` turns any record into what ``json.dumps``
accepts (strictly: no NaN, no silent ``str()``), and :func:`from_data` rebuilds
the record from that data with the record's own type hints, so that
``from_data(type(r), to_data(r)) == r``. Nothing here lists record classes: a
record added to either model serialises as soon as it exists.

Bad data is :class:`~statestore.errors.InvalidInput` naming the field path
(``"AuthoredJob.tasks[3].commands[0].name: missing"``), as every other check of
the library names the record and field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from enum import Enum
from functools import cache
from typing import Any, Literal, TypeVar, Union, cast, get_args, get_origin, get_type_hints
from uuid import UUID

from statestore.core.types import JSONValue
from statestore.errors import InvalidInput

__all__ = ["from_data", "to_data"]

R = TypeVar("R")

_NONE_TYPE = type(None)
_SHOWN = 64
"""How much of a bad value an error message quotes."""


class _Where:
    """A field path, rendered only when an error needs it.

    Paths are built for every element decoded but read only on failure, so
    each step is one small object instead of one formatted string.
    """

    __slots__ = ("parent", "step")

    def __init__(self, parent: _Where | None, step: str) -> None:
        self.parent = parent
        self.step = step

    def __str__(self) -> str:
        steps: list[str] = []
        where: _Where | None = self
        while where is not None:
            steps.append(where.step)
            where = where.parent
        return "".join(reversed(steps))


def _show(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= _SHOWN else f"{shown[:_SHOWN]}…"


# --------------------------------------------------------------------------- to_data


def to_data(record: object) -> JSONValue:
    """Turn a record into plain data that ``json.dumps(..., allow_nan=False)`` accepts.

    Fields become dict keys (``init=False`` fields too: they are part of what
    the record shows; properties are not fields and are left out). Values are
    converted by what they are, so a record of any shape works: UUIDs become
    their canonical string, datetimes ISO 8601 with their offset (in UTC if
    the offset is not whole minutes, as RFC 3339 requires), dates and times
    ISO 8601, enums their value, tuples and lists lists, sets and
    frozensets sorted lists, nested dataclasses dicts. JSON values pass
    unchanged, so metadata keeps its nested dicts, lists and floats.

    Args:
        record: A dataclass instance (a record of either model, or any other).

    Returns:
        A dict of the record's fields, made only of dicts with string keys,
        lists, strings, ints, finite floats, bools and None.

    Raises:
        TypeError: ``record`` is not a dataclass instance.
        InvalidInput: A value JSON cannot represent faithfully (NaN or an
            infinity, a naive datetime, bytes, an object of an unknown type,
            a dict key that is not a string, enum, uuid or int), naming the
            field path.
    """
    if isinstance(record, type) or not dataclasses.is_dataclass(record):
        raise TypeError(f"to_data takes a dataclass instance, got {type(record).__name__}")
    return _encode(record, _Where(None, type(record).__name__))


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls))


def _encode(value: object, where: _Where) -> JSONValue:
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:
        return value
    if kind is float:
        return _finite(cast(float, value), where)
    if isinstance(value, Enum):  # before str and int: StrEnum and IntEnum are both
        return _encode(value.value, where)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _finite(float(value), where)
    if isinstance(value, Mapping):
        return _encode_mapping(value, where)
    if isinstance(value, (list, tuple)):
        return [_encode(item, _Where(where, f"[{index}]")) for index, item in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        return _sorted([_encode(item, _Where(where, "[…]")) for item in value])
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: _encode(getattr(value, name), _Where(where, f".{name}")) for name in _field_names(type(value))}
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):  # before date: a datetime is a date
        return _encode_datetime(value, where)
    if isinstance(value, time) and not _whole_minutes(value.utcoffset()):
        raise InvalidInput(f"{where}: time {value.isoformat()} has an offset that is not whole minutes")
    if isinstance(value, (date, time)):
        return value.isoformat()
    raise InvalidInput(f"{where}: {type(value).__name__} is not representable in JSON")


def _encode_datetime(value: datetime, where: _Where) -> str:
    """ISO 8601 with the record's own offset when RFC 3339 can carry it.

    An offset that is not whole minutes (a zone's historical local mean time,
    or a hand-made ``timezone``) is written as the same instant in UTC: other
    languages' parsers take only ``±HH:MM``, and Python 3.11's own parser
    reads a sub-second offset as +00:00, which would move the instant.
    """
    offset = value.utcoffset()
    if offset is None:
        raise InvalidInput(f"{where}: naive datetime {value.isoformat()} has no time zone")
    if not _whole_minutes(offset):
        try:
            value = value.astimezone(UTC)
        except OverflowError:  # year 1 or 9999: the same instant is not a datetime in UTC
            raise InvalidInput(f"{where}: {value.isoformat()} cannot be written in UTC") from None
    return value.isoformat()


def _whole_minutes(offset: timedelta | None) -> bool:
    return offset is None or offset % timedelta(minutes=1) == timedelta(0)


def _finite(value: float, where: _Where) -> float:
    if not math.isfinite(value):
        raise InvalidInput(f"{where}: {value!r} is not representable in JSON")
    return value


def _encode_mapping(value: Mapping[Any, Any], where: _Where) -> dict[str, JSONValue]:
    encoded: dict[str, JSONValue] = {}
    for key, item in value.items():
        name = _encode_key(key, where)
        if name in encoded:
            raise InvalidInput(f"{where}: two keys would both become {name!r}")
        encoded[name] = _encode(item, _Where(where, f"[{key!r}]"))
    return encoded


def _encode_key(key: object, where: _Where) -> str:
    """A dict key as JSON's only kind of key; anything JSON would coerce
    differently from how :func:`from_data` reads it back is refused."""
    if type(key) is str:
        return key
    if isinstance(key, Enum):
        return _encode_key(key.value, where)
    if isinstance(key, str):
        return str(key)
    if isinstance(key, UUID):
        return str(key)
    if isinstance(key, int) and not isinstance(key, bool):
        return str(int(key))
    raise InvalidInput(f"{where}: dict key {_show(key)} is not a string, enum, uuid or int")


def _sorted(items: list[JSONValue]) -> list[JSONValue]:
    """A set's items in a stable order: natural when they compare, else by their JSON text."""
    try:
        return sorted(items)
    except TypeError:
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))


# --------------------------------------------------------------------------- from_data

_Decoder = Callable[[object, _Where], object]
_Refinement = Callable[[Mapping[str, object]], object]


def from_data(cls: type[R], data: JSONValue) -> R:
    """Rebuild a record of class ``cls`` from :func:`to_data`'s output.

    Every field is decoded by its type hint (``typing.get_type_hints``), so
    strings become UUIDs, aware datetimes and enum members again, lists become
    the tuples, sets or lists the hint names, and nested dicts become nested
    records. ``Any``-typed (JSON) fields pass through unchanged. The record is
    built with its constructor, so its ``__post_init__`` checks run;
    ``init=False`` fields are not passed (the record computes them) but are
    accepted in ``data``. A missing field that has a default takes it, so data
    written before a field was added still loads.

    Args:
        cls: The dataclass to build.
        data: What :func:`to_data` returned, possibly through
            ``json.dumps``/``json.loads``.

    Returns:
        An instance of ``cls`` equal to the record ``data`` was made from.

    Raises:
        TypeError: ``cls`` is not a dataclass, or one of its hints is of a kind
            this module cannot decode (a programming error, not bad data).
        InvalidInput: ``data`` does not fit ``cls`` — a missing or unknown
            field, a value of the wrong type, a malformed uuid, datetime or
            enum value, or a value the record's own checks refuse — naming
            the field path, e.g. ``"Job.status: 'done' is not one of …"``.
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"from_data takes a dataclass, got {cls!r}")
    return cast(R, _decode_record(cls, data, _Where(None, cls.__name__)))


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str
    decode: _Decoder
    required: bool
    refine: _Refinement | None


@dataclasses.dataclass(frozen=True, slots=True)
class _Plan:
    """How to build one dataclass: its constructor's fields, and every field name it accepts."""

    init_fields: tuple[_Field, ...]
    names: frozenset[str]


def _atom_results(data: Mapping[str, object]) -> object:
    """A retry atom's ``results`` is its history, a list of RetryAttempt;
    any other atom's is the JSON its task returned (the hint says ``Any``)."""
    from statestore.flows import AtomKind, RetryAttempt

    if data.get("kind", AtomKind.TASK.value) == AtomKind.RETRY.value:
        return list[RetryAttempt] | None
    return Any


@cache
def _refinements() -> dict[tuple[type, str], _Refinement]:
    """Fields whose hint is ``Any`` but whose value's type depends on another
    field of the same record: (class, field) → the hint for the given data.

    ``AtomDetail.results`` is the only one: its hint cannot say that a retry's
    results are RetryAttempts, so without this a retry's history would come
    back as plain dicts. Imported on first use, by the model's public name (a
    move of the class fails loudly here): core sits below the models and must
    not import one while it is itself being imported.
    """
    from statestore.flows import AtomDetail

    return {(AtomDetail, "results"): _atom_results}


@cache
def _plan(cls: type) -> _Plan:
    try:
        hints = get_type_hints(cls)
    except Exception as error:  # a hint naming something not importable
        raise TypeError(f"cannot resolve the type hints of {cls.__qualname__}: {error}") from error
    fields = dataclasses.fields(cls)
    init_fields = tuple(
        _Field(
            name=field.name,
            decode=_decoder(hints[field.name]),
            required=field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING,
            refine=_refinements().get((cls, field.name)),
        )
        for field in fields
        if field.init
    )
    return _Plan(init_fields, frozenset(field.name for field in fields))


def _decode_record(cls: type, data: object, where: _Where) -> object:
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{where}: expected an object of {cls.__name__}'s fields, got {type(data).__name__}")
    plan = _plan(cls)
    unknown = [key for key in data if key not in plan.names]
    if unknown:
        listed = ", ".join(_show(key) for key in unknown)
        raise InvalidInput(f"{where}: {cls.__name__} has no field {listed}")
    values: dict[str, object] = {}
    for field in plan.init_fields:
        if field.name in data:
            decode = field.decode if field.refine is None else _decoder(field.refine(data))
            values[field.name] = decode(data[field.name], _Where(where, f".{field.name}"))
        elif field.required:
            raise InvalidInput(f"{where}.{field.name}: missing")
    try:
        return cls(**values)
    except (InvalidInput, TypeError, ValueError) as error:  # the record's own checks (__post_init__)
        raise InvalidInput(f"{where}: {error}") from error


@cache
def _decoder(hint: object) -> _Decoder:
    """The decoder of values of type ``hint`` (built once per hint)."""
    if hint is Any or hint is object:
        return _as_is
    if hint is _NONE_TYPE or hint is None:
        return _none
    supertype = getattr(hint, "__supertype__", None)  # typing.NewType
    if supertype is not None:
        return _decoder(supertype)
    origin, args = get_origin(hint), get_args(hint)
    if origin is Union or origin is types.UnionType:
        return _union(args)
    if origin is Literal:
        return _literal(args)
    if origin is not None:
        return _generic(origin, args, hint)
    if isinstance(hint, type):
        return _plain(hint)
    raise TypeError(f"from_data cannot decode values of type {hint!r}")


def _plain(hint: type) -> _Decoder:
    if dataclasses.is_dataclass(hint):
        return lambda data, where: _decode_record(hint, data, where)
    if issubclass(hint, Enum):  # before str and int
        return _enum(hint)
    scalar = _SCALARS.get(hint)
    if scalar is not None:
        return scalar
    if hint in (list, tuple, set, frozenset, dict):
        return _generic(hint, (), hint)
    raise TypeError(f"from_data cannot decode values of type {hint.__qualname__}")


def _generic(origin: object, args: tuple[Any, ...], hint: object) -> _Decoder:
    if origin is list:
        return _sequence(list, _decoder(args[0]) if args else _as_is)
    if origin is tuple:
        if not args:
            return _sequence(tuple, _as_is)
        if len(args) == 2 and args[1] is Ellipsis:
            return _sequence(tuple, _decoder(args[0]))
        if args == ((),):  # tuple[()]: the empty tuple
            return _fixed_tuple(())
        return _fixed_tuple(tuple(_decoder(arg) for arg in args))
    if origin is set or origin is frozenset:
        build: Callable[[Any], object] = set if origin is set else frozenset
        return _sequence(build, _decoder(args[0]) if args else _as_is, sets_too=True)
    if origin is dict:
        key, value = args if args else (Any, Any)
        return _mapping(_key_decoder(key), _decoder(value))
    raise TypeError(f"from_data cannot decode values of type {hint!r}")


def _as_is(data: object, where: _Where) -> object:
    return data


def _none(data: object, where: _Where) -> None:
    if data is not None:
        raise InvalidInput(f"{where}: expected null, got {_show(data)}")


def _expected(what: str, data: object, where: _Where) -> InvalidInput:
    return InvalidInput(f"{where}: expected {what}, got {type(data).__name__} {_show(data)}")


def _str(data: object, where: _Where) -> str:
    if type(data) is str:
        return data
    if isinstance(data, str) and not isinstance(data, Enum):
        return str(data)
    raise _expected("a string", data, where)


def _int(data: object, where: _Where) -> int:
    if isinstance(data, int) and not isinstance(data, bool):
        return int(data)
    raise _expected("an integer", data, where)


def _float(data: object, where: _Where) -> float:
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        value = float(data)
        if math.isfinite(value):
            return value
    raise _expected("a finite number", data, where)


def _bool(data: object, where: _Where) -> bool:
    if data is True or data is False:
        return data
    raise _expected("true or false", data, where)


def _uuid(data: object, where: _Where) -> UUID:
    if isinstance(data, UUID):
        return data
    if isinstance(data, str):
        try:
            return UUID(data)
        except ValueError:
            raise InvalidInput(f"{where}: {_show(data)} is not a uuid") from None
    raise _expected("a uuid string", data, where)


def _datetime(data: object, where: _Where) -> datetime:
    if isinstance(data, datetime):
        value = data
    elif isinstance(data, str):
        try:
            value = datetime.fromisoformat(data)
        except ValueError:
            raise InvalidInput(f"{where}: {_show(data)} is not an ISO 8601 datetime") from None
    else:
        raise _expected("an ISO 8601 datetime string", data, where)
    if value.tzinfo is None or value.utcoffset() is None:
        # Records hold aware datetimes; a naive one names no instant.
        raise InvalidInput(f"{where}: {_show(data)} has no UTC offset")
    return value


def _date(data: object, where: _Where) -> date:
    if isinstance(data, date) and not isinstance(data, datetime):
        return data
    if isinstance(data, str):
        try:
            return date.fromisoformat(data)
        except ValueError:
            raise InvalidInput(f"{where}: {_show(data)} is not an ISO 8601 date") from None
    raise _expected("an ISO 8601 date string", data, where)


def _time(data: object, where: _Where) -> time:
    if isinstance(data, time):
        return data
    if isinstance(data, str):
        try:
            return time.fromisoformat(data)
        except ValueError:
            raise InvalidInput(f"{where}: {_show(data)} is not an ISO 8601 time") from None
    raise _expected("an ISO 8601 time string", data, where)


_SCALARS: dict[type, _Decoder] = {
    str: _str,
    int: _int,
    float: _float,
    bool: _bool,
    UUID: _uuid,
    datetime: _datetime,
    date: _date,
    time: _time,
}


def _enum(enum: type[Enum]) -> _Decoder:
    allowed = ", ".join(str(member.value) for member in enum)

    def decode(data: object, where: _Where) -> Enum:
        if isinstance(data, enum):
            return data
        if not isinstance(data, bool):  # True == 1: a bool is never an enum's value by accident
            try:
                return enum(data)
            except (ValueError, TypeError):
                pass
        raise InvalidInput(f"{where}: {_show(data)} is not one of {allowed}")

    return decode


def _union(args: tuple[Any, ...]) -> _Decoder:
    nullable = _NONE_TYPE in args
    options = [_decoder(arg) for arg in args if arg is not _NONE_TYPE]
    if len(options) == 1:
        (only,) = options

        def optional(data: object, where: _Where) -> object:
            if data is None and nullable:
                return None
            return only(data, where)  # its own error names the deepest field

        return optional
    names = " | ".join(getattr(arg, "__name__", repr(arg)) for arg in args)

    def first_that_fits(data: object, where: _Where) -> object:
        if data is None and nullable:
            return None
        for option in options:  # in the order the hint lists them
            try:
                return option(data, where)
            except InvalidInput:
                continue
        raise InvalidInput(f"{where}: {_show(data)} is none of {names}")

    return first_that_fits


def _literal(args: tuple[Any, ...]) -> _Decoder:
    def decode(data: object, where: _Where) -> object:
        for allowed in args:
            if data == allowed and isinstance(data, bool) == isinstance(allowed, bool):
                return allowed
        raise InvalidInput(f"{where}: {_show(data)} is not one of {', '.join(map(repr, args))}")

    return decode


def _sequence(build: Callable[[Any], object], item: _Decoder, *, sets_too: bool = False) -> _Decoder:
    accepted: tuple[type, ...] = (list, tuple, set, frozenset) if sets_too else (list, tuple)

    def decode(data: object, where: _Where) -> object:
        if not isinstance(data, accepted):
            raise _expected("a list", data, where)
        elements = cast("list[object]", data)
        if item is _as_is:
            return build(elements)
        return build(item(element, _Where(where, f"[{index}]")) for index, element in enumerate(elements))

    return decode


def _fixed_tuple(items: tuple[_Decoder, ...]) -> _Decoder:
    def decode(data: object, where: _Where) -> tuple[object, ...]:
        if not isinstance(data, (list, tuple)):
            raise _expected("a list", data, where)
        if len(data) != len(items):
            raise InvalidInput(f"{where}: expected {len(items)} items, got {len(data)}")
        pairs = enumerate(zip(items, data, strict=True))
        return tuple(item(element, _Where(where, f"[{index}]")) for index, (item, element) in pairs)

    return decode


def _key_decoder(hint: object) -> _Decoder:
    """Keys arrive as JSON strings; decode them back to the hint's key type."""
    if hint is Any or hint is object:
        return _as_is
    if hint is str:
        return _str
    if hint is UUID:
        return _uuid
    if hint is int:
        return _int_key
    if isinstance(hint, type) and issubclass(hint, Enum):
        return _enum_key(hint)
    raise TypeError(f"from_data cannot decode dict keys of type {hint!r}")


def _int_key(data: object, where: _Where) -> int:
    if isinstance(data, str) and data.lstrip("-").isdigit() and data.isascii():
        return int(data)
    return _int(data, where)


def _enum_key(enum: type[Enum]) -> _Decoder:
    by_value = _enum(enum)

    def decode(data: object, where: _Where) -> object:
        try:
            return by_value(data, where)
        except InvalidInput:
            if isinstance(data, str) and data.lstrip("-").isdigit() and data.isascii():  # an int value, as a key
                return by_value(int(data), where)
            raise

    return decode


def _mapping(key: _Decoder, value: _Decoder) -> _Decoder:
    def decode(data: object, where: _Where) -> dict[object, object]:
        if not isinstance(data, Mapping):
            raise _expected("an object", data, where)
        if key is _str and value is _as_is and all(type(name) is str for name in data):
            return dict(data)  # a JSON object: the common case, checked without building paths
        decoded: dict[object, object] = {}
        for name, item in data.items():
            step = _Where(where, f"[{name!r}]")
            decoded[key(name, step)] = value(item, step)
        return decoded

    return decode
