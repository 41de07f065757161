"""Fixtures shared by the command-line and web test modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_helpers import WORKED_EXAMPLE, Convoscope
from web_helpers import AnalystSite, analyst_site


@pytest.fixture
def cs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Convoscope:
    monkeypatch.chdir(tmp_path)  # no stray ./convoscope.toml or ./convoscope.duckdb
    return Convoscope(tmp_path)


@pytest.fixture(scope="module")
def worked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Convoscope]:
    store = Convoscope(tmp_path_factory.mktemp("worked"))
    result = store("ingest", str(WORKED_EXAMPLE))
    assert result.exit_code == 0, result.stderr
    yield store


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnalystSite]:
    """The worked example served, with the analyst `ana` (an API token, a browser logged in)."""
    with analyst_site(tmp_path_factory.mktemp("served")) as site:
        yield site


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    """A local Spark session of 2 cores for a module's tests (PySpark imported only by those that ask)."""
    from convoscope.derive import spark_engine

    session = spark_engine.session("local[2]", partitions=4, batch_rows=2048, memory="2g")
    yield session
    session.stop()
