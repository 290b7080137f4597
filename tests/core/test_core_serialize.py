"""Records ↔ JSON-ready data (``statestore.to_data`` / ``statestore.from_data``).

Every round trip goes through ``json.dumps(allow_nan=False)``/``json.loads``
and is compared strictly (types, not only ``==``: a StrEnum equals its string,
so ``==`` alone would not notice a status coming back as a plain str).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import types
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from enum import Enum
from typing import Any, Literal, Optional, TypeVar, Union, get_args, get_origin, get_type_hints
from uuid import UUID, uuid4

import pytest

import statestore.farm
import statestore.flows
from statestore import InvalidInput, Store, from_data, to_data
from statestore.core.types import utcnow
from statestore.farm import (
    AuthoredJob,
    AuthoredTask,
    BlocklistEntry,
    Command,
    FailureRecorded,
    Job,
    JobStatus,
    ScheduledTask,
    Task,
    TaskStatus,
    TimedOutTask,
)
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
from tests.support.farm_fixtures import authored_job, create_worker
from tests.support.flow_fixtures import failure

R = TypeVar("R")

IST = timezone(timedelta(hours=5, minutes=30))
BRT = timezone(timedelta(hours=-3))
NPT = timezone(timedelta(hours=5, minutes=45))
T0 = datetime(2025, 3, 30, 1, 59, 59, 123456, tzinfo=UTC)
T1 = datetime(2025, 3, 30, 9, 15, 0, 7, tzinfo=IST)
T2 = datetime(1999, 12, 31, 21, 0, tzinfo=BRT)
T3 = datetime(2031, 1, 2, 3, 4, 5, tzinfo=NPT)

METADATA: dict[str, Any] = {
    "author": "Sybren",
    "frames": {"start": 1, "end": 250, "step": 1.5, "ranges": [[1, 10], [20, 30.25]]},
    "flags": [True, False, None],
    "ratio": 0.1 + 0.2,
    "big": 2**62,
    "tiny": -1e-300,
    "unicode": "дрон 🐈 één",
    "empty": {"list": [], "dict": {}},
}


# --------------------------------------------------------------------------- helpers


def assert_same(left: object, right: object, where: str = "record") -> None:
    """``left == right`` with the same types all the way down (and every
    dataclass field compared, ``compare=False`` ones included); ``left`` is
    the rebuilt record, ``right`` the original."""
    if isinstance(right, UUID):  # asyncpg hands back its own UUID subclass; from_data makes uuid.UUID
        assert type(left) is UUID, f"{where}: {type(left).__name__}"
        assert left == right, where
        return
    assert type(left) is type(right), f"{where}: {type(left).__name__} != {type(right).__name__}"
    if dataclasses.is_dataclass(left) and not isinstance(left, type):
        for each in dataclasses.fields(left):
            assert_same(getattr(left, each.name), getattr(right, each.name), f"{where}.{each.name}")
    elif isinstance(left, dict):
        assert isinstance(right, dict)
        assert list(left) == list(right), f"{where}: keys differ"
        for key, value in left.items():
            assert_same(value, right[key], f"{where}[{key!r}]")
    elif isinstance(left, (list, tuple)):
        assert isinstance(right, (list, tuple))
        assert len(left) == len(right), f"{where}: lengths differ"
        for index, (one, other) in enumerate(zip(left, right, strict=True)):
            assert_same(one, other, f"{where}[{index}]")
    elif isinstance(left, datetime):
        assert isinstance(right, datetime)
        assert (left, left.utcoffset()) == (right, right.utcoffset()), where
    else:
        assert left == right, f"{where}: {left!r} != {right!r}"


def round_trip(record: object) -> Any:
    """The record rebuilt from its data after a trip through JSON text; checks it is the same."""
    data = to_data(record)
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text) == data
    rebuilt = from_data(type(record), json.loads(text))
    assert rebuilt == record
    assert_same(rebuilt, record)
    assert to_data(rebuilt) == data
    return data


# --------------------------------------------------------------------------- realistic records


def _failure() -> Failure:
    root = Failure("'root cause'", ("KeyError", "LookupError", "Exception"), None, ("root cause",))
    return Failure(
        exception_str="render crashed: exit 139",
        exc_type_names=("statestore_tests.RenderCrash", "RuntimeError", "Exception"),
        traceback_str='Traceback (most recent call last):\n  File "render.py", line 3\n',
        exc_args=("render crashed", 139, 1.5, True, None, [1, {"nested": "arg"}]),
        causes=(root,),
    )


def _task_atom() -> AtomDetail:
    return AtomDetail(
        "compile",
        uuid=UUID("0b2d4c9e-4f32-4c44-9d7e-3b0a2c1d5e6f"),
        state=AtomState.REVERT_FAILURE,
        intention=Intention.REVERT,
        results={"binary": "app.bin", "sizes": [1, 2.5, None], "ok": True},
        failure=_failure(),
        revert_results=[{"undone": 1.25}],
        revert_failure=Failure("no way back", ("ValueError", "Exception")),
        version="2.1",
        meta=METADATA,
        created_at=T0,
        updated_at=T1,
    )


def _retry_atom() -> AtomDetail:
    flaky = _failure()
    return AtomDetail(
        "retry-upload",
        kind=AtomKind.RETRY,
        state=AtomState.RETRYING,
        intention=Intention.RETRY,
        results=[
            RetryAttempt(1, {"upload": flaky}),
            RetryAttempt({"attempt": 2, "backoff": 0.5}, {"upload": flaky, "verify": Failure("x", ())}),
            RetryAttempt(None),
        ],
        revert_results={"reverted": 1},
        meta={"retries": 3},
        created_at=T2,
        updated_at=T3,
    )


def _flow() -> FlowDetail:
    return FlowDetail(
        "deploy",
        state=FlowState.SUSPENDING,
        meta={"engine": {"workers": 4}},
        atoms=[_task_atom(), _retry_atom(), AtomDetail("bare")],
        created_at=T0,
        updated_at=T0,
    )


def _book() -> LogBook:
    return LogBook(
        "nightly",
        meta=METADATA,
        flows=[_flow(), FlowDetail("empty")],
        created_at=T1,
        updated_at=T2,
    )


def _command() -> Command:
    return Command("blender-render", {"exe": "blender", "args": ["-b", "shot.blend"], "fps": 23.976}, 10)


def _authored_job() -> AuthoredJob:
    render = AuthoredTask("render-1-10", "blender", priority=70, commands=[_command(), Command("noop")])
    video = AuthoredTask("preview", "ffmpeg", commands=[Command("merge", {"images": "render-*"})])
    video.dependencies = [render.uuid, uuid4()]
    return AuthoredJob(
        "shot-010",
        "simple-blender-render",
        priority=60,
        status=JobStatus.UNDER_CONSTRUCTION,
        settings={"frames": "1-10", "chunk_size": 3.0},
        metadata=METADATA,
        tasks=[render, video, AuthoredTask("cleanup", "file-management")],
        worker_tag=uuid4(),
        storage_checkout_id="één/twee",
    )


PUBLIC_RECORDS: list[type] = sorted(
    {
        value
        for package in (statestore.flows, statestore.farm)
        for value in vars(package).values()
        if isinstance(value, type) and dataclasses.is_dataclass(value)
    },
    key=lambda cls: cls.__name__,
)
"""Every record class either model exports: a new one is tested without editing this file."""

_counter = itertools.count(1)
_INSTANTS = (T0, T1, T2, T3)


def realistic(cls: type[R], *, sparse: bool = False, depth: int = 0, **overrides: Any) -> R:
    """A ``cls`` built from its type hints with realistic values (every
    optional set, collections of two, non-default enum members, unicode text,
    instants in four offsets) or, if ``sparse``, None and empty everywhere.

    Built from the hints, not listed by hand, so that the samples follow
    the records' fields as they change."""
    hints = get_type_hints(cls)
    values = {**_coherent(cls, sparse), **overrides}
    for each in dataclasses.fields(cls):  # type: ignore[arg-type]
        if each.init and each.name not in values:
            values[each.name] = _value(hints[each.name], sparse, depth)
    return cls(**values)


