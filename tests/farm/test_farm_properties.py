"""Every write of the farm model, on generated input, on every backend.

Each example builds a small farm (two jobs, each with an active task; three
workers, one soft-deleted; two tags; a failure; blocklist entries; a sleep
schedule; the last-rendered mark), then makes one to three generated calls of
one family of write APIs. Their input is mostly valid, some hostile: text with
NUL or lone surrogates, or too long; JSON nested too deep, holding 10**5000,
NaN, sets or bytes, or floats like 1.5e16 and 1e300; ints and enum values far
out of range; aware datetimes with no UTC instant; malformed and unknown
uuids. Every call either

* succeeds, and reading back gives exactly what was written, or
* raises a proper subclass of StoreError, whose message can be built and
  printed, and no table changed;

and the next ordinary call on the store works. A raw driver or Python
exception fails the property.
"""

from __future__ import annotations

import enum
import inspect
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, timezone
from functools import cache, partial
from typing import Any, TypeVar
from uuid import UUID, uuid4

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlalchemy.engine import Connection

from statestore import Store, StoreError
from statestore.core.types import utcnow
from statestore.core.validate import INTEGER, JSON_INTEGERS, MAX_JSON_DEPTH, SMALLINT, shown
from statestore.farm import AuthoredJob, AuthoredTask, Command, Job, JobStatus, Task, TaskStatus, WorkerStatus
from statestore.farm.secrets import hash_secret
from statestore.farm.workers import create_worker, worker_values
from statestore.schema.metadata import metadata
from tests.core.test_core_input_policy import (
    BAD_JSON,
    BAD_TEXTS,
    EAST,
    HUGE,
    NO_UTC_INSTANT,
    WEST,
    assert_safe_message,
    everything,
)
from tests.core.test_core_json_round_trip import EDGE_FLOATS, same
from tests.support.farm_fixtures import authored_job, render_task
from tests.support.farm_job_fixtures import job_priority_column, pending
from tests.support.farm_repositories import REPOSITORIES

T = TypeVar("T")

PROPERTY = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --------------------------------------------------------------------------- the farm each example starts from

SECRET = "open sesame"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
UNKNOWN = UUID("5ca1ab1e-0000-4000-8000-000000000000")
"""A uuid no row has."""


@cache
def _secret_hash() -> str:
    return hash_secret(SECRET)  # once: hashing costs tens of milliseconds


@dataclass(frozen=True)
class World:
    """The uuids of the farm an example starts from."""

    job: UUID
    """Queued: ``first`` (active, run by ``worker``), ``second`` (failed by
    ``other_worker``), ``video`` (depends on both)."""
    other_job: UUID
    """Pause requested, limited to ``tag``, one task: ``solo`` (active, run
    by ``deleted_worker`` before it was deleted)."""
    first: UUID
    second: UUID
    video: UUID
    solo: UUID
    worker: UUID
    """Awake, carries ``tag``, has a sleep schedule, last seen at T0."""
    other_worker: UUID
    """Awake, no tags, blocked from ffmpeg on ``job`` and from blender on
    ``other_job``, last seen an hour after T0."""
    deleted_worker: UUID
    tag: UUID
    other_tag: UUID
    unknown: UUID = UNKNOWN


_TABLES = list(reversed(metadata.sorted_tables))


def _wipe(connection: Connection) -> None:
    for table in _TABLES:
        connection.execute(delete(table))


async def _worker(store: Store, name: str, last_seen_at: datetime) -> UUID:
    """A worker stored with a hash made once (``workers.create`` hashes anew each time)."""
    values = worker_values(
        name=name,
        address="::1",
        platform="linux",
        software="3.0",
        status=WorkerStatus.AWAKE,
        last_seen_at=last_seen_at,
        status_requested=None,
        lazy_status_request=False,
        supported_task_types=["blender", "ffmpeg", "misc"],
        can_restart=False,
    )
    values.update(uuid=uuid4(), secret_hash=_secret_hash())
    return (await store.write(partial(create_worker, values=values))).uuid


async def build_world(store: Store) -> World:
    async with store.transaction():
        await store.write(_wipe)
        tag = (await store.worker_tags.create("gpu")).uuid
        other_tag = (await store.worker_tags.create("cpu", "the other one")).uuid
        worker = await _worker(store, "дрон", T0)
        other_worker = await _worker(store, "w2", T0 + timedelta(hours=1))
        deleted_worker = await _worker(store, "gone", T0)
        await store.worker_tags.set_worker_tags(worker, [tag])
        job = (await store.jobs.store_authored(authored_job(status=JobStatus.QUEUED))).uuid
        solo_job = AuthoredJob(
            "solo",
            "test-job",
            priority=70,
            status=JobStatus.PAUSE_REQUESTED,
            tasks=[render_task("solo", steps=3)],
            worker_tag=tag,
        )
        other_job = (await store.jobs.store_authored(solo_job)).uuid
        solo = solo_job.tasks[0].uuid
        await store.tasks.assign_to_worker(solo, deleted_worker)
        await store.tasks.save_status(solo, TaskStatus.ACTIVE)
        await store.workers.delete(deleted_worker)
        first, second, video = [task.uuid for task in await store.tasks.of_job(job)]
        await store.tasks.assign_to_worker(first, worker)
        await store.tasks.save_status(first, TaskStatus.ACTIVE)
        await store.task_failures.add(second, other_worker)
        await store.blocklist.add(job, other_worker, "ffmpeg")
        await store.blocklist.add(other_job, other_worker, "blender")
        await store.sleep_schedules.set(
            worker, is_active=True, days_of_week="mo tu", start_time="09:00", end_time="18:00", next_check=T0
        )
        await store.last_rendered.set(job)
    return World(
        job=job,
        other_job=other_job,
        first=first,
        second=second,
        video=video,
        solo=solo,
        worker=worker,
        other_worker=other_worker,
        deleted_worker=deleted_worker,
        tag=tag,
        other_tag=other_tag,
    )


# --------------------------------------------------------------------------- generated values, made real per example


@dataclass(frozen=True)
class Ref:
    """The uuid of a row of the world, in one of the forms the API accepts."""

    name: str
    form: str = "uuid"

    def resolve(self, world: World) -> Any:
        uuid: UUID = getattr(world, self.name)
        forms = {"uuid": uuid, "str": str(uuid), "upper": str(uuid).upper(), "braces": f"{{{uuid}}}", "urn": uuid.urn}
        return forms[self.form]


@dataclass(frozen=True)
class Make:
    """A value made when the call is made, shown by its name: hypothesis
    cannot print 10**5000, and some values must be new each time."""

    name: str
    make: Callable[[], Any] = field(compare=False)

    def __repr__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Now:
    """An instant relative to when the call is made, in ``zone``."""

    delta: timedelta
    zone: timezone

    def resolve(self) -> datetime:
        return (utcnow() + self.delta).astimezone(self.zone)


@dataclass(frozen=True)
class Sibling:
    """A dependency on the ``index``-th task of the same submission, given as
    its uuid, its uuid's string, the AuthoredTask itself or its name."""

    index: int
    form: str


def real(spec: Any, world: World) -> Any:
    """``spec`` with every Ref, Make and Now in it (in plain lists, tuples
    and dicts) replaced by its value."""
    if isinstance(spec, Ref):
        return spec.resolve(world)
    if isinstance(spec, Make):
        return spec.make()
    if isinstance(spec, Now):
        return spec.resolve()
    if type(spec) is list:
        return [real(item, world) for item in spec]
    if type(spec) is tuple:
        return tuple(real(item, world) for item in spec)
    if type(spec) is dict:
        return {key: real(value, world) for key, value in spec.items()}
    return spec


class Str(str):
    """Text all the same."""


class Int(int):
    """An int all the same."""


