"""The one error tree every statestore call raises from.

Driver errors are classified once, by driver error code (never by message
text), in :mod:`statestore.core.classify`, and re-raised as one of these with
the driver error as ``__cause__``.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "Busy",
    "Conflict",
    "CursorExpired",
    "InvalidInput",
    "InvalidReference",
    "NotFound",
    "SchemaOutOfDate",
    "StoreError",
    "TransactionConflict",
    "TransferMismatch",
    "Unavailable",
]


class StoreError(Exception):
    """Root of every error statestore raises on purpose."""


class NotFound(StoreError):
    """The record asked for does not exist."""


class CursorExpired(NotFound):
    """A change-feed cursor is older than the feed's retention: the changes
    after it were purged, so reading on from it would skip some."""


class Conflict(StoreError):
    """The write contradicts what is stored (or what another writer did)."""


class AlreadyExists(Conflict):
    """A record with the same unique key (uuid, name, …) is already stored."""


class TransactionConflict(Conflict):
    """The database aborted the transaction (deadlock, serialization failure).

    Nothing was written; the whole unit of work may be retried as it was.
    """


class InvalidInput(StoreError):
    """A value is malformed, out of range, too long, or not representable."""


class InvalidReference(InvalidInput):
    """A value refers to a record that does not exist (a foreign key)."""


class TransferMismatch(StoreError):
    """A copy of logbooks between TaskFlow and statestore, read back from
    both sides, does not match its source (a count or a checksum differs).

    The message names the first logbook, flow detail or atom that differs
    and which of its fields do.
    """


class SchemaOutOfDate(StoreError):
    """The database schema is not the one this version of statestore expects.

    Run ``statestore upgrade`` (or ``await store.upgrade()``), or open the
    store with ``create=True``.
    """


class Unavailable(StoreError):
    """The database cannot be reached, opened or written right now."""


class Busy(Unavailable):
    """Another writer held the lock for longer than the configured timeout."""
