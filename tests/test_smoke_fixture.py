from statestore import Store


async def test_store_opens_empty(store: Store) -> None:
    report = await store.check()
    assert report.ok, report.problems
