"""One input policy, the same on every backend, checked before any SQL.

Every field of both models refuses the same things with InvalidInput naming
the field: NUL and lone surrogates in text (also inside JSON, keys too), JSON
integers outside the signed 64-bit range, JSON nested deeper than
MAX_JSON_DEPTH, aware datetimes with no UTC instant, and values whose very
repr raises. Nothing is written, the message itself can always be built,
printed and logged, and the next good call works.
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.engine import Connection

from statestore import InvalidInput, Store
from statestore.core import validate
from statestore.core.types import dump_json
from statestore.core.validate import JSON_INTEGERS, MAX_JSON_DEPTH, ensure_json, shown
from statestore.farm import AuthoredJob, AuthoredTask, Command, JobStatus, TaskStatus, WorkerStatus
from statestore.flows import AtomDetail, AtomKind, AtomState, Failure, FlowDetail, LogBook, RetryAttempt
from statestore.schema.metadata import metadata

HUGE = 10**5000
"""An int whose repr raises on Python 3.11+ (more than 4,300 digits)."""

EAST = timezone(timedelta(hours=1))
WEST = timezone(timedelta(hours=-1))
NO_UTC_INSTANT = [datetime.min.replace(tzinfo=EAST), datetime.max.replace(tzinfo=WEST)]

BAD_TEXTS = {"nul": "a\x00b", "surrogate": "a\ud800b", "low surrogate": "\udfff", "pair": "\ud83d\ude00"}


def deep(levels: int) -> Any:
    """A list ``levels`` deep (``deep(2) == [[0]]``)."""
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


def _cycle() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


BAD_JSON: dict[str, Callable[[], Any]] = {
    "nul in a string": lambda: "a\x00b",
    "surrogate in a string": lambda: ["ok", "\ud800"],
    "nul in a key": lambda: {"k\x00": 1},
    "surrogate in a key": lambda: {"\udc80": 1},
    "int above int64": lambda: JSON_INTEGERS[1] + 1,
    "int below int64": lambda: JSON_INTEGERS[0] - 1,
    "int of 5000 digits": lambda: HUGE,
    "too deep": lambda: deep(MAX_JSON_DEPTH),  # the field's own dict makes it one more
    "a list containing itself": _cycle,
    "nan": lambda: float("nan"),
}
"""Put one level below a field's dict: ``{"k": value}``."""


# --------------------------------------------------------------------------- helpers


def _rows(connection: Connection) -> list[list[Any]]:
    return [
        [tuple(row) for row in connection.execute(select(table).order_by(*table.primary_key.columns))]
        for table in metadata.sorted_tables
    ]


async def everything(store: Store) -> list[list[Any]]:
    """Every row of every table: what must not change when a call is refused."""
    return await store.read(_rows)


def assert_safe_message(error: BaseException) -> str:
    """The message, repr and formatted traceback can be built, printed as
    UTF-8 and are short, whatever the input was."""
    message = str(error)
    for shown_text in (message, repr(error), "".join(traceback.format_exception(error))):
        shown_text.encode("utf-8")  # no lone surrogate
    assert len(message) < 1000, message
    return message


async def refused(call: Awaitable[Any], *names: str) -> str:
    """Await ``call``: InvalidInput whose message names every one of ``names``."""
    with pytest.raises(InvalidInput) as caught:
        await call
    message = assert_safe_message(caught.value)
    for name in names:
        assert name in message, (name, message)
    return message


# --------------------------------------------------------------------------- fields

Call = Callable[[Store, Any, Any], Awaitable[Any]]


@dataclass(frozen=True)
class Field:
    """One field of the public API: how to make what it needs, how to pass
    it a value, what its error names, and a value it accepts."""

    names: tuple[str, ...]
    call: Call
    good: Any
    prepare: Callable[[Store], Awaitable[Any]] | None = None
    writes: bool = True
    """Whether the good call changes the database."""
    levels: int = 1
    """How deep the field puts the value it is given (``{"k": value}``: 1;
    a Failure's ``exc_args``, counted in its dict form: 3)."""


