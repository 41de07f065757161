"""The command line as a user meets it (SPEC 6.1): one-line errors with the right exit codes, the
synthetic brand through `generate`, the `demo` command and `ingest --no-derive`."""

from __future__ import annotations

import csv
import io
import os
import pty
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from convoscope.cli import cli
from convoscope.reports import REPORTS

FIXTURES = Path(__file__).parent / "fixtures"


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def one_line_error(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("convoscope: error: ")
    return lines[0]


@pytest.mark.parametrize("args", [
    ["frobnicate"],
    ["report"],
    ["ingest"],
    ["--bogus", "derive"],
    ["derive", "--bogus"],
    ["report", "sessions-detail", "--headers", "camel"],
    ["generate", "--customers", "0", "--out", "x.jsonl"],
    ["generate", "--out", "x.txt"],
])
def test_usage_errors_exit_2_with_one_line_and_a_hint(args: list[str], tmp_path: Path) -> None:
    result = run("--db", str(tmp_path / "s.duckdb"), *args)
    assert result.exit_code == 2
    one_line_error(result)


@pytest.mark.parametrize("args", [
    ["report", "sessions-detail", "--out", "{folder}"],
    ["generate", "--customers", "5", "--days", "1", "--out", "{tmp}/no-such-folder/x.jsonl"],
    ["--config", "{folder}", "report", "sessions-detail"],
    ["--db", "{tmp}/no\nsuch/s.duckdb", "report", "sessions-detail"],
], ids=["out-is-a-folder", "out-in-no-folder", "config-is-a-folder", "path-with-a-line-break"])
def test_a_path_the_system_refuses_is_one_line_and_exit_1(args: list[str], tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    assert run("--db", str(db), "ingest", str(FIXTURES / "worked-example.jsonl")).exit_code == 0
    folder = tmp_path / "a-folder"
    folder.mkdir()
    given = [a.format(folder=folder, tmp=tmp_path) for a in args]
    result = run(*given) if given[0] in ("--config", "--db") else run("--db", str(db), *given)
    assert result.exit_code == 1, result.output
    one_line_error(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-folder", "s.duckdb"]  # no half-written .part
    assert list(folder.iterdir()) == []


def test_a_missing_choice_is_one_line_naming_the_choices(tmp_path: Path) -> None:
    result = run("--db", str(tmp_path / "s.duckdb"), "users", "add", "bob")
    assert result.exit_code == 2
    assert "administrator, team_manager, analyst, agent" in one_line_error(result)


def test_reading_a_store_that_does_not_exist_says_to_ingest_first(tmp_path: Path) -> None:
    missing = tmp_path / "missing.duckdb"
    for args in (["report", "sessions-detail"], ["rejects"], ["derive"]):
        result = run("--db", str(missing), *args)
        assert result.exit_code == 1
        assert "ingest" in one_line_error(result)
    assert not missing.exists()


def test_a_missing_input_leaves_no_empty_store_behind(tmp_path: Path) -> None:
    """An empty store would make later reports answer '0 rows' instead of 'no store; ingest first'."""
    db = tmp_path / "s.duckdb"
    result = run("--db", str(db), "ingest", str(tmp_path / "exports"))
    assert result.exit_code == 1
    assert "no such file or directory" in one_line_error(result)
    assert not db.exists()


@pytest.mark.parametrize("option", ["--db", "--config"])
def test_a_global_option_after_the_command_says_where_it_goes(option: str, tmp_path: Path) -> None:
    result = run("report", "sessions-summary", option, str(tmp_path / "x"))
    assert result.exit_code == 2
    assert f"{option} goes before the command" in one_line_error(result)


def test_users_add_without_a_terminal_or_password_stdin_says_how(tmp_path: Path) -> None:
    result = run("--db", str(tmp_path / "s.duckdb"), "users", "add", "maria", "--role", "analyst", input="secret\n")
    assert result.exit_code == 2
    assert "--password-stdin" in one_line_error(result)


def test_spark_derive_of_a_json_lines_file_says_it_reads_parquet(tmp_path: Path) -> None:
    result = run("spark-derive", "--events", str(FIXTURES / "worked-example.jsonl"), "--out", str(tmp_path / "lake"))
    assert result.exit_code == 2
    assert "spark-derive reads Parquet" in one_line_error(result)


def test_an_interrupted_command_says_so_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C reaches a running DuckDB query as its InterruptException, or Python as KeyboardInterrupt."""
    import duckdb

    from convoscope import service

    for interruption in (KeyboardInterrupt(), duckdb.InterruptException("INTERRUPT Error: Query interrupted"),
                         RuntimeError("Query interrupted")):
        def interrupted(*args: object, error: BaseException = interruption, **kwargs: object) -> None:
            raise error

        monkeypatch.setattr(service, "ingest", interrupted)
        result = run("--db", str(tmp_path / "s.duckdb"), "ingest", str(FIXTURES / "worked-example.jsonl"))
        assert result.exit_code == 130
        assert "interrupted" in one_line_error(result)


def test_a_demo_on_a_port_in_use_stops_before_touching_the_running_ones_files(tmp_path: Path) -> None:
    import socket

    out = tmp_path / "demo"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("demo", "--out", str(out), "--customers", "20", "--days", "2", "--port", str(port))
    assert result.exit_code == 1
    assert "already serving" in one_line_error(result)
    assert not out.exists()


def test_generate_writes_the_same_brand_for_the_same_seed(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    for path, seed in ((a, "3"), (b, "3"), (c, "4")):
        result = run("generate", "--customers", "40", "--days", "5", "--seed", seed, "--out", str(path))
        assert result.exit_code == 0, result.output
        assert f"records to {path}" in result.stdout
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()


def test_generated_malformed_records_are_rejected_with_reasons(tmp_path: Path) -> None:
    events, db = tmp_path / "bad.jsonl", tmp_path / "s.duckdb"
    assert run("generate", "--customers", "60", "--days", "5", "--bad-rate", "0.05", "--out", str(events)).exit_code == 0
    result = run("--db", str(db), "ingest", str(events))
    assert result.exit_code == 3
    accepted, _, rejected = (int(part.split()[-1].replace(",", "")) for part in result.stdout.split(", "))
    assert accepted > 0 and rejected > 0
    listed = list(csv.DictReader(io.StringIO(run("--db", str(db), "rejects").stdout)))
    assert len(listed) == rejected
    assert all(row["reason"] and row["line"] for row in listed)


def test_demo_writes_every_report_and_prints_the_headline(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = run("demo", "--out", str(out), "--customers", "80", "--days", "7", "--no-serve")
    assert result.exit_code == 0, result.output
    for name in REPORTS:
        written = list(csv.reader(io.StringIO((out / f"{name}.csv").read_text(encoding="utf-8"))))
        assert written[0] == [c.display for c in REPORTS[name].columns]
        if name == "sources":  # the plain demo's events come in the event format, from no helpdesk
            assert len(written) == 1, written
            continue
        assert len(written) > (1 if name == "data-quality" else 3), name
    rows = list(csv.reader(io.StringIO((out / "sessions-detail.csv").read_text(encoding="utf-8"))))
    for words in ("AI sessions", "resolution rate", "handoff rate", "top handoff categories"):
        assert words in result.stdout
    sessions = int(result.stdout.split("AI sessions")[1].split()[0].replace(",", ""))
    assert sessions == len(rows) - 1


def test_ingest_no_derive_stores_and_the_next_report_derives(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    result = run("--db", str(db), "ingest", "--no-derive", str(FIXTURES / "worked-example.jsonl"))
    assert result.exit_code == 0 and "accepted 10" in result.stdout
    report = run("--db", str(db), "report", "sessions-detail", "--as-of", "2026-06-01T00:00:00Z", "--tz", "UTC")
    assert report.exit_code == 0
    assert report.stdout_bytes == (FIXTURES / "worked-example.sessions-detail.csv").read_bytes()


def test_a_csv_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (FIXTURES / "worked-example.csv").read_bytes())
    result = run("--db", str(tmp_path / "s.duckdb"), "ingest", str(path))
    assert result.exit_code == 0 and "accepted 10" in result.stdout


def test_a_report_of_an_unknown_brand_is_empty_with_a_note_naming_the_brands(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    assert run("--db", str(db), "ingest", str(FIXTURES / "worked-example.jsonl")).exit_code == 0
    result = run("--db", str(db), "report", "sessions-detail", "--brand", "defualt")
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 1  # the header alone
    assert "no brand 'defualt'; its brands are default" in result.stderr


def test_the_progress_bar_draws_on_the_terminal_and_never_into_the_csv(tmp_path: Path) -> None:
    """SPEC 6.1: long work shows a progress bar on a terminal. Typed at a prompt, `report X > file.csv`
    has standard error on the terminal and standard output in the file, which must hold the CSV alone,
    also when the report first rebuilds the tables (here: a derivation setting changed)."""
    db, config = tmp_path / "s.duckdb", tmp_path / "c.toml"
    assert CliRunner().invoke(cli, ["--db", str(db), "ingest", str(FIXTURES / "worked-example.jsonl")]).exit_code == 0
    config.write_text('session_inactivity = "30m"\n')
    terminal, its_end = pty.openpty()
    with (tmp_path / "out.csv").open("wb") as out:
        subprocess.run([str(Path(sys.executable).with_name("convoscope")), "--db", str(db), "--config", str(config),
                        "report", "sessions-summary", "--as-of", "2026-06-01T00:00:00Z"],
                       stdout=out, stderr=its_end, check=True, timeout=300)
    os.close(its_end)
    drawn = b""
    while True:
        try:
            piece = os.read(terminal, 65536)
        except OSError:  # the other end closed
            break
        if not piece:
            break
        drawn += piece
    os.close(terminal)
    assert (tmp_path / "out.csv").read_bytes().startswith(b"Period,Sessions,"), (tmp_path / "out.csv").read_bytes()[:80]
    assert b"Deriving" in drawn, drawn[:300]


def test_describe_prints_the_definitions_beside_the_report_and_leaves_the_csv_alone(tmp_path: Path) -> None:
    """Issue 24 point 5: `report --describe` says, on standard error, what produced the report (as-of time,
    zone, each brand's derivation settings, the configuration file); the CSV is byte for byte the same."""
    db, config = tmp_path / "s.duckdb", tmp_path / "c.toml"
    config.write_text('session_inactivity = "30m"\n[brands.default]\ntimezone = "Europe/Berlin"\n')
    assert run("--db", str(db), "ingest", str(FIXTURES / "worked-example.jsonl")).exit_code == 0
    args = ["--db", str(db), "--config", str(config), "report", "sessions-summary", "--as-of", "2026-06-01T00:00:00Z"]
    plain, described = run(*args), run(*args, "--describe")
    assert plain.exit_code == described.exit_code == 0, described.stderr
    assert described.stdout_bytes == plain.stdout_bytes and plain.stderr == ""
    assert described.stderr == (f"sessions-summary as of 2026-06-01T00:00:00Z, time zone Europe/Berlin; derived with "
                                f"default: S=30m;C=1d;W=1d;R=1d;F=1d;ai_channels=*; configuration {config}\n")
    out = tmp_path / "r.csv"
    written = run(*args, "--describe", "--out", str(out))
    assert written.stderr.splitlines() == [f"wrote 1 rows to {out}", described.stderr.strip()]
    assert out.read_bytes() == plain.stdout_bytes


def _hint(result: Result, before: str) -> str:
    """The command a hint line of standard error points to: what follows `before` on its line."""
    (line,) = [line for line in result.stderr.splitlines() if before in line]
    return line.split(before, 1)[1]


def _in_a_shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`command` typed at a POSIX shell, as a user pastes it: `convoscope` is the one on the PATH."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(command, shell=True, cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PATH": path})


def test_the_rejects_hint_repeats_the_global_options_and_works_as_printed(tmp_path: Path) -> None:
    """Issue 28 point 1: after `--db X --config Y ingest FILE` rejects events, the hint names `rejects` with the
    same store and configuration, quoted for a shell; pasted into one elsewhere, it lists what was rejected."""
    folder = tmp_path / "it's a folder"
    folder.mkdir()
    db, config = folder / "my store.duckdb", folder / "my $config.toml"
    config.write_text("[server]\nrate_limit = 0\n")
    events = folder / "events.jsonl"
    events.write_text((FIXTURES / "worked-example.jsonl").read_text() + '{"event_id": "bad", "type": "nonsense"}\n')
    result = run("--db", str(db), "--config", str(config), "ingest", str(events))
    assert result.exit_code == 3, result.stderr
    command = _hint(result, "list them with: ")
    assert shlex.split(command) == ["convoscope", "--db", str(db), "--config", str(config), "rejects"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    listed = _in_a_shell(command, elsewhere)
    assert listed.returncode == 0, listed.stderr
    (row,) = csv.DictReader(io.StringIO(listed.stdout))
    assert row["raw"] == '{"event_id": "bad", "type": "nonsense"}'
    # The store named by $CONVOSCOPE_DB is still named so by the next command: the hint adds nothing.
    again = CliRunner().invoke(cli, ["ingest", str(events)], env={"CONVOSCOPE_DB": str(db)})
    assert again.exit_code == 3, again.stderr
    assert _hint(again, "list them with: ") == "convoscope rejects"


def test_every_hint_naming_another_command_repeats_the_global_options(tmp_path: Path) -> None:
    """Issue 28 point 1: the hints of the command line's own messages and of the errors it shows (an unknown
    token's, a lake's, a missing store's) name the other command with the global options the user gave."""
    db, config = tmp_path / "a store.duckdb", tmp_path / "c.toml"
    config.write_text("")
    given = shlex.join(["convoscope", "--db", str(db), "--config", str(config)])

    def cli_(*args: str, code: int = 0, input: str | None = None) -> Result:
        result = run("--db", str(db), "--config", str(config), *args, input=input)
        assert result.exit_code == code, result.stderr
        return result

    missing = cli_("report", "sessions-summary", code=1)
    assert f"({given} ingest FILE)" in one_line_error(missing)
    cli_("users", "add", "maria", "--role", "analyst", "--password-stdin", input="long enough\n")
    assert _hint(cli_("users", "tokens", "maria"), "make one with: ") == f"{given} users token maria"
    assert f"{given} users tokens maria" in one_line_error(cli_("users", "revoke-token", "maria", code=2))
    unknown = one_line_error(cli_("users", "revoke-token", "maria", "0123abcd", code=1))
    assert unknown.endswith(f"list them with: {given} users tokens maria"), unknown
    exists = one_line_error(cli_("users", "add", "maria", "--role", "agent", "--password-stdin", code=1,
                                 input="long enough\n"))
    assert exists.endswith(f"change the role with: {given} users set-role maria ROLE"), exists
    cli_("users", "remove", "maria")
    assert _hint(cli_("users", "list"), "add one with: ") == f"{given} users add NAME --role administrator"
    not_a_lake = tmp_path / "not a lake"
    not_a_lake.mkdir()
    lake = one_line_error(cli_("report", "sessions-summary", "--lake", str(not_a_lake), code=1))
    assert lake.endswith(f"write one with: {given} spark-derive --events PATH --out {shlex.quote(str(not_a_lake))}")
    parquet = one_line_error(cli_("spark-derive", "--events", str(FIXTURES / "worked-example.jsonl"),
                                  "--out", str(tmp_path / "lake"), code=2))
    assert f"({given} ingest {FIXTURES / 'worked-example.jsonl'})" in parquet


def test_report_help_lists_every_report_with_its_where_keys_and_by_dimensions() -> None:
    """Issue 28 point 2: `report --help` says, under its options, what each report accepts: its `--where` keys
    (with the values of those that take only some) and its `--by` dimensions; each one listed is taken, and no
    other, in a block that fits an 80-column terminal."""
    from convoscope.config import Config
    from convoscope.errors import ParameterError
    from convoscope.reports import build_params

    result = run("report", "--help")
    assert result.exit_code == 0, result.stderr
    assert all(len(line) <= 80 for line in result.stdout.splitlines()), result.stdout
    listed: dict[str, dict[str, str]] = {}
    option = ""
    for line in result.stdout.split("its --by dimensions:", 1)[1].splitlines():
        if line.startswith("  ") and not line.startswith("   "):
            listed[line.strip()] = {}
        elif line.strip():
            words = line.split(None, 1) if line.lstrip().startswith("--") else [option, line.strip()]
            option = words[0]
            name = list(listed)[-1]
            listed[name][option] = (listed[name].get(option, "") + " " + words[1]).strip()
    assert list(listed) == list(REPORTS)
    for name, report in REPORTS.items():
        where = {} if listed[name]["--where"] == "(no keys)" else dict(
            item.partition("=")[::2] for item in listed[name]["--where"].split(", "))
        by = listed[name]["--by"].split(", ") if "--by" in listed[name] else []
        assert list(where) == list(report.where) and by == list(report.by_columns), name
        for key, values in where.items():  # each key and value shown is one the report takes
            # Any value, but a period's label (`period`, issue 28) has a shape.
            for value in values.split("|") if values else ["2026-W21" if key == "period" else "anything"]:
                build_params(report, Config(), ["default"], where=[f"{key}={value}"])
            if values:
                with pytest.raises(ParameterError):
                    build_params(report, Config(), ["default"], where=[f"{key}=anything"])
        for dimension in by:
            build_params(report, Config(), ["default"], by=dimension)
