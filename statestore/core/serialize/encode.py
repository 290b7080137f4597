"""Records → JSON-ready data (:func:`to_data`)."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from enum import Enum
from typing import Any, NoReturn, cast
from uuid import UUID

from statestore.core.serialize.paths import BadValue, show, whole_minutes
from statestore.core.types import JSONValue

_Encoder = Callable[[Any], JSONValue]


def to_data(record: object) -> JSONValue:
    """Turn a record into plain data that ``json.dumps(..., allow_nan=False)`` accepts.

    Fields become dict keys (``init=False`` fields too: they are part of what
    the record shows; properties are not fields and are left out). Values are
    converted by what they are, so a record of any shape works: UUIDs become
    their canonical string, datetimes ISO 8601 with their offset (in UTC if
    the offset is not whole minutes, as RFC 3339 requires), dates and times
    ISO 8601, enums their value, tuples and lists lists, sets and frozensets
    sorted lists, nested dataclasses dicts. JSON values pass unchanged, so
    metadata keeps its nested dicts, lists and floats.

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
            field path, e.g. ``"Job.metadata['ratio']: nan is not …"``.
    """
    if isinstance(record, type) or not dataclasses.is_dataclass(record):
        raise TypeError(f"to_data takes a dataclass instance, got {type(record).__name__}")
    try:
        return _encode(record)
    except BadValue as bad:
        raise bad.invalid_input(type(record).__name__) from bad.__cause__


_ENCODERS: dict[type, _Encoder] = {}
"""The encoder of each type met so far: one dict lookup per value instead of
a chain of isinstance checks."""


def _encode(value: object) -> JSONValue:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    encoder = _ENCODERS.get(kind)
    if encoder is None:
        encoder = _ENCODERS[kind] = _encoder_for(kind)
    return encoder(value)


def _encoder_for(kind: type) -> _Encoder:
    if issubclass(kind, Enum):  # before str and int: StrEnum and IntEnum are both
        return lambda value: _encode(value.value)
    if issubclass(kind, str):
        return str
    if issubclass(kind, int):
        return int
    if issubclass(kind, float):
        return _encode_float
    if dataclasses.is_dataclass(kind):
        return _record_encoder(kind)
    if issubclass(kind, Mapping):
        return _encode_mapping
    if issubclass(kind, (list, tuple)):
        return _encode_sequence
    if issubclass(kind, (set, frozenset)):
        return _encode_set
    if issubclass(kind, UUID):
        return str
    if issubclass(kind, datetime):  # before date: a datetime is a date
        return _encode_datetime
    if issubclass(kind, time):
        return _encode_time
    if issubclass(kind, date):
        return date.isoformat
    return _unrepresentable


def _unrepresentable(value: object) -> NoReturn:
    raise BadValue(f"{type(value).__name__} is not representable in JSON")


def _encode_float(value: float) -> float:
    if not math.isfinite(value):
        raise BadValue(f"{value!r} is not representable in JSON")
    return float(value)


def _record_encoder(cls: type) -> _Encoder:
    steps = tuple(
        (field.name, f".{field.name}", _encode_references if field.metadata.get("references") else _encode)
        for field in dataclasses.fields(cls)
    )

    def encode(record: object) -> dict[str, JSONValue]:
        encoded: dict[str, JSONValue] = {}
        for name, step, encode_value in steps:
            try:
                encoded[name] = encode_value(getattr(record, name))
            except BadValue as bad:
                bad.at(step)
                raise
        return encoded

    return encode


def _encode_references(value: object) -> JSONValue:
    """A field whose records are references (``metadata={"references": True}``):
    each record in it is written as its uuid, not as a copy of it, so a long
    chain of tasks given as each other's dependencies stays small."""
    if isinstance(value, (list, tuple)):
        return [str(cast(Any, item).uuid) if dataclasses.is_dataclass(item) else _encode(item) for item in value]
    return _encode(value)


def _encode_sequence(value: list[object] | tuple[object, ...]) -> list[JSONValue]:
    encoded: list[JSONValue] = []
    append = encoded.append
    for index, item in enumerate(value):
        try:
            append(_encode(item))
        except BadValue as bad:
            bad.at(f"[{index}]")
            raise
    return encoded


def _encode_set(value: set[object] | frozenset[object]) -> list[JSONValue]:
    """A set's items in a stable order: natural when they compare, else by their JSON text."""
    items = _encode_sequence(list(value))
    try:
        return sorted(items)
    except TypeError:
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))


def _encode_mapping(value: Mapping[object, object]) -> dict[str, JSONValue]:
    encoded: dict[str, JSONValue] = {}
    converted = False  # once a key is converted, a later one may collide with it
    for key, item in value.items():
        if type(key) is str:
            name = key
        else:
            name, converted = _encode_key(key), True
        if converted and name in encoded:
            raise BadValue(f"two keys would both become {name!r}")
        try:
            encoded[name] = _encode(item)
        except BadValue as bad:
            bad.at(f"[{key!r}]")
            raise
    return encoded


def _encode_key(key: object) -> str:
    """A dict key as JSON's only kind of key; anything JSON would coerce
    differently from how :func:`from_data` reads it back is refused."""
    if isinstance(key, Enum):
        return _encode_key(key.value)
    if isinstance(key, (str, UUID)):
        return str(key)
    if isinstance(key, int) and not isinstance(key, bool):
        return str(int(key))
    raise BadValue(f"dict key {show(key)} is not a string, enum, uuid or int")


def _encode_datetime(value: datetime) -> str:
    """ISO 8601 with the record's own offset when RFC 3339 can carry it.

    An offset that is not whole minutes (a zone's historical local mean time,
    or a hand-made ``timezone``) is written as the same instant in UTC: other
    languages' parsers take only ``±HH:MM``, and Python 3.11's own parser
    reads a sub-second offset as +00:00, which would move the instant.
    """
    offset = value.utcoffset()
    if offset is None:
        raise BadValue(f"naive datetime {value.isoformat()} has no time zone")
    if not whole_minutes(offset):
        try:
            value = value.astimezone(UTC)
        except OverflowError:  # year 1 or 9999: the same instant is not a datetime in UTC
            raise BadValue(f"{value.isoformat()} cannot be written in UTC") from None
    return value.isoformat()


def _encode_time(value: time) -> str:
    if not whole_minutes(value.utcoffset()):  # a time has no date to move it to UTC with
        raise BadValue(f"time {value.isoformat()} has an offset that is not whole minutes")
    return value.isoformat()
