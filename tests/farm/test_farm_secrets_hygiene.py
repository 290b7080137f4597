"""A worker's secret and its hash show nowhere: not in an exception (message,
args, repr, cause and context chain, formatted traceback), not in a log line
(echo on, rows too), not in a record. On every backend."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from uuid import UUID

import pytest
from sqlalchemy import select

from statestore import AlreadyExists, InvalidInput, NotFound, Store, open_store
from statestore.farm import secrets
from statestore.farm import workers as workers_module
from statestore.schema.metadata import WorkerRow

SURROGATE_SECRETS = {
    "lone high surrogate": "hunter2-\ud800-zebra9",
    "lone low surrogate": "\udfffQuokkaMango77",
    "surrogate pair": "pa\ud83d\ude00Xylophone",
    "nul": "correct\x00horsebatterystaple",
}
"""Secrets no text field may hold (and with no run of 4 characters that
messages or code would contain)."""
FIRST, SECOND, THIRD = "first secret", "second secret", "third secret"
"""Named, so that a formatted traceback's source lines do not show them."""


def _errors(error: BaseException) -> Iterator[BaseException]:
    """``error`` and everything it was raised from or while handling."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or any(current is known for known in seen):
            continue
        seen.append(current)
        pending += [current.__cause__, current.__context__]
    yield from seen


def _everything_shown(error: BaseException) -> str:
    """Every text an error chain can show: messages, reprs, args, SQLAlchemy's
    statement parameters, and the formatted traceback."""
    parts = ["".join(traceback.format_exception(error))]
    for each in _errors(error):
        parts += [str(each), repr(each), repr(each.args)]
        parts += [repr(getattr(each, name, None)) for name in ("params", "statement", "object", "orig", "detail")]
        parts += [repr(value) for value in vars(each).values()] if hasattr(each, "__dict__") else []
    return "\n".join(parts)


def _pieces(secret: str) -> set[str]:
    """What of ``secret`` must not show: the whole, every run of 4 characters,
    and each character that is not printable ASCII, as it is and escaped."""
    pieces = {secret, *(secret[start : start + 4] for start in range(len(secret) - 3))}
    for char in secret:
        if not (char.isascii() and char.isprintable()):
            pieces |= {char, char.encode("unicode_escape").decode("ascii")}
    return pieces


def assert_nothing_of(secret: str, error: BaseException) -> None:
    shown = _everything_shown(error)
    for piece in _pieces(secret):
        assert piece not in shown, (piece, shown)
    assert not any(isinstance(each, UnicodeError) for each in _errors(error))


async def _stored_hash(store: Store, uuid: UUID) -> str:
    table = WorkerRow.__table__
    statement = select(table.c.secret_hash).where(table.c.uuid == uuid)
    return str(await store.read(lambda conn: conn.execute(statement).scalar_one()))


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every hash the store makes while the test runs (those of refused calls too)."""
    made: list[str] = []

    def recording(secret: str) -> str:
        made.append(secrets.hash_secret(secret))
        return made[-1]

    monkeypatch.setattr(workers_module, "hash_secret", recording)
    return made


def _hash_pieces(encoded: str) -> list[str]:
    """A hash, and its salt and digest alone (each enough to attack it)."""
    return [encoded, *encoded.split("$")[4:]]


# --------------------------------------------------------------------------- bad secrets


@pytest.mark.parametrize("secret", SURROGATE_SECRETS.values(), ids=SURROGATE_SECRETS.keys())
async def test_a_secret_that_cannot_be_text_is_refused_showing_nothing_of_it(store: Store, secret: str) -> None:
    worker = await store.workers.create("w", "the real one")
    calls = {
        "create": lambda: store.workers.create("v", secret),
        "set_secret": lambda: store.workers.set_secret(worker.uuid, secret),
        "verify_secret": lambda: store.workers.verify_secret(worker.uuid, secret),
    }
    for name, call in calls.items():
        with pytest.raises(InvalidInput, match="worker secret") as caught:
            await call()
        assert_nothing_of(secret, caught.value)
        assert caught.value.__cause__ is None, name
    assert [each.name for each in await store.workers.list()] == ["w"]  # nothing written
    assert await store.workers.verify_secret(worker.uuid, "the real one")


