"""Quickstart: record a small workflow run in statestore and read it back.

Run it with no arguments to use the embedded default (``statestore.db`` in the
working directory, or ``$STATESTORE_URL``), or pass a database URL:

    python examples/quickstart.py
    python examples/quickstart.py postgresql://postgres@127.0.0.1/mydb
"""

from __future__ import annotations

import asyncio
import sys

from statestore import open_store
from statestore.flows import AtomDetail, AtomState, Failure, FlowDetail, FlowState, LogBook


async def main(url: str | None) -> None:
    async with open_store(url, create=True) as store:
        # A logbook holds flow runs; a flow run holds the state of each task.
        book = LogBook("nightly-build", meta={"requested_by": "quickstart"})
        flow = FlowDetail("compile-and-test", state=FlowState.PENDING)
        flow.atoms = [AtomDetail(name, version="1.0") for name in ("fetch", "compile", "test")]
        book.flows.append(flow)
        await store.logbooks.save(book)

        # Run the flow: each state change is one committed statement.
        flow.state = FlowState.RUNNING
        await store.flow_details.update(flow, atoms=[])
        for atom in flow.atoms:
            atom.state = AtomState.RUNNING
            await store.atom_details.update(atom)
            if atom.name == "test":
                atom.state = AtomState.FAILURE
                atom.failure = Failure.from_exception(RuntimeError("2 tests failed"))
            else:
                atom.state, atom.results = AtomState.SUCCESS, {"seconds": 1.5}
            await store.atom_details.update(atom)
        flow.state = FlowState.FAILURE
        await store.flow_details.update(flow, atoms=[])

        # Read everything back in a fixed number of queries.
        stored = await store.logbooks.get(book.uuid)
        print(f"store: {store.url}")
        print(f"logbook {stored.name!r} created {stored.created_at:%Y-%m-%d %H:%M:%S %Z}")
        for stored_flow in stored.flows:
            print(f"  flow {stored_flow.name!r}: {stored_flow.state}")
            for atom in stored_flow.atoms:
                detail = atom.failure.exception_str if atom.failure else atom.results
                print(f"    {atom.name:<8} {atom.state:<8} {detail}")
        report = await store.check()
        print(f"integrity check: {'ok' if report.ok else report.problems}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
