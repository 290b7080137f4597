"""The declarative base and the shared base columns of every entity table."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, ClassVar
from uuid import UUID, uuid4

from sqlalchemy import BigInteger, Integer, MetaData, Uuid
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from statestore.core.types import JSONType, UTCDateTime, utcnow

__all__ = ["NAMING_CONVENTION", "Base", "EntityColumns", "IdType", "one_of"]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so migrations can name what they alter."""

IdType = BigInteger().with_variant(Integer(), "sqlite")
"""BIGINT primary keys; on SQLite INTEGER, the only type that aliases the rowid."""


def one_of(column: str, values: type[Enum]) -> str:
    """A CHECK expression limiting ``column`` to the values of an enum, so
    every dialect refuses what the codecs would refuse."""
    quoted = ", ".join(f"'{member.value}'" for member in values)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    """The one declarative base of both models (one MetaData, one schema)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        UUID: Uuid(),
        dict[str, Any]: JSONType,
    }


def _created_at_of_row(context: DefaultExecutionContext) -> datetime:
    """A new row's ``updated_at`` equals its ``created_at``: it has not been updated."""
    created_at = context.get_current_parameters().get("created_at")  # type: ignore[no-untyped-call]
    return created_at if isinstance(created_at, datetime) else utcnow()


class EntityColumns:
    """``id``, ``uuid``, ``created_at``, ``updated_at`` on every entity table.

    Values are computed in Python (not server defaults) so an INSERT never has
    to be followed by a read to learn them, and so Core statements get them
    too: ``default``/``onupdate`` apply to ``insert()``/``update()`` alike.
    """

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    uuid: Mapped[UUID] = mapped_column(Uuid(), unique=True, default=uuid4)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_created_at_of_row, onupdate=utcnow)