@pytest.mark.parametrize("secret", SURROGATE_SECRETS.values(), ids=SURROGATE_SECRETS.keys())
def test_the_hashing_functions_refuse_it_too(secret: str) -> None:
    for call in (
        lambda: secrets.hash_secret(secret),
        lambda: secrets.secret_matches(secret, None),
        lambda: secrets.check_secret(secret),
    ):
        with pytest.raises(InvalidInput) as caught:
            call()
        assert_nothing_of(secret, caught.value)


def test_the_check_of_pieces_is_not_vacuous() -> None:
    secret = SURROGATE_SECRETS["lone high surrogate"]
    for leaked in (secret, repr(secret), "hunter2", "\\ud800", "zebr"):
        with pytest.raises(AssertionError):
            assert_nothing_of(secret, ValueError(f"bad: {leaked}"))
    with pytest.raises(AssertionError):
        try:
            secret.encode("utf-8")
        except UnicodeEncodeError as error:
            assert_nothing_of(secret, InvalidInput("worker secret: bad"))
            assert_nothing_of(secret, error)


# --------------------------------------------------------------------------- the hash


async def test_a_duplicate_worker_shows_no_hash_in_its_whole_chain(store: Store, hashes: list[str]) -> None:
    worker = await store.workers.create("w", FIRST)
    stored = await _stored_hash(store, worker.uuid)
    assert hashes == [stored]
    for attempt in range(2):
        with pytest.raises(AlreadyExists) as caught:
            if attempt == 0:
                await store.workers.create("again", SECOND, uuid=worker.uuid)
            else:
                async with store.transaction():
                    await store.workers.create("again", SECOND, uuid=worker.uuid)
        shown = _everything_shown(caught.value)
        for made in hashes:
            for piece in _hash_pieces(made):
                assert piece not in shown
        assert SECOND not in shown
    assert len(hashes) == 3  # the refused creates hashed too: checked above
    assert await _stored_hash(store, worker.uuid) == stored


async def test_set_secret_of_a_missing_worker_shows_no_hash(store: Store, hashes: list[str]) -> None:
    worker = await store.workers.create("w", FIRST)
    await store.workers.delete(worker.uuid)
    with pytest.raises(NotFound) as caught:
        await store.workers.set_secret(worker.uuid, SECOND)
    shown = _everything_shown(caught.value)
    assert not any(piece in shown for made in hashes for piece in _hash_pieces(made))


async def test_no_hash_and_no_secret_is_logged_even_with_rows(
    backend: str, store_url: str, caplog: pytest.LogCaptureFixture, hashes: list[str]
) -> None:
    """``echo=True`` logs every statement and its parameters; at DEBUG,
    SQLAlchemy logs result rows too. Neither shows a hash or a secret."""
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    async with open_store(store_url, create=backend == "sqlite-memory", echo=True) as store:
        worker = await store.workers.create("echoed-worker", FIRST, address="10.0.0.7")
        await store.workers.set_secret(worker.uuid, SECOND)
        assert await store.workers.verify_secret(worker.uuid, SECOND)
        assert not await store.workers.verify_secret(worker.uuid, FIRST)
        with pytest.raises(AlreadyExists):
            await store.workers.create("again", THIRD, uuid=worker.uuid)
        await store.workers.fetch(worker.uuid)
        stored = await _stored_hash(store, worker.uuid)
    logged = caplog.text + "\n".join(str(record.args) for record in caplog.records)
    assert "INSERT INTO workers" in logged  # statements are logged…
    assert "echoed-worker" in logged  # …with their other parameters…
    assert "10.0.0.7" in logged
    assert stored in hashes
    assert len(hashes) == 3
    for made in hashes:  # …but no hash
        for piece in _hash_pieces(made):
            assert piece not in logged
    for secret in (FIRST, SECOND, THIRD):
        assert secret not in logged


async def test_a_new_worker_is_never_seen_without_its_hash(store: Store) -> None:
    """The INSERT and the statement setting the hash are one transaction:
    the worker verifies at once, and a refused create leaves no row behind."""
    worker = await store.workers.create("w", "s3cret")
    assert await store.workers.verify_secret(worker.uuid, "s3cret")
    assert (await _stored_hash(store, worker.uuid)).startswith("scrypt$")
    assert not await store.workers.verify_secret(worker.uuid, "")
    with pytest.raises(AlreadyExists):
        await store.workers.create("w2", "other", uuid=worker.uuid)
    assert [each.uuid for each in await store.workers.list()] == [worker.uuid]