def _coherent(cls: type, sparse: bool) -> dict[str, Any]:
    """Fields whose value depends on another field: a retry's results are its history."""
    if cls is AtomDetail:
        return {"kind": AtomKind.RETRY, "results": None if sparse else _retry_atom().results}
    return {}


def _value(hint: Any, sparse: bool, depth: int) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        if sparse and type(None) in args:
            return None
        return _value(next(arg for arg in args if arg is not type(None)), sparse, depth)
    if hint is Any:
        return None if sparse else json.loads(json.dumps(METADATA))
    if origin in (list, tuple, set, frozenset):
        item = args[0]
        if sparse or (dataclasses.is_dataclass(item) and depth >= 2):
            return origin()
        return origin(_value(item, sparse, depth) for _ in range(2))
    if origin is dict:
        return {} if sparse else {"first": _value(args[1], sparse, depth), "второй": _value(args[1], sparse, depth)}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return realistic(hint, sparse=sparse, depth=depth + 1)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return list(hint)[0 if sparse else -1]
    scalars: dict[Any, Any] = {
        bool: lambda: not sparse,
        int: lambda: 0 if sparse else 2**40 + next(_counter),
        float: lambda: 0.1 + 0.2,
        str: lambda: "" if sparse else f"дрон 🐈 één {next(_counter)}",
        UUID: uuid4,
        datetime: lambda: _INSTANTS[next(_counter) % len(_INSTANTS)],
    }
    if hint in scalars:
        return scalars[hint]()
    raise AssertionError(f"no realistic value for {hint!r}: teach the test")