async def _atom(store: Store, kind: AtomKind = AtomKind.TASK) -> AtomDetail:
    atom = AtomDetail("a", kind=kind, results=None)
    await store.logbooks.save(LogBook("b", flows=[FlowDetail("f", atoms=[atom])]))
    return atom


async def _retry(store: Store) -> AtomDetail:
    return await _atom(store, AtomKind.RETRY)


async def _update_atom(store: Store, atom: AtomDetail, **changes: Any) -> None:
    await store.atom_details.update(replace(atom, **changes))


def _job(**changes: Any) -> AuthoredJob:
    task = AuthoredTask("t", "blender", commands=[Command("run", {"frames": "1-3"})])
    job = AuthoredJob("j", "render", tasks=[task])
    for name, value in changes.items():
        setattr(job, name, value)
    return job


def _job_with_task(**changes: Any) -> AuthoredJob:
    task = AuthoredTask("t", "blender", commands=[Command("run", {})])
    for name, value in changes.items():
        setattr(task, name, value)
    return AuthoredJob("j", "render", tasks=[task])


async def _stored_job(store: Store) -> UUID:
    return (await store.jobs.store_authored(_job())).uuid


async def _stored_task(store: Store) -> UUID:
    job = await store.jobs.store_authored(_job())
    return (await store.tasks.of_job(job.uuid))[0].uuid


async def _save_task(store: Store, task_uuid: UUID, **changes: Any) -> None:
    await store.tasks.save(replace(await store.tasks.fetch(task_uuid), **changes))


async def _worker(store: Store) -> UUID:
    return (await store.workers.create("w", "s3cret")).uuid


async def _worker_and_job(store: Store) -> tuple[UUID, UUID]:
    return await _worker(store), await _stored_job(store)


def _with_failure(**changes: Any) -> Failure:
    return replace(Failure("boom", ("RuntimeError",)), **changes)


