"""The event type `feedback` (issue 26 point 1, SPEC Appendix B; docs/outcomes.md "Feedback", decisions
106-112), end to end.

At the boundary: `rating` required and `score` optional on feedback, both refused on other types, with one-line
reasons in every input format and the events API. In derivation, each edge rule of docs/outcomes.md as its
own small log whose expected tables are worked out by hand in the comments (S = 2h, C = 24h, F = 24h unless a
test says otherwise). Then a store of version 4 brought up to date, an incremental derive against a full one,
and what the reports show under `--extra`. (Spark parity with feedback: tests/test_spark.py.)
"""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cli_helpers import Convoscope, ev, make_id
from convoscope import service
from convoscope.config import Config, load_config
from convoscope.events import readers
from convoscope.store import EVENT_TYPES, SCHEMA_VERSION, Store, event_key_sql
from convoscope.store import connect as connect_waiting

DAY = datetime(2026, 5, 21)


def at(hhmm: str, *, days: int = 0, seconds: int = 0) -> str:
    """An RFC 3339 time on the test's day (or `days` later)."""
    hour, minute = (int(part) for part in hhmm.split(":"))
    moment = DAY + timedelta(days=days, hours=hour, minutes=minute, seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def t(hhmm: str, *, days: int = 0, seconds: int = 0) -> datetime:
    """The same instant as stored (UTC, naive)."""
    return datetime.fromisoformat(at(hhmm, days=days, seconds=seconds).removesuffix("Z"))


def fb(event_id: str, when: str, customer: str = "c1", rating: str = "positive", **fields: Any) -> dict[str, Any]:
    return ev(event_id, "feedback", when, customer, rating=rating, **fields)


# --- derivation: each rule of docs/outcomes.md on a small log ---------------------------------------------

Tables = dict[str, list[tuple[Any, ...]]]


def derive(tmp_path: Path, events: list[dict[str, Any]], *, config: str = "") -> Tables:
    """Ingest `events` (JSON Lines, so through validation) into a new store and derive them; the rows each
    test reads, in a stable order."""
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    settings = Config()
    if config:
        (tmp_path / "convoscope.toml").write_text(config)
        settings = load_config(tmp_path / "convoscope.toml")
    with Store(tmp_path / "store.duckdb") as store:
        counts = service.ingest(store, settings, [str(path)]).counts
        assert counts.rejected == 0
        return read_tables(store)


def read_tables(store: Store) -> Tables:
    queries = {
        "sessions": "SELECT customer_id, created_at, ended_at, end_reason, feedback, feedback_score FROM sessions",
        "contacts": "SELECT customer_id, created_at, ended_at, end_reason, feedback, feedback_score FROM contacts",
        "anomalies": "SELECT customer_id, event_id, kind FROM anomalies",
        "conversations": "SELECT customer_id, created_at, ended_at, times_reopened, session_count, contact_count, "
                         "first_channel, last_channel, channel_count FROM conversations",
        "closes": "SELECT customer_id, closed_at, counted FROM conversation_closes",
    }
    return {name: sorted(store.con.execute(sql).fetchall(), key=repr) for name, sql in queries.items()}


def of(rows: list[tuple[Any, ...]], customer: str) -> list[tuple[Any, ...]]:
    """A customer's rows, without the customer."""
    return [row[1:] for row in rows if row[0] == customer]


def test_feedback_inside_a_session_attaches_to_it_and_does_not_extend_it(tmp_path: Path) -> None:
    found = derive(tmp_path, [
        ev("a", "customer_message", at("10:00")),
        ev("b", "ai_message", at("10:01")),
        fb("f", at("10:30"), score=5),  # the session is open: it attaches
    ])
    # Last activity 10:01, so the session ends at 12:01, not 12:30 (feedback is no activity).
    assert of(found["sessions"], "c1") == [(t("10:00"), t("12:01"), "inactivity", "positive", 5)]
    assert found["anomalies"] == [] and found["contacts"] == []


def test_when_a_session_and_a_contact_are_both_open_the_one_that_started_last_takes_it(tmp_path: Path) -> None:
    found = derive(tmp_path, [
        ev("a", "agent_message", at("09:00")),  # an outbound contact, open until 09:00 tomorrow
        ev("b", "ai_message", at("10:00")),  # the AI re-engages: a session, open until 12:00
        fb("f", at("11:00"), rating="negative"),  # both open: the session started last
    ])
    assert of(found["sessions"], "c1") == [(t("10:00"), t("12:00"), "inactivity", "negative", None)]
    assert of(found["contacts"], "c1") == [(t("09:00"), t("09:00", days=1), "inactivity", None, None)]


def test_at_its_inactivity_end_a_session_is_no_longer_open(tmp_path: Path) -> None:
    """SPEC 3: an event at an end time belongs to what comes next. At 12:00 the session has ended (exactly S
    after its last activity), so the contact, still open, takes the feedback; a minute before, the session."""
    found = derive(tmp_path, [
        ev("a", "agent_message", at("09:00")),
        ev("b", "ai_message", at("10:00")),  # ends at 12:00
        fb("f", at("11:59"), rating="negative"),
        fb("g", at("12:00"), rating="positive", score=3),
    ])
    assert of(found["sessions"], "c1") == [(t("10:00"), t("12:00"), "inactivity", "negative", None)]
    assert of(found["contacts"], "c1") == [(t("09:00"), t("09:00", days=1), "inactivity", "positive", 3)]


def test_after_an_inactivity_end_within_f_at_exactly_f_and_beyond(tmp_path: Path) -> None:
    """The expected end (last activity + S) is an end: 12:01 here. F = 24h by default; brand `short` has 30m."""
    def session(customer: str, brand: str = "default") -> list[dict[str, Any]]:
        return [ev(f"{customer}-a", "customer_message", at("10:00"), customer, brand=brand),
                ev(f"{customer}-b", "ai_message", at("10:01"), customer, brand=brand)]

    found = derive(tmp_path, [
        *session("within"), fb("within-f", at("13:00"), "within"),
        *session("exactly"), fb("exactly-f", at("12:01", days=1), "exactly"),  # 24h after 12:01: attaches
        *session("beyond"), fb("beyond-f", at("12:01", days=1, seconds=1), "beyond"),  # a second more: anomaly
        *session("short-exactly", "short"), fb("short-exactly-f", at("12:31"), "short-exactly", brand="short"),
        *session("short-beyond", "short"), fb("short-beyond-f", at("12:32"), "short-beyond", brand="short"),
    ], config='[brands.short]\nfeedback_window = "30m"\n')
    feedback = {row[0]: row[4] for row in found["sessions"]}
    assert feedback == {"within": "positive", "exactly": "positive", "beyond": None,
                        "short-exactly": "positive", "short-beyond": None}
    assert found["anomalies"] == [("beyond", "beyond-f", "feedback_without_interaction"),
                                  ("short-beyond", "short-beyond-f", "feedback_without_interaction")]
    # Nothing else changed: each session still ends at 12:01, and its conversation closed then, once.
    assert {row[2] for row in found["sessions"]} == {t("12:01")}
    assert {row[1:] for row in found["closes"]} == {(t("12:01"), True)} and len(found["closes"]) == 5


def test_feedback_at_the_instant_of_a_conversation_close(tmp_path: Path) -> None:
    """A feedback sorts after a conversation_close of its instant, so what the close ended has ended 0 seconds
    before it. When a session and a contact ended at that one instant, the one that started last takes it."""
    found = derive(tmp_path, [
        # c1: one session, closed at 10:30.
        ev("a", "customer_message", at("10:00")), ev("b", "ai_message", at("10:01")),
        ev("c", "conversation_close", at("10:30")), fb("f", at("10:30"), score=4),
        # c2: a contact (09:00) and a session (10:00), both ended by the close at 10:30: the session started last.
        ev("c2-a", "agent_message", at("09:00"), "c2"), ev("c2-b", "ai_message", at("10:00"), "c2"),
        ev("c2-c", "conversation_close", at("10:30"), "c2"), fb("c2-f", at("10:30"), "c2", rating="negative"),
        # c3: a session taken over at 10:05 (it ends then) and the contact closed at 10:05: the contact started last.
        ev("c3-a", "customer_message", at("10:00"), "c3"), ev("c3-b", "agent_message", at("10:05"), "c3"),
        ev("c3-c", "conversation_close", at("10:05"), "c3"), fb("c3-f", at("10:05"), "c3", score=1),
    ])
    assert of(found["sessions"], "c1") == [(t("10:00"), t("10:30"), "conversation_close", "positive", 4)]
    assert of(found["sessions"], "c2") == [(t("10:00"), t("10:30"), "conversation_close", "negative", None)]
    assert of(found["contacts"], "c2") == [(t("09:00"), t("10:30"), "conversation_close", None, None)]
    assert of(found["sessions"], "c3") == [(t("10:00"), t("10:05"), "team_takeover", None, None)]
    assert of(found["contacts"], "c3") == [(t("10:05"), t("10:05"), "conversation_close", "positive", 1)]
    assert found["anomalies"] == []


def test_the_last_feedback_given_wins_with_its_own_score(tmp_path: Path) -> None:
    found = derive(tmp_path, [
        ev("a", "customer_message", at("10:00")), ev("b", "ai_message", at("10:01")),
        fb("f1", at("10:10"), score=5), fb("f2", at("10:20"), rating="negative"),  # no score: none, not 5
        # c2: two at one instant go by event_id (SPEC 2.4): fb-a, then fb-z, which wins.
        ev("c2-a", "customer_message", at("10:00"), "c2"), ev("c2-b", "ai_message", at("10:01"), "c2"),
        fb("c2-fb-z", at("10:30"), "c2", score=2), fb("c2-fb-a", at("10:30"), "c2", rating="negative", score=1),
    ])
    assert of(found["sessions"], "c1") == [(t("10:00"), t("12:01"), "inactivity", "negative", None)]
    assert of(found["sessions"], "c2") == [(t("10:00"), t("12:01"), "inactivity", "positive", 2)]


def test_feedback_never_opens_extends_or_reopens_anything(tmp_path: Path) -> None:
    found = derive(tmp_path, [
        # c1: a customer message exactly S after the last activity starts a new session, feedback in between
        # or not. Had the feedback at 11:30 extended the session, the message at 12:01 would have joined it.
        ev("a", "customer_message", at("10:00")), ev("b", "ai_message", at("10:01")),
        fb("f", at("11:30")), ev("c", "customer_message", at("12:01")),
        # c2: after the close at 12:01, a feedback within the reopen window reopens nothing.
        ev("c2-a", "customer_message", at("10:00"), "c2"), ev("c2-b", "ai_message", at("10:01"), "c2"),
        fb("c2-f", at("13:00"), "c2"),
        # c3: a feedback alone starts no session, contact or conversation.
        fb("c3-f", at("10:00"), "c3"),
    ])
    assert of(found["sessions"], "c1") == [(t("10:00"), t("12:01"), "inactivity", "positive", None),
                                           (t("12:01"), t("14:01"), "inactivity", None, None)]
    # One conversation: the new session starts at the instant the first ended (no close, no reopen).
    assert of(found["conversations"], "c1") == [(t("10:00"), t("14:01"), 0, 2, 0, "chat", "chat", 1)]
    assert of(found["sessions"], "c2") == [(t("10:00"), t("12:01"), "inactivity", "positive", None)]
    assert of(found["conversations"], "c2") == [(t("10:00"), t("12:01"), 0, 1, 0, "chat", "chat", 1)]
    assert of(found["closes"], "c2") == [(t("12:01"), True)]
    assert of(found["sessions"], "c3") == [] and of(found["conversations"], "c3") == []
    assert found["anomalies"] == [("c3", "c3-f", "feedback_without_interaction")]


def test_feedback_after_a_contact(tmp_path: Path) -> None:
    found = derive(tmp_path, [
        # c1: a contact ended at 10:30; feedback half an hour later.
        ev("a", "agent_message", at("10:00")), ev("b", "contact_end", at("10:30")), fb("f", at("11:00"), score=4),
        # c2: a session handed off at 10:05 (ended a minute before) and its contact, open: the open one.
        ev("c2-a", "customer_message", at("10:00"), "c2"), ev("c2-b", "ai_message", at("10:01"), "c2"),
        ev("c2-c", "handoff", at("10:05"), "c2", category="handoff_manual"), fb("c2-f", at("10:06"), "c2"),
        # c3: a contact ended at 09:30, then a session ended at 12:01: the one that ended last.
        ev("c3-a", "agent_message", at("09:00"), "c3"), ev("c3-b", "contact_end", at("09:30"), "c3"),
        ev("c3-c", "customer_message", at("10:00"), "c3"), ev("c3-d", "ai_message", at("10:01"), "c3"),
        fb("c3-f", at("13:00"), "c3", rating="negative"),
    ])
    assert of(found["contacts"], "c1") == [(t("10:00"), t("10:30"), "contact_end", "positive", 4)]
    assert of(found["sessions"], "c2") == [(t("10:00"), t("10:05"), "handoff", None, None)]
    assert of(found["contacts"], "c2") == [(t("10:05"), t("10:05", days=1), "inactivity", "positive", None)]
    assert of(found["contacts"], "c3") == [(t("09:00"), t("09:30"), "contact_end", None, None)]
    assert of(found["sessions"], "c3") == [(t("10:00"), t("12:01"), "inactivity", "negative", None)]


def test_a_feedbacks_channel_and_inbox_belong_to_no_interaction(tmp_path: Path) -> None:
    found = derive(tmp_path, [
        ev("a", "customer_message", at("10:00")), ev("b", "ai_message", at("10:01")),
        fb("f", at("10:30"), channel="Email", inbox="survey"),
        # c2: a lone handoff has no channel; nor do its session, contact and conversation after the feedback.
        ev("c2-h", "handoff", at("10:00"), "c2", category="handoff_manual"), fb("c2-f", at("10:01"), "c2", channel="sms"),
    ])
    assert of(found["conversations"], "c1") == [(t("10:00"), t("12:01"), 0, 1, 0, "chat", "chat", 1)]
    assert of(found["conversations"], "c2") == [(t("10:00"), t("10:00", days=1), 0, 1, 1, None, None, 0)]
    with Store(tmp_path / "store.duckdb") as store:
        assert store.con.execute("SELECT customer_id, channel, inbox FROM sessions ORDER BY 1").fetchall() == [
            ("c1", "chat", None), ("c2", None, None)]
        assert store.con.execute("SELECT channel, inbox, feedback FROM contacts").fetchall() == [(None, None, "positive")]


def test_incremental_derivation_equals_a_full_one(tmp_path: Path) -> None:
    """Feedback arriving before the events it belongs to, and events arriving after a feedback that had
    been an anomaly: the tables after each ingest are those of deriving everything at once."""
    events = [
        fb("f0", at("09:30")),  # before anything: an anomaly, whatever comes later
        ev("a", "customer_message", at("10:00")), ev("b", "ai_message", at("10:01")),
        fb("f1", at("11:00"), score=2),
        fb("f2", at("13:00"), rating="negative"),  # after the 12:01 end: the session, until ...
        ev("c", "customer_message", at("12:30")),  # ... a late message opens a session it then belongs to
        ev("c2-d", "agent_message", at("09:00"), "c2"), ev("c2-e", "contact_end", at("09:10"), "c2"),
        fb("c2-f3", at("09:10", days=1), "c2"),  # exactly F after the contact's end
        fb("c2-f4", at("09:11", days=1), "c2", rating="negative"),  # beyond F
    ]
    parts = [events[6:], events[:2], [events[3], events[4]], [events[2], events[5]]]
    db = tmp_path / "store.duckdb"
    with Store(db) as store:
        for i, part in enumerate(parts):
            path = tmp_path / f"part-{i}.jsonl"
            path.write_text("".join(json.dumps(e) + "\n" for e in part))
            assert service.ingest(store, Config(), [str(path)]).counts.accepted == len(part)
        incremental = read_tables(store)
        service.derive(store, Config())
        assert read_tables(store) == incremental
    # By hand: session 1's last activity is 10:01, so it ends at 12:01 with f1 (11:00); the message at 12:30
    # starts session 2 (until 14:30), open when f2 comes at 13:00. The contact ends at 09:10: f3 comes exactly
    # F later, f4 a minute beyond.
    assert of(incremental["sessions"], "c1") == [(t("10:00"), t("12:01"), "inactivity", "positive", 2),
                                                 (t("12:30"), t("14:30"), "inactivity", "negative", None)]
    assert of(incremental["contacts"], "c2") == [(t("09:00"), t("09:10"), "contact_end", "positive", None)]
    assert incremental["anomalies"] == [("c1", "f0", "feedback_without_interaction"),
                                        ("c2", "c2-f4", "feedback_without_interaction")]


# --- validation: every format and the events API ------------------------------------------------------------

def record(event_id: str, type_: str = "feedback", **fields: Any) -> dict[str, Any]:
    found = ev(event_id, type_, at("10:00"), customer=f"cust-{event_id}", **fields)
    return found | ({"category": "handoff_manual"} if type_ == "handoff" else {})


# Records of valid JSON types (the fast reader takes a file of them) and what becomes of each: the stored
# (rating, score, channel, text), or the reason it is rejected.
CASES: list[tuple[dict[str, Any], tuple[Any, ...] | str]] = [
    (record("plain", rating="positive"), ("positive", None, None, None)),
    (record("full", rating="negative", score=2, channel="Chat", text="slow answer", inbox="survey"),
     ("negative", 2, "chat", "slow answer")),
    (record("whole", rating="positive", score=4.0), ("positive", 4, None, None)),
    (record("lowest", rating="positive", score=1), ("positive", 1, None, None)),
    (record("highest", rating="positive", score=5), ("positive", 5, None, None)),
    (record("no-rating"), "rating is required on feedback"),
    (record("blank-rating", rating="  "), "rating is required on feedback"),
    (record("capital", rating="Positive"), "rating 'Positive' must be positive or negative"),
    (record("zero", rating="positive", score=0), "score must be a whole number from 1 to 5"),
    (record("six", rating="positive", score=6), "score must be a whole number from 1 to 5"),
    (record("half", rating="positive", score=4.5), "score must be a whole number from 1 to 5"),
    (record("on-message", "customer_message", rating="positive", score=3),
     "rating is only allowed on feedback, not on customer_message; score is only allowed on feedback, not on "
     "customer_message"),
    (record("score-on-ai", "ai_message", score=3), "score is only allowed on feedback, not on ai_message"),
    (record("routed", rating="positive", route="ai"), "route is only allowed on customer_message, not on feedback"),
    (record("agent", rating="positive", agent="ann"),
     "agent is only allowed on agent_message, contact_end, conversation_close, conversation_reopen, not on feedback"),
]
REJECTED = sum(isinstance(outcome, str) for _, outcome in CASES)


def ingest(db: Path, *paths: Path) -> tuple[int, int, int]:
    with Store(db) as store:
        counts = service.ingest(store, Config(), [str(p) for p in paths], derive=False).counts
    return counts.accepted, counts.duplicate, counts.rejected


def outcomes(db: Path) -> dict[str, tuple[Any, ...] | str]:
    with Store(db) as store:
        found: dict[str, tuple[Any, ...] | str] = {
            r[0]: tuple(r[1:]) for r in store.con.execute("SELECT event_id, rating, score, channel, text FROM events").fetchall()}
        found |= dict(store.con.execute("SELECT event_id, reason FROM rejects").fetchall())
    return found


def expected() -> dict[str, tuple[Any, ...] | str]:
    return {r["event_id"]: outcome for r, outcome in CASES}


def write_jsonl(path: Path, records: list[dict[str, Any] | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_json_lines_read_by_the_fast_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def exact_path(*args: object) -> None:
        raise AssertionError("every line is an object of typed fields: the fast reader takes the chunk")

    monkeypatch.setattr(readers, "_split_lines", exact_path)
    db = tmp_path / "s.duckdb"
    assert ingest(db, write_jsonl(tmp_path / "e.jsonl", [r for r, _ in CASES])) == (len(CASES) - REJECTED, 0, REJECTED)
    assert outcomes(db) == expected()


@pytest.mark.parametrize(("value", "kind"), [("4", "a string"), (True, "true/false"), ([4], "a list"),
                                             ({"of": 5}, "an object")])
def test_json_lines_read_exactly_name_a_score_of_another_type(tmp_path: Path, value: object, kind: str) -> None:
    """A score that is no JSON number sends the chunk to the exact reader, which gives every other line
    the outcome the fast reader gives it."""
    db = tmp_path / "s.duckdb"
    typed = record("typed", rating="positive", score=value)
    path = write_jsonl(tmp_path / "e.jsonl", [*(r for r, _ in CASES), typed])
    assert ingest(db, path) == (len(CASES) - REJECTED, 0, REJECTED + 1)
    assert outcomes(db) == expected() | {"typed": f"score must be a number, not {kind}"}


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_a_score_that_is_no_json_number_is_rejected_as_not_json(tmp_path: Path, value: str) -> None:
    db = tmp_path / "s.duckdb"
    line = json.dumps(record("odd", rating="positive"))[:-1] + f', "score": {value}}}'
    assert ingest(db, write_jsonl(tmp_path / "e.jsonl", [record("plain", rating="positive"), line])) == (1, 0, 1)
    with Store(db) as store:
        [(line, reason)] = store.con.execute("SELECT line, reason FROM rejects").fetchall()
    assert line == 2 and "NaN, Infinity and trailing commas are not JSON" in reason


def write_csv(path: Path, records: list[dict[str, Any]]) -> Path:
    names = sorted({name for r in records for name in r})
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=names)
        writer.writeheader()
        writer.writerows(records)
    return path


def test_csv(tmp_path: Path) -> None:
    """CSV has only text: a score is the text of a number (`4.0`, ` 3 `); any other text is no number."""
    db = tmp_path / "s.duckdb"
    text = [record("spaced", rating="positive", score=" 3 "), record("word", rating="positive", score="four"),
            record("separated", rating="positive", score="4_0"), record("hex", rating="positive", score="0x4"),
            record("empty", rating="positive", score="")]
    assert ingest(db, write_csv(tmp_path / "e.csv", [*(r for r, _ in CASES), *text])) \
        == (len(CASES) - REJECTED + 2, 0, REJECTED + 3)
    wrong = "score must be a whole number from 1 to 5"
    assert outcomes(db) == expected() | {"spaced": ("positive", 3, None, None), "word": wrong, "separated": wrong,
                                         "hex": wrong, "empty": ("positive", None, None, None)}


def write_parquet(path: Path, records: list[dict[str, Any]], score: pa.DataType) -> Path:
    names = sorted({name for r in records for name in r} | {"score"})
    columns = {name: pa.array([r.get(name) for r in records], score if name == "score" else pa.string())
               for name in names}
    pq.write_table(pa.table(columns), path)
    return path


@pytest.mark.parametrize("score", [pa.float64(), pa.string()])
def test_parquet(tmp_path: Path, score: pa.DataType) -> None:
    """A score column of numbers or of their text (as a CSV converted to Parquet has it)."""
    db = tmp_path / "s.duckdb"
    records = [{**r, "score": (str(r["score"]) if score == pa.string() else r["score"])} if "score" in r else r
               for r, _ in CASES]
    assert ingest(db, write_parquet(tmp_path / "e.parquet", records, score)) == (len(CASES) - REJECTED, 0, REJECTED)
    assert outcomes(db) == expected()


def test_parquet_scores_of_another_type_are_named(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    path = write_parquet(tmp_path / "e.parquet", [record("flag", rating="positive", score=True)], pa.bool_())
    assert ingest(db, path) == (0, 0, 1)
    assert outcomes(db) == {"flag": "score must be a number, not bool"}


def test_every_format_stores_the_same_events_and_their_copies_are_duplicates(tmp_path: Path) -> None:
    records = [r for r, _ in CASES]
    paths = [write_jsonl(tmp_path / "e.jsonl", records), write_csv(tmp_path / "e.csv", records),
             write_parquet(tmp_path / "e.parquet", records, pa.float64())]
    valid = len(CASES) - REJECTED
    found = []
    for path in paths:
        db = tmp_path / f"{path.suffix[1:]}.duckdb"
        ingest(db, path)
        found.append(outcomes(db))
        assert ingest(db, *(p for p in paths if p != path)) == (0, 2 * valid, 2 * REJECTED)
    assert found[0] == found[1] == found[2] == expected()


def test_rating_and_score_count_in_duplicate_against_conflict(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    first = [record("same", rating="positive", score=4), record("rated", rating="positive"),
             record("scored", rating="positive", score=4)]
    assert ingest(db, write_jsonl(tmp_path / "first.jsonl", first)) == (3, 0, 0)
    again = [record("same", rating="positive", score=4.0), record("rated", rating="negative"),
             record("scored", rating="positive")]
    assert ingest(db, write_jsonl(tmp_path / "again.jsonl", again)) == (0, 1, 2)


def test_an_api_batch_gives_each_rejected_feedback_its_reason(tmp_path: Path) -> None:
    from web_helpers import post_events

    cs = Convoscope(tmp_path)
    batch = [record("api-1", rating="negative", score=2, text="no"), record("api-2", score=9),
             record("api-3", "customer_message", rating="positive"), record("api-4", rating="positive", score="5")]
    body = post_events(cs, batch)
    assert (body["accepted"], body["rejected"]) == (1, 3)
    assert {e["index"]: e["reason"] for e in body["errors"]} == {
        1: "rating is required on feedback; score must be a whole number from 1 to 5",
        2: "rating is only allowed on feedback, not on customer_message",
        3: "score must be a number, not a string",
    }


# --- a store of version 4 (decision 111) ---------------------------------------------------------------------

def test_a_store_of_version_4_gains_the_type_the_columns_and_its_feedback(tmp_path: Path) -> None:
    cs = Convoscope(tmp_path)
    session = [ev("a", "customer_message", at("10:00")), ev("b", "ai_message", at("10:01"))]
    later = fb("f", at("10:30"), score=5)
    kept = ev("m", "customer_message", at("10:02"), rating="positive")  # an unknown field to version 4
    cs.ingest(session)
    # As convoscope of schema version 4 left it: seven types, no rating or score, `rating` of a message among
    # the unknown fields, derived tables without feedback.
    con = connect_waiting(cs.db)
    con.execute("INSERT INTO events (brand, event_id, type, occurred_at, customer_id, channel, attributes, event_key) "
                "SELECT brand, event_id, type, occurred_at, customer_id, channel, attributes, "
                f"{event_key_sql('brand', 'customer_id', 'event_id')} FROM read_json(?, columns = "
                "{brand: 'VARCHAR', event_id: 'VARCHAR', type: 'VARCHAR', occurred_at: 'TIMESTAMP', "
                "customer_id: 'VARCHAR', channel: 'VARCHAR', attributes: 'JSON'})",
                [str(cs.write_events([{"brand": "default", **{k: v for k, v in kept.items() if k != "rating"},
                                       "occurred_at": "2026-05-21 10:02:00", "attributes": {"rating": "positive"}}],
                                     "as-stored.jsonl"))])
    con.execute("ALTER TABLE events DROP COLUMN rating")
    con.execute("ALTER TABLE events DROP COLUMN score")
    con.execute("ALTER TABLE events ALTER COLUMN type TYPE VARCHAR")
    con.execute("DROP TYPE event_type")
    con.execute(f"CREATE TYPE event_type AS ENUM ({', '.join(repr(x) for x in EVENT_TYPES[:7])})")
    con.execute("ALTER TABLE events ALTER COLUMN type TYPE event_type")
    for table in ("sessions", "contacts"):
        con.execute(f"ALTER TABLE derived.{table} DROP COLUMN feedback")
        con.execute(f"ALTER TABLE derived.{table} DROP COLUMN feedback_score")
    # The feedback was sent to version 4 before, which rejected its type.
    path = cs.write_events([later], "later.jsonl").resolve()
    con.execute("INSERT INTO rejects VALUES ('rejected', ?, ?, 1, ?, 'default', 'f', 'c1', ?, now(), false)",
                [f"type 'feedback' is not one of {', '.join(EVENT_TYPES[:7])}", str(path), json.dumps(later),
                 t("10:30")])
    con.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    con.close()

    result = cs("ingest", str(path))  # opening the store upgrades it; the record sent again is accepted
    assert result.exit_code == 0 and result.stdout.strip() == "accepted 1, duplicate 0, rejected 0"
    with Store(cs.db) as store:
        assert store.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall() == [(SCHEMA_VERSION,)]
        assert store.con.execute("SELECT enum_range(NULL::event_type)").fetchall()[0][0] == list(EVENT_TYPES)
        rows = store.con.execute("SELECT event_id, type, enum_code(type), rating, score, attributes "
                                 "FROM events ORDER BY event_id").fetchall()
        sessions = store.con.execute("SELECT session_id, feedback, feedback_score FROM sessions").fetchall()
        assert store.con.execute("SELECT event_id, resolved FROM rejects").fetchall() == [("f", True)]
    assert rows == [("a", "customer_message", 1, None, None, None), ("b", "ai_message", 2, None, None, None),
                    ("f", "feedback", 7, "positive", 5, None),
                    ("m", "customer_message", 1, None, None, '{"rating":"positive"}')]  # it stays (decision 111)
    assert json.loads(rows[-1][-1]) == {"rating": "positive"}
    assert sessions == [(make_id("ses_", "default", "c1", "a"), "positive", 5)]
    # The message sent now: rating is refused on it, so its stored event stays as it is.
    again = cs("ingest", str(cs.write_events([kept], "again.jsonl")))
    assert again.stdout.strip() == "accepted 0, duplicate 0, rejected 1"


# --- reports (decision 110) ------------------------------------------------------------------------------------

STREAM = [
    ev("a", "customer_message", at("10:00")), ev("b", "ai_message", at("10:01")),
    ev("c", "handoff", at("10:05"), category="handoff_manual"),  # ends the session; its contact starts
    fb("f1", at("10:04"), rating="negative", score=1),  # the session's
    fb("f2", at("10:06"), score=5), fb("f3", at("10:07"), text="thanks"),  # the contact's: the last, no score
    ev("c2-a", "customer_message", at("10:00"), "c2"),  # no feedback
    fb("c3-x", at("09:00"), "c3"),  # an anomaly
]


def test_extra_columns_show_the_last_feedback_after_the_inbox(tmp_path: Path) -> None:
    """Feedback and Feedback Score follow Inbox under --extra, before the outcome columns of issue 26."""
    cs = Convoscope(tmp_path)
    cs.ingest(STREAM)
    for name in ("sessions-detail", "sessions-detail-with-messages"):
        rows = {r["Customer ID"]: r for r in cs.rows("--extra", name=name)}
        assert list(rows["c1"])[-5:] == ["Inbox", "Feedback", "Feedback Score", "Durable Resolution",
                                          "Resolution Class"]
        assert {k: (r["Feedback"], r["Feedback Score"]) for k, r in rows.items()} == {"c1": ("negative", "1"),
                                                                                        "c2": ("", "")}
    [contact] = cs.rows("--extra", name="contact-export")
    assert list(contact)[-4:] == ["Inbox", "Feedback", "Feedback Score", "Resolved First Time"]
    assert (contact["Feedback"], contact["Feedback Score"]) == ("positive", "")
    snake = cs.rows("--extra", "--headers", "snake", name="contact-export")
    assert list(snake[0])[-3:] == ["feedback", "feedback_score", "resolved_first_time"]
    # Without --extra the default columns are as they were.
    assert "Feedback" not in cs.rows(name="contact-export")[0]
    quality = [r for r in cs.rows(name="data-quality") if r["Kind"] == "anomaly"]
    assert [(r["Event ID"], r["Customer ID"], r["Reason"].split(":")[0]) for r in quality] == [
        ("c3-x", "c3", "feedback_without_interaction")]


def test_the_feedback_cells_do_not_wait_for_the_as_of_time(tmp_path: Path) -> None:
    """Decision 110: like a known recontact (decision 19), the feedback attached is shown whatever the as-of
    time: here the session is open at 10:02, and its feedback comes at 10:04."""
    cs = Convoscope(tmp_path)
    cs.ingest(STREAM)
    [row] = [r for r in cs.rows("--extra", as_of=at("10:02")) if r["Customer ID"] == "c1"]
    assert (row["Outcome"], row["Feedback"], row["Feedback Score"]) == ("open", "negative", "1")
