"""What serialisation errors share: a bad value, and the field path it collects on its way up."""

from __future__ import annotations

from datetime import timedelta

from statestore.errors import InvalidInput

NONE_TYPE = type(None)


SHOWN = 64
"""How much of a bad value an error message quotes."""


class BadValue(Exception):
    """A bad value somewhere below; each container it passes adds its step."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.steps: list[str] = []

    def at(self, step: str) -> BadValue:
        self.steps.append(step)
        return self

    def invalid_input(self, root: str) -> InvalidInput:
        return InvalidInput(f"{root}{''.join(reversed(self.steps))}: {self.message}")


def show(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= SHOWN else f"{shown[:SHOWN]}…"


def whole_minutes(offset: timedelta | None) -> bool:
    return offset is None or offset % timedelta(minutes=1) == timedelta(0)
