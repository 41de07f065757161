"""What-if (issue 27 point 1): `convoscope compare`, its API and its page.

A set's column must be what the reports would say had the configuration held those definitions (checked against a
second store derived with that configuration), the stored definitions' column must be today's reports (point 4),
and comparing must leave the stored tables as they were.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from cli_helpers import TEST_CONFIG, Convoscope
from web_helpers import add_user, assert_json_cell, bearer, cli_ok, csv_table, generate_brand, log_in, serving

START, DAYS = "2026-05-01", 21
RANGE = ("--from", "2026-05-08", "--to", "2026-05-14")  # customers have events before and after it
AS_OF = "2026-06-15T00:00:00Z"
# Each set, and the configuration file that would make it the stored definitions.
SETS = {
    "session_inactivity=2h": "",  # the stored definitions, derived again in memory
    "session_inactivity=30m,recontact_window=72h": 'session_inactivity = "30m"\nrecontact_window = "72h"\n',
    "ai_channels=chat|sms,conversation_window=2h": 'ai_channels = ["chat", "sms"]\nconversation_window = "2h"\n',
    "contact_inactivity=1h,feedback_window=10m": 'contact_inactivity = "1h"\nfeedback_window = "10m"\n',
    "durable_window=2d": 'durable_window = "2d"\n',
}
LABELS = {
    "session_inactivity=2h": "session_inactivity=2h",
    "session_inactivity=30m,recontact_window=72h": "session_inactivity=30m,recontact_window=3d",
    "ai_channels=chat|sms,conversation_window=2h": "ai_channels=chat|sms,conversation_window=2h",
    "contact_inactivity=1h,feedback_window=10m": "contact_inactivity=1h,feedback_window=10m",
    "durable_window=2d": "durable_window=2d",
}
FIGURES = {  # each figure: the report whose one row over the range (period year) holds it
    "Sessions": "sessions-summary", "Resolution Rate": "sessions-summary", "Handoff Rate": "sessions-summary",
    "Recontact Rate": "sessions-summary", "Durable Resolution Rate": "outcomes-summary",
    "Automation Rate": "automation-summary",
}


def compare_table(store: Convoscope, *args: str) -> dict[str, dict[str, str]]:
    """`compare ... --out -` as {column label: {figure: cell}}."""
    rows = list(csv.reader(io.StringIO(cli_ok(store, "compare", *args, "--out", "-"), newline="")))
    header, body = rows[0], rows[1:]
    assert header[0] == "Figure"
    return {label: {row[0]: row[i] for row in body} for i, label in enumerate(header) if i}


def todays_figures(store: Convoscope, *args: str) -> dict[str, str]:
    """The figures as today's reports give them: each report's one row over the range, by year."""
    found: dict[str, str] = {}
    for figure, name in FIGURES.items():
        rows = list(csv.DictReader(io.StringIO(cli_ok(store, "report", name, "--period", "year", *args), newline="")))
        assert len(rows) == 1, (name, rows)
        found[figure] = rows[0][figure]
    return found


@pytest.fixture(scope="module")
def brand(tmp_path_factory: pytest.TempPathFactory) -> tuple[Convoscope, Path]:
    store = Convoscope(tmp_path_factory.mktemp("compare"))
    events = generate_brand(store, customers=500, days=DAYS, start=START, seed=11)
    return store, events


def test_each_column_is_what_the_reports_say_under_its_definitions(brand: tuple[Convoscope, Path],
                                                                 tmp_path: Path) -> None:
    store, events = brand
    sets = [arg for s in SETS for arg in ("--set", s)]
    table = compare_table(store, *sets, *RANGE, "--as-of", AS_OF)
    stored_label = next(iter(table))
    assert stored_label.startswith("stored (") and "session_inactivity=2h" in stored_label
    assert list(table)[1:] == [LABELS[s] for s in SETS]
    assert table[stored_label] == todays_figures(store, *RANGE, "--as-of", AS_OF)  # point 4
    for i, (text, settings) in enumerate(SETS.items()):
        (tmp_path / f"under-{i}").mkdir()
        other = Convoscope(tmp_path / f"under-{i}")
        assert other.config is not None
        other.config.write_text(TEST_CONFIG.replace("[server]", settings + "[server]"))
        cli_ok(other, "ingest", str(events))
        assert table[LABELS[text]] == todays_figures(other, *RANGE, "--as-of", AS_OF), text
    # The sets changed what they should: shorter sessions are more sessions, a longer recontact window more recontacts.
    shorter = table[LABELS["session_inactivity=30m,recontact_window=72h"]]
    assert int(shorter["Sessions"]) > int(table[stored_label]["Sessions"])
    assert float(shorter["Recontact Rate"]) > float(table[stored_label]["Recontact Rate"])
    assert table[LABELS["session_inactivity=2h"]] == table[stored_label]
    assert float(table["durable_window=2d"]["Durable Resolution Rate"]) > float(table[stored_label]["Durable Resolution Rate"])


def test_a_range_in_another_time_zone(brand: tuple[Convoscope, Path], tmp_path: Path) -> None:
    """The range is read in --tz, as every report's: the customers derived again are those of its local days."""
    store, events = brand
    zone = ("--tz", "Pacific/Auckland", "--from", "2026-05-10", "--to", "2026-05-10", "--as-of", AS_OF)
    table = compare_table(store, "--set", "session_inactivity=30m", *zone)
    other = Convoscope(tmp_path)
    assert other.config is not None
    other.config.write_text(TEST_CONFIG.replace("[server]", 'session_inactivity = "30m"\n[server]'))
    cli_ok(other, "ingest", str(events))
    assert table["session_inactivity=30m"] == todays_figures(other, *zone)
    assert table[next(iter(table))] == todays_figures(store, *zone)


