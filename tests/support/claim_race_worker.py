"""Run as a separate process: claims for the worker its parent names, in lockstep with other processes.

``python -m tests.support.claim_race_worker URL COROUTINES`` — prints ``ready`` once
its store is open, then for each worker uuid read from stdin runs
``COROUTINES`` concurrent claims for that worker and prints one JSON line:
the claimed tasks' uuids (null for none) and their ``newly_claimed`` flags.
The parent writes the same uuid to every process at once, so their claims
for one worker race. It stops at the end of stdin.
"""

from __future__ import annotations

import asyncio
import json
import sys

from statestore import Store, open_store


async def _claims(store: Store, worker: str, coroutines: int) -> dict[str, list[object]]:
    results = await asyncio.gather(*(store.scheduler.claim(worker) for _ in range(coroutines)))
    return {
        "tasks": [None if result is None else str(result.task.uuid) for result in results],
        "new": [result is not None and result.newly_claimed for result in results],
    }


async def main(url: str, coroutines: int) -> None:
    options: dict[str, object] = {"busy_timeout": 30} if url.startswith("sqlite") else {"pool_size": 2 * coroutines}
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with open_store(url, **options) as store:
        await store.workers.summarize_statuses()  # connected before the first round
        print("ready", flush=True)
        while line := (await reader.readline()).decode().strip():
            print(json.dumps(await _claims(store, line, coroutines)), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