TEXT_FIELDS: dict[str, Field] = {
    # the flow model
    "logbook name": Field(("logbook", ".name"), lambda s, _, v: s.logbooks.save(LogBook(v)), "b"),
    "flow name": Field(
        ("flow detail", ".name"), lambda s, _, v: s.logbooks.save(LogBook("b", flows=[FlowDetail(v)])), "f"
    ),
    "atom name": Field(
        ("atom", ".name"),
        lambda s, _, v: s.logbooks.save(LogBook("b", flows=[FlowDetail("f", atoms=[AtomDetail(v)])])),
        "a",
    ),
    "atom version": Field(("atom 'a'.version",), lambda s, a, v: _update_atom(s, a, version=v), "1.0", _atom),
    "failure text": Field(
        ("atom 'a'.failure",), lambda s, a, v: _update_atom(s, a, failure=_with_failure(exception_str=v)), "x", _atom
    ),
    "failure type name": Field(
        ("atom 'a'.failure",),
        lambda s, a, v: _update_atom(s, a, failure=_with_failure(exc_type_names=(v,))),
        "KeyError",
        _atom,
    ),
    "retry failure key": Field(
        ("atom 'a'.results[0].failures",),
        lambda s, a, v: _update_atom(s, a, results=[RetryAttempt(1, {v: _with_failure()})]),
        "the-task",
        _retry,
    ),
    # the farm model: jobs and tasks
    "job name": Field(("job", ".name"), lambda s, _, v: s.jobs.store_authored(_job(name=v)), "j"),
    "job type": Field(("job 'j'.job_type",), lambda s, _, v: s.jobs.store_authored(_job(job_type=v)), "render"),
    "checkout id": Field(
        ("job 'j'.storage_checkout_id",), lambda s, _, v: s.jobs.store_authored(_job(storage_checkout_id=v)), "c"
    ),
    "task name": Field(("task", ".name"), lambda s, _, v: s.jobs.store_authored(_job_with_task(name=v)), "t"),
    "task type": Field(("task 't'.type",), lambda s, _, v: s.jobs.store_authored(_job_with_task(type=v)), "blender"),
    "command name": Field(
        ("task 't'.commands[0].name",),
        lambda s, _, v: s.jobs.store_authored(_job_with_task(commands=[Command(v)])),
        "run",
    ),
    "saved task name": Field(("task", ".name"), lambda s, t, v: _save_task(s, t, name=v), "t2", _stored_task),
    "saved command name": Field(
        ("commands[0].name",), lambda s, t, v: _save_task(s, t, commands=(Command(v),)), "run", _stored_task
    ),
    "task activity": Field(("activity",), lambda s, t, v: s.tasks.save_activity(t, v), "rendering", _stored_task),
    "job activity": Field(
        ("activity",), lambda s, j, v: s.jobs.save_status(j, JobStatus.QUEUED, v), "queued", _stored_job
    ),
    "storage info": Field(("storage_checkout_id",), lambda s, j, v: s.jobs.save_storage_info(j, v), "c", _stored_job),
    # the farm model: workers, tags, schedules, blocklists, the scheduler
    "worker name": Field(("worker", ".name"), lambda s, _, v: s.workers.create(v, "s3cret"), "w"),
    "worker address": Field(("worker 'w'.address",), lambda s, _, v: s.workers.create("w", "x", address=v), "::1"),
    "worker platform": Field(("worker 'w'.platform",), lambda s, _, v: s.workers.create("w", "x", platform=v), "os"),
    "worker software": Field(("worker 'w'.software",), lambda s, _, v: s.workers.create("w", "x", software=v), "3"),
    "worker task types": Field(
        ("worker 'w'.supported_task_types[1]",),
        lambda s, _, v: s.workers.create("w", "x", supported_task_types=["blender", v]),
        "ffmpeg",
    ),
    "saved worker name": Field(
        ("worker", ".name"),
        lambda s, w, v: _save_worker(s, w, name=v),
        "w2",
        _worker,
    ),
    "tag name": Field(("worker tag", ".name"), lambda s, _, v: s.worker_tags.create(v), "gpu"),
    "tag description": Field(("worker tag 'g'.description",), lambda s, _, v: s.worker_tags.create("g", v), "GPUs"),
    "sleep days": Field(
        ("days_of_week",),
        lambda s, w, v: s.sleep_schedules.set(w, is_active=True, days_of_week=v, start_time="", end_time=""),
        "mo tu",
        _worker,
    ),
    "blocklisted task type": Field(
        ("task type",), lambda s, wj, v: s.blocklist.add(wj[1], wj[0], v), "blender", _worker_and_job
    ),
    "requeue reason": Field(
        ("reason",), lambda s, w, v: s.scheduler.requeue_tasks_of_worker(w, v), "signed off", _worker, writes=False
    ),
}


async def _save_worker(store: Store, worker_uuid: UUID, **changes: Any) -> None:
    await store.workers.save(replace(await store.workers.fetch(worker_uuid), **changes))


