"""Identifiers other systems give flow records, held beside statestore's uuids.

TaskFlow identifies logbooks, flow details and atom details by any string:
its own tests use ``'42'`` and users name logbooks ``nightly-2024-06-01``.
statestore's records keep the shared ``uuid`` column, so such a string maps
to a uuid by a fixed rule and is stored as given in ``foreign_id``:

* a uuid in canonical form (lowercase 8-4-4-4-12 hex, what TaskFlow
  generates) *is* the uuid, and no foreign id is stored;
* any other string maps to ``uuid5(FOREIGN_NAMESPACE, string)``, and the
  string is kept in ``foreign_id`` so reads can hand it back exactly.

The rule needs no lookup table: finding ``'42'`` is finding its uuid5. Two
spellings of one uuid (``'ABC…'`` and ``'abc…'``) are two identifiers, as
they are to TaskFlow, which compares them as strings.
"""

from __future__ import annotations

from uuid import UUID, uuid5

__all__ = ["FOREIGN_ID_LENGTH", "FOREIGN_NAMESPACE", "foreign_identity", "foreign_uuid"]

FOREIGN_NAMESPACE = UUID("0b6c1f5e-8d3a-5c1e-9f47-2a6e4d8b7c10")
"""The uuid5 namespace of foreign identifiers (fixed: stored uuids depend on it)."""

FOREIGN_ID_LENGTH = 4096
"""The longest foreign identifier stored, in characters (TaskFlow's SQL
backend allows 64 on PostgreSQL and MySQL and any length on SQLite)."""


def _canonical(identifier: str) -> UUID | None:
    if len(identifier) != 36:
        return None
    try:
        parsed = UUID(identifier)
    except ValueError:
        return None
    return parsed if str(parsed) == identifier else None


def foreign_uuid(identifier: str) -> UUID:
    """The uuid statestore stores a record identified by ``identifier`` under."""
    canonical = _canonical(identifier)
    return canonical if canonical is not None else uuid5(FOREIGN_NAMESPACE, identifier)


def foreign_identity(identifier: str) -> tuple[UUID, str | None]:
    """``(uuid, foreign_id)`` of a record identified by ``identifier``:
    ``foreign_id`` is None when the identifier is the uuid itself."""
    canonical = _canonical(identifier)
    if canonical is not None:
        return canonical, None
    return uuid5(FOREIGN_NAMESPACE, identifier), identifier