def _job(**changes: Any) -> Job:
    base = {"status": JobStatus.PAUSE_REQUESTED, "metadata": METADATA, "delete_requested_at": T1, "created_at": T0}
    return realistic(Job, **{**base, **changes})


def _task() -> Task:
    return realistic(Task, status=TaskStatus.SOFT_FAILED, commands=(_command(), Command("noop")))


SAMPLES: list[object] = [
    _failure(),
    Failure("plain", ("Exception",)),
    RetryAttempt({"data": [1.5]}, {"atom": _failure()}),
    _task_atom(),
    _retry_atom(),
    AtomDetail("defaults"),
    AtomDetail("retry-without-history", kind=AtomKind.RETRY),
    _flow(),
    _book(),
    _command(),
    AuthoredTask("render", "blender", dependencies=[uuid4(), uuid4()]),
    _authored_job(),
    AuthoredJob("minimal", "simple"),
    _job(),
    _job(delete_requested_at=None, status=JobStatus.QUEUED, metadata={}),
    _task(),
    realistic(TimedOutTask, task=_task()),
    realistic(ScheduledTask, task=_task()),
    realistic(FailureRecorded, workers_left=frozenset({uuid4(), uuid4(), uuid4()})),
]
"""Records built by hand where the shape matters: nested failures, retry history, commands."""


@pytest.mark.parametrize(
    "record", SAMPLES, ids=[f"{index}-{type(record).__name__}" for index, record in enumerate(SAMPLES)]
)
def test_records_round_trip_through_json(record: object) -> None:
    round_trip(record)


@pytest.mark.parametrize("sparse", [False, True], ids=["full", "sparse"])
@pytest.mark.parametrize("cls", PUBLIC_RECORDS, ids=[cls.__name__ for cls in PUBLIC_RECORDS])
def test_every_public_record_class_round_trips_through_json(cls: type, sparse: bool) -> None:
    round_trip(realistic(cls, sparse=sparse))


def test_both_models_records_are_all_found() -> None:
    names = {cls.__name__ for cls in PUBLIC_RECORDS}
    assert {"LogBook", "FlowDetail", "AtomDetail", "Failure", "RetryAttempt"} <= names
    assert {"Job", "Task", "TaskSummary", "Worker", "WorkerTag", "SleepSchedule", "BlocklistEntry"} <= names
    assert {"AuthoredJob", "AuthoredTask", "Command", "TimedOutTask"} <= names


def test_data_is_plain_json_in_the_expected_shape() -> None:
    job = _job()
    data = to_data(job)
    assert data["uuid"] == str(job.uuid)
    assert data["status"] == "pause-requested"
    assert type(data["status"]) is str
    assert data["delete_requested_at"] == "2025-03-30T09:15:00.000007+05:30"
    assert data["created_at"] == "2025-03-30T01:59:59.123456+00:00"
    assert data["metadata"] == METADATA
    assert "delete_requested" not in data  # a property, not a field
    task = to_data(_task())
    assert task["commands"][0] == {
        "name": "blender-render",
        "parameters": _command().parameters,
        "total_step_count": 10,
    }
    recorded = realistic(FailureRecorded, workers_left=frozenset({UUID(int=3), UUID(int=1), UUID(int=2)}))
    assert to_data(recorded)["workers_left"] == [str(UUID(int=n)) for n in (1, 2, 3)]
    retry = to_data(_retry_atom())
    assert retry["kind"] == "retry"
    assert retry["results"][0] == {"data": 1, "failures": {"upload": to_data(_failure())}}


