"""schema/ is what the models generate; regenerate with `statestore schema --write schema/`."""

from __future__ import annotations

from pathlib import Path

import pytest

from statestore.schema.ddl import DIALECTS, ddl, readme
from statestore.schema.metadata import metadata

SCHEMA = Path(__file__).resolve().parents[2] / "schema"


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_committed_ddl_matches_the_models(dialect: str) -> None:
    committed = (SCHEMA / f"{dialect}.sql").read_text()
    assert committed == ddl(dialect), f"schema/{dialect}.sql is stale: run `statestore schema --write schema/`"


def test_committed_diagram_matches_the_models() -> None:
    assert (SCHEMA / "README.md").read_text() == readme(), "run `statestore schema --write schema/`"


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_ddl_names_every_table(dialect: str) -> None:
    text = ddl(dialect)
    for table in metadata.sorted_tables:
        assert f"CREATE TABLE {table.name} (" in text