JSON_FIELDS: dict[str, Field] = {
    "logbook meta": Field(("logbook 'b'.meta",), lambda s, _, v: s.logbooks.save(LogBook("b", meta={"k": v})), 1),
    "flow meta": Field(
        ("flow detail 'f'.meta",),
        lambda s, _, v: s.logbooks.save(LogBook("b", flows=[FlowDetail("f", meta={"k": v})])),
        1,
    ),
    "atom results": Field(("atom 'a'.results",), lambda s, a, v: _update_atom(s, a, results={"k": v}), 1, _atom),
    "atom meta": Field(("atom 'a'.meta",), lambda s, a, v: _update_atom(s, a, meta={"k": v}), 1, _atom),
    "atom revert results": Field(
        ("atom 'a'.revert_results",), lambda s, a, v: _update_atom(s, a, revert_results={"k": v}), 1, _atom
    ),
    "atom failure args": Field(
        ("atom 'a'.failure",),
        lambda s, a, v: _update_atom(s, a, failure=_with_failure(exc_args=({"k": v},))),
        1,
        _atom,
        levels=3,
    ),
    "atom revert failure args": Field(
        ("atom 'a'.revert_failure",),
        lambda s, a, v: _update_atom(s, a, revert_failure=_with_failure(exc_args=({"k": v},))),
        1,
        _atom,
        levels=3,
    ),
    "retry data": Field(
        ("atom 'a'.results[0].data",), lambda s, a, v: _update_atom(s, a, results=[RetryAttempt({"k": v})]), 1, _retry
    ),
    "retry failure args": Field(  # stored 3 deeper than its Failure: the deepest document of the schema
        ("atom 'a'.results[0].failures['t']",),
        lambda s, a, v: _update_atom(s, a, results=[RetryAttempt(1, {"t": _with_failure(exc_args=({"k": v},))})]),
        1,
        _retry,
        levels=3,
    ),
    "job settings": Field(("job 'j'.settings",), lambda s, _, v: s.jobs.store_authored(_job(settings={"k": v})), 1),
    "job metadata": Field(("job 'j'.metadata",), lambda s, _, v: s.jobs.store_authored(_job(metadata={"k": v})), 1),
    "command parameters": Field(
        ("task 't'.commands[0].parameters",),
        lambda s, _, v: s.jobs.store_authored(_job_with_task(commands=[Command("run", {"k": v})])),
        1,
    ),
    "saved command parameters": Field(
        ("task 't'.commands[0].parameters",),
        lambda s, t, v: _save_task(s, t, commands=(Command("run", {"k": v}),)),
        1,
        _stored_task,
    ),
    "added task parameters": Field(
        ("task 'u'.commands[0].parameters",),
        lambda s, j, v: s.jobs.add_tasks(j, [AuthoredTask("u", "blender", commands=[Command("run", {"k": v})])]),
        1,
        _stored_job,
    ),
}


async def _check_field(store: Store, field: Field, bad_values: list[Any]) -> None:
    context = await field.prepare(store) if field.prepare is not None else None
    before = await everything(store)
    for bad in bad_values:
        await refused(field.call(store, context, bad), *field.names)
        assert await everything(store) == before, f"a refused {shown(bad)} wrote something"
    await field.call(store, context, field.good)  # the store still works
    assert (await everything(store) != before) is field.writes


@pytest.mark.parametrize("name", TEXT_FIELDS)
async def test_text_fields_refuse_nul_and_lone_surrogates(store: Store, name: str) -> None:
    await _check_field(store, TEXT_FIELDS[name], list(BAD_TEXTS.values()))


@pytest.mark.parametrize("name", JSON_FIELDS)
async def test_json_fields_refuse_what_some_backend_cannot_store(store: Store, name: str) -> None:
    await _check_field(store, JSON_FIELDS[name], [make() for make in BAD_JSON.values()])


@pytest.mark.parametrize("name", JSON_FIELDS)
async def test_json_fields_take_values_at_the_limits(store: Store, name: str) -> None:
    """The deepest value allowed, the int64 extremes and text with every
    other kind of character are stored (and one level more is refused: the
    limit is exactly MAX_JSON_DEPTH)."""
    field = JSON_FIELDS[name]
    context = await field.prepare(store) if field.prepare is not None else None
    room = MAX_JSON_DEPTH - field.levels - 1  # the list below takes one level
    await refused(field.call(store, context, [deep(room + 1)]), *field.names, "nested deeper")
    await field.call(store, context, [deep(room), *JSON_INTEGERS, "tab\t, bell\x07, ü, 😀, \ufffd, \U0010ffff"])


# --------------------------------------------------------------------------- the limits, exactly


def test_the_depth_limit_counts_lists_and_dicts() -> None:
    assert ensure_json(deep(MAX_JSON_DEPTH), "v") == deep(MAX_JSON_DEPTH)
    with pytest.raises(InvalidInput, match=rf"v(\[0\])+: nested deeper than {MAX_JSON_DEPTH} levels"):
        ensure_json(deep(MAX_JSON_DEPTH + 1), "v")
    nested: Any = 0
    for _ in range(MAX_JSON_DEPTH + 1):
        nested = {"k": nested}
    with pytest.raises(InvalidInput, match="nested deeper"):
        ensure_json(nested, "v")
    with pytest.raises(InvalidInput, match="nested deeper"):
        ensure_json(deep(10_000), "v")  # no RecursionError on the way


