"""statestore: the state of workflow systems in one relational schema.

Open a store with :func:`open_store`; see the README for a tour.
"""

from statestore.changes import Change, ChangeKind
from statestore.core.serialize import from_data, to_data
from statestore.errors import (
    AlreadyExists,
    Busy,
    Conflict,
    CursorExpired,
    InvalidInput,
    InvalidReference,
    NotFound,
    SchemaOutOfDate,
    StoreError,
    TransactionConflict,
    TransferMismatch,
    Unavailable,
)
from statestore.schema.check import CheckReport
from statestore.store import Store, WalCheckpoint, open_store

__all__ = [
    "AlreadyExists",
    "Busy",
    "Change",
    "ChangeKind",
    "CheckReport",
    "Conflict",
    "CursorExpired",
    "InvalidInput",
    "InvalidReference",
    "NotFound",
    "SchemaOutOfDate",
    "Store",
    "StoreError",
    "TransactionConflict",
    "TransferMismatch",
    "Unavailable",
    "WalCheckpoint",
    "from_data",
    "open_store",
    "to_data",
]
