"""Every table of statestore, registered on one metadata (for alembic and DDL)."""

from __future__ import annotations

from statestore.core.base import Base
from statestore.flows.tables import AtomDetailRow, FlowDetailRow, LogBookRow

__all__ = ["AtomDetailRow", "Base", "FlowDetailRow", "LogBookRow", "metadata"]

metadata = Base.metadata
