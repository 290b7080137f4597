"""Records ↔ JSON-ready data, driven by each dataclass's fields and type hints.

Records leave the store for queues, HTTP APIs, caches and log lines, and come
back from them. :func:`to_data` turns any record into what ``json.dumps``
accepts (strictly: no NaN, no silent ``str()``), and :func:`from_data` rebuilds
the record from that data with the record's own type hints, so that
``from_data(type(r), to_data(r)) == r``. Nothing here lists record classes: a
record added to either model serialises as soon as it exists. (One field's
hint says less than its value holds, a retry atom's results; see
:func:`_refinements`.)

Bad data is :class:`~statestore.errors.InvalidInput` naming the field path
(``"AuthoredJob.tasks[3].commands[0].name: missing"``), as every other check of
the library names the record and field. The path is collected while the error
propagates, so a value that is fine costs no path at all: a 10,000-task job
has some 300,000 values and almost never a bad one.
"""

from statestore.core.serialize.decode import from_data
from statestore.core.serialize.encode import to_data

__all__ = ["from_data", "to_data"]
