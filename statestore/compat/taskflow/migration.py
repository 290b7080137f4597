"""Moving logbooks between any TaskFlow persistence backend and a statestore store.

:func:`import_taskflow` copies every logbook of a TaskFlow backend (``dir:``,
TaskFlow's SQL backends, ``memory://``, ZooKeeper, or any backend object)
into a statestore store; :func:`export_taskflow` copies a store's logbooks
out to one. Both ends are driven through TaskFlow's ``Connection`` API — the
store through :class:`~statestore.compat.taskflow.StatestoreBackend` — so
whatever the backend keeps (identifiers, book timestamps, meta, states,
intentions, results, failures, revert results and failures, versions, retry
histories) is copied as that API hands it over.

Memory. Books are listed lazily; a book is written once with its flow
details but without their atoms (not at all if the target holds it already,
unchanged, with all of them), then each flow detail with its atoms is read
from the source and merged into the target by ``update_flow_details``. At
most one book's flow details (without atoms) and one flow detail's atoms
are held at a time. Writing each flow detail through ``save_logbook``
instead would cost a whole-book read per flow: statestore's and TaskFlow's
SQL ``save_logbook`` hand back (and so load) the complete stored book.

Idempotent and resumable. Every write is a merge keyed by identifier: a
re-run updates what is there and adds what is missing, never duplicates,
and a run that was interrupted (an error, Ctrl-C) is completed by running
it again. A flow detail is one ``update_flow_details`` call, one
transaction on statestore and on TaskFlow's SQL backends.

Verification. After the copy both sides are read again: for every book of
the source, its counts and a SHA-256 over a canonical JSON of the book,
each of its flow details and each of their atoms (see :func:`_atom_record`
for what is normalised) must be the same on the target, or
:class:`~statestore.errors.TransferMismatch` names the first book, flow
detail or atom that differs and its differing fields. Book timestamps are
compared beside the checksum, to the second where one side keeps whole
seconds (:func:`_same_moment`); and the data of retry attempts that saw
failures is not covered (:func:`_atom_record`). Books the target held
before and the source does not have are left alone and not counted. A
source written to while it is copied will usually fail verification: copy
while no engine runs on either side.

Threads and event loops. The functions are synchronous, as TaskFlow's API
is. Called from a coroutine they work — StatestoreBackend never runs the
store on the caller's event loop (the bridge hands such a call to another
thread) — but they block that loop, and every other task on it, for the
whole transfer: use ``await asyncio.to_thread(import_taskflow, …)``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from rich.progress import Progress, TaskID
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from taskflow import exceptions as tf_exceptions
from taskflow.persistence import backends, base, models

from statestore.compat.taskflow.backend import StatestoreBackend
from statestore.compat.taskflow.options import PREFIX
from statestore.core.urls import resolve_url
from statestore.errors import InvalidInput, StoreError, TransferMismatch, Unavailable
from statestore.store import Store

__all__ = [
    "ProgressCallback",
    "TransferProgress",
    "TransferReport",
    "display_connection",
    "export_taskflow",
    "import_taskflow",
    "taskflow_conf",
]

DIR_CACHE_SIZE = 1024
"""Files the ``dir:`` backend keeps cached when this module opens it: by
default it caches every file it ever reads, which would hold the whole
source in memory by the end of the copy."""


@dataclass(frozen=True)
class TransferReport:
    """What was copied and verified: the source's books, their flow details
    and atoms, and the checksum both sides produced."""

    books: int
    flows: int
    atoms: int
    checksum: str
    """Hex SHA-256 over the books in identifier order, each hashed from its
    canonical JSON (timestamps aside: compared on their own) and its flow
    details', each of those from its own and its atoms' (the same on both
    sides, or the transfer raised)."""


@dataclass(frozen=True)
class TransferProgress:
    """Where a transfer is: reported after each flow detail copied, each book
    copied, and each book verified."""

    phase: Literal["copy", "verify"]
    books: int
    flows: int
    atoms: int
    total_books: int
    total_flows: int


ProgressCallback = Callable[[TransferProgress], None]


def import_taskflow(
    source: str | Mapping[str, Any] | base.Backend,
    store: str | StatestoreBackend,
    *,
    progress: ProgressCallback | Progress | None = None,
) -> TransferReport:
    """Copy every logbook of a TaskFlow backend into a statestore store, then
    verify the copy.

    ``source`` is a TaskFlow connection string (``dir:///var/flows``,
    ``sqlite:////var/flows.db``, ``postgresql+psycopg2://…``,
    ``mysql+pymysql://…``, ``zookeeper://host:2181/path``; see
    :func:`taskflow_conf`), a TaskFlow conf dict (used as given), or a
    backend object (left open). ``store`` is a statestore URL
    (``sqlite:///flows.db``, ``postgresql://…``; a ``statestore+`` prefix is
    accepted) or a :class:`StatestoreBackend` (left open); its schema is
    created or migrated first. ``progress`` is called with a
    :class:`TransferProgress`, or is a rich ``Progress`` to add bars to;
    either costs one more pass over the source's lazy listings, to count
    its books and flow details.

    Raises :class:`~statestore.errors.InvalidInput` for a source TaskFlow
    cannot open, :class:`~statestore.errors.Unavailable` for one it cannot
    reach, :class:`~statestore.errors.TransferMismatch` if the copy does not
    verify, and TaskFlow's ``StorageFailure``/``NotFound`` for what fails on
    the way (statestore's own error is their ``cause``).
    """
    tracker = _Tracker(progress)
    with _taskflow_connection(source, "source") as origin, _statestore_connection(store) as target:
        with _statestore_errors():
            target.upgrade()
        return _transfer(origin, target, tracker)


def export_taskflow(
    store: str | StatestoreBackend,
    target: str | Mapping[str, Any] | base.Backend,
    *,
    progress: ProgressCallback | Progress | None = None,
) -> TransferReport:
    """Copy every logbook of a statestore store into a TaskFlow backend, then
    verify the copy.

    ``store`` and ``target`` are given as for :func:`import_taskflow` (a
    conf dict is used as given), and errors are raised as it raises them.
    The store must be at this statestore's schema
    (:class:`~statestore.errors.SchemaOutOfDate` otherwise, before anything
    is written); the target's ``upgrade()`` runs before it is written.
    """
    tracker = _Tracker(progress)
    with _statestore_connection(store) as origin:
        with _statestore_errors():
            origin.backend.call(_ensure_schema_current)
        with _taskflow_connection(target, "target") as destination:
            destination.upgrade()
            return _transfer(origin, destination, tracker)


async def _ensure_schema_current(store: Store) -> None:
    await store.ensure_schema_current()


# -- opening both ends -----------------------------------------------------------------------------------------------


def taskflow_conf(connection: str) -> dict[str, Any]:
    """TaskFlow's conf for a connection string, completed with what the
    string says and TaskFlow's ``fetch`` does not take from it.

    ``fetch`` copies a URI's user, host, port and query into the conf but
    not its path, which the ``dir:``/``file:`` and ZooKeeper backends read
    from ``conf["path"]``: ``dir:///var/flows`` alone is refused ("Empty
    path is disallowed"), and ``zookeeper://zk:2181/flows`` would use
    localhost and ``/taskflow``. A ``dir:`` backend also gets a bounded
    file cache (:data:`DIR_CACHE_SIZE`) unless the query sets one.
    """
    conf: dict[str, Any] = {"connection": connection}
    parts = urlsplit(connection)
    query = parse_qs(parts.query)
    scheme = parts.scheme.lower()
    if scheme in ("dir", "file"):
        if parts.path and "path" not in query:
            conf["path"] = parts.path
        if "max_cache_size" not in query:
            conf["max_cache_size"] = DIR_CACHE_SIZE
    elif scheme == "zookeeper":
        if parts.path not in ("", "/") and "path" not in query:
            conf["path"] = parts.path
        if parts.hostname and "hosts" not in query:
            conf["hosts"] = parts.netloc.rpartition("@")[2]
    return conf


def display_connection(connection: str) -> str:
    """A connection string fit for a message: its password hidden."""
    try:
        return make_url(connection).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return connection


def _reason(error: BaseException) -> str:
    """An error on one line (TaskFlow's messages append their causes on more)."""
    text = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _missing_source(conf: Mapping[str, Any]) -> str | None:
    """Why a source that names a file or directory cannot be read, if it
    names one that does not exist: TaskFlow would create an empty SQLite
    file (and copy nothing), or fail later with a less telling error."""
    connection = str(conf.get("connection", ""))
    scheme = urlsplit(connection).scheme.lower()
    if scheme in ("dir", "file"):
        path = conf.get("path")
        if path and not os.path.isdir(str(path)):
            return f"no directory {path}"
    elif scheme.split("+")[0] == "sqlite":
        with contextlib.suppress(ArgumentError, ValueError):
            database = make_url(connection).database
            if database and database != ":memory:" and not os.path.exists(database):
                return f"no file {database}"
    return None


@contextlib.contextmanager
def _taskflow_connection(spec: str | Mapping[str, Any] | base.Backend, role: str) -> Iterator[Any]:
    """A connection to the TaskFlow backend ``spec`` names; a backend made
    here is closed afterwards, one given is left open."""
    if isinstance(spec, str | Mapping):
        conf = taskflow_conf(spec) if isinstance(spec, str) else dict(spec)
        shown = display_connection(str(conf.get("connection", "(a conf without a connection)")))
        missing = _missing_source(conf) if role == "source" else None
        if missing is not None:
            raise InvalidInput(f"TaskFlow {role} {shown}: {missing}")
        try:
            backend = backends.fetch(conf)
        except Exception as error:
            # fetch() runs the backend's constructor, which raises whatever its
            # driver does for a bad URL: TaskFlow's NotFound for an unknown
            # scheme, ValueError, ImportError for a driver not installed, …
            raise InvalidInput(f"TaskFlow {role} {shown}: {_reason(error)}") from error
        owned = True
    else:
        backend, shown, owned = spec, type(spec).__name__, False
    try:
        try:
            connection = backend.get_connection()
        except Exception as error:  # the SQL and ZooKeeper backends connect here, raising their drivers' errors
            raise Unavailable(f"TaskFlow {role} {shown}: {_reason(error)}") from error
        with contextlib.closing(connection):
            yield connection
    finally:
        if owned:
            backend.close()


@contextlib.contextmanager
def _statestore_connection(store: str | StatestoreBackend) -> Iterator[Any]:
    """A connection to the statestore store ``store`` names (a backend made
    here is closed afterwards, one given is left open)."""
    if isinstance(store, StatestoreBackend):
        backend, owned = store, False
    elif isinstance(store, str):
        url = store.removeprefix(PREFIX)
        resolve_url(url)  # InvalidInput for a URL statestore cannot open, before anything starts
        backend, owned = StatestoreBackend({"connection": PREFIX + url}), True
    else:
        raise TypeError(f"store must be a statestore URL or a StatestoreBackend, not {type(store).__name__}")
    try:
        with contextlib.closing(backend.get_connection()) as connection:
            yield connection
    finally:
        if owned:
            backend.close()


@contextlib.contextmanager
def _statestore_errors() -> Iterator[None]:
    """Statestore's own error rather than TaskFlow's wrapping of it, where
    the store is first reached: SchemaOutOfDate, Unavailable, InvalidInput
    say more to the caller of a migration than StorageFailure does."""
    try:
        yield
    except tf_exceptions.TaskFlowException as error:
        if isinstance(error.__cause__, StoreError):
            raise error.__cause__ from None
        raise


# -- copying ---------------------------------------------------------------------------------------------------------


def _transfer(source: Any, target: Any, tracker: _Tracker) -> TransferReport:
    if tracker.active:
        tracker.count(source)
    for book in source.get_logbooks(lazy=True):
        _copy_book(source, target, book, tracker)
    return _verify(source, target, tracker)


def _copy_book(source: Any, target: Any, book: Any, tracker: _Tracker) -> None:
    """One book: itself with its flow details but no atoms in one save, then
    each flow detail with its atoms in one merge."""
    flows = [flow.copy(retain_contents=False) for flow in source.get_flows_for_book(book.uuid, lazy=True)]
    if _needs_saving(target, book, flows):
        shell = book.copy(retain_contents=False)
        for flow in flows:
            shell.add(flow)
        shell.updated_at = book.updated_at  # add() stamps the current time
        target.save_logbook(shell)
    for flow in flows:
        # A new copy each time: the previous flow's atoms are let go before
        # this one's are read (``flows`` keeps no atoms).
        detail = flow.copy(retain_contents=False)
        for atom in source.get_atoms_for_flow(flow.uuid):
            detail.add(atom)
        target.update_flow_details(detail)
        tracker.flow_done(len(detail))
    tracker.book_done()


def _needs_saving(target: Any, book: Any, flows: list[Any]) -> bool:
    """Whether the book must be saved: it is not in the target, differs there,
    or lacks some of its flow details. A re-run (or the run completing an
    interrupted one) skips the save otherwise, because statestore's and
    TaskFlow's SQL ``save_logbook`` hand back — so load — the complete stored
    book, every atom of it included."""
    try:
        stored = target.get_logbook(book.uuid, lazy=True)
    except tf_exceptions.NotFound:
        return True
    if _book_record(stored) != _book_record(book) or _timestamps_differing(book, stored):
        return True
    present = {flow.uuid for flow in target.get_flows_for_book(book.uuid, lazy=True)}
    return any(flow.uuid not in present for flow in flows)


# -- verifying -------------------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """``value`` as JSON with one spelling: tuples as lists, mapping keys as
    JSON spells them, datetimes as naive-UTC ISO strings, and anything JSON
    cannot hold as its ``repr`` (as statestore stores a failure's
    ``exc_args`` it cannot represent)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, datetime):
        moment = value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)
        return moment.isoformat()
    if isinstance(value, Mapping):
        return {_key(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return repr(value)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key)
    return repr(key)


def _canonical(record: Mapping[str, Any]) -> str:
    return json.dumps(_plain(record), sort_keys=True, separators=(",", ":"))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _listing(entries: Mapping[str, str]) -> str:
    return "".join(f"{key}\t{entries[key]}\n" for key in sorted(entries))


def _book_record(book: Any) -> str:
    """A book's ``to_dict()`` but its timestamps, which :func:`_timestamps_differing`
    compares instead: a hash cannot say "equal to the second"."""
    data = book.to_dict()
    del data["created_at"], data["updated_at"]
    return _canonical(data)


def _utc(moment: datetime | None) -> datetime | None:
    return moment if moment is None or moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


def _same_moment(left: datetime | None, right: datetime | None) -> bool:
    """Equal, or within a second of each other where one has no fraction: one
    side keeps whole seconds (TaskFlow's SQL backend on MySQL and MariaDB,
    which truncate or round)."""
    if left is None or right is None:
        return left is right
    return left == right or (abs(left - right) < timedelta(seconds=1) and 0 in (left.microsecond, right.microsecond))


def _timestamps_differing(expected: Any, actual: Any) -> list[str]:
    """Which of two books' timestamps differ. An ``updated_at`` of None
    ("never updated") reads as the ``created_at``: statestore stores "never
    updated" so, and reads equal timestamps back as None, which a TaskFlow
    book created and updated within one second on MySQL has."""
    created = (_utc(expected.created_at), _utc(actual.created_at))
    updated = (_utc(expected.updated_at) or created[0], _utc(actual.updated_at) or created[1])
    return [
        name
        for name, (left, right) in (("created_at", created), ("updated_at", updated))
        if not _same_moment(left, right)
    ]


def _flow_record(flow: Any) -> str:
    return _canonical(flow.to_dict())


def _atom_record(atom: Any) -> str:
    """An atom's ``to_dict()`` (failures as their ``to_dict()``) and its type,
    with one normalisation: in a retry's history, the data of an attempt
    that saw failures is not covered.

    TaskFlow's ``RetryDetail.from_dict``, which every TaskFlow backend reads
    retries through, replaces that data with the last failure's dict, so a
    TaskFlow backend hands back something else than it was given and an
    export would never verify. The attempts' order, their failures and the
    data of attempts without failures are covered. (statestore keeps the
    data it is given intact: an import copies what the source's reading
    made of it.)
    """
    data = atom.to_dict()
    data["type"] = models.atom_detail_type(atom)
    if isinstance(atom, models.RetryDetail):
        data["results"] = [
            {"failures": failures} if failures else {"data": attempt, "failures": {}}
            for attempt, failures in data["results"] or []
        ]
    return _canonical(data)


@dataclass
class _BookSummary:
    record: str
    flows: dict[str, str]
    atoms: int
    digest: str

    @classmethod
    def read(cls, connection: Any, book: Any) -> _BookSummary:
        """A book's digest, read through ``connection``: one flow detail's
        atoms are held at a time, and one digest per flow detail."""
        record = _book_record(book)
        flows: dict[str, str] = {}
        atoms = 0
        for flow in connection.get_flows_for_book(book.uuid, lazy=True):
            digests = {str(atom.uuid): _sha256(_atom_record(atom)) for atom in connection.get_atoms_for_flow(flow.uuid)}
            flows[str(flow.uuid)] = _sha256(_flow_record(flow) + "\n" + _listing(digests))
            atoms += len(digests)
        return cls(record, flows, atoms, _sha256(record + "\n" + _listing(flows)))


def _verify(source: Any, target: Any, tracker: _Tracker) -> TransferReport:
    tracker.phase("verify")
    books: dict[str, str] = {}
    flows = atoms = 0
    for book in source.get_logbooks(lazy=True):
        expected = _BookSummary.read(source, book)
        try:
            copied = target.get_logbook(book.uuid, lazy=True)
        except tf_exceptions.NotFound:
            raise TransferMismatch(f"{_named('logbook', book)} is missing from the target after the copy") from None
        differing = _timestamps_differing(book, copied)
        if differing:
            raise TransferMismatch(f"{_named('logbook', book)}: {_DIFFERS}: the logbook's {', '.join(differing)}")
        actual = _BookSummary.read(target, copied)
        if actual.digest != expected.digest:
            raise TransferMismatch(_difference(source, target, book, expected, actual))
        books[str(book.uuid)] = expected.digest
        flows += len(expected.flows)
        atoms += expected.atoms
        tracker.book_verified(len(expected.flows), expected.atoms)
    return TransferReport(len(books), flows, atoms, _sha256(_listing(books)))


_DIFFERS = "the target differs from the source after the copy"


def _named(kind: str, item: Any) -> str:
    return f"{kind} {item.name!r} ({item.uuid})"


def _fields(expected: str, actual: str) -> str:
    """The top-level fields two canonical records differ in."""
    left, right = json.loads(expected), json.loads(actual)
    return ", ".join(sorted(key for key in left.keys() | right.keys() if left.get(key) != right.get(key)))


def _difference(source: Any, target: Any, book: Any, expected: _BookSummary, actual: _BookSummary) -> str:
    """Which record of ``book`` differs between the two sides, and how."""
    where = f"{_named('logbook', book)}: {_DIFFERS}"
    if expected.record != actual.record:
        return f"{where}: the logbook's {_fields(expected.record, actual.record)}"
    missing = sorted(expected.flows.keys() - actual.flows.keys())
    extra = sorted(actual.flows.keys() - expected.flows.keys())
    if missing or extra:
        return f"{where}: flow details missing from the target: {missing}; only in the target: {extra}"
    for flow_uuid in sorted(expected.flows):
        if expected.flows[flow_uuid] == actual.flows[flow_uuid]:
            continue
        flow = source.get_flow_details(flow_uuid, lazy=True)
        where = f"{where}: {_named('flow detail', flow)}"
        flow_expected, flow_actual = _flow_record(flow), _flow_record(target.get_flow_details(flow_uuid, lazy=True))
        if flow_expected != flow_actual:
            return f"{where}: its {_fields(flow_expected, flow_actual)}"
        atoms_expected = {str(atom.uuid): atom for atom in source.get_atoms_for_flow(flow_uuid)}
        atoms_actual = {str(atom.uuid): _atom_record(atom) for atom in target.get_atoms_for_flow(flow_uuid)}
        missing = sorted(atoms_expected.keys() - atoms_actual.keys())
        extra = sorted(atoms_actual.keys() - atoms_expected.keys())
        if missing or extra:
            return f"{where}: atoms missing from the target: {missing}; only in the target: {extra}"
        for atom_uuid, atom in sorted(atoms_expected.items()):
            record = _atom_record(atom)
            if record != atoms_actual[atom_uuid]:
                return f"{where}: {_named('atom', atom)}: its {_fields(record, atoms_actual[atom_uuid])}"
    return f"{where} (it changed while it was compared)"


# -- progress --------------------------------------------------------------------------------------------------------


class _Tracker:
    """Counts what is done and reports it to a callback or a rich Progress."""

    def __init__(self, progress: ProgressCallback | Progress | None) -> None:
        self._rich = progress if isinstance(progress, Progress) else None
        self._callback = None if isinstance(progress, Progress) else progress
        self._task: TaskID | None = None
        self._phase: Literal["copy", "verify"] = "copy"
        self._books = self._flows = self._atoms = 0
        self._total_books = self._total_flows = 0

    @property
    def active(self) -> bool:
        return self._rich is not None or self._callback is not None

    def count(self, source: Any) -> None:
        """The source's books and flow details, from its lazy listings."""
        for book in source.get_logbooks(lazy=True):
            self._total_books += 1
            self._total_flows += sum(1 for _ in source.get_flows_for_book(book.uuid, lazy=True))
        self.phase("copy")

    def phase(self, phase: Literal["copy", "verify"]) -> None:
        self._phase = phase
        self._books = self._flows = self._atoms = 0
        if self._rich is not None:
            if self._task is not None:
                self._rich.update(self._task, visible=False)
            description = "copying" if phase == "copy" else "verifying"
            self._task = self._rich.add_task(description, total=self._total_flows, atoms=0)

    def flow_done(self, atoms: int) -> None:
        self._flows += 1
        self._atoms += atoms
        self._report(advance=1)

    def book_done(self) -> None:
        self._books += 1
        self._report(advance=0)

    def book_verified(self, flows: int, atoms: int) -> None:
        self._books += 1
        self._flows += flows
        self._atoms += atoms
        self._report(advance=flows)

    def _report(self, advance: int) -> None:
        if self._rich is not None and self._task is not None:
            self._rich.update(self._task, advance=advance, atoms=self._atoms)
        if self._callback is not None:
            self._callback(
                TransferProgress(
                    self._phase, self._books, self._flows, self._atoms, self._total_books, self._total_flows
                )
            )