def test_non_utc_offsets_are_kept() -> None:
    rebuilt = from_data(BlocklistEntry, json.loads(json.dumps(to_data(realistic(BlocklistEntry, created_at=T3)))))
    assert rebuilt.created_at.utcoffset() == timedelta(hours=5, minutes=45)
    assert rebuilt.created_at == T3.astimezone(UTC)


@pytest.mark.parametrize(
    "offset", [timedelta(seconds=30), timedelta(microseconds=1), timedelta(hours=-1, seconds=-1, microseconds=-7)]
)
def test_an_offset_that_is_not_whole_minutes_is_written_in_utc(offset: timedelta) -> None:
    """RFC 3339 offsets are ±HH:MM, and Python 3.11 reads +00:00:00.000001 as +00:00."""
    when = datetime(2025, 6, 1, 12, 0, 0, 250, tzinfo=timezone(offset))
    data = to_data(realistic(BlocklistEntry, created_at=when))
    assert data["created_at"] == when.astimezone(UTC).isoformat()
    rebuilt = from_data(BlocklistEntry, json.loads(json.dumps(data)))
    assert rebuilt.created_at == when
    assert rebuilt.created_at.utcoffset() == timedelta(0)
    with pytest.raises(InvalidInput, match="cannot be written in UTC"):
        edge = datetime.min if offset > timedelta(0) else datetime.max  # UTC of it is outside datetime's range
        to_data(realistic(BlocklistEntry, created_at=edge.replace(tzinfo=timezone(offset))))


def test_a_retry_history_comes_back_as_retry_attempts() -> None:
    rebuilt = from_data(AtomDetail, json.loads(json.dumps(to_data(_retry_atom()))))
    assert all(type(attempt) is RetryAttempt for attempt in rebuilt.results)
    assert rebuilt.results[0].failures["upload"] == _failure()
    plain = from_data(AtomDetail, to_data(AtomDetail("task", results=[{"data": 1, "failures": {}}])))
    assert plain.results == [{"data": 1, "failures": {}}]  # a task's results are its JSON, whatever its shape


def test_dependencies_given_as_tasks_are_written_as_their_uuids() -> None:
    render = AuthoredTask("render", "blender", commands=[_command()])
    video = AuthoredTask("video", "ffmpeg", dependencies=[render, "render", render.uuid])
    job = AuthoredJob("job", "simple", tasks=[render, video])
    data = to_data(job)
    assert data["tasks"][1]["dependencies"] == [str(render.uuid), "render", str(render.uuid)]  # type: ignore[call-overload,index]
    rebuilt = from_data(AuthoredJob, json.loads(json.dumps(data)))
    # A reference comes back as what it refers to: the task's uuid.
    assert rebuilt.tasks[1].dependencies == [render.uuid, "render", render.uuid]
    assert to_data(rebuilt) == data


def test_a_long_chain_of_task_dependencies_stays_small() -> None:
    tasks = [AuthoredTask("t0", "blender")]
    for number in range(1, 2000):
        tasks.append(AuthoredTask(f"t{number}", "blender", dependencies=[tasks[-1]]))
    text = json.dumps(to_data(AuthoredJob("chain", "simple", tasks=tasks)))
    assert len(text) < 2000 * 300


def test_fields_with_defaults_may_be_left_out() -> None:
    assert from_data(AuthoredTask, {"name": "t", "type": "blender", "uuid": str(UUID(int=1))}) == AuthoredTask(
        "t", "blender", uuid=UUID(int=1)
    )


# --------------------------------------------------------------------------- generic records


class Colour(Enum):
    RED = 1
    BLUE = 2


@dataclass(frozen=True, slots=True)
class Point:
    x: int
    y: int


@dataclass(frozen=True, slots=True)
class Everything:
    """Each kind of hint from_data decodes."""

    day: date
    at: time
    colour: Colour
    labels: frozenset[str]
    seen: set[int]
    by_uuid: dict[UUID, int]
    by_colour: dict[Colour, list[str]]
    by_number: dict[int, str]
    pair: tuple[int, str]
    either: int | str
    mode: Literal["fast", "exact"]
    old_optional: Optional[float]  # noqa: UP045 - the spelling from_data must also read
    old_union: Union[UUID, None]  # noqa: UP007 - same
    anything: Any
    spot: UUID | Point
    nested: Everything | None = None