@pytest.mark.parametrize("value", [JSON_INTEGERS[0], JSON_INTEGERS[1], 0, -1, True])
def test_int64_extremes_are_json(value: int) -> None:
    assert ensure_json(value, "v") is value


@pytest.mark.parametrize(
    "value", [JSON_INTEGERS[0] - 1, JSON_INTEGERS[1] + 1, HUGE, -HUGE], ids=["below", "above", "huge", "-huge"]
)
def test_ints_beyond_int64_are_refused_with_a_message_that_builds(value: int) -> None:
    with pytest.raises(InvalidInput, match="signed 64-bit range") as caught:
        ensure_json({"n": [value]}, "v")
    assert "v['n'][0]" in assert_safe_message(caught.value)


def test_the_last_guard_of_dump_json_refuses_what_skipped_the_checks() -> None:
    for value in ("\ud800", {"k": HUGE}, _cycle(), float("nan"), {1, 2}):
        with pytest.raises(InvalidInput) as caught:
            dump_json(value)
        assert caught.value.__cause__ is None
        assert_safe_message(caught.value)
    assert dump_json({"k": "\x00"}) == '{"k": "\\u0000"}'  # fields refuse it before; JSON itself can say it


def test_shown_never_raises_and_stays_short() -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no repr for you")

    class Surrogate:
        def __repr__(self) -> str:
            return "\ud800" * 10_000

    for value in (HUGE, -HUGE, [HUGE], {"k": HUGE}, Hostile(), Surrogate(), _cycle(), "x" * 10**6, b"\x00" * 10**6):
        text = shown(value)
        text.encode("utf-8")
        assert len(text) < 200, text


# --------------------------------------------------------------------------- values whose repr raises


ENUM_AND_INT_CASES: dict[str, Field] = {
    "atom state": Field(("atom 'a'.state",), lambda s, a, v: _update_atom(s, a, state=v), AtomState.SUCCESS, _atom),
    "atom name": Field(
        ("atom", ".name"),
        lambda s, _, v: s.logbooks.save(LogBook("b", flows=[FlowDetail("f", atoms=[AtomDetail(v)])])),
        "a",
    ),
    "logbook name": Field(("logbook", ".name"), lambda s, _, v: s.logbooks.save(LogBook(v)), "b"),
    "job status": Field(("job 'j'.status",), lambda s, _, v: s.jobs.store_authored(_job(status=v)), JobStatus.QUEUED),
    "job priority": Field(("job 'j'.priority",), lambda s, _, v: s.jobs.store_authored(_job(priority=v)), 60),
    "task status": Field(("task status",), lambda s, t, v: s.tasks.save_status(t, v), TaskStatus.ACTIVE, _stored_task),
    "steps": Field(
        ("total_step_count",),
        lambda s, _, v: s.jobs.store_authored(_job_with_task(commands=[Command("run", total_step_count=v)])),
        3,
    ),
    "worker status": Field(
        ("worker 'w'.status",), lambda s, _, v: s.workers.create("w", "x", status=v), WorkerStatus.AWAKE
    ),
    "worker status saved": Field(("status",), lambda s, w, v: s.workers.save_status(w, v), WorkerStatus.AWAKE, _worker),
    "worker requested status": Field(
        ("requested",),
        lambda s, w, v: s.workers.save_status(w, WorkerStatus.AWAKE, requested=v),
        WorkerStatus.ASLEEP,
        _worker,
    ),
}


ENUM_AND_INT_CASES["job name"] = Field(("job", ".name"), lambda s, _, v: s.jobs.store_authored(_job(name=v)), "j")
ENUM_AND_INT_CASES["task name"] = Field(
    ("task", ".name"), lambda s, _, v: s.jobs.store_authored(_job_with_task(name=v)), "t"
)
ENUM_AND_INT_CASES["saved task name"] = Field(
    ("task", ".name"), lambda s, t, v: _save_task(s, t, name=v), "t2", _stored_task
)


@pytest.mark.parametrize("name", list(ENUM_AND_INT_CASES))
async def test_a_value_whose_repr_raises_is_refused_with_a_message(store: Store, name: str) -> None:
    await _check_field(store, ENUM_AND_INT_CASES[name], [HUGE, -HUGE])