class Level(enum.IntEnum):
    """An int all the same, and an enum member."""

    HIGH = 90


_HUGE = Make("10**5000", lambda: HUGE)
_MINUS_HUGE = Make("-10**5000", lambda: -HUGE)

_CHARS = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")

_BAD_TEXTS = [
    *BAD_TEXTS.values(),
    Make("'x' * 5000", lambda: "x" * 5000),
    Make("'\\ud800' * 5000", lambda: "\ud800" * 5000),
    None,
    7,
    1.5,
    b"bytes",
    ["a"],
    _HUGE,
]


def texts(limit: int, *usual: str) -> st.SearchStrategy[Any]:
    """Text for a VARCHAR(limit): any, at the limit, beyond it, or not text."""
    edges = ["", " ", "a ", "x" * limit, "é" * limit, "😀" * limit, "x" * (limit + 1), "\t\n\r", "'\"\\%_", *usual]
    return st.one_of(
        st.text(_CHARS, max_size=limit),
        st.text(_CHARS, min_size=1, max_size=6),
        st.sampled_from([*edges, Str("subclass"), JobStatus.QUEUED]),
        st.sampled_from(_BAD_TEXTS),
    )


_BAD_INTS = [_HUGE, _MINUS_HUGE, True, False, 1.0, 2.5, "5", None, 2**63, -(2**63) - 1, Make("1e300", lambda: 1e300)]


def ints(low: int, high: int) -> st.SearchStrategy[Any]:
    """An int within ``low..high`` mostly, its edges and just beyond, or not an int."""
    return st.one_of(
        st.integers(low, high),
        st.sampled_from([low, high, low - 1, high + 1, 0, 1, -1, Int(7), Level.HIGH]),
        st.sampled_from(_BAD_INTS),
    )


_BAD_ENUMS = ["", "Queued", " queued", "busy", None, 3, 1.5, b"queued", ["queued"], _HUGE, _MINUS_HUGE]


def enums(kind: type[enum.Enum]) -> st.SearchStrategy[Any]:
    """A member of ``kind``, its value, a member of another status enum (whose
    value may be one of ``kind``'s), or something else."""
    return st.one_of(
        st.sampled_from(list(kind)),
        st.sampled_from([member.value for member in kind]),
        st.sampled_from([*JobStatus, *TaskStatus, *WorkerStatus]),
        st.sampled_from(_BAD_ENUMS),
    )


_BOOLS = st.one_of(st.booleans(), st.booleans(), st.sampled_from([0, 1, "yes", "", None, _HUGE]))

_ZONES = [
    UTC,
    EAST,
    WEST,
    timezone(timedelta(hours=14)),
    timezone(-timedelta(hours=23, minutes=59)),
    timezone(timedelta(seconds=1, microseconds=1)),
]

_DATETIMES = st.one_of(
    st.datetimes(timezones=st.sampled_from(_ZONES)),  # years 1 to 9999: some have no UTC instant
    st.builds(Now, st.timedeltas(-timedelta(days=2), timedelta(days=2)), st.sampled_from(_ZONES)),
    st.sampled_from([T0, datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC), *NO_UTC_INSTANT]),
    st.sampled_from([datetime(2026, 1, 1), datetime.min, "2026-01-01T00:00:00+00:00", 1767225600, date(2026, 1, 1)]),
)

_FORMS = ["uuid", "uuid", "str", "upper", "braces", "urn"]

_MALFORMED_UUIDS = [
    "not-a-uuid",
    "",
    "1234",
    "f0a123a9-ab05-4ce2-8577-94802cfe74a",
    "f0a123a9-ab05-4ce2-8577-94802cfe74a4x",
    "g" * 32,
    "\x00" * 32,
    "\ud800" * 32,
    1234,
    None,
    b"\xf0" * 16,
    1.5,
    ["uuid"],
    _HUGE,
]


def refs(*names: str) -> st.SearchStrategy[Any]:
    """A uuid of one of the world's rows ``names`` (in any accepted form), an unknown uuid, or not a uuid."""
    known = st.builds(Ref, st.sampled_from(names), st.sampled_from(_FORMS))
    return st.one_of(known, known, known, st.just(Ref("unknown")), st.sampled_from(_MALFORMED_UUIDS))


JOB_ROWS = ("job", "other_job")
TASK_ROWS = ("first", "second", "video", "solo")
WORKER_ROWS = ("worker", "other_worker", "deleted_worker")
TAG_ROWS = ("tag", "other_tag")

_TASK_TYPES = texts(32, "blender", "ffmpeg", "ffmpeg ", "misc", "a,b")
_ACTIVITIES = texts(255, "rendering")
_STEPS = ints(*INTEGER)

# JSON: what comes back as it went (floats bit for bit), odd but valid values
# (subclasses, tuples), and a few leaves no backend may store.
_JSON_KEYS = st.one_of(st.text(_CHARS, max_size=5), st.sampled_from(["", "k", "a\x00", "\ud800", "😀"]))
_JSON_BAD = [Make(name, make) for name, make in BAD_JSON.items()] + [
    Make("inf", lambda: float("inf")),
    Make("{1, 2}", lambda: {1, 2}),
    Make("b'raw'", lambda: b"raw"),
    Make("object()", object),
    Make("a datetime", lambda: T0),
    Make("{1: 'int key'}", lambda: {1: "int key"}),
]
_JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(*JSON_INTEGERS),
    st.sampled_from([*JSON_INTEGERS, 2**53 + 1]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(EDGE_FLOATS),
    st.text(_CHARS, max_size=8),
    st.sampled_from([Str("s"), JobStatus.ACTIVE, Int(3), Level.HIGH]),
    st.sampled_from(_JSON_BAD),
)
_JSON = st.recursive(
    _JSON_LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(_JSON_KEYS, children, max_size=3),
        st.dictionaries(st.text(_CHARS, max_size=3), children, max_size=2).map(OrderedDict),
    ),
    max_leaves=8,
)


def _nested(value: Any, levels: int, as_dicts: bool) -> Any:
    for _ in range(levels):
        value = {"k": value} if as_dicts else [value]
    return value


_DEEP_JSON = st.builds(_nested, _JSON, st.integers(MAX_JSON_DEPTH - 4, MAX_JSON_DEPTH + 1), st.booleans())
JSON_OBJECTS = st.one_of(
    st.dictionaries(_JSON_KEYS, st.one_of(_JSON, _JSON, _DEEP_JSON), max_size=4),
    st.sampled_from([None, "{}", [], Make("[('a', 1)]", lambda: [("a", 1)])]),
)


def plain(value: Any) -> Any:
    """What JSON gives back for a value the store took: tuples as lists,
    subclasses of str, int, float and dict as their base type."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    assert isinstance(value, dict)
    return {str.__str__(key): plain(item) for key, item in value.items()}


def as_uuid(value: Any) -> UUID:
    """The uuid a value the store took stands for."""
    return value if isinstance(value, UUID) else UUID(value)


def instant(value: Any) -> datetime | None:
    """``value`` in UTC, if it is an aware datetime with a UTC instant."""
    try:
        return value.astimezone(UTC) if isinstance(value, datetime) and value.utcoffset() is not None else None
    except OverflowError:
        return None


# --------------------------------------------------------------------------- the property


async def holds(store: Store, call: Callable[[], Awaitable[T]], verify: Callable[[T], Awaitable[None]]) -> None:
    """The property for one call: a verified success, or a proper StoreError
    with a safe message and nothing written; then an ordinary call works."""
    before = await everything(store)
    refused: StoreError | None = None
    try:
        result = await call()
    except StoreError as error:
        refused = error
    if refused is None:
        await verify(result)
    else:
        message = assert_safe_message(refused)
        assert type(refused) is not StoreError, f"an unclassified driver error: {message}"
        assert await everything(store) == before, f"refused ({type(refused).__name__}: {message}), yet written"
    job = await store.jobs.store_authored(AuthoredJob("next", "render", tasks=[render_task("next")]))
    assert await store.jobs.fetch(job.uuid) == job


async def maybe(call: Awaitable[T]) -> T | None:
    """``call``'s result, or None if it raises a StoreError (a read before a call, to compare with)."""
    try:
        return await call
    except StoreError:
        return None