@dataclass
class Checked:
    """A record with a ``__post_init__`` check, a computed ``init=False``
    field, a field left out of ``__eq__`` and a property."""

    name: str
    size: int
    label: str = field(init=False)
    note: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"size must be at least 0, got {self.size}")
        self.label = f"{self.name}:{self.size}"

    @property
    def doubled(self) -> int:
        return self.size * 2


def _everything(nested: Everything | None = None) -> Everything:
    return Everything(
        day=date(2025, 2, 28),
        at=time(23, 59, 1, 5, tzinfo=IST),
        colour=Colour.BLUE,
        labels=frozenset({"b", "a", "c"}),
        seen={10, 9, 100},
        by_uuid={UUID(int=5): 5},
        by_colour={Colour.RED: ["r"], Colour.BLUE: []},
        by_number={-1: "minus one", 2: "two"},
        pair=(1, "one"),
        either="2",
        mode="exact",
        old_optional=None,
        old_union=UUID(int=9),
        anything={"free": ["form", 1.5]},
        spot=Point(3, -4),
        nested=nested,
    )


def test_every_kind_of_hint_round_trips() -> None:
    data = round_trip(_everything(nested=_everything()))
    assert data["labels"] == ["a", "b", "c"]
    assert data["seen"] == [9, 10, 100]
    assert data["by_colour"] == {"1": ["r"], "2": []}
    assert data["at"] == "23:59:01.000005+05:30"
    assert data["day"] == "2025-02-28"


def test_post_init_checks_init_false_and_compare_false_fields() -> None:
    record = Checked("a", 2, note="kept")
    data = round_trip(record)
    assert data == {"name": "a", "size": 2, "label": "a:2", "note": "kept"}
    assert from_data(Checked, {**data, "label": "ignored"}).label == "a:2"  # computed, not taken
    with pytest.raises(InvalidInput, match=r"^Checked: size must be at least 0, got -1$"):
        from_data(Checked, {"name": "a", "size": -1})


# --------------------------------------------------------------------------- bad data


def _job_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = to_data(_job())
    data.update(changes)
    return data


def _without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in data.items() if name != key}


def _authored_data() -> dict[str, Any]:
    return json.loads(json.dumps(to_data(_authored_job())))  # type: ignore[no-any-return]


def _book_data() -> dict[str, Any]:
    return json.loads(json.dumps(to_data(_book())))  # type: ignore[no-any-return]


