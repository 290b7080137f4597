"""Flows the TaskFlow engine tests run (importable by child processes too)."""

from __future__ import annotations

from typing import Any

from taskflow import retry, task
from taskflow.patterns import graph_flow, linear_flow, unordered_flow


class Add(task.Task):  # type: ignore[misc]
    def execute(self, x: int, y: int) -> int:
        return x + y


class Boom(task.Task):  # type: ignore[misc]
    def execute(self, x: int) -> None:
        raise RuntimeError(f"boom at {x}")


class Undoable(task.Task):  # type: ignore[misc]
    def execute(self, x: int) -> dict[str, int]:
        return {"doubled": 2 * x}

    def revert(self, x: int, **_: Any) -> dict[str, str]:
        return {"undone": "yes"}


class FailsUntilThird(task.Task):  # type: ignore[misc]
    def execute(self, attempt: int) -> str:
        if attempt < 3:
            raise ValueError(f"attempt {attempt} failed")
        return f"succeeded on {attempt}"


def linear() -> Any:
    return linear_flow.Flow("linear").add(
        Add("first", provides="a", rebind={"x": "x", "y": "y"}),
        Add("second", provides="b", rebind={"x": "a", "y": "y"}),
        Add("third", provides="c", rebind={"x": "b", "y": "a"}),
    )


def graph() -> Any:
    return graph_flow.Flow("graph").add(
        Add("sum-xy", provides="s", rebind={"x": "x", "y": "y"}),
        Add("left", provides="l", rebind={"x": "s", "y": "x"}),
        Add("right", provides="r", rebind={"x": "s", "y": "y"}),
        Add("join", provides="j", rebind={"x": "l", "y": "r"}),
    )


def unordered() -> Any:
    return unordered_flow.Flow("unordered").add(
        *(Add(f"independent-{index}", provides=f"u{index}", rebind={"x": "x", "y": "y"}) for index in range(4))
    )


def failing() -> Any:
    return linear_flow.Flow("failing").add(
        Undoable("undoable-1", provides="d1"),
        Undoable("undoable-2", provides="d2"),
        Boom("boom"),
    )


def retrying() -> Any:
    return linear_flow.Flow("retrying", retry=retry.Times(5, name="times", provides="attempt")).add(
        FailsUntilThird("flaky", provides="flaky_result")
    )


FLOWS = {"linear": linear, "graph": graph, "unordered": unordered, "failing": failing, "retrying": retrying}