Run = Callable[..., Awaitable[None]]
Family = dict[str, tuple[st.SearchStrategy[dict[str, Any]], Run]]


def write(family: Family, **arguments: st.SearchStrategy[Any]) -> Callable[[Run], Run]:
    """Register ``run(store, world, **arguments)``, one write API and its check, in ``family``."""

    def register(run: Run) -> Run:
        family[run.__name__] = (st.fixed_dictionaries(arguments), run)
        return run

    return register


def calls(family: Family) -> st.SearchStrategy[list[tuple[str, dict[str, Any]]]]:
    """One to three calls of the family's writes, with their arguments."""
    one = st.sampled_from(sorted(family)).flatmap(lambda name: st.tuples(st.just(name), family[name][0]))
    return st.lists(one, min_size=1, max_size=3)


async def run_calls(store: Store, family: Family, planned: list[tuple[str, dict[str, Any]]]) -> None:
    world = await build_world(store)
    for name, arguments in planned:
        await family[name][1](store, world, **real(arguments, world))


# --------------------------------------------------------------------------- shared checks


def steps_of(commands: Any) -> int:
    return sum(max(1, command.total_step_count) for command in commands)


def assert_commands(got: tuple[Command, ...], sent: Any) -> None:
    assert len(got) == len(sent)
    for stored, command in zip(got, sent, strict=True):
        assert (stored.name, stored.total_step_count) == (command.name, command.total_step_count)
        assert type(stored.name) is str
        assert same(plain(command.parameters), stored.parameters), (command.parameters, stored.parameters)


async def assert_pending_counts(store: Store, job: UUID) -> None:
    """Each task's maintained count of dependencies not completed is right."""
    tasks = await store.tasks.of_job(job)
    statuses = {task.uuid: task.status for task in tasks}
    for task in tasks:
        dependencies = await store.tasks.dependencies(task.uuid)
        expected = sum(statuses[dependency] != TaskStatus.COMPLETED for dependency in dependencies)
        assert await pending(store, task.uuid) == expected, task.name


async def assert_step_sums(store: Store, job: UUID) -> None:
    tasks = await store.tasks.of_job(job)
    stored = await store.jobs.fetch(job)
    assert stored.steps_total == sum(task.steps_total for task in tasks)
    assert stored.steps_completed == sum(task.steps_completed for task in tasks)


def dependency_uuids(dependencies: list[Any], names: dict[str, UUID]) -> set[UUID]:
    """The uuids ``dependencies`` name, as the store resolves them (a string
    that parses as a uuid is one; any other is a task's name)."""
    found = set()
    for dependency in dependencies:
        if isinstance(dependency, AuthoredTask):
            found.add(as_uuid(dependency.uuid))
        elif isinstance(dependency, UUID):
            found.add(dependency)
        else:
            try:
                found.add(UUID(dependency))
            except ValueError:
                found.add(names[dependency])
    return found


async def assert_authored(store: Store, stored: list[Task], authored: list[AuthoredTask]) -> None:
    """Stored tasks are the authored ones, queued, with their dependencies."""
    names = {task.name: task.uuid for task in await store.tasks.of_job(stored[0].job_uuid)} if stored else {}
    assert len(stored) == len(authored)
    for task, sent in zip(stored, authored, strict=True):
        assert task.uuid == as_uuid(sent.uuid)
        assert (task.name, task.type, task.priority) == (sent.name, sent.type, sent.priority)
        assert (task.status, task.worker_uuid, task.last_touched_at, task.activity) == (
            TaskStatus.QUEUED,
            None,
            None,
            "",
        )
        assert (task.steps_completed, task.steps_total) == (0, steps_of(sent.commands))
        assert_commands(task.commands, sent.commands)
        assert set(await store.tasks.dependencies(task.uuid)) == dependency_uuids(sent.dependencies, names)


def build_tasks(plans: Any) -> Any:
    """AuthoredTasks from their (made real) plans, siblings resolved; a plan
    that is not a list is passed on as it is."""
    if not isinstance(plans, list):
        return plans
    tasks = [
        AuthoredTask(
            plan["name"],
            plan["type"],
            priority=plan["priority"],
            commands=build_commands(plan["commands"]),
            uuid=plan["uuid"],
        )
        for plan in plans
    ]
    for task, plan in zip(tasks, plans, strict=True):
        task.dependencies = [_dependency(dependency, tasks) for dependency in plan["dependencies"]]
    return tasks


def _dependency(dependency: Any, tasks: list[AuthoredTask]) -> Any:
    if not isinstance(dependency, Sibling):
        return dependency
    task = tasks[dependency.index]
    text = str(task.uuid) if isinstance(task.uuid, UUID) else task.uuid
    return {"uuid": task.uuid, "str": text, "task": task, "name": task.name}[dependency.form]


def build_commands(plans: Any) -> Any:
    if not isinstance(plans, list):
        return plans
    return [Command(**plan) if type(plan) is dict else plan for plan in plans]


_COMMAND = st.fixed_dictionaries(
    {"name": texts(64, "run", "merge"), "parameters": JSON_OBJECTS, "total_step_count": _STEPS}
)
COMMANDS = st.one_of(
    st.lists(_COMMAND, max_size=3),
    st.sampled_from(["run", None, Make("a dict, not a Command", lambda: {"name": "run"})]).map(
        lambda bad: bad if bad is None or isinstance(bad, str) else [bad]
    ),
)
_TASK_UUIDS = st.one_of(st.just(Make("uuid4()", uuid4)), st.just(Make("uuid4()", uuid4)), refs(*TASK_ROWS))


@st.composite
def task_plans(draw: st.DrawFn, *, stored: bool) -> Any:
    """Plans of up to three tasks; ``stored``: dependencies may also be the
    world's tasks, by uuid or name (for ``add_tasks``)."""
    count = draw(st.integers(0, 3))
    if count == 0 and draw(st.booleans()):
        return draw(st.sampled_from(["tasks", None, Make("a generator", lambda: (t for t in ()))]))
    outside = [Ref("unknown"), "no such task", 3, None]
    if stored:
        outside += [Ref("first"), Ref("video", "str"), Ref("solo"), "render-1-3", "preview-video", "solo"]
    plans = []
    for _ in range(count):
        siblings = st.builds(Sibling, st.integers(0, count - 1), st.sampled_from(["uuid", "str", "task", "name"]))
        dependencies = draw(st.lists(st.one_of(siblings, siblings, st.sampled_from(outside)), max_size=3))
        plan = draw(
            st.fixed_dictionaries(
                {
                    "name": texts(64, "render", "render-1-3"),
                    "type": _TASK_TYPES,
                    "priority": ints(*SMALLINT),
                    "commands": COMMANDS,
                    "uuid": _TASK_UUIDS,
                }
            )
        )
        plans.append({**plan, "dependencies": dependencies})
    return plans


# --------------------------------------------------------------------------- jobs

JOB_WRITES: Family = {}

_JOB_PLANS = st.fixed_dictionaries(
    {
        "name": texts(64),
        "job_type": texts(32, "simple-blender-render"),
        "priority": ints(*SMALLINT),
        "status": enums(JobStatus),
        "settings": JSON_OBJECTS,
        "metadata": JSON_OBJECTS,
        "tasks": task_plans(stored=False),
        "worker_tag": st.one_of(st.none(), refs(*TAG_ROWS)),
        "storage_checkout_id": texts(255),
        "uuid": st.one_of(st.just(Make("uuid4()", uuid4)), refs(*JOB_ROWS)),
    }
)


