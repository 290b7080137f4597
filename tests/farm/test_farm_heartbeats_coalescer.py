"""The coalescer behind heartbeats, with real coroutines and a fake database."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Collection

import pytest

from statestore.core.coalesce import Coalescer

ambient: contextvars.ContextVar[str] = contextvars.ContextVar("ambient", default="none")


class Missing(LookupError):
    pass


class FakeTable:
    """Keys that exist; records every statement; can hold statements open."""

    def __init__(self, keys: Collection[str], *, fail_batches: bool = False) -> None:
        self.keys = set(keys)
        self.batches: list[list[str]] = []
        self.singles: list[str] = []
        self.written: list[str] = []
        self.fail_batches = fail_batches
        self.gate = asyncio.Event()
        self.gate.set()
        self.running = 0
        self.most_running = 0
        self.contexts: list[str] = []

    async def _statement(self) -> None:
        self.contexts.append(ambient.get())
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.gate.wait()
            await asyncio.sleep(0)
        finally:
            self.running -= 1

    async def batch(self, keys: list[str]) -> set[str]:
        self.batches.append(keys)
        await self._statement()
        if self.fail_batches:
            raise ConnectionResetError("lost the connection")
        found = self.keys.intersection(keys)
        self.written.extend(found)
        return found

    async def single(self, key: str) -> None:
        self.singles.append(key)
        await self._statement()
        if key not in self.keys:
            raise Missing(f"{key} (alone)")
        self.written.append(key)

    def coalescer(self, **limits: int) -> Coalescer[str]:
        return Coalescer(self.batch, self.single, lambda key: Missing(key), **limits)


async def test_the_first_key_goes_at_once_and_the_rest_of_its_turn_in_one_statement() -> None:
    table = FakeTable("abcdef")
    coalescer = table.coalescer()
    await asyncio.gather(*(coalescer.submit(key) for key in "abcdef"))
    assert table.singles == ["a"]
    assert table.batches == [list("bcdef")]
    assert sorted(table.written) == list("abcdef")


async def test_an_idle_coalescer_adds_no_turn_for_a_lone_caller() -> None:
    table = FakeTable("ab")
    coalescer = table.coalescer()
    await coalescer.submit("a")
    await coalescer.submit("b")
    assert (table.singles, table.batches) == (["a", "b"], [])


async def test_each_missing_key_gets_its_own_error_and_the_others_none() -> None:
    table = FakeTable("abc")
    coalescer = table.coalescer()
    outcomes = await asyncio.gather(*(coalescer.submit(key) for key in "axbyc"), return_exceptions=True)
    assert table.batches == [list("xbyc")]
    assert [type(outcome).__name__ for outcome in outcomes] == [
        "NoneType",
        "Missing",
        "NoneType",
        "Missing",
        "NoneType",
    ]
    assert [str(outcomes[1]), str(outcomes[3])] == ["x", "y"]
    assert outcomes[1] is not outcomes[3]


async def test_a_failing_batch_is_retried_one_key_at_a_time() -> None:
    table = FakeTable("abc", fail_batches=True)
    coalescer = table.coalescer()
    outcomes = await asyncio.gather(*(coalescer.submit(key) for key in "abxc"), return_exceptions=True)
    assert table.batches == [list("bxc")]
    assert table.singles == ["a", "b", "x", "c"]
    assert [outcomes[0], outcomes[1], outcomes[3]] == [None, None, None]
    assert isinstance(outcomes[2], Missing)
    assert str(outcomes[2]) == "x (alone)"


async def test_keys_arriving_while_statements_run_gather_into_the_next_batch() -> None:
    table = FakeTable("abcdefgh")
    coalescer = table.coalescer(max_in_flight=2)
    table.gate.clear()
    first = asyncio.gather(*(coalescer.submit(key) for key in "abc"))  # a alone, [b, c] batched
    await asyncio.sleep(0.01)
    later = asyncio.gather(*(coalescer.submit(key) for key in "defgh"))  # both slots busy: they wait
    await asyncio.sleep(0.01)
    assert table.running == 2
    assert table.batches == [["b", "c"]]
    table.gate.set()
    await asyncio.gather(first, later)
    assert table.singles == ["a"]
    assert table.batches == [["b", "c"], list("defgh")]
    assert table.most_running == 2


async def test_batches_hold_at_most_max_batch_keys() -> None:
    table = FakeTable("abcdefgh")
    coalescer = table.coalescer(max_batch=3, max_in_flight=1)
    await asyncio.gather(*(coalescer.submit(key) for key in "abcdefgh"))
    assert table.singles == ["a"]
    assert table.batches == [list("bcd"), list("efg"), ["h"]]
    assert table.most_running == 1


async def test_a_cancelled_caller_leaves_the_others_alone() -> None:
    table = FakeTable("abcd")
    coalescer = table.coalescer()
    table.gate.clear()
    calls = [asyncio.create_task(coalescer.submit(key)) for key in "abcd"]
    await asyncio.sleep(0.01)
    calls[2].cancel()
    table.gate.set()
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(outcomes[2], asyncio.CancelledError)
    assert [outcomes[0], outcomes[1], outcomes[3]] == [None, None, None]
    await coalescer.submit("a")  # idle again afterwards: the next key goes at once
    assert table.singles[-1] == "a"


async def test_a_key_cancelled_before_its_batch_starts_is_left_out() -> None:
    table = FakeTable("abc")
    coalescer = table.coalescer()
    calls = [asyncio.create_task(coalescer.submit(key)) for key in "abc"]
    await asyncio.sleep(0)  # every call has queued; the batch has not started
    calls[1].cancel()
    await asyncio.gather(*calls, return_exceptions=True)
    assert table.batches == [["c"]]


async def test_batches_run_outside_the_context_of_the_caller_that_started_them() -> None:
    table = FakeTable("ab")
    coalescer = table.coalescer()

    async def caller(key: str) -> None:
        ambient.set(f"transaction of {key}")
        await coalescer.submit(key)

    await asyncio.gather(caller("a"), caller("b"))
    assert table.singles == ["a"]
    assert table.batches == [["b"]]
    assert table.contexts == ["transaction of a", "none"]  # the lone call is the caller's own


def test_limits_must_be_positive() -> None:
    table = FakeTable("")
    with pytest.raises(ValueError, match="at least 1"):
        table.coalescer(max_batch=0)
    with pytest.raises(ValueError, match="at least 1"):
        table.coalescer(max_in_flight=0)