def test_labels_are_one_spelling_of_each_set(brand: tuple[Convoscope, Path]) -> None:
    store, _ = brand
    table = compare_table(store, "--set", "ai_channels=email|Chat|chat", "--set", "ai_channels=chat|*",
                          "--set", "recontact_window=1440m", "--as-of", AS_OF)
    assert list(table)[1:] == ["ai_channels=chat|email", "ai_channels=*", "recontact_window=1d"]
    result = store("compare", "--brand", "nosuch", "--as-of", AS_OF)
    assert result.exit_code == 0 and "the store holds no brand 'nosuch'" in result.stderr


def test_comparing_leaves_the_store_as_it_was(brand: tuple[Convoscope, Path]) -> None:
    store, _ = brand
    before = cli_ok(store, "report", "sessions-detail", "--as-of", AS_OF, "--extra")
    compare_table(store, "--set", "session_inactivity=10m,ai_channels=email", "--as-of", AS_OF)
    assert cli_ok(store, "report", "sessions-detail", "--as-of", AS_OF, "--extra") == before


def test_the_whole_log_without_a_range_and_an_empty_one(brand: tuple[Convoscope, Path]) -> None:
    store, _ = brand
    whole = compare_table(store, "--set", "session_inactivity=2h", "--as-of", AS_OF)
    stored, again = whole.values()
    assert stored == again and int(stored["Sessions"]) > 1000
    empty = compare_table(store, "--set", "session_inactivity=30m", "--from", "2027-01-01", "--as-of", AS_OF)
    for column in empty.values():
        assert column["Sessions"] == "0" and column["Resolution Rate"] == ""  # no denominator: an empty cell


def test_the_printed_table_and_the_csv_file(brand: tuple[Convoscope, Path]) -> None:
    store, _ = brand
    result = store("compare", "--set", "session_inactivity=30m", *RANGE, "--as-of", AS_OF)
    assert result.exit_code == 0, result.stderr
    assert "Resolution Rate" in result.stdout and "session_inactivity=30m" in result.stdout
    assert "S=30m" in result.stderr and "time zone UTC" in result.stderr  # the definitions of each column
    out = store.dir / "whatif.csv"
    cli_ok(store, "compare", "--set", "session_inactivity=30m", *RANGE, "--as-of", AS_OF, "--out", str(out),
           "--headers", "snake")
    data = out.read_bytes()
    assert data.startswith(b"figure,stored (session_inactivity=2h),session_inactivity=30m\r\n")
    assert [row[0] for row in csv_table(data.decode())[1:]] == [f.lower().replace(" ", "_") for f in FIGURES]


