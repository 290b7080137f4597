"""A request's parameters that the library does not check as they come: a
page size from the query's text, a uuid from the path. Refused with
InvalidInput (400) naming the parameter before anything is read."""

from __future__ import annotations

from uuid import UUID

from starlette.requests import Request

from statestore.core.validate import shown, uuid_value
from statestore.errors import InvalidInput

__all__ = ["limit_of", "uuid_of"]

MAX_PAGE = 500
"""The most rows one page of a listing shows."""


def limit_of(request: Request, default: int) -> int:
    """The ``limit`` parameter: a page size from 1 to :data:`MAX_PAGE`."""
    value = request.query_params.get("limit")
    if value is None or value == "":
        return default
    if not (value.isascii() and value.isdigit() and len(value) <= 3) or not 1 <= int(value) <= MAX_PAGE:
        raise InvalidInput(f"limit: {shown(value)} is not a whole number from 1 to {MAX_PAGE}")
    return int(value)


def uuid_of(request: Request, name: str) -> UUID:
    """The path parameter ``name`` as a uuid."""
    return uuid_value(request.path_params[name], name)