@write(JOB_WRITES, plan=st.one_of(_JOB_PLANS, _JOB_PLANS, st.sampled_from(["job", None])))
async def store_authored(store: Store, world: World, plan: Any) -> None:
    job = plan
    if isinstance(plan, dict):
        job = AuthoredJob(**{**plan, "tasks": build_tasks(plan["tasks"])})

    async def verify(returned: Job) -> None:
        stored = await store.jobs.fetch(returned.uuid)
        assert stored == returned
        tag = None if job.worker_tag is None else as_uuid(job.worker_tag)
        assert (stored.uuid, stored.name, stored.job_type, stored.priority, stored.status) == (
            as_uuid(job.uuid),
            job.name,
            job.job_type,
            job.priority,
            JobStatus(job.status),
        )
        assert (stored.worker_tag_uuid, stored.storage_checkout_id, stored.activity) == (
            tag,
            job.storage_checkout_id,
            "",
        )
        assert same(plain(job.settings), stored.settings), (job.settings, stored.settings)
        assert same(plain(job.metadata), stored.metadata), (job.metadata, stored.metadata)
        assert (stored.steps_completed, stored.steps_total) == (0, sum(steps_of(task.commands) for task in job.tasks))
        assert stored.delete_requested_at is None
        await assert_authored(store, await store.tasks.of_job(stored.uuid), list(job.tasks))
        await assert_pending_counts(store, stored.uuid)

    await holds(store, lambda: store.jobs.store_authored(job), verify)


@write(JOB_WRITES, job=refs(*JOB_ROWS), plans=task_plans(stored=True))
async def add_tasks(store: Store, world: World, job: Any, plans: Any) -> None:
    tasks = build_tasks(plans)

    async def verify(added: list[Task]) -> None:
        stored = await store.tasks.of_job(job)
        assert stored[len(stored) - len(added) :] == added
        await assert_authored(store, added, tasks)
        await assert_pending_counts(store, as_uuid(job))
        await assert_step_sums(store, as_uuid(job))

    await holds(store, lambda: store.jobs.add_tasks(job, tasks), verify)


@write(JOB_WRITES, job=refs(*JOB_ROWS), status=enums(JobStatus), activity=st.one_of(st.none(), _ACTIVITIES))
async def jobs_save_status(store: Store, world: World, job: Any, status: Any, activity: Any) -> None:
    before = await maybe(store.jobs.fetch(job))

    async def verify(saved: Job) -> None:
        assert before is not None
        stored = await store.jobs.fetch(job)
        assert stored == saved
        expected = before.activity if activity is None else activity
        assert (stored.status, stored.activity) == (JobStatus(status), expected)

    await holds(store, lambda: store.jobs.save_status(job, status, activity), verify)


@write(JOB_WRITES, job=refs(*JOB_ROWS), priority=ints(*SMALLINT))
async def save_priority(store: Store, world: World, job: Any, priority: Any) -> None:
    async def verify(saved: Job) -> None:
        stored = await store.jobs.fetch(job)
        assert stored == saved
        assert stored.priority == priority
        for task in await store.tasks.of_job(job):
            assert await job_priority_column(store, task.uuid) == priority

    await holds(store, lambda: store.jobs.save_priority(job, priority), verify)


@write(JOB_WRITES, job=refs(*JOB_ROWS), tag=st.one_of(st.none(), refs(*TAG_ROWS)))
async def save_worker_tag(store: Store, world: World, job: Any, tag: Any) -> None:
    async def verify(saved: Job) -> None:
        stored = await store.jobs.fetch(job)
        assert stored == saved
        assert stored.worker_tag_uuid == (None if tag is None else as_uuid(tag))

    await holds(store, lambda: store.jobs.save_worker_tag(job, tag), verify)


@write(JOB_WRITES, job=refs(*JOB_ROWS), checkout=texts(255, "shaman/checkout"))
async def save_storage_info(store: Store, world: World, job: Any, checkout: Any) -> None:
    before = await maybe(store.jobs.fetch(job))

    async def verify(saved: Job) -> None:
        assert before is not None
        stored = await store.jobs.fetch(job)
        assert stored == saved
        assert stored.storage_checkout_id == checkout == await store.jobs.storage_checkout_id(job)
        assert stored.updated_at == before.updated_at

    await holds(store, lambda: store.jobs.save_storage_info(job, checkout), verify)


@write(JOB_WRITES, job=refs(*JOB_ROWS))
async def request_deletion(store: Store, world: World, job: Any) -> None:
    async def verify(saved: Job) -> None:
        stored = await store.jobs.fetch(job)
        assert stored == saved
        assert stored.delete_requested_at is not None
        assert stored.uuid in await store.jobs.deletion_requested()

    await holds(store, lambda: store.jobs.request_deletion(job), verify)


@write(JOB_WRITES, cutoff=_DATETIMES)
async def request_mass_deletion(store: Store, world: World, cutoff: Any) -> None:
    before = await store.jobs.list()

    async def verify(marked: list[UUID]) -> None:
        assert marked == [job.uuid for job in before if job.updated_at <= cutoff]
        for uuid in marked:
            assert (await store.jobs.fetch(uuid)).delete_requested_at is not None

    await holds(store, lambda: store.jobs.request_mass_deletion(cutoff), verify)


@write(JOB_WRITES, job=refs(*JOB_ROWS))
async def delete_job(store: Store, world: World, job: Any) -> None:
    before = await maybe(store.tasks.of_job(job))

    async def verify(_: None) -> None:
        assert before is not None
        assert await maybe(store.jobs.fetch(job)) is None
        assert await maybe(store.tasks.of_job(job)) is None
        for task in before:
            assert await maybe(store.tasks.fetch(task.uuid)) is None
        assert await store.last_rendered.get() != as_uuid(job)

    await holds(store, lambda: store.jobs.delete(job), verify)


_TASK_STATUS_SETS = st.one_of(
    st.lists(enums(TaskStatus), max_size=3),
    st.sets(st.sampled_from(list(TaskStatus))),
    st.lists(st.sampled_from([status.value for status in TaskStatus]), max_size=3).map(tuple),
    st.sampled_from(["queued", None, 3, Make("a generator", lambda: (s for s in TaskStatus))]),
)


@write(JOB_WRITES, job=refs(*JOB_ROWS), status=enums(TaskStatus), activity=_ACTIVITIES)
async def update_task_statuses(store: Store, world: World, job: Any, status: Any, activity: Any) -> None:
    async def verify(count: int) -> None:
        tasks = await store.tasks.of_job(job)
        assert count == len(tasks)
        assert all((task.status, task.activity) == (TaskStatus(status), activity) for task in tasks)
        await assert_pending_counts(store, as_uuid(job))

    await holds(store, lambda: store.jobs.update_task_statuses(job, status, activity), verify)


@write(JOB_WRITES, job=refs(*JOB_ROWS), from_=_TASK_STATUS_SETS, status=enums(TaskStatus), activity=_ACTIVITIES)
async def update_task_statuses_conditional(
    store: Store, world: World, job: Any, from_: Any, status: Any, activity: Any
) -> None:
    before = await maybe(store.tasks.of_job(job))

    async def verify(count: int) -> None:
        assert before is not None
        wanted = {TaskStatus(value) for value in from_}
        after = await store.tasks.of_job(job)
        assert count == sum(task.status in wanted for task in before)
        for old, new in zip(before, after, strict=True):
            expected = (TaskStatus(status), activity) if old.status in wanted else (old.status, old.activity)
            assert (new.status, new.activity) == expected
        await assert_pending_counts(store, as_uuid(job))

    await holds(store, lambda: store.jobs.update_task_statuses_conditional(job, from_, status, activity), verify)


