"""The change feed: every change worth watching, in commit order.

* :mod:`.tables` — the ``changes`` table and the feed's one-row bookkeeping;
* :mod:`.kinds` and :mod:`.records` — what a change is;
* :mod:`.recording` — how writers append changes, in their own transaction;
* :mod:`.feed` — ``store.changes()``: read in commit order, then follow;
* :mod:`.retention` — the housekeeper's purge of old changes.
"""

from statestore.changes.kinds import ChangeKind
from statestore.changes.records import Change

__all__ = ["Change", "ChangeKind"]
