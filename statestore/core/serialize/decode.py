"""JSON-ready data → records (:func:`from_data`): a decoding plan per dataclass, built from its type hints."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
from enum import Enum
from functools import cache
from typing import Any, Literal, TypeVar, Union, cast, get_args, get_origin, get_type_hints

from statestore.core.serialize.decoders import (
    SCALARS,
    Decoder,
    as_is,
    decode_none,
    enum_decoder,
    fixed_tuple_decoder,
    key_decoder,
    literal_decoder,
    mapping_decoder,
    sequence_decoder,
)
from statestore.core.serialize.paths import NONE_TYPE, BadValue, show
from statestore.core.types import JSONValue
from statestore.errors import InvalidInput

R = TypeVar("R")


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
    written before a field was added still loads; an unknown field is refused.

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
    try:
        return cast(R, _decode_record(cls, data))
    except BadValue as bad:
        raise bad.invalid_input(cls.__name__) from bad.__cause__


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str
    step: str
    decode: Decoder
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
            step=f".{field.name}",
            decode=_decoder(hints[field.name]),
            required=field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING,
            refine=_refinements().get((cls, field.name)),
        )
        for field in fields
        if field.init
    )
    return _Plan(init_fields, frozenset(field.name for field in fields))


_ABSENT = object()


def _decode_record(cls: type, data: object) -> object:
    if type(data) is not dict and not isinstance(data, Mapping):  # an ABC's isinstance is slow
        raise BadValue(f"expected an object of {cls.__name__}'s fields, got {type(data).__name__}")
    plan = _plan(cls)
    unknown = data.keys() - plan.names
    if unknown:
        raise BadValue(f"{cls.__name__} has no field {', '.join(sorted(map(show, unknown)))}")
    values: dict[str, object] = {}
    for field in plan.init_fields:
        value = data.get(field.name, _ABSENT)
        if value is _ABSENT:
            if field.required:
                raise BadValue("missing").at(field.step)
            continue
        decode = field.decode if field.refine is None else _decoder(field.refine(data))
        try:
            values[field.name] = decode(value)
        except BadValue as bad:
            bad.at(field.step)
            raise
    try:
        return cls(**values)
    except (InvalidInput, TypeError, ValueError) as error:  # the record's own checks (__post_init__)
        raise BadValue(str(error)) from error


@cache
def _decoder(hint: object) -> Decoder:
    """The decoder of values of type ``hint`` (built once per hint)."""
    if hint is Any or hint is object:
        return as_is
    if hint is NONE_TYPE or hint is None:
        return decode_none
    supertype = getattr(hint, "__supertype__", None)  # typing.NewType
    if supertype is not None:
        return _decoder(supertype)
    origin, args = get_origin(hint), get_args(hint)
    if origin is Union or origin is types.UnionType:
        return _union(args)
    if origin is Literal:
        return literal_decoder(args)
    if origin is not None:
        return _generic(origin, args, hint)
    if isinstance(hint, type):
        return _plain(hint)
    raise TypeError(f"from_data cannot decode values of type {hint!r}")


def _plain(hint: type) -> Decoder:
    if dataclasses.is_dataclass(hint):
        return lambda data: _decode_record(hint, data)
    if issubclass(hint, Enum):  # before str and int
        return enum_decoder(hint)
    scalar = SCALARS.get(hint)
    if scalar is not None:
        return scalar
    if hint in (list, tuple, set, frozenset, dict):
        return _generic(hint, (), hint)
    raise TypeError(f"from_data cannot decode values of type {hint.__qualname__}")


def _generic(origin: object, args: tuple[Any, ...], hint: object) -> Decoder:
    if origin is list:
        return sequence_decoder(list, _decoder(args[0]) if args else as_is)
    if origin is tuple:
        if not args:
            return sequence_decoder(tuple, as_is)
        if len(args) == 2 and args[1] is Ellipsis:
            return sequence_decoder(tuple, _decoder(args[0]))
        if args == ((),):  # tuple[()]: the empty tuple
            return fixed_tuple_decoder(())
        return fixed_tuple_decoder(tuple(_decoder(arg) for arg in args))
    if origin is set or origin is frozenset:
        build: Callable[[Any], object] = set if origin is set else frozenset
        return sequence_decoder(build, _decoder(args[0]) if args else as_is, sets_too=True)
    if origin is dict:
        key, value = args if args else (Any, Any)
        return mapping_decoder(key_decoder(key), _decoder(value))
    raise TypeError(f"from_data cannot decode values of type {hint!r}")


def _union(args: tuple[Any, ...]) -> Decoder:
    nullable = NONE_TYPE in args
    options = [_decoder(arg) for arg in args if arg is not NONE_TYPE]
    if len(options) == 1:
        (only,) = options

        def optional(data: object) -> object:
            if data is None and nullable:
                return None
            return only(data)  # its own error names the deepest field

        return optional
    names = " | ".join(getattr(arg, "__name__", repr(arg)) for arg in args)

    def first_that_fits(data: object) -> object:
        if data is None and nullable:
            return None
        inside: BadValue | None = None
        for option in options:  # in the order the hint lists them
            try:
                return option(data)
            except BadValue as bad:
                if bad.steps and inside is None:  # the option took the shape; something in it is wrong
                    inside = bad
        if inside is not None:
            raise inside
        raise BadValue(f"{show(data)} is none of {names}")

    return first_that_fits
