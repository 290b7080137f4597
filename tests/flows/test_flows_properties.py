"""Every write of the flow model does exactly what it was asked, or refuses and changes nothing.

Hypothesis drives the five writes — ``logbooks.save``, ``logbooks.destroy``,
``logbooks.clear``, ``flow_details.update`` and ``atom_details.update`` — on
every backend, with valid input (edge floats and ints, deep JSON, every way to
spell a uuid, changes ``==`` cannot see such as 1 → 1.0, odd datetimes in the
timestamp fields the store ignores) and, in half of the examples, one hostile
value among it: NUL and lone surrogates, text too long, ints beyond int64,
NaN, JSON nested too deep or containing itself, sets, bytes, datetimes inside
JSON, malformed uuids, failures with fields of the wrong type or causes
chained too deep, values of the wrong type. Independently, in half of the
examples, hostile references: unknown uuids, uuids of records stored under
another parent or given twice in the call, atoms changing kind.

Each example starts from an empty store, saves a generated seed (1–2
logbooks), then makes one call. A model written here, independently of the library (the input
policy of ``statestore.core.validate`` and TaskFlow's merge rules), says what
the flow tables must hold afterwards or that the call must be refused:

* accepted: every logbook, flow detail and atom detail read back is the model,
  exactly (1 is not 1.0 nor True, -0.0 keeps its sign, floats stay floats), and
  what the call returned is what a get returns;
* refused: a StoreError whose message can be printed, and every row of every
  table is unchanged;
* either way, the next ordinary call on the store works.

The merge rules modelled: names and kinds never change by a merge (a different
kind is refused); state, intention, results, failures, version and meta are
replaced; stored children missing from the input are kept; a flow detail
belongs to its logbook and an atom to its flow detail (one stored under another
parent is refused, as TaskFlow's lookup within the parent then an insert
refuses it); a uuid appears at most once in one call.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from copy import deepcopy
from dataclasses import fields, is_dataclass, replace
from datetime import UTC, datetime
from enum import Enum
from itertools import count
from types import MappingProxyType
from typing import Any, TypeVar
from uuid import UUID

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from statestore import Store, StoreError
from statestore.core.validate import JSON_INTEGERS, MAX_JSON_DEPTH, shown
from statestore.flows import (
    AtomDetail,
    AtomKind,
    AtomState,
    Failure,
    FlowDetail,
    FlowState,
    Intention,
    LogBook,
    RetryAttempt,
)
from statestore.flows.tables import NAME_LENGTH, VERSION_LENGTH
from tests.core.test_core_input_policy import (
    _ANY_TEXT,
    _ANY_VALUE,
    BAD_JSON,
    BAD_TEXTS,
    EAST,
    HUGE,
    NO_UTC_INSTANT,
    WEST,
    assert_safe_message,
    deep,
    everything,
)
from tests.core.test_core_json_round_trip import _DEEP, _TEXT, _VALUES, EDGE_FLOATS, EDGE_INTS, depth, same
from tests.flows.test_flows_uuids import MALFORMED
from tests.support.flow_fixtures import failure

E = TypeVar("E", bound=Enum)

# --------------------------------------------------------------------------- the model


class Refused(Exception):
    """The model's verdict: the call must raise a StoreError and write nothing."""


def _clean(value: str) -> bool:
    return not any(char == "\x00" or "\ud800" <= char <= "\udfff" for char in value)


def stored_text(value: Any, limit: int | None = None) -> str:
    if type(value) is not str or (limit is not None and len(value) > limit) or not _clean(value):
        raise Refused("not storable text")
    return value


def stored_json(value: Any, levels: int = MAX_JSON_DEPTH) -> Any:
    """What a JSON column gives back for ``value`` (tuples become lists)."""
    kind = type(value)
    if value is None or kind is bool:
        return value
    if kind is int:
        if JSON_INTEGERS[0] <= value <= JSON_INTEGERS[1]:
            return value
        raise Refused("an int outside int64")
    if kind is float:
        if math.isfinite(value):
            return value
        raise Refused("a float JSON cannot hold")
    if kind is str:
        return stored_text(value)
    if kind in (list, tuple, dict):
        if levels < 1:
            raise Refused("nested too deep")
        if kind is dict:
            return {stored_text(key): stored_json(item, levels - 1) for key, item in value.items()}
        return [stored_json(item, levels - 1) for item in value]
    raise Refused(f"{kind.__name__} is not JSON")


