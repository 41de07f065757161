"""The crafted `feedback` cases (tests/fixtures/feedback/, issue 26 point 1) through the real command line.

Each case is written to a JSON Lines file with its own configuration (`feedback_window`, and any other
durations or `[brands.NAME]` tables it names), ingested with `convoscope ingest` (nothing rejected),
and read back from `convoscope report sessions-detail --extra` and `contact-export --extra` (columns
Feedback and Feedback Score, and Conversation ID) and from `data-quality` (its anomalies). The answers
are the ones derived by hand in each case's `why`; tests/test_feedback_reference.py checks the same
cases against the reference reading.

This needs the product side of issue 26 and fails on a branch without it, by design, until the
branches merge.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_helpers import TEST_CONFIG, Convoscope, header, make_id
from feedback_cases import customer_of, load_cases, toml_for

CASES = load_cases()
AS_OF = "2026-07-01T00:00:00Z"  # after every case's events and windows: nothing open, everything known
ANOMALY_KINDS = ("feedback_without_interaction", "handoff_while_contact_open", "contact_end_without_open_contact",
                 "close_without_conversation", "close_after_window", "reopen_without_conversation")
SESSIONS_DETAIL = ["Session ID", "Customer ID", "Conversation ID", "Channel", "Gladly Agent", "Guides Used",
                   "Created Date", "Was Handed Off", "Was Resolved", "Was Recontacted Resolution - 24 Hours",
                   "Was Responded To", "Handoff Category", "Handoff Subcategory", "Handoff Reason",
                   "Transfer Rationale", "Conversation Link"]
CONTACT_EXPORT = ["Contact ID", "Conversation ID", "Customer ID", "Brand", "Channel", "Direction", "Source",
                  "Session ID", "Handoff Category", "Created At", "First Response At", "Last Activity At",
                  "Ended At", "End Reason", "Agents", "First Response Seconds", "Duration Seconds",
                  "Customer Messages", "Agent Messages", "Status", "Conversation Link"]


def _store(directory: Path, case: dict) -> Convoscope:
    store = Convoscope(directory)
    assert store.config is not None
    store.config.write_text(toml_for(case) + "\n" + TEST_CONFIG)
    store.ingest(case["events"])
    return store


def _cell(value: object) -> str:
    return "" if value is None else str(value)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_crafted_case_through_the_cli(tmp_path: Path, case: dict) -> None:
    store = _store(tmp_path, case)
    why = f"{case['source']} {case['name']}: {case['why']}"

    for table, prefix, report, id_column in (("sessions", "ses_", "sessions-detail", "Session ID"),
                                             ("contacts", "ctc_", "contact-export", "Contact ID")):
        want = {}
        for first, expected in case["expected"][table].items():
            brand, customer = customer_of(case, first)
            want[make_id(prefix, brand, customer, first)] = (
                _cell(expected["feedback"]), _cell(expected["feedback_score"]),
                make_id("cnv_", brand, customer, expected["conversation"]))
        rows = store.rows("--extra", name=report, as_of=AS_OF)
        got = {row[id_column]: (row["Feedback"], row["Feedback Score"], row["Conversation ID"]) for row in rows}
        assert got == want, (report, why)

    quality = store.rows(name="data-quality", as_of=AS_OF)
    anomalies = []
    for row in quality:
        assert row["Kind"] == "anomaly", (row, why)  # nothing rejected, duplicated or conflicting
        kinds = [kind for kind in ANOMALY_KINDS if kind in row["Reason"]]
        assert len(kinds) == 1, (row, why)
        anomalies.append((row["Event ID"], kinds[0]))
    assert sorted(anomalies) == sorted((a["event_id"], a["kind"]) for a in case["expected"]["anomalies"]), why


def test_feedback_columns_only_under_extra(tmp_path: Path) -> None:
    """Issue 26: the default columns do not change; --extra adds Feedback and Feedback Score."""
    (case,) = [c for c in CASES if c["name"] == "worked_example_with_feedback"]
    store = _store(tmp_path, case)
    for report, default in (("sessions-detail", SESSIONS_DETAIL), ("contact-export", CONTACT_EXPORT)):
        assert header(store.report(name=report, as_of=AS_OF)) == default
        extra = header(store.report("--extra", name=report, as_of=AS_OF))
        assert extra[: len(default)] == default
        assert {"Feedback", "Feedback Score"} <= set(extra[len(default):])