@write(JOB_WRITES, job=refs(*JOB_ROWS))
async def update_task_step_counts(store: Store, world: World, job: Any) -> None:
    async def verify(returned: Job) -> None:
        assert await store.jobs.fetch(job) == returned
        for task in await store.tasks.of_job(job):
            if task.status == TaskStatus.COMPLETED:
                assert task.steps_completed == task.steps_total
            elif task.status == TaskStatus.QUEUED:
                assert task.steps_completed == 0
        await assert_step_sums(store, as_uuid(job))

    await holds(store, lambda: store.jobs.update_task_step_counts(job), verify)


@PROPERTY
@given(planned=calls(JOB_WRITES))
async def test_job_writes(store: Store, planned: list[tuple[str, dict[str, Any]]]) -> None:
    await run_calls(store, JOB_WRITES, planned)


# --------------------------------------------------------------------------- tasks

TASK_WRITES: Family = {}

_TASK_CHANGES = st.fixed_dictionaries(
    {},
    optional={
        "uuid": refs(*TASK_ROWS),
        "name": texts(64),
        "type": _TASK_TYPES,
        "priority": ints(*SMALLINT),
        "status": enums(TaskStatus),
        "worker_uuid": st.one_of(st.none(), refs(*WORKER_ROWS)),
        "last_touched_at": st.one_of(st.none(), _DATETIMES),
        "commands": COMMANDS,
        "activity": _ACTIVITIES,
        "steps_completed": _STEPS,
        "steps_total": _STEPS,
    },
)


@write(
    TASK_WRITES, base=st.sampled_from(TASK_ROWS), changes=_TASK_CHANGES, as_dict=st.sampled_from([False] * 9 + [True])
)
async def save_task(store: Store, world: World, base: str, changes: dict[str, Any], as_dict: bool) -> None:
    original = await maybe(store.tasks.fetch(getattr(world, base)))
    if original is None:
        return  # gone with an earlier call
    task: Any = replace(original, **{**changes, "commands": build_commands(changes.get("commands", original.commands))})
    if as_dict:
        task = asdict(original)
    before = await maybe(store.tasks.fetch(task.uuid)) if "uuid" in changes and not as_dict else original

    async def verify(saved: Task) -> None:
        assert before is not None
        stored = await store.tasks.fetch(task.uuid)
        assert stored == saved
        assert (stored.id, stored.job_uuid, stored.index_in_job, stored.created_at) == (
            before.id,
            before.job_uuid,
            before.index_in_job,
            before.created_at,
        )
        worker = None if task.worker_uuid is None else as_uuid(task.worker_uuid)
        assert (stored.name, stored.type, stored.priority, stored.status, stored.worker_uuid) == (
            task.name,
            task.type,
            task.priority,
            TaskStatus(task.status),
            worker,
        )
        assert (stored.last_touched_at, stored.activity) == (task.last_touched_at, task.activity)
        assert (stored.steps_completed, stored.steps_total) == (task.steps_completed, task.steps_total)
        assert_commands(stored.commands, task.commands)
        await assert_pending_counts(store, stored.job_uuid)
        await assert_step_sums(store, stored.job_uuid)

    await holds(store, lambda: store.tasks.save(task), verify)


@write(TASK_WRITES, task=refs(*TASK_ROWS), status=enums(TaskStatus), activity=st.one_of(st.none(), _ACTIVITIES))
async def tasks_save_status(store: Store, world: World, task: Any, status: Any, activity: Any) -> None:
    before = await maybe(store.tasks.fetch(task))

    async def verify(saved: Task) -> None:
        assert before is not None
        stored = await store.tasks.fetch(task)
        assert stored == saved
        expected = before.activity if activity is None else activity
        assert (stored.status, stored.activity) == (TaskStatus(status), expected)
        await assert_pending_counts(store, stored.job_uuid)

    await holds(store, lambda: store.tasks.save_status(task, status, activity), verify)


@write(TASK_WRITES, task=refs(*TASK_ROWS), activity=_ACTIVITIES)
async def save_activity(store: Store, world: World, task: Any, activity: Any) -> None:
    before = await maybe(store.tasks.fetch(task))

    async def verify(saved: Task) -> None:
        assert before is not None
        stored = await store.tasks.fetch(task)
        assert stored == saved
        assert (stored.status, stored.activity) == (before.status, activity)

    await holds(store, lambda: store.tasks.save_activity(task, activity), verify)


@write(TASK_WRITES, task=refs(*TASK_ROWS), steps=_STEPS)
async def save_steps_completed(store: Store, world: World, task: Any, steps: Any) -> None:
    async def verify(saved: Task) -> None:
        stored = await store.tasks.fetch(task)
        assert stored == saved
        assert stored.steps_completed == steps
        await assert_step_sums(store, stored.job_uuid)

    await holds(store, lambda: store.tasks.save_steps_completed(task, steps), verify)


@write(TASK_WRITES, task=refs(*TASK_ROWS), worker=refs(*WORKER_ROWS))
async def assign_to_worker(store: Store, world: World, task: Any, worker: Any) -> None:
    async def verify(saved: Task) -> None:
        stored = await store.tasks.fetch(task)
        assert stored == saved
        assert stored.worker_uuid == as_uuid(worker)

    await holds(store, lambda: store.tasks.assign_to_worker(task, worker), verify)


@write(TASK_WRITES, task=refs(*TASK_ROWS))
async def touched_by_worker(store: Store, world: World, task: Any) -> None:
    since = utcnow()

    async def verify(_: None) -> None:
        stored = await store.tasks.fetch(task)
        assert stored.last_touched_at is not None
        assert since <= stored.last_touched_at <= utcnow()

    await holds(store, lambda: store.tasks.touched_by_worker(task), verify)


@PROPERTY
@given(planned=calls(TASK_WRITES))
async def test_task_writes(store: Store, planned: list[tuple[str, dict[str, Any]]]) -> None:
    await run_calls(store, TASK_WRITES, planned)


# --------------------------------------------------------------------------- workers

WORKER_WRITES: Family = {}

_SECRETS = texts(255, SECRET)
_TYPE_LISTS = st.one_of(
    st.lists(_TASK_TYPES, max_size=4),
    st.lists(st.sampled_from(["blender", "ffmpeg", "misc"]), max_size=3).map(tuple),
    st.sampled_from(["blender", None, [3], ["t" * 32] * 8, ["t" * 32] * 7 + ["t" * 24]]),
)
_WORKER_OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "uuid": st.one_of(st.none(), st.just(Make("uuid4()", uuid4)), refs(*WORKER_ROWS)),
        "status": enums(WorkerStatus),
        "address": texts(39, "fe80::5054:ff:fede:2ad7"),
        "platform": texts(16, "linux"),
        "software": texts(32, "3.0"),
        "supported_task_types": _TYPE_LISTS,
        "can_restart": _BOOLS,
        "last_seen_at": st.one_of(st.none(), _DATETIMES),
    },
)


def expected_worker(values: dict[str, Any]) -> dict[str, Any]:
    """A worker's fields as stored, from the values given."""
    requested = values.get("status_requested")
    return {
        "name": values["name"],
        "address": values.get("address", ""),
        "platform": values.get("platform", ""),
        "software": values.get("software", ""),
        "status": WorkerStatus(values.get("status", WorkerStatus.STARTING)),
        "last_seen_at": values.get("last_seen_at"),
        "status_requested": None if requested is None else WorkerStatus(requested),
        "lazy_status_request": values.get("lazy_status_request", False),
        "supported_task_types": tuple(values.get("supported_task_types", ())),
        "can_restart": values.get("can_restart", False),
    }


def fields_of(worker: Any) -> dict[str, Any]:
    return {name: getattr(worker, name) for name in expected_worker({"name": ""})}


