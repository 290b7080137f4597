"""Small builders for flow-model tests."""

from __future__ import annotations

from statestore.flows import AtomDetail, AtomKind, Failure, FlowDetail, LogBook


def book_with(*flows: FlowDetail, name: str = "book") -> LogBook:
    return LogBook(name, meta={"k": 1}, flows=list(flows))


def flow_with(*atoms: AtomDetail, name: str = "flow") -> FlowDetail:
    return FlowDetail(name, atoms=list(atoms))


def retry(name: str = "retry") -> AtomDetail:
    return AtomDetail(name, kind=AtomKind.RETRY)


def failure(message: str = "boom") -> Failure:
    try:
        try:
            raise KeyError("root cause")
        except KeyError as cause:
            raise RuntimeError(message) from cause
    except RuntimeError as error:
        return Failure.from_exception(error, traceback_str="Traceback (most recent call last): ...")
