"""Documentation keeps up with the code: every configuration key and every report column is
documented, and the README opens with the two commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from convoscope.config import KEYS, SOURCE_KEYS
from convoscope.reports import REPORTS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("key", sorted(KEYS))
def test_every_configuration_key_is_documented(key: str) -> None:
    assert f"{key} =" in (ROOT / "README.md").read_text(), f"README's configuration example lacks {key}"


@pytest.mark.parametrize(("source", "key"), sorted((s, k) for s, keys in SOURCE_KEYS.items() for k in keys))
def test_every_source_key_is_documented(source: str, key: str) -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index(f"[sources.{source}]"):]
    assert f"{key} =" in table.split("\n\n", 1)[0], f"README's [sources.{source}] example lacks {key}"
    assert key in (ROOT / "docs" / "sources" / f"{source}.md").read_text()


def test_every_source_has_a_page() -> None:
    from convoscope import sources

    for name in sources.names():
        assert (ROOT / "docs" / "sources" / f"{name}.md").is_file(), f"docs/sources/{name}.md is missing"


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_every_report_and_column_is_documented(name: str) -> None:
    docs = (ROOT / "docs" / "reports.md").read_text()
    assert f"## {name}" in docs
    for column in REPORTS[name].columns + REPORTS[name].extra_columns:
        assert column.display in docs, f"{name}: column {column.display!r} is not in docs/reports.md"


def test_readme_opens_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text().split("\n\n", 2)[1]
    assert "make demo" in head and "make test" in head