@write(WORKER_WRITES, name=texts(64, "дрон"), secret=_SECRETS, options=_WORKER_OPTIONS)
async def create(store: Store, world: World, name: Any, secret: Any, options: dict[str, Any]) -> None:
    async def verify(created: Any) -> None:
        stored = await store.workers.fetch(created.uuid)
        assert stored == created
        if options.get("uuid") is not None:
            assert stored.uuid == as_uuid(options["uuid"])
        assert fields_of(stored) == expected_worker({"name": name, **options})
        assert await store.workers.verify_secret(stored.uuid, secret)

    await holds(store, lambda: store.workers.create(name, secret, **options), verify)


@write(WORKER_WRITES, worker=refs(*WORKER_ROWS), secret=_SECRETS)
async def set_secret(store: Store, world: World, worker: Any, secret: Any) -> None:
    async def verify(_: None) -> None:
        assert await store.workers.verify_secret(worker, secret)

    await holds(store, lambda: store.workers.set_secret(worker, secret), verify)


_WORKER_CHANGES = st.fixed_dictionaries(
    {},
    optional={
        "uuid": refs(*WORKER_ROWS),
        "name": texts(64),
        "address": texts(39),
        "platform": texts(16),
        "software": texts(32),
        "status": enums(WorkerStatus),
        "last_seen_at": st.one_of(st.none(), _DATETIMES),
        "status_requested": st.one_of(st.none(), enums(WorkerStatus)),
        "lazy_status_request": _BOOLS,
        "supported_task_types": _TYPE_LISTS,
        "can_restart": _BOOLS,
    },
)


@write(
    WORKER_WRITES,
    base=st.sampled_from(["worker", "other_worker"]),
    changes=_WORKER_CHANGES,
    as_dict=st.sampled_from([False] * 9 + [True]),
)
async def save_worker(store: Store, world: World, base: str, changes: dict[str, Any], as_dict: bool) -> None:
    original = await maybe(store.workers.fetch(getattr(world, base)))
    if original is None:
        return  # deleted by an earlier call
    worker: Any = asdict(original) if as_dict else replace(original, **changes)
    before = await maybe(store.workers.fetch(worker.uuid)) if "uuid" in changes and not as_dict else original

    async def verify(saved: Any) -> None:
        assert before is not None
        stored = await store.workers.fetch(worker.uuid)
        assert stored == saved
        assert (stored.id, stored.created_at, stored.deleted_at) == (before.id, before.created_at, None)
        assert fields_of(stored) == expected_worker(fields_of(worker))

    await holds(store, lambda: store.workers.save(worker), verify)


@write(
    WORKER_WRITES,
    worker=refs(*WORKER_ROWS),
    status=enums(WorkerStatus),
    requested=st.one_of(st.none(), enums(WorkerStatus)),
    lazy=_BOOLS,
)
async def workers_save_status(store: Store, world: World, worker: Any, status: Any, requested: Any, lazy: Any) -> None:
    async def verify(saved: Any) -> None:
        stored = await store.workers.fetch(worker)
        assert stored == saved
        expected = None if requested is None else WorkerStatus(requested)
        assert (stored.status, stored.status_requested, stored.lazy_status_request) == (
            WorkerStatus(status),
            expected,
            lazy,
        )

    await holds(store, lambda: store.workers.save_status(worker, status, requested=requested, lazy=lazy), verify)


@write(WORKER_WRITES, worker=refs(*WORKER_ROWS))
async def seen(store: Store, world: World, worker: Any) -> None:
    since = utcnow()

    async def verify(_: None) -> None:
        stored = await store.workers.fetch(worker)
        assert stored.last_seen_at is not None
        assert since <= stored.last_seen_at <= utcnow()

    await holds(store, lambda: store.workers.seen(worker), verify)


@write(WORKER_WRITES, worker=refs(*WORKER_ROWS))
async def delete_worker(store: Store, world: World, worker: Any) -> None:
    async def verify(_: None) -> None:
        assert await maybe(store.workers.fetch(worker)) is None
        assert as_uuid(worker) not in {live.uuid for live in await store.workers.list()}

    await holds(store, lambda: store.workers.delete(worker), verify)


@PROPERTY
@given(planned=calls(WORKER_WRITES))
async def test_worker_writes(store: Store, planned: list[tuple[str, dict[str, Any]]]) -> None:
    await run_calls(store, WORKER_WRITES, planned)


# --------------------------------------------------------------------------- worker tags

TAG_WRITES: Family = {}

_TAG_NAMES = texts(64, "gpu", "cpu", "GPU", "gpu ")
_DESCRIPTIONS = texts(255, "GPUs")


@write(
    TAG_WRITES,
    name=_TAG_NAMES,
    description=_DESCRIPTIONS,
    uuid=st.one_of(st.none(), st.just(Make("uuid4()", uuid4)), refs(*TAG_ROWS)),
)
async def create_tag(store: Store, world: World, name: Any, description: Any, uuid: Any) -> None:
    async def verify(created: Any) -> None:
        stored = await store.worker_tags.fetch(created.uuid)
        assert stored == created == await store.worker_tags.fetch_by_name(name)
        assert (stored.name, stored.description) == (name, description)
        if uuid is not None:
            assert stored.uuid == as_uuid(uuid)

    await holds(store, lambda: store.worker_tags.create(name, description, uuid=uuid), verify)


@write(
    TAG_WRITES,
    base=st.sampled_from(TAG_ROWS),
    changes=st.fixed_dictionaries(
        {}, optional={"uuid": refs(*TAG_ROWS), "name": _TAG_NAMES, "description": _DESCRIPTIONS}
    ),
    as_dict=st.sampled_from([False] * 9 + [True]),
)
async def save_tag(store: Store, world: World, base: str, changes: dict[str, Any], as_dict: bool) -> None:
    original = await maybe(store.worker_tags.fetch(getattr(world, base)))
    if original is None:
        return  # deleted by an earlier call
    tag: Any = asdict(original) if as_dict else replace(original, **changes)
    before = await maybe(store.worker_tags.fetch(tag.uuid)) if "uuid" in changes and not as_dict else original

    async def verify(saved: Any) -> None:
        assert before is not None
        stored = await store.worker_tags.fetch(tag.uuid)
        assert stored == saved == await store.worker_tags.fetch_by_name(tag.name)
        assert (stored.id, stored.created_at, stored.name, stored.description) == (
            before.id,
            before.created_at,
            tag.name,
            tag.description,
        )

    await holds(store, lambda: store.worker_tags.save(tag), verify)


@write(TAG_WRITES, tag=refs(*TAG_ROWS))
async def delete_tag(store: Store, world: World, tag: Any) -> None:
    async def verify(_: None) -> None:
        assert await maybe(store.worker_tags.fetch(tag)) is None
        assert all(job.worker_tag_uuid != as_uuid(tag) for job in await store.jobs.list())
        assert all(carried.uuid != as_uuid(tag) for carried in await store.worker_tags.of_worker(world.worker))

    await holds(store, lambda: store.worker_tags.delete(tag), verify)


_TAG_LISTS = st.one_of(
    st.lists(refs(*TAG_ROWS), max_size=3),
    st.sets(st.builds(Ref, st.sampled_from(TAG_ROWS))),
    st.sampled_from(["gpu", None, 3, Make("a generator", lambda: (t for t in ()))]),
)


@write(TAG_WRITES, worker=refs(*WORKER_ROWS), tags=_TAG_LISTS)
async def set_worker_tags(store: Store, world: World, worker: Any, tags: Any) -> None:
    async def verify(returned: Any) -> None:
        carried = await store.worker_tags.of_worker(worker)
        assert carried == returned
        assert [tag.uuid for tag in carried] == sorted({as_uuid(tag) for tag in tags}, key=_tag_order(carried))

    await holds(store, lambda: store.worker_tags.set_worker_tags(worker, tags), verify)