def _broken(data: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    target = data
    for step in path[:-1]:
        target = target[step]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


BAD: list[tuple[type, Any, str]] = [
    (Job, _without(_job_data(), "status"), r"^Job\.status: missing$"),
    (Job, _job_data(colour="red"), r"^Job: Job has no field 'colour'$"),
    (Job, _job_data(priority="high"), r"^Job\.priority: expected an integer, got str 'high'$"),
    (Job, _job_data(priority=True), r"^Job\.priority: expected an integer, got bool"),
    (Job, _job_data(priority=1.0), r"^Job\.priority: expected an integer, got float"),
    (Job, _job_data(uuid="not-a-uuid"), r"^Job\.uuid: 'not-a-uuid' is not a uuid$"),
    (Job, _job_data(uuid=42), r"^Job\.uuid: expected a uuid string, got int"),
    (Job, _job_data(created_at="yesterday"), r"^Job\.created_at: 'yesterday' is not an ISO 8601 datetime$"),
    (Job, _job_data(created_at="2025-01-01T00:00:00"), r"^Job\.created_at: .* has no UTC offset$"),
    (Job, _job_data(delete_requested_at=17), r"^Job\.delete_requested_at: expected an ISO 8601 datetime"),
    (Job, _job_data(status="done"), r"^Job\.status: 'done' is not one of active, canceled, "),
    (Job, _job_data(status=None), r"^Job\.status: None is not one of"),
    (Job, _job_data(metadata=["not", "a", "dict"]), r"^Job\.metadata: expected an object, got list"),
    (Job, _job_data(metadata={1: "x"}), r"^Job\.metadata\[1\]: expected a string, got int"),
    (Job, [1, 2], r"^Job: expected an object of Job's fields, got list$"),
    (Job, None, r"^Job: expected an object of Job's fields, got NoneType$"),
    (
        AuthoredJob,
        _broken(_authored_data(), ["tasks", 1, "commands", 0, "name"], KeyError),
        r"^AuthoredJob\.tasks\[1\]\.commands\[0\]\.name: missing$",
    ),
    (
        AuthoredJob,
        _broken(_authored_data(), ["tasks", 1, "dependencies", 1], 123),
        r"^AuthoredJob\.tasks\[1\]\.dependencies\[1\]: ",
    ),
    (
        AuthoredJob,
        _broken(_authored_data(), ["tasks", 2, "priority"], None),
        r"^AuthoredJob\.tasks\[2\]\.priority: expected an integer, got NoneType",
    ),
    (
        AuthoredJob,
        _broken(_authored_data(), ["tasks"], {"not": "a list"}),
        r"^AuthoredJob\.tasks: expected a list, got dict",
    ),
    (
        LogBook,
        _broken(
            _book_data(),
            ["flows", 0, "atoms", 1, "results", 0, "failures", "upload", "causes", 0, "exc_type_names"],
            "KeyError",
        ),
        r"^LogBook\.flows\[0\]\.atoms\[1\]\.results\[0\]\.failures\['upload'\]\.causes\[0\]\.exc_type_names: "
        r"expected a list",
    ),
    (
        LogBook,
        _broken(_book_data(), ["flows", 0, "atoms", 0, "state"], "FINISHED"),
        r"^LogBook\.flows\[0\]\.atoms\[0\]\.state: 'FINISHED' is not one of PENDING, ",
    ),
    (
        LogBook,
        _broken(_book_data(), ["flows", 0, "atoms", 1, "results"], [[1, {}]]),
        r"^LogBook\.flows\[0\]\.atoms\[1\]\.results\[0\]: expected an object of RetryAttempt's fields, got list$",
    ),
    (
        Task,
        _broken(json.loads(json.dumps(to_data(_task()))), ["commands", 1, "total_step_count"], "10"),
        r"^Task\.commands\[1\]\.total_step_count: expected an integer, got str '10'$",
    ),
    (
        ScheduledTask,
        _broken(json.loads(json.dumps(to_data(realistic(ScheduledTask, task=_task())))), ["task", "status"], "new"),
        r"^ScheduledTask\.task\.status: 'new' is not one of active, ",
    ),
    (
        FailureRecorded,
        {"failed_workers": 1, "worker_failures_on_job": 1, "blocklisted": "yes", "workers_left": []},
        r"^FailureRecorded\.blocklisted: expected true or false, got str 'yes'$",
    ),
    (
        FailureRecorded,
        {"failed_workers": 1, "worker_failures_on_job": 1, "blocklisted": False, "workers_left": ["x"]},
        r"^FailureRecorded\.workers_left\[0\]: 'x' is not a uuid$",
    ),
    (Everything, {**to_data(_everything()), "pair": [1]}, r"^Everything\.pair: expected 2 items, got 1$"),
    (Everything, {**to_data(_everything()), "spot": {"x": 1}}, r"^Everything\.spot\.y: missing$"),
    (Everything, {**to_data(_everything()), "spot": [1, 2]}, r"^Everything\.spot: \[1, 2\] is none of UUID \| Point$"),
    (Everything, {**to_data(_everything()), "either": 1.5}, r"^Everything\.either: 1\.5 is none of int \| str$"),
    (
        Everything,
        {**to_data(_everything()), "mode": "slow"},
        r"^Everything\.mode: 'slow' is not one of 'fast', 'exact'$",
    ),
    (Everything, {**to_data(_everything()), "old_optional": math.nan}, r"^Everything\.old_optional: expected a finite"),
    (
        Everything,
        {**to_data(_everything()), "by_number": {"x": "y"}},
        r"^Everything\.by_number\['x'\]: expected an integer",
    ),
    (
        Everything,
        {**to_data(_everything()), "by_colour": {"3": []}},
        r"^Everything\.by_colour\['3'\]: 3 is not one of 1, 2$",
    ),
    (
        Everything,
        {**to_data(_everything()), "day": "2025-02-30"},
        r"^Everything\.day: '2025-02-30' is not an ISO 8601 date$",
    ),
    (Everything, {**to_data(_everything()), "at": "25:00"}, r"^Everything\.at: '25:00' is not an ISO 8601 time$"),
]


@pytest.mark.parametrize(
    ("cls", "data", "message"), BAD, ids=[f"{index}-{cls.__name__}" for index, (cls, _, _) in enumerate(BAD)]
)
def test_bad_data_is_invalid_input_naming_the_field(cls: type, data: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        from_data(cls, data)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (_job(metadata={"ratio": math.inf}), r"^Job\.metadata\['ratio'\]: inf is not representable in JSON$"),
        (_job(settings={"x": [1, math.nan]}), r"^Job\.settings\['x'\]\[1\]: nan is not representable"),
        (_job(metadata={"raw": b"bytes"}), r"^Job\.metadata\['raw'\]: bytes is not representable in JSON$"),
        (_job(metadata={"obj": object()}), r"^Job\.metadata\['obj'\]: object is not representable"),
        (_job(metadata={(1, 2): "tuple key"}), r"^Job\.metadata: dict key \(1, 2\) is not a string"),
        (_job(metadata={1: "a", "1": "b"}), r"^Job\.metadata: two keys would both become '1'$"),
        (_job(created_at=datetime(2025, 1, 1)), r"^Job\.created_at: naive datetime 2025-01-01T00:00:00 has no"),
        (
            TimedOutTask(dataclasses.replace(_task(), last_touched_at=datetime(2025, 1, 1)), None),
            r"^TimedOutTask\.task\.last_touched_at: naive datetime",
        ),
    ],
)
def test_values_json_cannot_hold_are_invalid_input_naming_the_field(record: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        to_data(record)


def test_non_records_are_a_type_error() -> None:
    with pytest.raises(TypeError, match="dataclass instance"):
        to_data({"not": "a record"})
    with pytest.raises(TypeError, match="dataclass instance"):
        to_data(Job)
    with pytest.raises(TypeError, match="takes a dataclass"):
        from_data(dict, {})


# --------------------------------------------------------------------------- property test

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # an optional test dependency

    def test_generated_records_round_trip_needs_hypothesis() -> None:
        pytest.skip("hypothesis is not installed (pip install 'statestore[test]')")

else:
    _offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda minutes: timedelta(minutes=minutes))
    _text = st.text(max_size=12)
    _json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _text
    _json = st.recursive(
        _json_scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
        max_leaves=10,
    )
    _SCALARS: dict[Any, st.SearchStrategy[Any]] = {
        Any: _json,
        bool: st.booleans(),
        int: st.integers(),
        float: st.floats(allow_nan=False, allow_infinity=False),
        str: _text,
        UUID: st.uuids(),
        datetime: st.datetimes(timezones=st.builds(timezone, _offsets) | st.just(UTC)),
        date: st.dates(),
        time: st.times(timezones=st.none() | st.builds(timezone, _offsets)),
    }

    def _strategy(hint: Any, depth: int = 0) -> st.SearchStrategy[Any]:
        """Values of ``hint``, from the hint alone, so every record class (and
        any added later) is generated without a hand-written strategy."""
        origin, args = get_origin(hint), get_args(hint)
        if hint in _SCALARS:
            return _SCALARS[hint]
        if origin in (Union, types.UnionType):
            return st.one_of([_strategy(arg, depth) for arg in args])
        if hint is type(None):
            return st.none()
        if origin is Literal:
            return st.sampled_from(args)
        if isinstance(hint, type) and issubclass(hint, Enum):
            return st.sampled_from(hint)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            # Recursive records (a failure's causes) end: lists of nothing are empty, None | nothing is None.
            return st.nothing() if depth >= 3 else _records(hint, depth + 1)
        ended = any(isinstance(arg, type) and dataclasses.is_dataclass(arg) and depth >= 3 for arg in args)
        most = 0 if ended else 3  # nested records stay few
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return st.lists(_strategy(args[0], depth), max_size=most).map(tuple)
        if origin is tuple:
            return st.tuples(*(_strategy(arg, depth) for arg in args))
        if origin is list:
            return st.lists(_strategy(args[0], depth), max_size=most)
        if origin in (set, frozenset):
            return st.sets(_strategy(args[0], depth), max_size=most).map(origin)
        if origin is dict:
            return st.dictionaries(_strategy(args[0], depth), _strategy(args[1], depth), max_size=most)
        raise AssertionError(f"no strategy for {hint!r}: teach the test")

    def _records(cls: type, depth: int = 0) -> st.SearchStrategy[Any]:
        hints = get_type_hints(cls)
        fields = {each.name: _strategy(hints[each.name], depth) for each in dataclasses.fields(cls) if each.init}
        for each in dataclasses.fields(cls):
            if each.metadata.get("references"):  # records there are written as their uuids: see the test above
                fields[each.name] = st.lists(st.uuids() | _text, max_size=3)
        if cls is AtomDetail:  # a retry's results are its history, a task's are JSON
            retry = {
                **fields,
                "kind": st.just(AtomKind.RETRY),
                "results": st.none() | _strategy(list[RetryAttempt], depth),
            }
            return st.builds(cls, **{**fields, "kind": st.just(AtomKind.TASK)}) | st.builds(cls, **retry)
        return st.builds(cls, **fields)

    @settings(max_examples=100, deadline=None)
    @given(st.sampled_from([*PUBLIC_RECORDS, Everything]).flatmap(_records))
    def test_generated_records_round_trip(record: object) -> None:
        round_trip(record)