def stored_meta(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise Refused("meta is not a dict")
    return dict(stored_json(dict(value)))


def stored_uuid(value: Any) -> UUID:
    if isinstance(value, UUID):  # asyncpg's subclass too
        return UUID(int=value.int)
    if type(value) is str:
        try:
            return UUID(value)
        except ValueError:
            pass
    raise Refused("not a uuid")


def stored_enum(enum: type[E], value: Any) -> E:
    try:
        return enum(value)
    except (ValueError, TypeError):
        raise Refused(f"not a {enum.__name__}") from None


def _sequence(value: Any) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise Refused("not a sequence")
    return list(value)


def stored_failure(value: Any, levels: int = MAX_JSON_DEPTH) -> Failure:
    """A Failure as reloaded (sequences as tuples): its fields have their
    declared types, and its document (a dict holding lists) fits the depth."""
    if type(value) is not Failure:
        raise Refused("not a Failure")
    if levels < 2:
        raise Refused("nested too deep")
    return Failure(
        exception_str=stored_text(value.exception_str),
        exc_type_names=tuple(stored_text(name) for name in _sequence(value.exc_type_names)),
        traceback_str=None if value.traceback_str is None else stored_text(value.traceback_str),
        exc_args=tuple(stored_json(arg, levels - 2) for arg in _sequence(value.exc_args)),
        causes=tuple(stored_failure(cause, levels - 2) for cause in _sequence(value.causes)),
    )


def stored_history(value: Any) -> list[RetryAttempt] | None:
    if value is None:
        return None
    history = []
    for attempt in _sequence(value):
        if type(attempt) is not RetryAttempt or not isinstance(attempt.failures, Mapping):
            raise Refused("not a RetryAttempt")
        failures = {stored_text(atom): stored_failure(one) for atom, one in attempt.failures.items()}
        history.append(RetryAttempt(stored_json(attempt.data), failures))
    return history


def stored_atom(atom: AtomDetail) -> AtomDetail:
    kind = stored_enum(AtomKind, atom.kind)
    state = None if atom.state is None else stored_enum(AtomState, atom.state)
    if state is AtomState.RETRYING and kind is AtomKind.TASK:
        raise Refused("RETRYING is for retries")
    return AtomDetail(
        name=stored_text(atom.name, NAME_LENGTH),
        kind=kind,
        uuid=stored_uuid(atom.uuid),
        state=state,
        intention=stored_enum(Intention, atom.intention),
        results=stored_history(atom.results) if kind is AtomKind.RETRY else stored_json(atom.results),
        failure=None if atom.failure is None else stored_failure(atom.failure),
        revert_results=stored_json(atom.revert_results),
        revert_failure=None if atom.revert_failure is None else stored_failure(atom.revert_failure),
        version=None if atom.version is None else stored_text(atom.version, VERSION_LENGTH),
        meta=stored_meta(atom.meta),
    )


def stored_flow(flow: FlowDetail) -> FlowDetail:
    return FlowDetail(
        name=stored_text(flow.name, NAME_LENGTH),
        uuid=stored_uuid(flow.uuid),
        state=None if flow.state is None else stored_enum(FlowState, flow.state),
        meta=stored_meta(flow.meta),
    )


def stored_book(book: LogBook) -> LogBook:
    return LogBook(name=stored_text(book.name, NAME_LENGTH), uuid=stored_uuid(book.uuid), meta=stored_meta(book.meta))


State = list[LogBook]
MUTABLE = ("state", "intention", "results", "failure", "revert_results", "revert_failure", "version", "meta")


def _flow_in(state: State, uuid: UUID) -> tuple[LogBook, FlowDetail] | None:
    return next(((book, flow) for book in state for flow in book.flows if flow.uuid == uuid), None)


def _atom_in(state: State, uuid: UUID) -> tuple[FlowDetail, AtomDetail] | None:
    found = ((flow, atom) for book in state for flow in book.flows for atom in flow.atoms if atom.uuid == uuid)
    return next(found, None)


def _once(uuids: list[UUID]) -> None:
    if len(set(uuids)) != len(uuids):
        raise Refused("a uuid given twice in one call")


def _merge_atom(stored: AtomDetail, given: AtomDetail) -> None:
    if stored.kind is not given.kind:
        raise Refused("an atom never changes kind")
    for name in MUTABLE:
        setattr(stored, name, getattr(given, name))


def _merge_atoms(state: State, flow: FlowDetail, given: list[AtomDetail]) -> None:
    for atom in given:
        found = _atom_in(state, atom.uuid)
        if found is None:
            flow.atoms.append(atom)
        elif found[0] is not flow:
            raise Refused("the atom belongs to another flow detail")
        else:
            _merge_atom(found[1], atom)


def expect_save(state: State, book: LogBook) -> State:
    given = stored_book(book)
    flows = [(stored_flow(flow), [stored_atom(atom) for atom in flow.atoms]) for flow in book.flows]
    _once([flow.uuid for flow, _ in flows])
    _once([atom.uuid for _, atoms in flows for atom in atoms])
    target = next((stored for stored in state if stored.uuid == given.uuid), None)
    if target is None:
        target = given
        state.append(target)
    target.meta = given.meta
    for flow, atoms in flows:
        found = _flow_in(state, flow.uuid)
        if found is None:
            target.flows.append(flow)
        elif found[0] is not target:
            raise Refused("the flow detail belongs to another logbook")
        else:
            found[1].state, found[1].meta = flow.state, flow.meta
            flow = found[1]
        _merge_atoms(state, flow, atoms)
    return state


def expect_flow_update(state: State, flow: FlowDetail, atoms: list[AtomDetail] | None) -> State:
    given = stored_flow(flow)
    given_atoms = [stored_atom(atom) for atom in (flow.atoms if atoms is None else atoms)]
    _once([atom.uuid for atom in given_atoms])
    found = _flow_in(state, given.uuid)
    if found is None:
        raise Refused("no such flow detail")
    stored = found[1]
    stored.state, stored.meta = given.state, given.meta
    _merge_atoms(state, stored, given_atoms)
    return state


def expect_atom_update(state: State, atom: AtomDetail) -> State:
    given = stored_atom(atom)
    found = _atom_in(state, given.uuid)
    if found is None:
        raise Refused("no such atom detail")
    _merge_atom(found[1], given)
    return state


def expect_destroy(state: State, uuid: Any) -> State:
    key = stored_uuid(uuid)
    if not any(book.uuid == key for book in state):
        raise Refused("no such logbook")
    return [book for book in state if book.uuid != key]


# --------------------------------------------------------------------------- exact comparison


def plain(value: Any, *, timestamps: bool = False) -> Any:
    """``value`` as lists, dicts and scalars that :func:`same` compares
    exactly: records and tuples tagged (with keys JSON refuses, so no stored
    dict can look like one), enums by name, uuids as ``uuid.UUID`` (asyncpg
    gives its subclass), timestamps left out unless asked."""
    if isinstance(value, UUID):
        return UUID(int=value.int)
    if isinstance(value, Enum):
        return f"\x00{type(value).__name__}.{value.name}"
    if is_dataclass(value) and not isinstance(value, type):
        return {
            "\x00record": type(value).__name__,
            **{
                name: plain(getattr(value, name), timestamps=timestamps)
                for name in (field.name for field in fields(value))
                if timestamps or name not in ("created_at", "updated_at")
            },
        }
    if type(value) is tuple:
        return {"\x00tuple": [plain(item, timestamps=timestamps) for item in value]}
    if type(value) is list:
        return [plain(item, timestamps=timestamps) for item in value]
    if type(value) is dict:
        return {key: plain(item, timestamps=timestamps) for key, item in value.items()}
    return value


def difference(want: Any, got: Any, path: str = "") -> str:
    """Where ``got`` first differs from ``want`` (for the failure message)."""
    if type(want) is type(got) is dict and want.keys() == got.keys():
        for key in want:
            if not same(want[key], got[key]):
                return difference(want[key], got[key], f"{path}[{shown(key)}]")
    if type(want) is type(got) is list and len(want) == len(got):
        for index, (one, other) in enumerate(zip(want, got, strict=True)):
            if not same(one, other):
                return difference(one, other, f"{path}[{index}]")
    return f"at {path or 'the top'}: expected {shown(want)}, got {shown(got)}"


def assert_exactly(want: Any, got: Any, what: str) -> None:
    want, got = plain(want), plain(got)
    assert same(want, got), f"{what} {difference(want, got)}"


async def books_of(store: Store) -> State:
    """Every logbook, complete, in storage order."""
    return [book async for book in store.logbooks.iterate(lazy=False)]


# --------------------------------------------------------------------------- values

CONFUSABLE: list[Any] = [0, 0.0, -0.0, False, 1, 1.0, True, None, "1", 1.5e16, 15000000000000000, [1], [1.0], [True]]
"""Values Python finds equal to one another (and ``{"a": …}`` of them): a
merge that compares with ``==`` would take a change among them for none."""


def twin(value: Any) -> Any:
    """``value`` with one number changed into one equal to it by ``==`` but
    stored differently (1 → 1.0, 1.0 → 1, True → 1, 0.0 → -0.0), or
    ``value`` itself when it holds no such number."""
    kind = type(value)
    if kind is bool:
        return int(value)
    if kind is int and abs(value) <= 2**53:
        return float(value)
    if kind is float and value == 0:
        return -value
    if kind is float and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if kind in (list, tuple):
        for index, item in enumerate(value):
            if not same(plain(changed := twin(item)), plain(item)):
                return kind([*value[:index], changed, *value[index + 1 :]])
    if kind is dict:
        for key, item in value.items():
            if not same(plain(changed := twin(item)), plain(item)):
                return {**value, key: changed}
    if kind is RetryAttempt:
        return RetryAttempt(twin(value.data), value.failures)
    if kind is Failure:
        return replace(value, exc_args=twin(value.exc_args))
    return value


JSON = st.one_of(
    st.sampled_from(CONFUSABLE),
    st.sampled_from(CONFUSABLE).map(lambda value: {"a": value}),
    st.sampled_from([*EDGE_FLOATS, *EDGE_INTS]),
    _VALUES,
    _DEEP.filter(lambda value: depth(value) < MAX_JSON_DEPTH),  # deeper: in BAD_JSON_VALUES
)
BAD_JSON_VALUES = st.one_of(
    st.sampled_from(sorted(BAD_JSON)).map(lambda name: BAD_JSON[name]()),
    _ANY_VALUE,
    st.integers(MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH + 1).map(deep),
    st.sampled_from([datetime(2026, 1, 1, tzinfo=UTC), *NO_UTC_INSTANT, b"raw", frozenset({1})]),
)

NAMES = _TEXT | st.sampled_from(["", " padded ", "x" * NAME_LENGTH, "😀" * NAME_LENGTH, "\u2028\ufeff\U0010ffff"])
BAD_NAMES = st.one_of(
    st.sampled_from([*BAD_TEXTS.values(), "x" * (NAME_LENGTH + 1), 5, None, b"name", 1.5]),
    _ANY_TEXT,
    st.builds(lambda: HUGE),  # sampled_from would repr it
)
VERSIONS = st.none() | _TEXT | st.just("1" * VERSION_LENGTH)
BAD_VERSIONS = BAD_NAMES | st.just("1" * (VERSION_LENGTH + 1))

META = st.one_of(
    st.sampled_from(CONFUSABLE).map(lambda value: {"a": value}),
    st.dictionaries(_TEXT, JSON, max_size=3),
    st.dictionaries(_TEXT, JSON, max_size=2).map(MappingProxyType),
)
BAD_META = st.one_of(
    st.sampled_from([None, [], ["not", "a", "dict"], "meta", 5]),
    st.dictionaries(_ANY_TEXT, BAD_JSON_VALUES, min_size=1, max_size=2),
    st.sampled_from([1, None, (1,), 1.5]).map(lambda key: {key: 1}),
)


def _enum_values(enum: type[Enum]) -> st.SearchStrategy[Any]:
    return st.sampled_from(list(enum)) | st.sampled_from([member.value for member in enum])


ATOM_STATES = st.none() | _enum_values(AtomState)
TASK_STATES = ATOM_STATES.filter(lambda state: state != AtomState.RETRYING)  # RETRYING: in BAD_TASK_STATES
FLOW_STATES = st.none() | _enum_values(FlowState)
INTENTIONS = _enum_values(Intention)
KINDS = _enum_values(AtomKind)
BAD_ENUMS = st.sampled_from(["BOGUS", "success", "Task", "", "SUCCESS\x00", 5, 1.5, [1], b"task"])
BAD_TASK_STATES = BAD_ENUMS | st.sampled_from([AtomState.RETRYING, "RETRYING"])

TIMES = st.one_of(
    st.none(),
    st.sampled_from([*NO_UTC_INSTANT, datetime(2026, 1, 1), datetime.max.replace(tzinfo=UTC), "yesterday", 5]),
    st.datetimes(timezones=st.sampled_from([UTC, EAST, WEST])),
)
"""For ``created_at``/``updated_at`` of the input: the store sets them and ignores these."""

BAD_UUIDS = st.one_of(
    st.sampled_from([*MALFORMED, None, 1.5, b"\x00" * 16, "\x00" * 32, "\ud800" * 32, "g" * 32, " " + "0" * 32]),
    st.sampled_from(["0" * 33, "urn:uuid:", "{}", "12345678-1234-5678-1234-56781234567\x00"]),
    _ANY_TEXT,
    st.builds(lambda: HUGE),
)


def _failures(causes: st.SearchStrategy[tuple[Failure, ...]]) -> st.SearchStrategy[Failure]:
    return st.builds(
        Failure,
        exception_str=_TEXT,
        exc_type_names=st.lists(_TEXT, max_size=3).map(tuple),
        traceback_str=st.none() | _TEXT,
        exc_args=st.lists(st.sampled_from(CONFUSABLE) | _VALUES, max_size=2).map(tuple),
        causes=causes,
    )


FAILURES = st.recursive(
    _failures(st.just(())),
    lambda children: _failures(st.lists(children, max_size=2).map(tuple)),
    max_leaves=4,
) | st.builds(failure, _TEXT)


class _Causes(tuple[Failure, ...]):
    """The causes of :func:`chain`'s failure, shown short (hypothesis would
    recurse down the whole chain to print it)."""

    def __repr__(self) -> str:
        return f"(<a chain of {self.levels} failures>,)"

    levels = 0


def chain(levels: int) -> Failure:
    """A failure caused by a failure caused by … ``levels`` deep."""
    link = Failure("root", ("RuntimeError",))
    for _ in range(levels - 1):
        link = Failure("wrapped", ("RuntimeError",), causes=(link,))
    causes = _Causes((link,))
    causes.levels = levels
    return Failure("wrapped", ("RuntimeError",), causes=causes)


BAD_FAILURE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "exception_str": BAD_NAMES,
    "traceback_str": BAD_NAMES.filter(lambda value: value is not None),
    "exc_type_names": st.sampled_from(["KeyError", 5, None, ("Key\x00Error",), (5,), ("\ud800",)]),
    "exc_args": st.sampled_from([5, "args", None]) | BAD_JSON_VALUES.map(lambda value: (value,)),
    "causes": st.sampled_from([5, (5,), (None,), "cause"]) | st.sampled_from([11, 12, 1000]).map(chain),
}


