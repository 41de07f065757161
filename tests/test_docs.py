"""Documentation keeps up with the code: every configuration key and every report column is
documented, every setting the code reads is in docs/settings.md with its default, and the README opens
with the two commands."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from convoscope.cli import cli
from convoscope.config import KEYS, MAIL_KEYS, SERVER_KEYS, SOURCE_KEYS
from convoscope.reports import REPORTS
from convoscope.reports.meanings import meaning

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "convoscope"
SETTINGS = ROOT / "docs" / "settings.md"
VARIABLE = re.compile(r"CONVOSCOPE_[A-Z0-9_]+")


@pytest.mark.parametrize("key", sorted(KEYS))
def test_every_configuration_key_is_documented(key: str) -> None:
    assert f"{key} =" in (ROOT / "README.md").read_text(), f"README's configuration example lacks {key}"


@pytest.mark.parametrize(("source", "key"), sorted((s, k) for s, keys in SOURCE_KEYS.items() for k in keys))
def test_every_source_key_is_documented(source: str, key: str) -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index(f"[sources.{source}]"):]
    assert f"{key} =" in table.split("\n\n", 1)[0], f"README's [sources.{source}] example lacks {key}"
    assert key in (ROOT / "docs" / "sources" / f"{source}.md").read_text()


@pytest.mark.parametrize("key", sorted(SERVER_KEYS))
def test_every_server_key_is_documented(key: str) -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("[server]"):]
    assert f"{key} =" in table.split("\n\n", 1)[0], f"README's [server] example lacks {key}"


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


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_every_column_has_a_meaning_on_screen(name: str) -> None:
    """The web pages' definitions come from docs/reports.md's column tables: every column, `--by` column and
    `--extra` column of every report has one there, as plain text (issue 28)."""
    report = REPORTS[name]
    for column in report.columns + tuple(report.by_columns.values()) + report.extra_columns:
        said = meaning(name, column.display)
        assert said, f"{name}: docs/reports.md's tables give {column.display!r} no meaning"
        assert not re.search(r"[`*]", said), f"{name}: {column.display!r} keeps Markdown: {said!r}"


def test_meanings_read_on_from_the_table_header_and_refer_across_reports() -> None:
    assert meaning("sessions-summary", "Handed Off").startswith(
        "Counts the sessions created in the period that ended by a handoff or a team takeover, answered or not")
    assert meaning("sessions-summary", "Sessions") == "Counts the sessions created in the period"
    assert meaning("handoff-theme-sessions", "Handoff Reason") == meaning("sessions-detail", "Handoff Reason")
    assert meaning("sessions-detail", "Guides Used").endswith("joined by “, ”")
    assert meaning("contact-export", "Status") == "open or ended"
    assert meaning("sessions-detail", "No Such Column") is None


def test_readme_opens_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text().split("\n\n", 2)[1]
    assert "make demo" in head and "make test" in head


# --- docs/settings.md: one truth for settings (issue 24 point 5) ---------------------------------------

def settings_rows(heading: str) -> list[list[str]]:
    """The cells of each row of the first table under `heading` in docs/settings.md."""
    text = SETTINGS.read_text()
    lines = text[text.index(heading):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i, line in enumerate(lines[start:], start) if not line.startswith("|")), len(lines))
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in lines[start + 2:end]]


def read_variables() -> set[str]:
    """Every CONVOSCOPE_* variable the package's source names (what it reads from the environment)."""
    return {name for path in PACKAGE.rglob("*.py") for name in VARIABLE.findall(path.read_text())}


def documented_variables() -> dict[str, list[str]]:
    """The environment table: each variable and the cell naming the options it stands for."""
    return {row[0].strip("`"): row[1] for row in settings_rows("## Environment variables")}


def test_every_environment_variable_the_code_reads_is_in_settings() -> None:
    missing = sorted(read_variables() - set(documented_variables()))
    assert not missing, f"docs/settings.md's table of environment variables lacks {', '.join(missing)}"


