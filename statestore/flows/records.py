"""Plain values of the flow model, safe to keep after any transaction ends."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from statestore.core.types import JSONValue
from statestore.core.validate import shown
from statestore.errors import InvalidInput
from statestore.flows.states import AtomKind, AtomState, FlowState, Intention

__all__ = ["AtomDetail", "Failure", "FlowDetail", "LogBook", "RetryAttempt"]

FAILURE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Failure:
    """A captured exception, in TaskFlow's serialised form (version 1).

    ``exc_type_names`` lists the exception's classes from its own up to
    ``Exception``, so a reloaded failure can still be matched by type.
    """

    exception_str: str
    exc_type_names: tuple[str, ...]
    traceback_str: str | None = None
    exc_args: tuple[JSONValue, ...] = ()
    causes: tuple[Failure, ...] = ()

    def check(self, *type_names: str) -> str | None:
        """The first of ``type_names`` this failure is an instance of, if any."""
        for name in type_names:
            if name in self.exc_type_names:
                return name
        return None

    def to_dict(self) -> dict[str, Any]:
        """TaskFlow's ``Failure.to_dict()`` layout."""
        return {
            "exception_str": self.exception_str,
            "traceback_str": self.traceback_str,
            "exc_type_names": list(self.exc_type_names),
            "version": FAILURE_VERSION,
            "exc_args": list(self.exc_args),
            "causes": [cause.to_dict() for cause in self.causes],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Failure:
        """Parse TaskFlow's layout; any version but 1 is refused, as TaskFlow does."""
        if not isinstance(data, dict):
            raise InvalidInput(f"a failure must be a dict, got {type(data).__name__}")
        version = data.get("version", FAILURE_VERSION)
        if version != FAILURE_VERSION:
            raise InvalidInput(f"failure version {shown(version)} is not supported (only {FAILURE_VERSION})")
        try:
            return cls(
                exception_str=str(data["exception_str"]),
                exc_type_names=tuple(data["exc_type_names"]),
                traceback_str=data.get("traceback_str"),
                exc_args=tuple(data.get("exc_args") or ()),
                causes=tuple(cls.from_dict(cause) for cause in data.get("causes") or ()),
            )
        except KeyError as missing:
            raise InvalidInput(f"failure is missing {missing}") from None

    @classmethod
    def from_exception(cls, error: BaseException, traceback_str: str | None = None) -> Failure:
        """Capture ``error`` (and its ``__cause__`` chain)."""
        names = tuple(
            f"{klass.__module__}.{klass.__qualname__}" if klass.__module__ != "builtins" else klass.__qualname__
            for klass in type(error).__mro__
            if issubclass(klass, BaseException) and klass not in (BaseException, object)
        )
        cause = error.__cause__
        return cls(
            exception_str=str(error),
            exc_type_names=names,
            traceback_str=traceback_str,
            exc_args=tuple(arg for arg in error.args if isinstance(arg, (str, int, float, bool, type(None)))),
            causes=(cls.from_exception(cause),) if cause is not None else (),
        )


@dataclass(frozen=True, slots=True)
class RetryAttempt:
    """One entry of a retry detail's history: its data and the failures seen."""

    data: JSONValue
    failures: dict[str, Failure] = field(default_factory=dict)


@dataclass(slots=True)
class AtomDetail:
    """A task's or a retry's persisted state.

    For a task, ``results`` is whatever JSON the task returned. For a retry
    (``kind=AtomKind.RETRY``), ``results`` is its history: a list of
    :class:`RetryAttempt`. ``created_at``/``updated_at`` are set by the store.
    ``foreign_id`` is the identifier another system gave the atom when it is
    not a uuid (:mod:`statestore.flows.foreign_ids`); ``uuid`` is then
    derived from it. It is stored with the atom and never changed after.
    """

    name: str
    kind: AtomKind = AtomKind.TASK
    uuid: UUID = field(default_factory=uuid4)
    state: AtomState | None = None
    intention: Intention = Intention.EXECUTE
    results: Any = None
    failure: Failure | None = None
    revert_results: Any = None
    revert_failure: Failure | None = None
    version: str | None = None
    meta: dict[str, JSONValue] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    foreign_id: str | None = None


@dataclass(slots=True)
class FlowDetail:
    """A flow run's persisted state and its atoms (empty when loaded lazily).

    ``foreign_id``: as for :class:`AtomDetail`.
    """

    name: str
    uuid: UUID = field(default_factory=uuid4)
    state: FlowState | None = None
    meta: dict[str, JSONValue] = field(default_factory=dict)
    atoms: list[AtomDetail] = field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    foreign_id: str | None = None

    def atom(self, name: str) -> AtomDetail:
        """The atom named ``name`` (KeyError if there is none)."""
        for candidate in self.atoms:
            if candidate.name == name:
                return candidate
        raise KeyError(name)


@dataclass(slots=True)
class LogBook:
    """A named container of flow details (empty when loaded lazily).

    The store sets ``created_at``/``updated_at``, unless a save is asked to
    keep the book's own (``save(book, keep_timestamps=True)``, as TaskFlow does).
    ``foreign_id``: as for :class:`AtomDetail`.
    """

    name: str
    uuid: UUID = field(default_factory=uuid4)
    meta: dict[str, JSONValue] = field(default_factory=dict)
    flows: list[FlowDetail] = field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    foreign_id: str | None = None

    def flow(self, name: str) -> FlowDetail:
        """The flow detail named ``name`` (KeyError if there is none)."""
        for candidate in self.flows:
            if candidate.name == name:
                return candidate
        raise KeyError(name)
