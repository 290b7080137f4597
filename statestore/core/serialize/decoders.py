"""Decoders of single values and of containers, one per kind of type hint."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from enum import Enum
from typing import Any, cast
from uuid import UUID

from statestore.core.serialize.paths import BadValue, show

Decoder = Callable[[Any], object]


def as_is(data: object) -> object:
    return data


def decode_none(data: object) -> None:
    if data is not None:
        raise BadValue(f"expected null, got {show(data)}")


def expected(what: str, data: object) -> BadValue:
    return BadValue(f"expected {what}, got {type(data).__name__} {show(data)}")


def decode_str(data: object) -> str:
    if type(data) is str:
        return data
    if isinstance(data, str) and not isinstance(data, Enum):
        return str(data)
    raise expected("a string", data)


def decode_int(data: object) -> int:
    if isinstance(data, int) and not isinstance(data, bool):
        return int(data)
    raise expected("an integer", data)


def decode_float(data: object) -> float:
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        value = float(data)
        if math.isfinite(value):
            return value
    raise expected("a finite number", data)


def decode_bool(data: object) -> bool:
    if data is True or data is False:
        return data
    raise expected("true or false", data)


def decode_uuid(data: object) -> UUID:
    if isinstance(data, str):
        try:
            return UUID(data)
        except ValueError:
            raise BadValue(f"{show(data)} is not a uuid") from None
    if isinstance(data, UUID):
        return data
    raise expected("a uuid string", data)


def decode_datetime(data: object) -> datetime:
    if isinstance(data, str):
        try:
            value = datetime.fromisoformat(data)
        except ValueError:
            raise BadValue(f"{show(data)} is not an ISO 8601 datetime") from None
    elif isinstance(data, datetime):
        value = data
    else:
        raise expected("an ISO 8601 datetime string", data)
    if value.utcoffset() is None:  # records hold aware datetimes; a naive one names no instant
        raise BadValue(f"{show(data)} has no UTC offset")
    return value


def decode_date(data: object) -> date:
    if isinstance(data, str):
        try:
            return date.fromisoformat(data)
        except ValueError:
            raise BadValue(f"{show(data)} is not an ISO 8601 date") from None
    if isinstance(data, date) and not isinstance(data, datetime):
        return data
    raise expected("an ISO 8601 date string", data)


def decode_time(data: object) -> time:
    if isinstance(data, str):
        try:
            return time.fromisoformat(data)
        except ValueError:
            raise BadValue(f"{show(data)} is not an ISO 8601 time") from None
    if isinstance(data, time):
        return data
    raise expected("an ISO 8601 time string", data)


SCALARS: dict[type, Decoder] = {
    str: decode_str,
    int: decode_int,
    float: decode_float,
    bool: decode_bool,
    UUID: decode_uuid,
    datetime: decode_datetime,
    date: decode_date,
    time: decode_time,
}


def enum_decoder(enum: type[Enum]) -> Decoder:
    allowed = ", ".join(str(member.value) for member in enum)
    by_value = enum._value2member_map_  # what enum(value) looks in first, without its call overhead

    def decode(data: object) -> Enum:
        if isinstance(data, enum):
            return data
        if not isinstance(data, bool):  # True == 1: a bool is never an enum's value by accident
            try:
                member = by_value.get(data)
                return member if member is not None else enum(data)  # enum() also asks _missing_
            except (ValueError, TypeError):  # not a value, or unhashable (a list, a dict)
                pass
        raise BadValue(f"{show(data)} is not one of {allowed}")

    return decode


def literal_decoder(args: tuple[Any, ...]) -> Decoder:
    def decode(data: object) -> object:
        for allowed in args:
            if data == allowed and isinstance(data, bool) == isinstance(allowed, bool):
                return allowed
        raise BadValue(f"{show(data)} is not one of {', '.join(map(repr, args))}")

    return decode


def sequence_decoder(build: Callable[[Any], object], item: Decoder, *, sets_too: bool = False) -> Decoder:
    accepted: tuple[type, ...] = (list, tuple, set, frozenset) if sets_too else (list, tuple)

    def decode(data: object) -> object:
        if not isinstance(data, accepted):
            raise expected("a list", data)
        elements = cast("list[object]", data)
        if item is as_is:
            return build(elements)
        decoded: list[object] = []
        append = decoded.append
        for index, element in enumerate(elements):
            try:
                append(item(element))
            except BadValue as bad:
                bad.at(f"[{index}]")
                raise
        return decoded if build is list else build(decoded)

    return decode


def fixed_tuple_decoder(items: tuple[Decoder, ...]) -> Decoder:
    def decode(data: object) -> tuple[object, ...]:
        if not isinstance(data, (list, tuple)):
            raise expected("a list", data)
        if len(data) != len(items):
            raise BadValue(f"expected {len(items)} items, got {len(data)}")
        decoded: list[object] = []
        for index, (item, element) in enumerate(zip(items, data, strict=True)):
            try:
                decoded.append(item(element))
            except BadValue as bad:
                bad.at(f"[{index}]")
                raise
        return tuple(decoded)

    return decode


def key_decoder(hint: object) -> Decoder:
    """Keys arrive as JSON strings; decode them back to the hint's key type."""
    if hint is Any or hint is object:
        return as_is
    if hint is str:
        return decode_str
    if hint is UUID:
        return decode_uuid
    if hint is int:
        return _int_key
    if isinstance(hint, type) and issubclass(hint, Enum):
        return _enum_key(hint)
    raise TypeError(f"from_data cannot decode dict keys of type {hint!r}")


def _is_int_text(data: object) -> bool:
    return isinstance(data, str) and data.isascii() and data.removeprefix("-").isdigit()


def _int_key(data: object) -> int:
    return int(cast(str, data)) if _is_int_text(data) else decode_int(data)


def _enum_key(enum: type[Enum]) -> Decoder:
    by_value = enum_decoder(enum)

    def decode(data: object) -> object:
        try:
            return by_value(data)
        except BadValue:
            if _is_int_text(data):  # an int-valued member, written as a key
                return by_value(int(cast(str, data)))
            raise

    return decode


def mapping_decoder(key: Decoder, value: Decoder) -> Decoder:
    def decode(data: object) -> dict[object, object]:
        if type(data) is not dict and not isinstance(data, Mapping):
            raise expected("an object", data)
        if key is decode_str and value is as_is and all(type(name) is str for name in data):
            return dict(data)  # a JSON object: the common case
        decoded: dict[object, object] = {}
        for name, item in data.items():
            try:
                decoded[key(name)] = value(item)
            except BadValue as bad:
                bad.at(f"[{name!r}]")
                raise
        return decoded

    return decode