def _tag_order(carried: list[Any]) -> Callable[[UUID], int]:
    ids = {tag.uuid: tag.id for tag in carried}
    return lambda uuid: ids.get(uuid, -1)


@PROPERTY
@example(planned=[("create_tag", {"name": Make("'x' * 5000", lambda: "x" * 5000), "description": "", "uuid": None})])
@example(planned=[("save_tag", {"base": "tag", "changes": {"name": _HUGE}, "as_dict": False})])
@given(planned=calls(TAG_WRITES))
async def test_worker_tag_writes(store: Store, planned: list[tuple[str, dict[str, Any]]]) -> None:
    await run_calls(store, TAG_WRITES, planned)


# --------------------------------------------------------------------------- blocklists and failure lists

FAILURE_WRITES: Family = {}

# Types the world's blocklist holds, also with a trailing space: MariaDB's
# collations compare "ffmpeg " equal to "ffmpeg".
_BLOCKED_TYPES = st.one_of(st.sampled_from(["ffmpeg", "ffmpeg ", "blender", "blender  "]), _TASK_TYPES)


@write(FAILURE_WRITES, job=refs(*JOB_ROWS), worker=refs(*WORKER_ROWS), task_type=_BLOCKED_TYPES)
async def blocklist_add(store: Store, world: World, job: Any, worker: Any, task_type: Any) -> None:
    async def verify(_: None) -> None:
        entries = {(entry.worker_uuid, entry.task_type) for entry in await store.blocklist.entries(job)}
        assert (as_uuid(worker), task_type) in entries

    await holds(store, lambda: store.blocklist.add(job, worker, task_type), verify)


@write(FAILURE_WRITES, job=refs(*JOB_ROWS))
async def blocklist_clear(store: Store, world: World, job: Any) -> None:
    before = await maybe(store.blocklist.entries(job))

    async def verify(count: int) -> None:
        assert count == len(before or [])
        assert await maybe(store.blocklist.entries(job)) in (None, [])

    await holds(store, lambda: store.blocklist.clear(job), verify)


@write(FAILURE_WRITES, job=refs(*JOB_ROWS), worker=refs(*WORKER_ROWS), task_type=_BLOCKED_TYPES)
async def blocklist_remove(store: Store, world: World, job: Any, worker: Any, task_type: Any) -> None:
    before = await maybe(store.blocklist.entries(job))

    async def verify(_: None) -> None:
        if before is None:
            return
        removed = (as_uuid(worker), task_type)
        expected = [entry for entry in before if (entry.worker_uuid, entry.task_type) != removed]
        assert await store.blocklist.entries(job) == expected

    await holds(store, lambda: store.blocklist.remove(job, worker, task_type), verify)


@write(FAILURE_WRITES, task=refs(*TASK_ROWS), worker=refs(*WORKER_ROWS))
async def failures_add(store: Store, world: World, task: Any, worker: Any) -> None:
    async def verify(count: int) -> None:
        failed = await store.task_failures.workers(task)
        assert count == len(failed)
        assert as_uuid(worker) in {failed_worker.uuid for failed_worker in failed}

    await holds(store, lambda: store.task_failures.add(task, worker), verify)


@write(FAILURE_WRITES, task=refs(*TASK_ROWS))
async def clear_for_task(store: Store, world: World, task: Any) -> None:
    before = await maybe(store.task_failures.workers(task))

    async def verify(count: int) -> None:
        assert count == len(before or [])
        assert await maybe(store.task_failures.workers(task)) in (None, [])

    await holds(store, lambda: store.task_failures.clear_for_task(task), verify)


@write(FAILURE_WRITES, job=refs(*JOB_ROWS))
async def clear_for_job(store: Store, world: World, job: Any) -> None:
    tasks = await maybe(store.tasks.of_job(job)) or []
    before = [len(await store.task_failures.workers(task.uuid)) for task in tasks]

    async def verify(count: int) -> None:
        assert count == sum(before)
        for task in tasks:
            assert await store.task_failures.workers(task.uuid) == []

    await holds(store, lambda: store.task_failures.clear_for_job(job), verify)


@write(FAILURE_WRITES, task=refs(*TASK_ROWS), worker=refs(*WORKER_ROWS), threshold=ints(*INTEGER))
async def record(store: Store, world: World, task: Any, worker: Any, threshold: Any) -> None:
    async def verify(recorded: Any) -> None:
        failed = await store.task_failures.workers(task)
        assert as_uuid(worker) in {failed_worker.uuid for failed_worker in failed}
        assert recorded.failed_workers == len(failed)
        stored = await store.tasks.fetch(task)
        count = await store.task_failures.count_task_failures_of_worker(stored.job_uuid, worker, stored.type)
        assert recorded.worker_failures_on_job == count
        assert recorded.blocklisted == (count >= threshold)
        entries = {(entry.worker_uuid, entry.task_type) for entry in await store.blocklist.entries(stored.job_uuid)}
        assert not recorded.blocklisted or (as_uuid(worker), stored.type) in entries

    await holds(store, lambda: store.task_failures.record(task, worker, blocklist_threshold=threshold), verify)


@PROPERTY
@example(planned=[("blocklist_add", {"job": Ref("job"), "worker": Ref("other_worker"), "task_type": "ffmpeg "})])
@example(planned=[("blocklist_remove", {"job": Ref("job"), "worker": Ref("other_worker"), "task_type": "ffmpeg "})])
@given(planned=calls(FAILURE_WRITES))
async def test_blocklist_and_failure_writes(store: Store, planned: list[tuple[str, dict[str, Any]]]) -> None:
    await run_calls(store, FAILURE_WRITES, planned)


# --------------------------------------------------------------------------- sleep schedules and the last-rendered job

SCHEDULE_WRITES: Family = {}

_TIMES_OF_DAY = st.one_of(
    st.builds("{:02d}:{:02d}".format, st.integers(0, 25), st.integers(0, 61)),
    st.sampled_from(["", "00:00", "23:59", "24:00", "9:00", "09:00 ", "٠٩:٠٠"]),
    texts(5),
)


@write(
    SCHEDULE_WRITES,
    worker=refs(*WORKER_ROWS),
    is_active=_BOOLS,
    days_of_week=texts(64, "mo tu we", "MO,Tu"),
    start_time=_TIMES_OF_DAY,
    end_time=_TIMES_OF_DAY,
    next_check=st.one_of(st.none(), _DATETIMES),
)
async def set_schedule(
    store: Store,
    world: World,
    worker: Any,
    is_active: Any,
    days_of_week: Any,
    start_time: Any,
    end_time: Any,
    next_check: Any,
) -> None:
    async def verify(returned: Any) -> None:
        stored = await store.sleep_schedules.fetch(worker)
        assert stored == returned
        assert stored is not None
        assert (stored.worker_uuid, stored.is_active, stored.days_of_week) == (as_uuid(worker), is_active, days_of_week)
        assert (stored.start_time, stored.end_time, stored.next_check) == (start_time, end_time, next_check)

    await holds(
        store,
        lambda: store.sleep_schedules.set(
            worker,
            is_active=is_active,
            days_of_week=days_of_week,
            start_time=start_time,
            end_time=end_time,
            next_check=next_check,
        ),
        verify,
    )


@write(SCHEDULE_WRITES, worker=refs(*WORKER_ROWS), next_check=_DATETIMES)
async def set_next_check(store: Store, world: World, worker: Any, next_check: Any) -> None:
    async def verify(returned: Any) -> None:
        stored = await store.sleep_schedules.fetch(worker)
        assert stored == returned
        assert stored is not None
        assert stored.next_check == next_check

    await holds(store, lambda: store.sleep_schedules.set_next_check(worker, next_check), verify)