@st.composite
def _bad_failures(draw: st.DrawFn) -> Any:
    field = draw(st.sampled_from(sorted(BAD_FAILURE_FIELDS)))
    return replace(draw(FAILURES), **{field: draw(BAD_FAILURE_FIELDS[field])})


BAD_FAILURES = _bad_failures() | st.sampled_from(["boom", 5, {"exception_str": "x", "exc_type_names": []}])

ATTEMPTS = st.builds(RetryAttempt, JSON, st.dictionaries(_TEXT, FAILURES, max_size=2))
BAD_ATTEMPTS = st.one_of(
    # A failure that is none (None was stored, and then no read could rebuild the attempt):
    st.builds(RetryAttempt, JSON, (st.none() | BAD_FAILURES).map(lambda one: {"t": one})),
    st.builds(RetryAttempt, BAD_JSON_VALUES),
    st.builds(
        RetryAttempt,
        st.just(1),
        st.sampled_from([5, "\x00", "\ud800", None]).flatmap(lambda key: FAILURES.map(lambda one: {key: one})),
    ),
    st.builds(RetryAttempt, st.just(1), FAILURES.map(lambda one: [one])),
    st.sampled_from([5, [1, {}], {"data": 1}]),
)
HISTORIES = st.none() | st.lists(ATTEMPTS, max_size=2) | st.lists(ATTEMPTS, max_size=2).map(tuple)
BAD_HISTORIES = st.lists(BAD_ATTEMPTS, min_size=1, max_size=2) | st.sampled_from([5, "history", {"a": 1}, [1]])
BAD_TASK_RESULTS = BAD_JSON_VALUES | st.lists(ATTEMPTS, min_size=1, max_size=1)

