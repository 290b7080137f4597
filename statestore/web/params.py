"""A request's query parameters as the library's arguments: statuses,
keyset cursors and page sizes, refused with InvalidInput (400) naming the
parameter before anything is read."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar
from uuid import UUID

from starlette.requests import Request

from statestore.core.validate import shown, uuid_value
from statestore.errors import InvalidInput

__all__ = ["after_of", "limit_of", "statuses_of", "uuid_of"]

E = TypeVar("E", bound=StrEnum)

MAX_PAGE = 500
"""The most rows one page of a listing shows."""


def statuses_of(request: Request, kind: type[E]) -> list[E] | None:
    """The repeated ``status`` parameter as statuses of ``kind``; None for all."""
    values = [value for value in request.query_params.getlist("status") if value]
    try:
        return [kind(value) for value in values] or None
    except ValueError:
        bad = next(value for value in values if value not in set(kind))
        raise InvalidInput(f"status: {shown(bad)} is not one of {', '.join(kind)}") from None


def limit_of(request: Request, default: int) -> int:
    """The ``limit`` parameter: a page size from 1 to :data:`MAX_PAGE`."""
    value = request.query_params.get("limit")
    if value is None or value == "":
        return default
    if not (value.isascii() and value.isdigit() and len(value) <= 3) or not 1 <= int(value) <= MAX_PAGE:
        raise InvalidInput(f"limit: {shown(value)} is not a whole number from 1 to {MAX_PAGE}")
    return int(value)


def after_of(request: Request) -> UUID | None:
    """The ``after`` parameter: the uuid of the previous page's last row."""
    value = request.query_params.get("after")
    return None if not value else uuid_value(value, "after")


def uuid_of(request: Request, name: str) -> UUID:
    """The path parameter ``name`` as a uuid."""
    return uuid_value(request.path_params[name], name)