@write(SCHEDULE_WRITES, job=refs(*JOB_ROWS))
async def set_last_rendered(store: Store, world: World, job: Any) -> None:
    async def verify(_: None) -> None:
        assert await store.last_rendered.get() == as_uuid(job)

    await holds(store, lambda: store.last_rendered.set(job), verify)


@PROPERTY
@given(planned=calls(SCHEDULE_WRITES))
async def test_sleep_schedule_and_last_rendered_writes(store: Store, planned: list[tuple[str, dict[str, Any]]]) -> None:
    await run_calls(store, SCHEDULE_WRITES, planned)


# --------------------------------------------------------------------------- the scheduler

SCHEDULER_WRITES: Family = {}

_REASONS = texts(127, "the worker signed off")
_PAUSING = (JobStatus.PAUSE_REQUESTED, JobStatus.PAUSED)


@write(SCHEDULER_WRITES, worker=refs(*WORKER_ROWS), activate=_BOOLS)
async def claim(store: Store, world: World, worker: Any, activate: Any) -> None:
    async def verify(scheduled: Any) -> None:
        assert isinstance(activate, bool), f"activate={shown(activate)} was taken for a bool"
        if scheduled is None:
            return
        task = await store.tasks.fetch(scheduled.task.uuid)
        assert task == scheduled.task
        assert task.worker_uuid == as_uuid(worker)
        if scheduled.newly_claimed:
            assert (task.status == TaskStatus.ACTIVE) is activate
        job = await store.jobs.fetch(task.job_uuid)
        assert (scheduled.job_priority, scheduled.job_type) == (job.priority, job.job_type)

    await holds(store, lambda: store.scheduler.claim(worker, activate=activate), verify)


async def given_back(store: Store, worker: UUID) -> list[tuple[UUID, UUID, TaskStatus]]:
    """What giving back the worker's active tasks must return, by task id."""
    active = await maybe(store.tasks.of_worker_in_status(worker, TaskStatus.ACTIVE)) or []
    expected = []
    for task in active:
        job = await store.jobs.fetch(task.job_uuid)
        expected.append((task.uuid, task.job_uuid, TaskStatus.PAUSED if job.status in _PAUSING else TaskStatus.QUEUED))
    return expected


async def assert_given_back(store: Store, returned: list[Any], expected: list[Any], reason: str) -> None:
    assert [(back.task_uuid, back.job_uuid, back.status) for back in returned] == expected
    for back in returned:
        task = await store.tasks.fetch(back.task_uuid)
        assert (task.status, task.activity) == (
            back.status,
            f"Task was {back.status.value} by Manager because {reason}",
        )
        await assert_pending_counts(store, back.job_uuid)


@write(SCHEDULER_WRITES, worker=refs(*WORKER_ROWS), reason=_REASONS)
async def requeue_tasks_of_worker(store: Store, world: World, worker: Any, reason: Any) -> None:
    expected = await given_back(store, worker)

    async def verify(returned: Any) -> None:
        await assert_given_back(store, returned, expected, reason)

    await holds(store, lambda: store.scheduler.requeue_tasks_of_worker(worker, reason), verify)


@write(SCHEDULER_WRITES, worker=refs(*WORKER_ROWS), reason=_REASONS)
async def time_out_worker(store: Store, world: World, worker: Any, reason: Any) -> None:
    expected = await given_back(store, worker)
    live = await maybe(store.workers.fetch(worker)) is not None

    async def verify(returned: Any) -> None:
        await assert_given_back(store, returned, expected, reason)
        if live:
            stored = await store.workers.fetch(worker)
            assert (stored.status, stored.status_requested, stored.lazy_status_request) == (
                WorkerStatus.ERROR,
                None,
                False,
            )

    await holds(store, lambda: store.scheduler.time_out_worker(worker, reason), verify)


@write(SCHEDULER_WRITES, cutoff=_DATETIMES, reason=_REASONS)
async def time_out_workers(store: Store, world: World, cutoff: Any, reason: Any) -> None:
    before = instant(cutoff)
    candidates = [
        worker.uuid
        for worker in await store.workers.list()
        if before is not None
        and worker.last_seen_at is not None
        and worker.last_seen_at <= before
        and worker.status not in (WorkerStatus.ERROR, WorkerStatus.OFFLINE)
    ]
    expected = {worker: await given_back(store, worker) for worker in candidates}

    async def verify(returned: dict[UUID, list[Any]]) -> None:
        assert list(returned) == candidates
        for worker, tasks in returned.items():
            await assert_given_back(store, tasks, expected[worker], reason)
            assert (await store.workers.fetch(worker)).status == WorkerStatus.ERROR

    await holds(store, lambda: store.scheduler.time_out_workers(cutoff, reason), verify)


@PROPERTY
@example(planned=[("claim", {"worker": Ref("other_worker"), "activate": 1})])
@example(planned=[("claim", {"worker": Ref("other_worker"), "activate": "no"})])
@given(planned=calls(SCHEDULER_WRITES))
async def test_scheduler_writes(store: Store, planned: list[tuple[str, dict[str, Any]]]) -> None:
    await run_calls(store, SCHEDULER_WRITES, planned)


# --------------------------------------------------------------------------- every write API is covered


WRITE_APIS = {
    "store_authored": "jobs.store_authored",
    "add_tasks": "jobs.add_tasks",
    "jobs_save_status": "jobs.save_status",
    "save_priority": "jobs.save_priority",
    "save_worker_tag": "jobs.save_worker_tag",
    "save_storage_info": "jobs.save_storage_info",
    "request_deletion": "jobs.request_deletion",
    "request_mass_deletion": "jobs.request_mass_deletion",
    "delete_job": "jobs.delete",
    "update_task_statuses": "jobs.update_task_statuses",
    "update_task_statuses_conditional": "jobs.update_task_statuses_conditional",
    "update_task_step_counts": "jobs.update_task_step_counts",
    "save_task": "tasks.save",
    "tasks_save_status": "tasks.save_status",
    "save_activity": "tasks.save_activity",
    "save_steps_completed": "tasks.save_steps_completed",
    "assign_to_worker": "tasks.assign_to_worker",
    "touched_by_worker": "tasks.touched_by_worker",
    "create": "workers.create",
    "set_secret": "workers.set_secret",
    "save_worker": "workers.save",
    "workers_save_status": "workers.save_status",
    "seen": "workers.seen",
    "delete_worker": "workers.delete",
    "create_tag": "worker_tags.create",
    "save_tag": "worker_tags.save",
    "delete_tag": "worker_tags.delete",
    "set_worker_tags": "worker_tags.set_worker_tags",
    "blocklist_add": "blocklist.add",
    "blocklist_clear": "blocklist.clear",
    "blocklist_remove": "blocklist.remove",
    "failures_add": "task_failures.add",
    "clear_for_task": "task_failures.clear_for_task",
    "clear_for_job": "task_failures.clear_for_job",
    "record": "task_failures.record",
    "set_schedule": "sleep_schedules.set",
    "set_next_check": "sleep_schedules.set_next_check",
    "set_last_rendered": "last_rendered.set",
    "claim": "scheduler.claim",
    "requeue_tasks_of_worker": "scheduler.requeue_tasks_of_worker",
    "time_out_worker": "scheduler.time_out_worker",
    "time_out_workers": "scheduler.time_out_workers",
}
"""Each checked write (by the name it is registered under) and the API it calls."""


def test_every_write_api_has_a_property() -> None:
    families = (JOB_WRITES, TASK_WRITES, WORKER_WRITES, TAG_WRITES, FAILURE_WRITES, SCHEDULE_WRITES, SCHEDULER_WRITES)
    assert sorted(name for family in families for name in family) == sorted(WRITE_APIS)
    for api in WRITE_APIS.values():
        repository, method = api.split(".")
        assert inspect.iscoroutinefunction(getattr(REPOSITORIES[repository], method)), api