@pytest.mark.parametrize(("args", "said"), [
    (("--set", "session_inactivity=soon"), "--set 'session_inactivity=soon': session_inactivity = 'soon' is not valid"),
    (("--set", "timezone=UTC"), "'timezone' is not a setting a set can change"),
    (("--set", "session_inactivity"), "is not KEY=VALUE"),
    (("--set", "ai_channels=web chat"), "expected channel names joined by |"),
    (("--set", "ai_channels=chat|chat,ai_channels=email"), "gives ai_channels twice"),
    (tuple(a for i in range(7) for a in ("--set", f"session_inactivity={i + 1}h")), "compare at most 6 at once"),
    (("--from", "May 8"), "--from 'May 8' is not a date"),
])
def test_a_bad_set_is_one_line_saying_what_to_do(brand: tuple[Convoscope, Path], args: tuple[str, ...],
                                                 said: str) -> None:
    store, _ = brand
    result = store("compare", *args)
    assert result.exit_code == 2
    assert said in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_the_api_and_the_page_answer_the_same(brand: tuple[Convoscope, Path]) -> None:
    store, _ = brand
    analyst = add_user(store, "cmp-analyst", "analyst")
    agent = add_user(store, "cmp-agent", "agent")
    other = add_user(store, "cmp-other", "analyst", brands="other")
    result = store("compare", "--set", "session_inactivity=30m", "--set", "durable_window=3d", *RANGE, "--as-of", AS_OF,
                   "--out", "-")
    cli_csv = result.stdout_bytes.decode()  # Click's `stdout` would rewrite CRLF
    query = {"set": ["session_inactivity=30m", "durable_window=3d"], "from": "2026-05-08", "to": "2026-05-14",
             "as_of": AS_OF}
    with serving(store) as server, server.client() as client:
        answer = client.get("/api/v1/compare", params=query, headers=bearer(analyst))
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/csv")
        assert answer.text == cli_csv
        assert "S=30m" in answer.headers["x-convoscope-definitions"]
        as_json = client.get("/api/v1/compare", params=query, headers=bearer(analyst) | {"Accept": "application/json"})
        rows = as_json.json()["rows"]
        assert [row["Figure"] for row in rows] == list(FIGURES)
        header, *cells = csv_table(cli_csv)
        assert as_json.json()["columns"] == header and len(cells) == len(rows)
        for row, line in zip(rows, cells, strict=True):  # a count is a whole number, a rate a number (issue 28)
            kind = "count" if row["Figure"] == "Sessions" else "rate"
            for name, cell in zip(header[1:], line[1:], strict=True):
                assert_json_cell(kind, row[name], cell, (row["Figure"], name))
        assert isinstance(rows[0]["session_inactivity=30m"], int) and isinstance(rows[1][header[1]], float)
        assert client.get("/api/v1/compare", params=query).status_code == 401
        assert client.get("/api/v1/compare", params=query, headers=bearer(agent)).status_code == 403
        refused = client.get("/api/v1/compare", params=query | {"brand": "default"}, headers=bearer(other))
        assert refused.status_code == 400 and refused.json()["errors"][0]["attr"] == "brand"
        bad = client.get("/api/v1/compare", params={"set": "session_inactivity=soon"}, headers=bearer(analyst))
        assert bad.status_code == 400 and bad.json()["errors"][0]["attr"] == "set"
        assert client.get("/api/v1/compare", params={"sets": "x"}, headers=bearer(analyst)).status_code == 400
        assert log_in(client, "cmp-analyst").status_code == 303
        page = client.get("/compare", params=query | {"run": "1"})
        assert page.status_code == 200
        for cell in csv_table(cli_csv)[1]:
            assert f">{cell}<" in page.text
        assert 'id="compare-chart"' in page.text and "/api/v1/compare?" in page.text
        wrong = client.get("/compare", params={"set": "session_inactivity=soon", "run": "1"})
        assert wrong.status_code == 400 and "is not valid" in wrong.text and 'aria-invalid="true"' in wrong.text