# --------------------------------------------------------------------------- records read back from a store


async def test_flow_records_read_back_from_the_store_round_trip(store: Store) -> None:
    atom = AtomDetail("compile", results={"binary": "app.bin", "sizes": [1, 2.5]}, meta=METADATA)
    retry = AtomDetail("retry", kind=AtomKind.RETRY)
    book = LogBook("nightly", meta={"k": [1, {"x": 0.5}]}, flows=[FlowDetail("build", atoms=[atom, retry])])
    await store.logbooks.save(book)
    atom.state, atom.failure = AtomState.FAILURE, failure("compile failed")
    await store.atom_details.update(atom)
    retry.state, retry.results = AtomState.RETRYING, [RetryAttempt({"attempt": 1}, {"compile": failure()})]
    await store.atom_details.update(retry)
    loaded = await store.logbooks.get(book.uuid)
    assert loaded.created_at is not None
    assert type(loaded.flows[0].atom("retry").results[0]) is RetryAttempt
    round_trip(loaded)
    round_trip(await store.flow_details.get(book.flows[0].uuid))
    round_trip(await store.atom_details.get(retry.uuid))


async def test_farm_records_read_back_from_the_store_round_trip(store: Store) -> None:
    tag = await store.worker_tags.create("🐈 GPU")
    authored = authored_job(worker_tag=tag.uuid, status=JobStatus.QUEUED)
    job = await store.jobs.store_authored(authored)
    worker = await create_worker(store)
    await store.worker_tags.set_worker_tags(worker.uuid, [tag.uuid])
    fetched_worker = await store.workers.fetch(worker.uuid)
    records: list[object] = [
        job,
        await store.jobs.fetch(job.uuid),
        *await store.jobs.task_summaries(job.uuid),
        *await store.tasks.of_job(job.uuid),
        tag,
        worker,
        fetched_worker,
        await store.sleep_schedules.set(
            worker.uuid, is_active=True, days_of_week="mo,tu", start_time="18:00", end_time="09:00"
        ),
        await store.sleep_schedules.set_next_check(worker.uuid, utcnow()),
    ]
    for record in records:
        round_trip(record)
    assert to_data(records[0])["uuid"] == str(authored.uuid)


async def test_scheduling_records_read_back_from_the_store_round_trip(store: Store) -> None:
    authored = authored_job(status=JobStatus.QUEUED)
    await store.jobs.store_authored(authored)
    worker = await create_worker(store)
    other = await create_worker(store, "другой")
    scheduled = await store.scheduler.claim(worker.uuid)
    assert scheduled is not None
    round_trip(scheduled)
    deadline = utcnow() + timedelta(seconds=5)
    await store.tasks.touched_by_worker(scheduled.task.uuid)
    timed_out = await store.tasks.timed_out(deadline)
    assert timed_out
    for record in timed_out:
        round_trip(record)
    recorded = await store.task_failures.record(scheduled.task.uuid, worker.uuid, blocklist_threshold=1)
    assert recorded.blocklisted
    assert other.uuid in recorded.workers_left
    round_trip(recorded)
    entries = await store.blocklist.entries(authored.uuid)
    assert entries
    for entry in entries:
        round_trip(entry)
