"""Run as a separate process: state-machine calls and claims, in lockstep with other processes.

``python -m tests.support.state_machine_race_worker`` — reads one JSON
message a line from stdin and answers each with one line on stdout, until the
end of stdin: ``{"open": URL, "connections": N}`` opens the store at ``URL``
(a pool of ``N`` connections on a server; a store open before is closed
first) and answers ``ready``; ``{"close": true}`` closes it and answers
``closed``; any other message is a step, answered with one JSON line of what
each call did. So one process serves test after test.

A step is ``{"at": START, "lanes": [[CALL, …], …]}``: the process waits
until the wall-clock time ``START`` (the barrier: the parent gives every
process the same one, so their calls overlap), then runs its lanes at once,
the calls of one lane one after the other. A call is a JSON object with an
``op`` (``claim``, ``update``, ``failed``, ``job_status``, ``task_status``,
``time_out``), its arguments, and an optional ``delay`` (seconds to wait
first; a ``task`` of ``"$last"`` is the task the lane's last claim
returned). The answer has, per lane, per call: ``outcome`` (``ok``,
``conflict`` — :class:`~statestore.errors.Conflict`, a call the rules let
lose — or ``error``: anything else, a transaction conflict that outlived the
runner's retries included, with its traceback), the wall-clock times the
call started and returned, and what it returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import traceback
from datetime import timedelta
from typing import Any

from statestore import Store, TransactionConflict, open_store
from statestore.errors import Conflict
from statestore.farm import StatusChange


def _changes(changes: tuple[StatusChange, ...]) -> list[list[str | None]]:
    return [[None if c.task_uuid is None else str(c.task_uuid), c.old_status, c.new_status] for c in changes]


async def _claim(store: Store, call: dict[str, Any]) -> dict[str, Any]:
    claimed = await store.scheduler.claim(call["worker"])
    if claimed is None:
        return {"task": None}
    task = claimed.task
    return {"task": str(task.uuid), "job": str(task.job_uuid), "type": task.type, "new": claimed.newly_claimed}


async def _update(store: Store, call: dict[str, Any]) -> dict[str, Any]:
    changes = await store.state_machine.worker_task_update(
        call["worker"],
        call["task"],
        status=call.get("status"),
        activity=call.get("activity"),
        steps_completed=call.get("steps"),
    )
    return {"changes": _changes(changes)}


async def _failed(store: Store, call: dict[str, Any]) -> dict[str, Any]:
    failed = await store.state_machine.worker_task_failed(
        call["worker"],
        call["task"],
        reason=call.get("reason", "it broke"),
        blocklist_threshold=call["threshold"],
        fail_after_workers=call.get("fail_after_workers", 3),
    )
    return {
        "task_status": failed.task_status.value,
        "job_status": failed.job_status.value,
        "failed_workers": failed.failed_workers,
        "blocklisted": failed.blocklisted,
        "requeued": [str(given.task_uuid) for given in failed.requeued],
        "changes": _changes(failed.changes),
    }


async def _job_status(store: Store, call: dict[str, Any]) -> dict[str, Any]:
    changes = await store.state_machine.job_status_change(call["job"], call["status"], reason=call["reason"])
    return {"changes": _changes(changes)}


async def _task_status(store: Store, call: dict[str, Any]) -> dict[str, Any]:
    changes = await store.state_machine.task_status_change(call["task"], call["status"], reason=call["reason"])
    return {"changes": _changes(changes)}


async def _time_out(store: Store, call: dict[str, Any]) -> dict[str, Any]:
    sweep = await store.state_machine.time_out(
        task_timeout=timedelta(seconds=call["task_timeout"]), worker_timeout=timedelta(seconds=call["worker_timeout"])
    )
    return {
        "failed": [str(task) for task in sweep.tasks_failed],
        "workers": [str(worker) for worker in sweep.workers_timed_out],
        "given": [[str(given.task_uuid), given.status.value] for given in sweep.given_back],
    }


LAST = "$last"
"""As a call's ``task``: the task the lane's last claim returned (no claim, or
nothing claimed: the call is skipped, its outcome ``skipped``)."""

OPS = {
    "claim": _claim,
    "update": _update,
    "failed": _failed,
    "job_status": _job_status,
    "task_status": _task_status,
    "time_out": _time_out,
}


async def _call(store: Store, call: dict[str, Any]) -> dict[str, Any]:
    if call.get("delay"):
        await asyncio.sleep(call["delay"])
    started = time.time()
    answer: dict[str, Any] = {"op": call["op"]}
    try:
        answer.update(await OPS[call["op"]](store, call))
        answer["outcome"] = "ok"
    except TransactionConflict:  # the runner's retries did not get it through: not a rule's answer
        answer.update(outcome="error", error=traceback.format_exc())
    except Conflict as conflict:
        answer.update(outcome="conflict", conflict=str(conflict))
    except Exception:
        answer.update(outcome="error", error=traceback.format_exc())
    answer.update(t0=started, t1=time.time())
    return answer


async def _lane(store: Store, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answers: list[dict[str, Any]] = []
    last: str | None = None  # the task the lane's last claim returned
    for call in calls:
        if call.get("task") == LAST:
            if last is None:
                answers.append({"op": call["op"], "outcome": "skipped"})
                continue
            call = {**call, "task": last}
        answer = await _call(store, call)
        if call["op"] == "claim":
            last = answer.get("task")
        answers.append(answer)
    return answers


async def _step(store: Store, step: dict[str, Any]) -> list[list[dict[str, Any]]]:
    wait = step.get("at", 0) - time.time()
    if wait > 0:
        await asyncio.sleep(wait)
    return list(await asyncio.gather(*(_lane(store, lane) for lane in step["lanes"])))


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with contextlib.AsyncExitStack() as opened:
        store: Store | None = None
        while line := (await reader.readline()).decode().strip():
            message = json.loads(line)
            if "open" in message or "close" in message:
                await opened.aclose()
                store = None
                if "open" in message:
                    url = message["open"]
                    options = (
                        {"busy_timeout": 30} if url.startswith("sqlite") else {"pool_size": message["connections"]}
                    )
                    store = await opened.enter_async_context(open_store(url, **options))
                    await store.workers.summarize_statuses()  # connected before the first step
                print("ready" if store is not None else "closed", flush=True)
                continue
            assert store is not None, "a step before the store was opened"
            print(json.dumps(await _step(store, message)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