def test_every_environment_variable_in_settings_is_read() -> None:
    stale = sorted(set(documented_variables()) - read_variables())
    assert not stale, f"docs/settings.md lists {', '.join(stale)}, which the code no longer reads"


def options() -> Iterator[tuple[str, click.Option]]:
    """Every option of every command, with the command's path (`serve`, `users token`)."""
    def walk(command: click.Command, path: str) -> Iterator[tuple[str, click.Option]]:
        for param in command.params:
            if isinstance(param, click.Option):
                yield path, param
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk(sub, f"{path} {name}".strip())
    yield from walk(cli, "")


@pytest.mark.parametrize(("where", "option"), [(path or "convoscope", o) for path, o in options()
                                               if VARIABLE.search(o.help or "")],
                         ids=lambda value: value if isinstance(value, str) else value.opts[-1])
def test_an_option_that_has_an_environment_variable_declares_it(where: str, option: click.Option) -> None:
    """An option whose help names a variable reads it through Click (`envvar=`), not by hand."""
    named = set(VARIABLE.findall(option.help or ""))
    assert option.envvar in named and len(named) == 1, f"{where} {option.opts[-1]}: declare envvar= {named}"


def test_the_options_settings_pairs_with_a_variable_declare_it() -> None:
    declared = {(path, option.opts[-1]): option.envvar for path, option in options()}
    pairs = [(variable, match) for variable, cell in documented_variables().items()
             for match in re.findall(r"`((?:[a-z-]+ )*)(--[a-z-]+)`", cell)]
    assert pairs, "docs/settings.md pairs no option with a variable"
    for variable, (command, option) in pairs:
        assert declared.get((command.strip(), option)) == variable, f"{command}{option} does not declare envvar={variable}"


def test_every_global_option_is_in_settings() -> None:
    listed = " ".join(row[0] for row in settings_rows("## Global options"))
    for option in cli.params:
        for name in option.opts:
            assert f"`{name}" in listed, f"docs/settings.md's global options lack {name}"


@pytest.mark.parametrize("key", sorted(KEYS))
def test_every_configuration_key_is_in_settings_with_its_default(key: str) -> None:
    rows = {row[0]: row[1] for row in settings_rows("## The configuration file")}
    assert rows.get(f"`{key}`") == f"`{json.dumps(KEYS[key][0])}`", f"docs/settings.md: {key} and its default"


@pytest.mark.parametrize(("source", "key"), sorted((s, k) for s, keys in SOURCE_KEYS.items() for k in keys))
def test_every_source_key_is_in_settings(source: str, key: str) -> None:
    rows = {(row[0], row[1]): row[2] for row in settings_rows("### `[sources.NAME]`")}
    assert rows.get((f"`[sources.{source}]`", f"`{key}`")), f"docs/settings.md: [sources.{source}] {key} and its default"


@pytest.mark.parametrize("key", sorted(SERVER_KEYS))
def test_every_server_key_is_in_settings_with_its_default(key: str) -> None:
    rows = {row[0]: row[1] for row in settings_rows("### `[server]`")}
    assert rows.get(f"`{key}`") == f"`{json.dumps(SERVER_KEYS[key][0])}`", f"docs/settings.md: [server] {key} and its default"


@pytest.mark.parametrize("key", sorted(MAIL_KEYS))
def test_every_mail_key_is_documented_with_its_default(key: str) -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"{key} =" in readme[readme.index("[mail]"):].split("\n\n", 1)[0], f"README's [mail] example lacks {key}"
    rows = {row[0]: row[1] for row in settings_rows("### `[mail]`")}
    default = MAIL_KEYS[key][0]
    expected = f"`{json.dumps(default)}`" if default is not None else "none"
    assert rows.get(f"`{key}`", "").startswith(expected), f"docs/settings.md: [mail] {key} and its default"