# --------------------------------------------------------------------------- inputs


class World:
    """One example: the store, what it holds (as read back), and the draws."""

    def __init__(self, store: Store, data: st.DataObject) -> None:
        self.store = store
        self.data = data
        self.state: State = []
        self.hostile_at = 0
        """With bad values, the how-manieth value drawn is hostile (0: none)."""
        self.drawn = 0
        self.bad_references = False
        self._uuids = count(1)

    # ---- drawing

    def draw(self, strategy: st.SearchStrategy[Any]) -> Any:
        return self.data.draw(strategy)

    def hostile_now(self) -> bool:
        """Whether the value being drawn is the one hostile value: one at a
        time, so that a refusal of one does not hide what the call does with
        another."""
        self.drawn += 1
        return self.drawn == self.hostile_at

    def pick(self, valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> Any:
        return self.draw(hostile if self.hostile_now() else valid)

    def sometimes(self) -> bool:
        return bool(self.draw(st.integers(0, 2)) == 2)

    def fresh(self) -> UUID:
        return UUID(int=next(self._uuids))

    def form(self, uuid: UUID) -> Any:
        """``uuid`` or one of the strings that spell it."""
        spelled = [uuid, str(uuid), str(uuid).upper(), uuid.hex, f"{{{uuid}}}", f"urn:uuid:{uuid}"]
        return self.draw(st.sampled_from(spelled))

    def how(
        self, here: Sequence[Any], elsewhere: Sequence[Any] = (), taken: Sequence[UUID] = (), *, fresh: bool = True
    ) -> str:
        """Which uuid a record gets: one of ``here`` (stored, under the right
        parent) or a new one (unless ``fresh`` is False: an unknown uuid is
        then a bad reference); with ``bad_references`` also one stored
        ``elsewhere`` or one ``taken`` earlier in the same call; or, as the
        hostile value, a malformed one."""
        if self.hostile_now():
            return "malformed"
        options = ["here"] if here else []
        if fresh or self.bad_references or not options:
            options.append("fresh")
        if self.bad_references:
            options += [*(["elsewhere"] if elsewhere else []), *(["taken"] if taken else [])]
        return str(self.draw(st.sampled_from(options)))

    # ---- records

    def json(self) -> Any:
        return self.pick(JSON, BAD_JSON_VALUES)

    def meta(self) -> Any:
        return self.pick(META, BAD_META)

    def failure(self) -> Any:
        return self.pick(st.none() | FAILURES, BAD_FAILURES)

    def results(self, kind: Any) -> Any:
        if kind == AtomKind.RETRY:
            return self.pick(HISTORIES, BAD_HISTORIES)
        return self.pick(JSON, BAD_TASK_RESULTS)

    def atom_state(self, kind: Any) -> Any:
        if kind == AtomKind.RETRY:
            return self.pick(ATOM_STATES, BAD_ENUMS)
        return self.pick(TASK_STATES, BAD_TASK_STATES)

    def new_atom(self, uuid: Any) -> AtomDetail:
        kind = self.pick(KINDS, BAD_ENUMS | st.none())
        return AtomDetail(
            name=self.pick(NAMES, BAD_NAMES),
            kind=kind,
            uuid=uuid,
            state=self.atom_state(kind),
            intention=self.pick(INTENTIONS, BAD_ENUMS | st.none()),
            results=self.results(kind),
            failure=self.failure(),
            revert_results=self.json(),
            revert_failure=self.failure(),
            version=self.pick(VERSIONS, BAD_VERSIONS),
            meta=self.meta(),
            created_at=self.draw(TIMES),
            updated_at=self.draw(TIMES),
        )

    def changed_atom(self, stored: AtomDetail, uuid: Any) -> AtomDetail:
        """``stored`` with a field or two changed (often to a value equal by ``==``)."""
        atom = replace(stored, uuid=uuid)
        if self.bad_references and self.sometimes():
            atom.kind = self.draw(KINDS)
        changes: dict[str, Callable[[], Any]] = {
            "name": lambda: self.pick(NAMES, BAD_NAMES),
            "state": lambda: self.atom_state(stored.kind),
            "intention": lambda: self.pick(INTENTIONS, BAD_ENUMS),
            "results": lambda: self.results(stored.kind),
            "failure": self.failure,
            "revert_results": self.json,
            "revert_failure": self.failure,
            "version": lambda: self.pick(VERSIONS, BAD_VERSIONS),
            "meta": self.meta,
            "created_at": lambda: self.draw(TIMES),
            # Changes that == does not see:
            "results ==": lambda: twin(stored.results),
            "failure ==": lambda: twin(stored.failure),
            "revert_results ==": lambda: twin(stored.revert_results),
            "meta ==": lambda: twin(stored.meta),
        }
        for change in sorted(self.draw(st.sets(st.sampled_from(sorted(changes)), max_size=2))):
            setattr(atom, change.split()[0], changes[change]())
        return atom

    def new_flow(self, uuid: Any) -> FlowDetail:
        return FlowDetail(
            name=self.pick(NAMES, BAD_NAMES),
            uuid=uuid,
            state=self.pick(FLOW_STATES, BAD_ENUMS),
            meta=self.meta(),
            created_at=self.draw(TIMES),
        )

    def changed_flow(self, stored: FlowDetail, uuid: Any) -> FlowDetail:
        flow = replace(stored, uuid=uuid, atoms=[])
        if self.sometimes():
            flow.name = self.pick(NAMES, BAD_NAMES)
        if self.sometimes():
            flow.state = self.pick(FLOW_STATES, BAD_ENUMS)
        if self.sometimes():
            flow.meta = self.meta()
        return flow

    def atoms_for(self, home: FlowDetail | None, taken: list[UUID], least: int = 0) -> list[AtomDetail]:
        """Atoms to give with flow detail ``home`` (None: a flow not stored)."""
        atoms = []
        for _ in range(self.draw(st.integers(least, 3))):
            here = [atom for atom in (home.atoms if home else []) if atom.uuid not in taken]
            elsewhere = [atom for book in self.state for flow in book.flows if flow is not home for atom in flow.atoms]
            how = self.how(here, elsewhere, taken)
            uuid: UUID | None = None
            if how in ("here", "elsewhere"):
                stored = self.draw(st.sampled_from(here if how == "here" else elsewhere))
                uuid = stored.uuid
                atoms.append(self.changed_atom(stored, self.form(uuid)))
            elif how == "malformed":
                atoms.append(self.new_atom(self.draw(BAD_UUIDS)))
            else:
                uuid = self.draw(st.sampled_from(taken)) if how == "taken" else self.fresh()
                atoms.append(self.new_atom(self.form(uuid)))
            if uuid is not None:
                taken.append(uuid)
        return atoms

    def book(self, least: int = 0) -> LogBook:
        """A logbook to save: new or stored, with new and stored flow details
        (at least ``least`` of them, with at least ``least`` atoms each)."""
        how = self.how(self.state)
        target: LogBook | None = None
        if how == "here":
            target = self.draw(st.sampled_from(self.state))
            book = replace(target, uuid=self.form(target.uuid), flows=[])
            if self.sometimes():
                book.name = self.pick(NAMES, BAD_NAMES)
            if self.sometimes():
                book.meta = self.meta()
        else:
            key = self.draw(BAD_UUIDS) if how == "malformed" else self.form(self.fresh())
            book = LogBook(self.pick(NAMES, BAD_NAMES), uuid=key, meta=self.meta(), created_at=self.draw(TIMES))
        flows: list[UUID] = []
        atoms: list[UUID] = []
        for _ in range(self.draw(st.integers(least, 3))):
            here = [flow for flow in (target.flows if target else []) if flow.uuid not in flows]
            elsewhere = [flow for stored in self.state if stored is not target for flow in stored.flows]
            how = self.how(here, elsewhere, flows)
            home: FlowDetail | None = None
            uuid: UUID | None = None
            if how in ("here", "elsewhere"):
                home = self.draw(st.sampled_from(here if how == "here" else elsewhere))
                uuid = home.uuid
                flow = self.changed_flow(home, self.form(uuid))
            elif how == "malformed":
                flow = self.new_flow(self.draw(BAD_UUIDS))
            else:
                uuid = self.draw(st.sampled_from(flows)) if how == "taken" else self.fresh()
                flow = self.new_flow(self.form(uuid))
            if uuid is not None:
                flows.append(uuid)
            flow.atoms = self.atoms_for(home, atoms, least)
            book.flows.append(flow)
        return book

    # ---- calls

    async def attempt(
        self,
        call: Callable[[], Awaitable[Any]],
        expect: Callable[[State], State],
        reread: Callable[[Any], Awaitable[Any]] | None = None,
    ) -> None:
        """Make ``call``; check it did what the model ``expect`` says, or
        that it was refused, as the model says, and wrote nothing."""
        expected: State | None
        why = ""
        try:
            expected = expect(deepcopy(self.state))
        except Refused as verdict:
            expected, why = None, str(verdict)
        rows = await everything(self.store) if expected is None else None  # only a refusal needs them
        refusal: StoreError | None = None
        try:
            returned = await call()
        except StoreError as error:
            refusal = error  # asserted on below, outside the handler
        event(f"refused: {why}" if expected is None else "accepted")
        if refusal is not None:
            assert expected is None, f"refused with {refusal!r}, yet the model accepts the call"
            assert_safe_message(refusal)
            assert await everything(self.store) == rows, f"refused with {refusal!r}, yet rows changed"
            return
        assert expected is not None, f"accepted, yet the model refuses it: {why}"
        self.state = await books_of(self.store)
        assert_exactly(expected, self.state, "the stored logbooks differ from the model")
        if reread is not None:
            again = await reread(returned)
            want, got = plain(returned, timestamps=True), plain(again, timestamps=True)
            assert same(want, got), f"the call returned something else than a get: {difference(want, got)}"

    async def save(self, book: LogBook) -> None:
        await self.attempt(
            lambda: self.store.logbooks.save(book),
            lambda state: expect_save(state, book),
            lambda saved: self.store.logbooks.get(saved.uuid),
        )

    async def seed(self, values: int) -> None:
        """Save 1–2 valid logbooks (each save checked like any other)."""
        await self.store.logbooks.clear()
        self.state = []
        for _ in range(self.draw(st.integers(1, 2))):
            await self.save(self.book(least=1))
        # Apart, so that a hostile value (refused first) does not hide what
        # the call does with hostile references. ``values``: about how many
        # values the call's input is drawn with.
        self.drawn = 0
        self.hostile_at = self.draw(st.integers(1, values)) if self.draw(st.booleans()) else 0
        self.bad_references = bool(self.draw(st.booleans()))

    async def still_works(self) -> None:
        """The next ordinary call works."""
        book = LogBook("ordinary", flows=[FlowDetail("f", atoms=[AtomDetail("a", results={"n": 1.5})])])
        saved = await self.store.logbooks.save(book)
        assert_exactly(saved, await self.store.logbooks.get(book.uuid), "the ordinary book")
        assert saved.flows[0].atoms[0].results == {"n": 1.5}


# --------------------------------------------------------------------------- the properties

PROPERTIES = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPERTIES
@given(data=st.data())
async def test_logbook_save(store: Store, data: st.DataObject) -> None:
    world = World(store, data)
    await world.seed(40)
    await world.save(world.book())
    await world.still_works()


@PROPERTIES
@given(data=st.data())
async def test_logbook_destroy(store: Store, data: st.DataObject) -> None:
    world = World(store, data)
    await world.seed(1)
    how = world.how(world.state, fresh=False)
    if how == "here":
        uuid = world.form(world.draw(st.sampled_from(world.state)).uuid)
    else:
        uuid = world.draw(BAD_UUIDS) if how == "malformed" else world.form(world.fresh())
    await world.attempt(lambda: store.logbooks.destroy(uuid), lambda state: expect_destroy(state, uuid))
    await world.still_works()


@settings(PROPERTIES, max_examples=10)
@given(data=st.data())
async def test_logbook_clear(store: Store, data: st.DataObject) -> None:
    world = World(store, data)
    await world.seed(1)
    for _ in range(world.draw(st.integers(1, 2))):  # clearing an empty store too
        await world.attempt(store.logbooks.clear, lambda state: [])
    await world.still_works()


@PROPERTIES
@given(data=st.data())
async def test_flow_detail_update(store: Store, data: st.DataObject) -> None:
    world = World(store, data)
    await world.seed(25)
    stored = [flow for book in world.state for flow in book.flows]
    how = world.how(stored, fresh=False)
    home: FlowDetail | None = None
    if how == "here":
        home = world.draw(st.sampled_from(stored))
        flow = world.changed_flow(home, world.form(home.uuid))
    else:
        flow = world.new_flow(world.draw(BAD_UUIDS) if how == "malformed" else world.form(world.fresh()))
    atoms: list[AtomDetail] | None = world.atoms_for(home, [])
    if world.sometimes():  # given apart: flow.atoms is then ignored, whatever it holds
        flow.atoms = world.atoms_for(None, [])
    else:
        flow.atoms, atoms = atoms or [], None
    await world.attempt(
        lambda: store.flow_details.update(flow, atoms=atoms),
        lambda state: expect_flow_update(state, flow, atoms),
        lambda updated: store.flow_details.get(updated.uuid),
    )
    await world.still_works()


@PROPERTIES
@given(data=st.data())
async def test_atom_detail_update(store: Store, data: st.DataObject) -> None:
    world = World(store, data)
    await world.seed(3)
    stored = [atom for book in world.state for flow in book.flows for atom in flow.atoms]
    how = world.how(stored, fresh=False)
    if how == "here":
        chosen = world.draw(st.sampled_from(stored))
        atom = world.changed_atom(chosen, world.form(chosen.uuid))
    else:
        atom = world.new_atom(world.draw(BAD_UUIDS) if how == "malformed" else world.form(world.fresh()))
    await world.attempt(
        lambda: store.atom_details.update(atom),
        lambda state: expect_atom_update(state, atom),
        lambda updated: store.atom_details.get(updated.uuid),
    )
    await world.still_works()