# --------------------------------------------------------------------------- datetimes

DATETIME_FIELDS: dict[str, Field] = {
    "worker last seen": Field(
        ("worker 'w'.last_seen_at",), lambda s, _, v: s.workers.create("w", "x", last_seen_at=v), datetime.now(UTC)
    ),
    "task last touched": Field(
        ("last_touched_at",), lambda s, t, v: _save_task(s, t, last_touched_at=v), datetime.now(UTC), _stored_task
    ),
    "sleep next check": Field(
        ("next_check",),
        lambda s, w, v: s.sleep_schedules.set(
            w, is_active=True, days_of_week="", start_time="", end_time="", next_check=v
        ),
        datetime.now(UTC),
        _worker,
    ),
    "mass deletion": Field(
        ("last_updated_max",), lambda s, j, v: _mass_deletion(s, v), datetime.now(UTC) + timedelta(days=1), _stored_job
    ),
}


async def _mass_deletion(store: Store, when: datetime) -> None:
    assert await store.jobs.request_mass_deletion(when)


@pytest.mark.parametrize("name", DATETIME_FIELDS)
async def test_aware_datetimes_with_no_utc_instant_are_refused(store: Store, name: str) -> None:
    await _check_field(store, DATETIME_FIELDS[name], NO_UTC_INSTANT)


@pytest.mark.parametrize("when", NO_UTC_INSTANT, ids=["min+01:00", "max-01:00"])
async def test_queries_by_a_datetime_with_no_utc_instant_are_refused(store: Store, when: datetime) -> None:
    for query in (store.tasks.timed_out, store.workers.timed_out, store.sleep_schedules.to_check):
        message = await refused(query(when))
        assert "outside the datetimes that exist in UTC" in message


async def test_the_extreme_datetimes_round_trip(store: Store) -> None:
    for when in (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC), datetime.min.replace(tzinfo=WEST)):
        worker = await store.workers.create(f"w{uuid4().hex[:6]}", "x", last_seen_at=when)
        assert (await store.workers.fetch(worker.uuid)).last_seen_at == when


# --------------------------------------------------------------------------- lookups by text


async def test_lookups_by_refused_text_are_refused(store: Store) -> None:
    job = await _stored_job(store)
    worker = await _worker(store)
    for text in BAD_TEXTS.values():
        await refused(store.worker_tags.fetch_by_name(text))
        await refused(store.blocklist.workers_left_to_run(job, text))
        await refused(store.blocklist.remove(job, worker, text))


# --------------------------------------------------------------------------- the quick path agrees

_ANY_TEXT = st.text(st.sampled_from(["a", "é", "\x00", "\ud800", "\udfff", "😀", "\\", '"']), max_size=4)
_ANY_SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats()
    | _ANY_TEXT
    | st.sampled_from([(1, 2), b"x", {1, 2}, object()])
    | st.builds(lambda: HUGE)  # sampled_from would repr it
)
_ANY_VALUE = st.recursive(
    _ANY_SCALAR,
    lambda children: (
        st.lists(children, max_size=3)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(_ANY_TEXT | st.integers(0, 2), children, max_size=3)
    ),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(value=_ANY_VALUE, wrap=st.integers(0, MAX_JSON_DEPTH + 1))
def test_the_quick_check_and_the_naming_check_agree(value: Any, wrap: int) -> None:
    """``ensure_json`` checks fast first and, only when that fails, again
    naming where: both must refuse exactly the same values."""
    for _ in range(wrap):
        value = {"k": value} if wrap % 2 else [value]
    try:
        quick: Any = validate._normalized_quickly(value, MAX_JSON_DEPTH)
    except validate._NotJSON:
        quick = validate._NotJSON
    try:
        named: Any = validate._normalized(value, "v", MAX_JSON_DEPTH)
    except InvalidInput as refused_here:
        assert_safe_message(refused_here)
        named = validate._NotJSON
    assert (quick is validate._NotJSON) == (named is validate._NotJSON)
    if named is not validate._NotJSON:
        assert quick == named
        assert dump_json(quick) == dump_json(named)
