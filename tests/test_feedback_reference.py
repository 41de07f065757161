"""The reference's reading of `feedback` (issue 26 point 1), tested on its own: pure Python, no product.

1. Every crafted case of tests/fixtures/feedback/ (answers derived by hand from the issue's text) gives,
   through the reference, exactly the expected feedback, score and conversation of every interaction
   and exactly the expected anomalies.
2. Each reading of FeedbackReading can be switched, and the cases that tell the readings apart change.
3. On random streams (feedback_streams): feedback changes nothing but the feedback columns and its own
   anomalies (it is not activity); each feedback, derived alone, goes where a second, declarative
   statement of the rule over the derived rows says (open at t: created <= t < end, the latest start;
   else the latest end <= t, at most F before); and with several, the last given to an interaction wins.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings

from feedback_cases import customer_of, load_cases, normalised, settings_for
from feedback_streams import feedback_streams
from reference import FeedbackReading, Settings, derive_reference, make_id, sort_key

CASES = load_cases()
KIND = "feedback_without_interaction"
ID_COLUMNS = (("sessions", "session_id"), ("contacts", "contact_id"))  # a contact row's session_id is its linked one


def derive_case(case: dict, reading: FeedbackReading | None = None) -> dict[str, list[dict]]:
    brands = settings_for(case)
    events = [normalised(e) for e in case["events"]]
    kwargs = {"reading": reading} if reading is not None else {}
    return derive_reference(events, lambda brand: brands.get(brand, brands["default"]), **kwargs)


def interactions(case: dict, derived: dict[str, list[dict]]) -> tuple[dict, dict]:
    """(got, want): {(table, first event id): (feedback, score, conversation's first event id)}."""
    got, want = {}, {}
    conversation_names = {}
    for table, prefix, key in (("sessions", "ses_", "session_id"), ("contacts", "ctc_", "contact_id")):
        for first, expected in case["expected"][table].items():
            brand, customer = customer_of(case, first)
            want[(table, make_id(prefix, brand, customer, first))] = (
                expected["feedback"], expected["feedback_score"], make_id("cnv_", brand, customer, expected["conversation"]))
            conversation_names[make_id("cnv_", brand, customer, expected["conversation"])] = expected["conversation"]
        for row in derived[table]:
            got[(table, row[key])] = (row["feedback"], row["feedback_score"], row["conversation_id"])
    return got, want


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_crafted_case(case: dict) -> None:
    derived = derive_case(case)
    got, want = interactions(case, derived)
    assert got == want, case["why"]
    anomalies = sorted((a["event_id"], a["kind"]) for a in derived["anomalies"])
    assert anomalies == sorted((a["event_id"], a["kind"]) for a in case["expected"]["anomalies"]), case["why"]


def test_the_cases_are_many_distinct_and_explained() -> None:
    assert len(CASES) >= 30
    assert len({c["name"] for c in CASES}) == len(CASES)
    for case in CASES:
        assert case["why"].strip(), case["name"]
        ids = [(e.get("brand", "default"), e["event_id"]) for e in case["events"]]
        assert len(set(ids)) == len(ids), case["name"]  # a duplicate id would be dropped on ingest
        for e in case["events"]:
            if e["type"] == "feedback":
                assert e["rating"] in ("positive", "negative"), case["name"]
                assert e.get("score") is None or e["score"] in range(1, 6), case["name"]
                assert "channel" not in e, case["name"]  # SPEC 2.2 ties channel to the message types
    sources = {c["source"].split(":")[0] for c in CASES}
    assert {"open.jsonl", "ended.jsonl", "window.jsonl", "ties.jsonl", "several.jsonl"} <= sources


def _case(name: str) -> dict:
    (case,) = [c for c in CASES if c["name"] == name]
    return case


def _values(case: dict, reading: FeedbackReading) -> dict:
    got, _ = interactions(case, derive_case(case, reading))
    return {key: value[:2] for key, value in got.items() if value[0] is not None}


@pytest.mark.parametrize(
    ("name", "reading", "winner"),
    [
        # ended_tie: the event order of the ends, or only who started last.
        ("handoff_then_contact_end_same_instant", FeedbackReading(), "contacts"),
        ("handoff_then_contact_end_same_instant", FeedbackReading(ended_tie="started_last"), "sessions"),
        ("inactivity_end_and_contact_end_same_instant", FeedbackReading(), "contacts"),
        ("inactivity_end_and_contact_end_same_instant", FeedbackReading(ended_tie="started_last"), "sessions"),
        ("close_ends_both", FeedbackReading(ended_tie="started_last"), "sessions"),
        # open_tie: same start instant; a later start time wins whatever the tie rule.
        ("both_open_same_start_instant", FeedbackReading(), "sessions"),
        ("both_open_same_start_instant", FeedbackReading(open_tie="contact"), "contacts"),
        ("both_open_session_started_last", FeedbackReading(open_tie="contact"), "sessions"),
        ("close_ends_both", FeedbackReading(open_tie="contact"), "sessions"),
        ("two_inactivity_ends_same_instant", FeedbackReading(open_tie="contact"), "sessions"),
    ],
)
def test_each_tie_reading_is_a_switch(name: str, reading: FeedbackReading, winner: str) -> None:
    (table,) = {table for table, _ in _values(_case(name), reading)}
    assert table == winner


def test_score_reading_is_a_switch() -> None:
    case = _case("last_without_score_empties_score")
    assert set(_values(case, FeedbackReading()).values()) == {("negative", None)}
    assert set(_values(case, FeedbackReading(score_from="last_with_score")).values()) == {("negative", 5)}


# ---- random streams -------------------------------------------------------------------------------------


def _split(events: list[dict]) -> tuple[list[dict], list[dict]]:
    return [e for e in events if e["type"] != "feedback"], [e for e in events if e["type"] == "feedback"]


def _without_feedback(tables: dict[str, list[dict]]) -> dict[str, list[dict]]:
    out = {name: [dict(row) for row in rows] for name, rows in tables.items()}
    for name in ("sessions", "contacts"):
        for row in out[name]:
            del row["feedback"], row["feedback_score"]
    out["anomalies"] = [a for a in out["anomalies"] if a["kind"] != KIND]
    return out


@settings(max_examples=300, deadline=None)
@given(feedback_streams())
def test_feedback_is_not_activity(stream: tuple[list[dict], Settings, Settings]) -> None:
    """Adding feedback changes no session, contact, conversation, close, message or other anomaly —
    not even an inbox (Appendix B's inbox is any type's, but feedback is no interaction's event)."""
    events, default, acme = stream
    base, feedback = _split(events)

    def conf(brand: str) -> Settings:
        return acme if brand == "acme" else default

    with_feedback, without = derive_reference(events, conf), derive_reference(base, conf)
    assert _without_feedback(with_feedback) == _without_feedback(without)
    assert all(r["feedback"] is None and r["feedback_score"] is None
               for name in ("sessions", "contacts") for r in without[name])
    assert sum(a["kind"] == KIND for a in with_feedback["anomalies"]) <= len(feedback)


def _declared_candidates(rows: list[dict], t: datetime, window: timedelta) -> list[dict] | None:
    """The rule restated over derived rows: None for an anomaly, else the rows it may attach to (more
    than one only on a tie, which FeedbackReading settles)."""
    open_now = [r for r in rows if r["created_at"] <= t < r["ended_at"]]
    if open_now:
        latest = max(r["created_at"] for r in open_now)
        return [r for r in open_now if r["created_at"] == latest]
    ended = [r for r in rows if r["ended_at"] <= t]
    if not ended:
        return None
    last = max(r["ended_at"] for r in ended)
    return [r for r in ended if r["ended_at"] == last] if t - last <= window else None


@settings(max_examples=200, deadline=None)
@given(feedback_streams())
def test_each_feedback_goes_where_the_rule_says_and_the_last_wins(
    stream: tuple[list[dict], Settings, Settings]
) -> None:
    events, default, acme = stream
    base, feedback = _split(events)

    def conf(brand: str) -> Settings:
        return acme if brand == "acme" else default

    attached: dict[str, list[dict]] = defaultdict(list)  # interaction id -> its feedback events
    anomalies = set()
    for f in feedback:
        alone = derive_reference([*base, f], conf)
        rows = [{**r, "id": r[key]} for name, key in ID_COLUMNS for r in alone[name]
                if (r["brand"], r["customer_id"]) == (f["brand"], f["customer_id"])]
        targets = [r for r in rows if r["feedback"] is not None]
        mine = [a for a in alone["anomalies"] if a["kind"] == KIND]
        candidates = _declared_candidates(rows, f["occurred_at"], conf(f["brand"]).feedback_window)
        if candidates is None:
            assert not targets and [a["event_id"] for a in mine] == [f["event_id"]]
            anomalies.add((f["brand"], f["event_id"]))
        else:
            assert not mine and len(targets) == 1
            (target,) = targets
            assert target["id"] in {r["id"] for r in candidates}
            assert (target["feedback"], target["feedback_score"]) == (f["rating"], f["score"])
            attached[target["id"]].append(f)

    together = derive_reference(events, conf)
    assert {(a["brand"], a["event_id"]) for a in together["anomalies"] if a["kind"] == KIND} == anomalies
    for name, key in ID_COLUMNS:
        for row in together[name]:
            given_ = sorted(attached[row[key]], key=sort_key)
            want = (given_[-1]["rating"], given_[-1]["score"]) if given_ else (None, None)
            assert (row["feedback"], row["feedback_score"]) == want
