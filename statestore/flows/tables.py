"""Tables of the flow model (logbooks → flow details → atom details) and the
Core handles the units build their statements on."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CheckConstraint, ForeignKey, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from statestore.core.base import Base, EntityColumns, IdType, one_of
from statestore.core.types import JSONType
from statestore.flows.states import AtomKind, AtomState, FlowState, Intention

__all__ = [
    "ATOMS",
    "BOOKS",
    "FLOWS",
    "NAME_LENGTH",
    "VERSION_LENGTH",
    "AtomDetailRow",
    "FlowDetailRow",
    "LogBookRow",
]

NAME_LENGTH = 255
VERSION_LENGTH = 64
STATE_LENGTH = 16


class LogBookRow(EntityColumns, Base):
    """A logbook: a named container of flow details."""

    __tablename__ = "log_books"  # not "logbooks": TaskFlow's own SQL backend may share the database

    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType)
    foreign_id: Mapped[str | None] = mapped_column(Text)
    """The identifier another system gave it, when not a uuid (statestore.flows.foreign_ids)."""


class FlowDetailRow(EntityColumns, Base):
    """The persisted state of one flow run inside a logbook."""

    __tablename__ = "flow_details"
    __table_args__ = (CheckConstraint(one_of("state", FlowState), name="state"),)

    logbook_id: Mapped[int] = mapped_column(IdType, ForeignKey("log_books.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    state: Mapped[str | None] = mapped_column(String(STATE_LENGTH))
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType)
    foreign_id: Mapped[str | None] = mapped_column(Text)


class AtomDetailRow(EntityColumns, Base):
    """The persisted state of one task or retry of a flow detail."""

    __tablename__ = "atom_details"
    __table_args__ = (
        CheckConstraint(one_of("kind", AtomKind), name="kind"),
        CheckConstraint(one_of("state", AtomState), name="state"),
        CheckConstraint(one_of("intention", Intention), name="intention"),
    )

    flow_detail_id: Mapped[int] = mapped_column(IdType, ForeignKey("flow_details.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    kind: Mapped[str] = mapped_column(String(8))
    state: Mapped[str | None] = mapped_column(String(STATE_LENGTH))
    intention: Mapped[str] = mapped_column(String(STATE_LENGTH))
    results: Mapped[Any | None] = mapped_column(JSONType)
    failure: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    revert_results: Mapped[Any | None] = mapped_column(JSONType)
    revert_failure: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    version: Mapped[str | None] = mapped_column(String(VERSION_LENGTH))
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType)
    foreign_id: Mapped[str | None] = mapped_column(Text)


BOOKS = cast(Table, LogBookRow.__table__)
FLOWS = cast(Table, FlowDetailRow.__table__)
ATOMS = cast(Table, AtomDetailRow.__table__)
