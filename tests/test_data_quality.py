"""SPEC 2.4, 3.3 and 4.8 through the real command line: the `data-quality` report.

A JSON Lines file with one rejected record, one exact duplicate, one conflicting duplicate and one
event that derivation counts as an anomaly goes through `convoscope ingest` (exit 3: something was
rejected); `convoscope report data-quality` then lists one row per problem, each with its kind, a
reason, the event's identity and time, and the file and line it came from. Then each anomaly reason of
SPEC 3.3 on its own, and the parameters the report does not take.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import Result

from cli_helpers import AS_OF, Convoscope, ev, header, parse

HEADERS = ["Kind", "Reason", "Event ID", "Brand", "Customer ID", "Time", "Source"]
Row = dict[str, str]


def ingest_lines(store: Convoscope, lines: list[str], name: str = "events.jsonl") -> tuple[Path, Result]:
    """Ingest a JSON Lines file of these lines, whatever the exit code."""
    path = store.dir / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path, store("ingest", str(path))


def quality(store: Convoscope, *args: str) -> Result:
    return store.report(*args, name="data-quality")


def quality_rows(store: Convoscope, *args: str) -> list[Row]:
    return parse(quality(store, *args))


def names_line(source: str, path: Path, line: int) -> bool:
    """The Source cell names the file, then the line number (digits of the folder name do not count)."""
    if path.name not in source:
        return False
    after = source.split(path.name, 1)[1]
    return re.search(rf"(?<!\d){line}(?!\d)", after) is not None


FIRST = ev("e1", "customer_message", "2026-05-21T10:00:00Z", text="hi")
SECOND = ev("e2", "ai_message", "2026-05-21T10:01:00Z", text="hello")
PROBLEM_LINES = [
    json.dumps(FIRST),  # 1: stored
    json.dumps(SECOND),  # 2: stored
    json.dumps(ev("bad1", "customer_message", "21/05/2026 10:02", text="late")),  # 3: rejected
    json.dumps(FIRST),  # 4: a duplicate of line 1
    json.dumps({**SECOND, "text": "something else"}),  # 5: a conflict with line 2
    json.dumps(ev("x9", "contact_end", "2026-05-21T11:00:00Z", customer="c2", agent="sam")),  # 6: an anomaly
]


def test_one_row_per_problem_with_its_kind_reason_and_source(cs: Convoscope) -> None:
    path, ingested = ingest_lines(cs, PROBLEM_LINES)
    assert ingested.exit_code == 3, (ingested.stdout, ingested.stderr)
    assert ingested.stdout.strip() == "accepted 3, duplicate 1, rejected 2"

    assert header(quality(cs, "--tz", "UTC")) == HEADERS
    rows = quality_rows(cs, "--tz", "UTC")
    assert sorted(row["Kind"] for row in rows) == ["anomaly", "conflict", "duplicate", "rejected"]
    found = {row["Kind"]: row for row in rows}

    expected = {  # Kind → (Event ID, Brand, Customer ID, Time, line)
        "rejected": ("bad1", "default", "c1", "", 3),  # SPEC 4: the time of an unparseable event is empty
        "duplicate": ("e1", "default", "c1", "2026-05-21T10:00:00+00:00", 4),
        "conflict": ("e2", "default", "c1", "2026-05-21T10:01:00+00:00", 5),
        "anomaly": ("x9", "default", "c2", "2026-05-21T11:00:00+00:00", 6),
    }
    for kind, (event_id, brand, customer, time, line) in expected.items():
        row = found[kind]
        assert row["Reason"].strip(), row
        assert (row["Event ID"], row["Brand"], row["Customer ID"], row["Time"]) == (event_id, brand, customer, time), row
        assert names_line(row["Source"], path, line), (kind, row["Source"], line)
    assert "contact_end_without_open_contact" in found["anomaly"]["Reason"]
    assert "occurred_at" in found["rejected"]["Reason"]  # which field is wrong


def test_times_are_in_the_report_time_zone(cs: Convoscope) -> None:
    ingest_lines(cs, PROBLEM_LINES)
    found = {row["Kind"]: row for row in quality_rows(cs, "--tz", "Asia/Kolkata")}
    assert found["anomaly"]["Time"] == "2026-05-21T16:30:00+05:30"
    assert found["duplicate"]["Time"] == "2026-05-21T15:30:00+05:30"
    assert found["rejected"]["Time"] == ""


def test_where_source_keeps_the_problems_of_what_came_in_under_that_name(cs: Convoscope) -> None:
    """Issue 28: the ingest history links each source to its problems. A source is matched exactly, without
    its line; the anomaly of an event belongs to the source the event came from."""
    first, _ = ingest_lines(cs, PROBLEM_LINES)
    second, _ = ingest_lines(cs, [json.dumps(FIRST), json.dumps(ev("bad2", "telepathy", "2026-05-21T12:00:00Z"))],
                             name="again.jsonl")
    every = quality_rows(cs, "--tz", "UTC")
    assert len(every) == 6
    for path, count in ((first, 4), (second, 2)):  # a file's source is its path as given to ingest
        kept = quality_rows(cs, "--tz", "UTC", "--where", f"source={path}")
        assert kept == [row for row in every if row["Source"].rsplit(":", 1)[0] == str(path)]
        assert len(kept) == count
    assert sorted(row["Kind"] for row in quality_rows(cs, "--where", f"source={second}")) == ["duplicate", "rejected"]
    assert quality_rows(cs, "--where", f"source={second}:1") == []  # a source is matched without its line
    assert quality_rows(cs, "--where", "source=") == []


def test_a_clean_file_has_no_problems(cs: Convoscope) -> None:
    _, ingested = ingest_lines(cs, [json.dumps(FIRST), json.dumps(SECOND)])
    assert ingested.exit_code == 0, ingested.stderr
    assert quality(cs, "--tz", "UTC").stdout_bytes == (",".join(HEADERS) + "\r\n").encode()


ANOMALIES = {
    "contact_end_without_open_contact": [ev("a1", "contact_end", "2026-05-21T10:00:00Z")],
    "close_without_conversation": [ev("a1", "conversation_close", "2026-05-21T10:00:00Z")],
    "reopen_without_conversation": [ev("a1", "conversation_reopen", "2026-05-21T10:00:00Z", agent="sam")],
    # the conversation closes at 12:01 (inactivity); its reopen window ends 24h later
    "close_after_window": [
        ev("s1", "customer_message", "2026-05-21T10:00:00Z"),
        ev("s2", "ai_message", "2026-05-21T10:01:00Z"),
        ev("a1", "conversation_close", "2026-05-23T10:00:00Z"),
    ],
    # a contact is open (routed to the team) when the AI hands off
    "handoff_while_contact_open": [
        ev("s1", "customer_message", "2026-05-21T10:00:00Z", route="team"),
        ev("a1", "handoff", "2026-05-21T10:01:00Z", category="handoff_manual"),
    ],
}


@pytest.mark.parametrize("reason", list(ANOMALIES))
def test_each_anomaly_reason(cs: Convoscope, reason: str) -> None:
    path, ingested = ingest_lines(cs, [json.dumps(event) for event in ANOMALIES[reason]])
    assert ingested.exit_code == 0, ingested.stderr  # an anomaly is not a reject
    (row,) = quality_rows(cs, "--tz", "UTC")
    assert row["Kind"] == "anomaly"
    assert reason in row["Reason"]
    assert (row["Event ID"], row["Customer ID"]) == ("a1", "c1")
    assert names_line(row["Source"], path, len(ANOMALIES[reason]))


@pytest.mark.parametrize(
    "args",
    [
        ["--period", "day"],
        ["--by", "channel"],
        ["--where", "channel=chat"],
        ["--where", "kind=anomaly"],
    ],
)
def test_parameters_data_quality_does_not_take_are_usage_errors(cs: Convoscope, args: list[str]) -> None:
    ingest_lines(cs, [json.dumps(FIRST)])
    result = cs("report", "data-quality", "--as-of", AS_OF, *args)
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convoscope: error:"), result.stderr
    assert result.stdout_bytes == b""


def test_a_record_rejected_for_its_brand_adds_no_brand(cs: Convoscope) -> None:
    """'B2' breaks the brand rule (SPEC 2.2), so it names no brand: the one brand's time zone stays every
    report's default (SPEC 4), and the reject is listed with the records of no brand, to those who see
    every brand."""
    assert cs.config is not None
    cs.config.write_text('[brands.b2]\ntimezone = "America/New_York"\n')
    ingest_lines(cs, [json.dumps(ev("a1", "customer_message", "2026-06-10T02:00:00Z", brand="b2", channel="chat"))])
    before = cs.rows("--extra")
    _, result = ingest_lines(cs, [json.dumps(ev("a2", "customer_message", "2026-06-10T02:00:00Z", brand="B2",
                                                channel="chat"))], name="more.jsonl")
    assert result.exit_code == 3
    after = cs.rows("--extra")
    assert [row["Created At"] for row in after] == [row["Created At"] for row in before] == ["2026-06-09T22:00:00-04:00"]
    assert [row["Event ID"] for row in quality_rows(cs)] == ["a2"]
    assert quality_rows(cs, "--brand", "b2") == []
