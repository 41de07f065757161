"""SPEC 2 (input: formats, fields, validation, duplicates, order) and the `ingest` / `rejects` commands
of SPEC 6.1, checked from what a user sees: the counts printed, the exit code, the stored `events`,
`rejects` and `duplicates` tables, and the derived `sessions`.

The one-record cases of SPEC 2.2-2.3 are collected in a `Batch`, written to one file and ingested once
per module; each parametrized test then looks at what happened to its own line. One ingestion instead
of one per case keeps the file fast; unique event_ids keep the cases apart."""

from __future__ import annotations

import csv
import io
import json
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from convoscope import service
from convoscope.cli import cli
from convoscope.config import Config
from convoscope.errors import IngestError
from convoscope.events import readers
from convoscope.store import Store
from event_files import FIELDS, Record, write_csv, write_jsonl, write_parquet

FIXTURES = Path(__file__).parent / "fixtures"
WORKED_JSONL = FIXTURES / "worked-example.jsonl"
WORKED_CSV = FIXTURES / "worked-example.csv"

# What an event is, without where it came from (source, line) or when it arrived.
EVENT_COLUMNS = ", ".join((*FIELDS, "attributes"))
MESSAGE_TYPES = ("customer_message", "ai_message", "agent_message")
DROP = object()  # a field value meaning "leave the field out"


# --- helpers ------------------------------------------------------------------------------------------

def event(type_: str = "customer_message", **fields: Any) -> Record:
    """A valid event x1 of customer c1 (messages on chat, handoffs with a category), changed by `fields`."""
    record: Record = {"event_id": "x1", "type": type_, "occurred_at": "2026-05-21T10:00:00Z", "customer_id": "c1"}
    if type_ in MESSAGE_TYPES:
        record["channel"] = "chat"
    if type_ == "handoff":
        record["category"] = "handoff_manual"
    record.update(fields)
    return {k: v for k, v in record.items() if v is not DROP}


def worked_records() -> list[Record]:
    return [json.loads(line) for line in WORKED_JSONL.read_text().splitlines()]


def rows(store: Store, sql: str) -> list[Record]:
    cursor = store.con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def table(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with Store(db) as store:
        return store.con.execute(sql).fetchall()


@dataclass
class Outcome:
    """The counts of one ingestion and the tables after it."""

    accepted: int
    duplicate: int
    rejected: int
    events: list[Record]
    rejects: list[Record]
    duplicates: list[Record]

    @property
    def counts(self) -> tuple[int, int, int]:
        return self.accepted, self.duplicate, self.rejected

    @property
    def reject(self) -> Record:
        """The one reject, when exactly one was expected."""
        assert len(self.rejects) == 1, self.rejects
        return self.rejects[0]

    @property
    def stored(self) -> Record:
        """The one stored event, when exactly one was expected."""
        assert len(self.events) == 1, (self.events, self.rejects)
        return self.events[0]


def ingest(db: Path, *paths: Path | str, fmt: str | None = None, assume_tz: str | None = None) -> Outcome:
    """Ingest through the service into the store `db`."""
    with Store(db) as store:
        result = service.ingest(store, Config(), [str(p) for p in paths], fmt=fmt, assume_tz=assume_tz)
        return Outcome(
            result.counts.accepted, result.counts.duplicate, result.counts.rejected,
            rows(store, "SELECT * FROM events ORDER BY brand, event_id, source, line"),
            rows(store, "SELECT * FROM rejects ORDER BY source, line, kind"),
            rows(store, "SELECT * FROM duplicates ORDER BY source, line"),
        )


def ingest_records(tmp_path: Path, *records: Record | str) -> Outcome:
    return ingest(tmp_path / "s.duckdb", write_jsonl(tmp_path / "events.jsonl", *records))


def run(db: Path, *args: str, input: str | bytes | None = None) -> Result:
    """The real command line, through Click's runner."""
    return CliRunner().invoke(cli, ["--db", str(db), *args], input=input)


def error_line(result: Result) -> str:
    """The one-line error a failing command prints (SPEC 6.1)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("convoscope: error:"), lines[0]
    return lines[0]


def rejects_csv(db: Path, *flags: str) -> list[dict[str, str]]:
    result = run(db, "rejects", *flags)
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


@dataclass
class Seen:
    """What became of one line of a batch: stored, rejected or counted as a duplicate."""

    line: int
    event: Record | None
    reject: Record | None
    duplicate: Record | None

    def rejected_for(self, field: str) -> Record:
        assert self.event is None, self.event
        assert self.reject is not None, f"line {self.line} was not rejected"
        assert field in self.reject["reason"], self.reject["reason"]
        return self.reject

    @property
    def accepted(self) -> Record:
        assert self.reject is None, self.reject["reason"]
        assert self.event is not None, f"line {self.line} was not stored"
        return self.event


class Batch:
    """One-record cases gathered at import time, ingested together into one store."""

    def __init__(self, *, assume_tz: str | None = None) -> None:
        self.records: list[Record | str] = []
        self.assume_tz = assume_tz

    def add(self, record: Record | str) -> Any:
        """Register a case; the default event_id x1 becomes unique so that cases cannot collide."""
        if isinstance(record, dict) and record.get("event_id") == "x1":
            record = record | {"event_id": f"case{len(self.records) + 1}"}
        self.records.append(record)
        return record

    def ingest(self, folder: Path) -> BatchResult:
        path = write_jsonl(folder / "cases.jsonl", *self.records)
        return BatchResult(self, ingest(folder / "s.duckdb", path, assume_tz=self.assume_tz), str(path.resolve()))


@dataclass(repr=False)
class BatchResult:
    batch: Batch
    outcome: Outcome
    source: str

    def __repr__(self) -> str:
        return f"<batch {self.source}: {self.outcome.counts}>"

    def of(self, record: Record | str) -> Seen:
        line = next(i for i, r in enumerate(self.batch.records, start=1) if r is record)

        def at(found: list[Record]) -> Record | None:
            here = [r for r in found if r["line"] == line]
            assert len(here) <= 1, here
            return here[0] if here else None

        return Seen(line, at(self.outcome.events), at(self.outcome.rejects), at(self.outcome.duplicates))


SINGLE = Batch()
ZONED = Batch(assume_tz="America/New_York")


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> BatchResult:
    return SINGLE.ingest(tmp_path_factory.mktemp("single"))


@pytest.fixture(scope="module")
def zoned(tmp_path_factory: pytest.TempPathFactory) -> BatchResult:
    return ZONED.ingest(tmp_path_factory.mktemp("zoned"))


# --- 2.1 formats and sources --------------------------------------------------------------------------

def test_jsonl_csv_and_parquet_of_the_same_events_store_identical_events(tmp_path: Path) -> None:
    sources = {
        "jsonl": WORKED_JSONL,
        "csv": WORKED_CSV,
        "parquet": write_parquet(tmp_path / "strings.parquet", worked_records()),
        "parquet-timestamps": write_parquet(tmp_path / "timestamps.parquet", worked_records(),
                                            occurred_at=pa.timestamp("us", tz="UTC")),
    }
    stored = {}
    for name, path in sources.items():
        db = tmp_path / f"{name}.duckdb"
        assert ingest(db, path).counts == (10, 0, 0), name
        stored[name] = table(db, f"SELECT {EVENT_COLUMNS} FROM events ORDER BY brand, event_id")
    for name in sources:
        assert stored[name] == stored["jsonl"], name


def test_parquet_line_is_the_row_number_from_one(tmp_path: Path) -> None:
    records = worked_records()
    records[3]["type"] = "ai_reply"
    outcome = ingest(tmp_path / "s.duckdb", write_parquet(tmp_path / "worked.parquet", records))
    assert outcome.counts == (9, 0, 1)
    assert outcome.reject["line"] == 4
    assert {e["event_id"]: e["line"] for e in outcome.events}["e05"] == 5


def test_parquet_strings_written_as_string_views_are_strings(tmp_path: Path) -> None:
    """pyarrow may write a UTF-8 column as a string view; the file's column is a string all the same."""
    records = worked_records()
    views = pq.read_table(write_parquet(tmp_path / "plain.parquet", records))
    views = views.cast(pa.schema([pa.field(f.name, pa.string_view()) if f.type == pa.string() else f for f in views.schema]))
    pq.write_table(views, tmp_path / "views.parquet")
    db = tmp_path / "s.duckdb"
    assert ingest(db, tmp_path / "plain.parquet").counts == (10, 0, 0)
    assert ingest(db, tmp_path / "views.parquet").counts == (0, 10, 0)  # the same events


def test_a_parquet_column_of_the_wrong_type_is_named_with_its_type_and_not_called_missing(tmp_path: Path) -> None:
    path = tmp_path / "typed.parquet"
    pq.write_table(pa.table({"event_id": [17], "type": ["contact_end"], "occurred_at": ["2026-05-21T10:00:00Z"],
                             "customer_id": ["c1"]}), path)
    reason = ingest(tmp_path / "s.duckdb", path).reject["reason"]
    assert reason.startswith("event_id must be a string, not int64"), reason
    assert "missing" not in reason


def test_a_directory_ingests_every_event_file_in_it_recursively(tmp_path: Path) -> None:
    records = worked_records()
    folder = tmp_path / "in"
    write_jsonl(folder / "a.jsonl", *records[:4])
    (folder / "deeper").mkdir()
    write_csv(folder / "deeper" / "b.csv", *[r | {"guides": "|".join(r.get("guides", []))} for r in records[4:7]])
    write_parquet(folder / "deeper" / "c.parquet", records[7:])
    (folder / "notes.txt").write_text("not events\n")

    result = run(tmp_path / "s.duckdb", "ingest", str(folder))

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "accepted 10, duplicate 0, rejected 0"
    sources = {s for (s,) in table(tmp_path / "s.duckdb", "SELECT DISTINCT source FROM events")}
    assert sources == {str((folder / p).resolve()) for p in ("a.jsonl", "deeper/b.csv", "deeper/c.parquet")}


def test_standard_input_is_read_as_json_lines_with_dash(tmp_path: Path) -> None:
    result = run(tmp_path / "s.duckdb", "ingest", "-", input=WORKED_JSONL.read_text())
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "accepted 10, duplicate 0, rejected 0"
    stored = table(tmp_path / "s.duckdb", "SELECT event_id, source, line FROM events ORDER BY event_id")
    assert stored == [(f"e{i:02d}", "stdin", i) for i in range(1, 11)]


def test_standard_input_takes_another_format_with_format_option(tmp_path: Path) -> None:
    result = run(tmp_path / "s.duckdb", "ingest", "-", "--format", "csv", input=WORKED_CSV.read_text())
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "accepted 10, duplicate 0, rejected 0"


def test_format_option_overrides_the_extension(tmp_path: Path) -> None:
    misnamed = tmp_path / "events.csv"
    misnamed.write_text(WORKED_JSONL.read_text())
    result = run(tmp_path / "s.duckdb", "ingest", "--format", "jsonl", str(misnamed))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "accepted 10, duplicate 0, rejected 0"


def test_an_unknown_extension_without_format_fails_with_a_hint(tmp_path: Path) -> None:
    unnamed = tmp_path / "export.txt"
    unnamed.write_text(WORKED_JSONL.read_text())
    result = run(tmp_path / "s.duckdb", "ingest", str(unnamed))
    assert result.exit_code in (1, 2)
    assert "--format" in error_line(result)


def test_a_missing_file_fails_with_exit_1_and_one_line(tmp_path: Path) -> None:
    result = run(tmp_path / "s.duckdb", "ingest", str(tmp_path / "nowhere.jsonl"))
    assert result.exit_code == 1
    assert "nowhere.jsonl" in error_line(result)


# --- 2.2-2.3 validation: one rule per case (all in the SINGLE batch) -----------------------------------

def rejected_case(record: Record | str, field: str, case_id: str) -> Any:
    return pytest.param(SINGLE.add(record), field, id=case_id)


REJECTED = [
    rejected_case(event(event_id=DROP), "event_id", "event_id-missing"),
    rejected_case(event(event_id="   "), "event_id", "event_id-blank"),
    rejected_case(event(event_id="e" * 201), "event_id", "event_id-over-200-chars"),
    rejected_case(event(event_id="e\x1b1"), "event_id", "event_id-control-character"),
    rejected_case(event(event_id=17), "event_id", "event_id-a-number"),
    rejected_case(event(event_id=None), "event_id", "event_id-null"),
    rejected_case(event(customer_id=DROP), "customer_id", "customer_id-missing"),
    rejected_case(event(customer_id="c" * 201), "customer_id", "customer_id-over-200-chars"),
    rejected_case(event(customer_id="c\x071"), "customer_id", "customer_id-control-character"),
    rejected_case(event(customer_id="c1\n"), "customer_id", "customer_id-newline"),
    rejected_case(event(customer_id="c\x851"), "customer_id", "customer_id-c1-control-character"),
    rejected_case(event(type="customer_msg"), "type", "type-unknown"),
    rejected_case(event(type="Customer_Message"), "type", "type-upper-case"),
    rejected_case(event(type="customer\u2028message\u2029"), "type", "type-with-line-separators"),
    rejected_case(event(channel="live\u2028chat\r\n"), "channel", "channel-with-line-breaks"),
    rejected_case(event(type=DROP), "type", "type-missing"),
    rejected_case(event(occurred_at=DROP), "occurred_at", "occurred_at-missing"),
    rejected_case(event(occurred_at="21/05/2026 10:00"), "occurred_at", "occurred_at-not-rfc3339"),
    rejected_case(event(occurred_at="2026-05-21"), "occurred_at", "occurred_at-date-only"),
    rejected_case(event(occurred_at="2026-05-21T10:00Z"), "occurred_at", "occurred_at-no-seconds"),
    rejected_case(event(occurred_at=1779357600), "occurred_at", "occurred_at-a-number"),
    rejected_case(event(occurred_at="2026-02-30T10:00:00Z"), "occurred_at", "occurred_at-invalid-date"),
    rejected_case(event(occurred_at="2026-05-21T24:30:00Z"), "occurred_at", "occurred_at-invalid-hour"),
    rejected_case(event(occurred_at="2026-05-21T10:00:00+25:00"), "occurred_at", "occurred_at-invalid-offset"),
    rejected_case(event(brand="Acme"), "brand", "brand-upper-case"),
    rejected_case(event(brand="-acme"), "brand", "brand-leading-dash"),
    rejected_case(event(brand="a" * 65), "brand", "brand-over-64-chars"),
    rejected_case(event(brand="acme corp"), "brand", "brand-with-space"),
    rejected_case(event(channel="live chat"), "channel", "channel-with-space"),
    rejected_case(event(channel="c" * 33), "channel", "channel-over-32-chars"),
    rejected_case(event(channel="_chat"), "channel", "channel-leading-underscore"),
    rejected_case(event(text="t" * 100_001), "text", "text-over-100000-chars"),
    rejected_case(event(text=True), "text", "text-a-boolean"),
    rejected_case(event("ai_message", route="ai"), "route", "route-on-ai_message"),
    rejected_case(event(route="bot"), "route", "route-bot"),
    rejected_case(event(ai_agent="Care Agent"), "ai_agent", "ai_agent-on-customer_message"),
    rejected_case(event("ai_message", ai_agent="a" * 201), "ai_agent", "ai_agent-over-200-chars"),
    rejected_case(event(guides=["Refunds"]), "guides", "guides-on-customer_message"),
    rejected_case(event("ai_message", guides="Refunds"), "guides", "guides-a-string-in-json"),
    rejected_case(event("ai_message", guides=["Refunds", 3]), "guides", "guides-with-a-number"),
    rejected_case(event("ai_message", guides=["g" * 201]), "guide", "guide-over-200-chars"),
    rejected_case(event("handoff", category=DROP), "category", "category-missing-on-handoff"),
    rejected_case(event("handoff", category="   "), "category", "category-blank-on-handoff"),
    rejected_case(event("handoff", category="\u2003\x0b"), "category", "category-unicode-blank-on-handoff"),
    rejected_case(event("handoff", category="c" * 201), "category", "category-over-200-chars"),
    rejected_case(event("ai_message", category="handoff_manual"), "category", "category-on-ai_message"),
    rejected_case(event("ai_message", subcategory="refund"), "subcategory", "subcategory-on-ai_message"),
    rejected_case(event("handoff", reason="r" * 10_001), "reason", "reason-over-10000-chars"),
    rejected_case(event("customer_message", transfer_rationale="x"), "transfer_rationale",
                  "transfer_rationale-on-customer_message"),
    rejected_case(event("ai_message", agent="sam"), "agent", "agent-on-ai_message"),
    rejected_case(event("agent_message", agent={"name": "sam"}), "agent", "agent-an-object"),
    rejected_case(event("agent_message", agent="a" * 201), "agent", "agent-over-200-chars"),
    rejected_case(event(inbox="i" * 201), "inbox", "inbox-over-200-chars"),
    rejected_case(event(inbox=7), "inbox", "inbox-a-number"),
    rejected_case(event("contact_end", inbox=["7"]), "inbox", "inbox-a-list"),
    *(rejected_case(event(t, channel=DROP), "channel", f"channel-missing-on-{t}") for t in MESSAGE_TYPES),
]


@pytest.mark.parametrize(("record", "field"), REJECTED)
def test_an_event_breaking_a_field_rule_is_rejected_with_a_reason_naming_the_field(
    single: BatchResult, record: Record, field: str
) -> None:
    reject = single.of(record).rejected_for(field)
    assert len(reject["reason"].splitlines()) == 1, reject["reason"]  # every line break Python knows, U+2028 too
    assert reject["kind"] == "rejected"
    assert reject["source"] == single.source
    assert reject["raw"] == json.dumps(record)


NAIVE = SINGLE.add(event(occurred_at="2026-05-21T10:00:00"))


def test_occurred_at_without_offset_is_rejected_pointing_at_assume_tz(single: BatchResult) -> None:
    assert "--assume-tz" in single.of(NAIVE).rejected_for("occurred_at")["reason"]


MALFORMED = [
    pytest.param(SINGLE.add('{"event_id": "x1", "type": "customer_message", '), id="truncated"),
    pytest.param(SINGLE.add("event_id=x1 type=customer_message"), id="not-json"),
    pytest.param(SINGLE.add('{"event_id": "x1",, "type": "customer_message"}'), id="stray-comma"),
    # What lenient readers (DuckDB's, pyarrow's) take but JSON (RFC 8259) does not have:
    pytest.param(SINGLE.add(json.dumps(event(event_id="nan1"))[:-1] + ', "confidence": NaN}'), id="NaN"),
    pytest.param(SINGLE.add(json.dumps(event(event_id="nan2"))[:-1] + ', "confidence": nan}'), id="nan"),
    pytest.param(SINGLE.add(json.dumps(event(event_id="inf1"))[:-1] + ', "confidence": [1, -Infinity]}'), id="Infinity"),
    pytest.param(SINGLE.add(json.dumps(event(event_id="comma1"))[:-1] + ",}"), id="trailing-comma"),
    pytest.param(SINGLE.add(json.dumps(event(event_id="comma2"))[:-1] + ', "tags": ["a", ]}'), id="trailing-comma-in-list"),
]


@pytest.mark.parametrize("line", MALFORMED)
def test_a_malformed_json_line_is_rejected(single: BatchResult, line: str) -> None:
    reject = single.of(line).rejected_for("JSON")
    assert reject["raw"] == line


JSON_ARRAY = SINGLE.add('["x1", "customer_message", "2026-05-21T10:00:00Z", "c1"]')


NOT_JSON_IN_TEXT = SINGLE.add(event(text="score: NaN, ratio [-Infinity], a stray ,} and info"))


def test_nan_infinity_and_commas_inside_a_text_are_text(single: BatchResult) -> None:
    """The batch holds broken lines, so DuckDB's reader (the exact path) reads this one."""
    assert single.of(NOT_JSON_IN_TEXT).accepted["text"] == "score: NaN, ratio [-Infinity], a stray ,} and info"


NOT_JSON_NUMBERS = [
    ('"confidence": NaN', True), ('"confidence": Infinity', True), ('"confidence": {"history": [1.5, -Infinity]}', True),
    ('"confidence": 1.5', False), ('"text": "NaN, Infinity, inf, and a stray ,} are text"', False),
]


def test_nan_and_infinity_are_rejected_among_lines_a_fast_reader_takes(tmp_path: Path) -> None:
    """pyarrow's reader, which reads a file of well-formed lines, takes NaN and Infinity for numbers."""
    lines = [json.dumps(event(event_id=f"n{i}"))[:-1] + f", {extra}}}" for i, (extra, _) in enumerate(NOT_JSON_NUMBERS)]
    outcome = ingest_records(tmp_path, *lines)
    assert {e["event_id"] for e in outcome.events} == {f"n{i}" for i, (_, bad) in enumerate(NOT_JSON_NUMBERS) if not bad}
    assert [r["line"] for r in outcome.rejects] == [i + 1 for i, (_, bad) in enumerate(NOT_JSON_NUMBERS) if bad]
    assert all("NaN, Infinity and trailing commas are not JSON" in r["reason"] for r in outcome.rejects)
    assert [r["raw"] for r in outcome.rejects] == [line for line, (_, bad) in zip(lines, NOT_JSON_NUMBERS, strict=True) if bad]


def test_a_json_array_line_is_rejected_as_not_an_object(single: BatchResult) -> None:
    single.of(JSON_ARRAY).rejected_for("object")


LONGEST = SINGLE.add(event(event_id="e" * 200, customer_id="c" * 200, brand="b" * 64, channel="c" * 32,
                           text="t" * 100_000))


def test_the_longest_allowed_values_are_accepted(single: BatchResult) -> None:
    assert len(single.of(LONGEST).accepted["text"]) == 100_000


@pytest.mark.parametrize(
    "record",
    [pytest.param(SINGLE.add(event(t)), id=t) for t in ("handoff", "contact_end", "conversation_close",
                                                          "conversation_reopen")],
)
def test_channel_is_optional_on_other_types(single: BatchResult, record: Record) -> None:
    assert single.of(record).accepted["channel"] is None


BLANKS = [
    pytest.param(SINGLE.add(event("customer_message", **{field: blank})), field, id=f"{field}-{blank!r}")
    for field, blank in [("text", ""), ("text", None), ("route", "   "), ("ai_agent", " "), ("guides", []),
                         ("guides", [" "]), ("guides", None), ("agent", "\t"), ("category", ""),
                         ("subcategory", " "), ("reason", ""), ("transfer_rationale", "  "),
                         # White space beyond ASCII's: no-break, em and ideographic spaces, vertical tab,
                         # and next line (U+0085, the lowest such character above ASCII's).
                         ("route", "\u00a0"), ("agent", "\u2003 "), ("ai_agent", "\u3000"), ("text", "\x0b"),
                         ("guides", ["\u00a0"]), ("reason", "\x85"), ("inbox", ""), ("inbox", "\u3000\t")]
]


@pytest.mark.parametrize(("record", "field"), BLANKS)
def test_empty_or_whitespace_optional_strings_count_as_absent(single: BatchResult, record: Record, field: str) -> None:
    # Blank, these fields are absent: even those not allowed on customer_message are accepted.
    assert single.of(record).accepted[field] is None


BLANK_BRAND_AND_CHANNEL = [
    pytest.param(SINGLE.add(event("handoff", brand=" ", channel="")), id="blank"),
    pytest.param(SINGLE.add(event("handoff", brand=None, channel=None)), id="null"),
    pytest.param(SINGLE.add(event("handoff", brand="\u3000", channel="\u00a0")), id="unicode-spaces"),
]


@pytest.mark.parametrize("record", BLANK_BRAND_AND_CHANNEL)
def test_blank_brand_and_channel_count_as_absent(single: BatchResult, record: Record) -> None:
    stored = single.of(record).accepted
    assert (stored["brand"], stored["channel"]) == ("default", None)


NO_BRAND = SINGLE.add(event())


def test_brand_absent_is_default(single: BatchResult) -> None:
    assert single.of(NO_BRAND).accepted["brand"] == "default"


UPPER_CHANNEL = SINGLE.add(event(channel="WhatsApp"))


def test_channel_in_upper_case_is_accepted_and_stored_lower_cased(single: BatchResult) -> None:
    assert single.of(UPPER_CHANNEL).accepted["channel"] == "whatsapp"


EXTRA_FIELDS = SINGLE.add(event(priority="high", meta={"queue": "vip", "tries": 2}))


def test_unknown_extra_fields_are_kept_in_attributes(single: BatchResult) -> None:
    attributes = single.of(EXTRA_FIELDS).accepted["attributes"]
    assert json.loads(attributes) == {"priority": "high", "meta": {"queue": "vip", "tries": 2}}


def test_an_event_without_extra_fields_has_no_attributes(single: BatchResult) -> None:
    assert single.of(NO_BRAND).accepted["attributes"] is None


def test_unknown_extra_csv_columns_are_kept_in_attributes(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("event_id,type,occurred_at,customer_id,channel,priority\n"
                    "x1,customer_message,2026-05-21T10:00:00Z,c1,chat,high\n")
    outcome = ingest(tmp_path / "s.duckdb", path)
    assert outcome.counts == (1, 0, 0)
    assert json.loads(outcome.stored["attributes"]) == {"priority": "high"}


TIMESTAMPS = [
    pytest.param(SINGLE.add(event(occurred_at=written)), stored, id=case_id)
    for written, stored, case_id in [
        ("2026-05-21T10:00:00.1234569Z", datetime(2026, 5, 21, 10, 0, 0, 123456), "nanoseconds-truncated"),
        ("2026-05-21T10:00:00.9999999Z", datetime(2026, 5, 21, 10, 0, 0, 999999), "truncated-not-rounded"),
        ("2026-05-21T10:00:00.5Z", datetime(2026, 5, 21, 10, 0, 0, 500000), "tenths"),
        ("2026-05-21T12:00:00+02:00", datetime(2026, 5, 21, 10, 0), "plus-two-hours"),
        ("2026-05-21T05:30:00-04:30", datetime(2026, 5, 21, 10, 0), "minus-four-thirty"),
        ("2026-05-22T01:00:00+15:00", datetime(2026, 5, 21, 10, 0), "across-midnight"),
        ("2026-05-21T10:00:00+00:00", datetime(2026, 5, 21, 10, 0), "plus-zero"),
        ("2026-05-21t10:00:00z", datetime(2026, 5, 21, 10, 0), "lower-case-t-and-z"),
    ]
]


@pytest.mark.parametrize(("record", "stored"), TIMESTAMPS)
def test_occurred_at_is_stored_as_the_utc_instant_truncated_to_microseconds(
    single: BatchResult, record: Record, stored: datetime
) -> None:
    assert single.of(record).accepted["occurred_at"] == stored


def test_csv_guides_as_pipe_separated_or_json_list(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "events.csv",
                     event("ai_message", event_id="pipes", guides="Order Status|Shipping Times"),
                     event("ai_message", event_id="json", guides='["Order Status","Shipping Times"]'))
    outcome = ingest(tmp_path / "s.duckdb", path)
    assert outcome.counts == (2, 0, 0), outcome.rejects
    assert [e["guides"] for e in outcome.events] == [["Order Status", "Shipping Times"]] * 2


def test_csv_guide_names_in_brackets_are_names_not_broken_json(tmp_path: Path) -> None:
    """A cell is JSON only when it parses as JSON, or looks like a broken list of strings."""
    path = write_csv(tmp_path / "events.csv",
                     event("ai_message", event_id="a", guides="[Beta] Refunds|Other"),
                     event("ai_message", event_id="b", guides="[Beta]"),
                     event("ai_message", event_id="c", guides='["Refunds", "Other"'),
                     event("ai_message", event_id="d", guides="[1, 2]"))
    outcome = ingest(tmp_path / "s.duckdb", path)
    assert {e["event_id"]: e["guides"] for e in outcome.events} == {"a": ["[Beta] Refunds", "Other"], "b": ["[Beta]"]}
    assert [r["line"] for r in outcome.rejects] == [4, 5]
    assert {r["reason"] for r in outcome.rejects} == {"guides is not a JSON list of strings nor a |-separated list"}


def test_csv_empty_cells_are_absent_fields(tmp_path: Path) -> None:
    outcome = ingest(tmp_path / "s.duckdb", WORKED_CSV)
    handoff = next(e for e in outcome.events if e["event_id"] == "e07")
    assert (handoff["brand"], handoff["channel"], handoff["text"], handoff["guides"]) == ("default", None, None, None)


def test_csv_line_is_the_physical_line_where_the_record_starts(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("event_id,type,occurred_at,customer_id,channel,text\n"
                    'x1,customer_message,2026-05-21T10:00:00Z,c1,chat,"two\nlines"\n'
                    "x2,customer_msg,2026-05-21T10:01:00Z,c1,chat,hello\n")
    outcome = ingest(tmp_path / "s.duckdb", path)
    assert outcome.counts == (1, 0, 1)
    assert (outcome.stored["line"], outcome.stored["text"]) == (2, "two\nlines")
    assert outcome.reject["line"] == 4


CSV_HEADER = "event_id,type,occurred_at,customer_id,channel,text\n"


def csv_record(event_id: str, minute: int, text: str = "hello", type_: str = "customer_message") -> str:
    return f"{event_id},{type_},2026-05-21T10:{minute:02d}:00Z,c1,chat,{text}\n"


def test_csv_blank_lines_are_skipped_and_later_line_numbers_stay_right(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(CSV_HEADER + csv_record("x1", 1) + "\n" + csv_record("x2", 2)
                    + csv_record("x3", 3, type_="nope") + "\n\n" + csv_record("x4", 4))
    outcome = ingest(tmp_path / "s.duckdb", path)
    assert outcome.counts == (3, 0, 1)
    assert [(e["event_id"], e["line"]) for e in outcome.events] == [("x1", 2), ("x2", 4), ("x4", 8)]
    assert outcome.reject["line"] == 5


def test_a_csv_record_with_the_wrong_number_of_columns_is_rejected_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(CSV_HEADER + csv_record("x1", 1, text='"two\nlines"') + csv_record("x2", 2, text="hi,extra")
                    + csv_record("x3", 3) + "x4,customer_message,2026-05-21T10:04:00Z,c1\n" + csv_record("x5", 5))
    outcome = ingest(tmp_path / "s.duckdb", path)
    assert outcome.counts == (3, 0, 2)
    assert [(e["event_id"], e["line"]) for e in outcome.events] == [("x1", 2), ("x3", 5), ("x5", 7)]
    assert [(r["line"], r["raw"]) for r in outcome.rejects] == [
        (4, "x2,customer_message,2026-05-21T10:02:00Z,c1,chat,hi,extra"),
        (6, "x4,customer_message,2026-05-21T10:04:00Z,c1"),
    ]
    assert all("column" in r["reason"] for r in outcome.rejects)


def test_blank_lines_are_skipped_and_not_counted(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    first, second = (json.dumps(event(event_id=i)) for i in ("x1", "x2"))
    path.write_text(first + "\r\n\n   \r\n" + second + "\r\n\n")
    outcome = ingest(tmp_path / "s.duckdb", path)
    assert outcome.counts == (2, 0, 0)
    assert [(e["event_id"], e["line"]) for e in outcome.events] == [("x1", 1), ("x2", 4)]


def test_invalid_utf8_in_one_line_rejects_only_that_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    bad = json.dumps(event(event_id="x2", text="caf_")).encode().replace(b"caf_", b"caf\xe9")
    path.write_bytes(json.dumps(event(event_id="x1")).encode() + b"\n" + bad + b"\n"
                     + json.dumps(event(event_id="x3")).encode() + b"\n")
    outcome = ingest(tmp_path / "s.duckdb", path)
    assert outcome.counts == (2, 0, 1)
    assert [e["event_id"] for e in outcome.events] == ["x1", "x3"]
    assert outcome.reject["line"] == 2
    assert "UTF-8" in outcome.reject["reason"]


# --- --assume-tz (the ZONED batch, ingested with America/New_York) ------------------------------------

ZONED_TIMES = [
    pytest.param(ZONED.add(event(occurred_at=written)), stored, id=case_id)
    for written, stored, case_id in [
        ("2026-05-21T06:00:00.25", datetime(2026, 5, 21, 10, 0, 0, 250000), "summer-time"),
        ("2026-01-15T05:00:00", datetime(2026, 1, 15, 10, 0), "winter-time"),
        ("2026-03-08T01:59:59", datetime(2026, 3, 8, 6, 59, 59), "just-before-the-gap"),
        ("2026-03-08T03:00:00", datetime(2026, 3, 8, 7, 0), "just-after-the-gap"),
        ("2026-11-01T00:59:59", datetime(2026, 11, 1, 4, 59, 59), "just-before-the-overlap"),
        ("2026-11-01T02:00:00", datetime(2026, 11, 1, 7, 0), "just-after-the-overlap"),
        ("2026-05-21T12:00:00Z", datetime(2026, 5, 21, 12, 0), "an-offset-is-kept"),
        ("2026-05-21T12:00:00+02:00", datetime(2026, 5, 21, 10, 0), "another-offset-is-kept"),
    ]
]


@pytest.mark.parametrize(("record", "stored"), ZONED_TIMES)
def test_assume_tz_gives_naive_timestamps_the_zone(zoned: BatchResult, record: Record, stored: datetime) -> None:
    assert zoned.of(record).accepted["occurred_at"] == stored


IN_THE_GAP = ZONED.add(event(occurred_at="2026-03-08T02:30:00"))
AMBIGUOUS = ZONED.add(event(occurred_at="2026-11-01T01:30:00"))


def test_assume_tz_rejects_a_local_time_in_the_dst_gap(zoned: BatchResult) -> None:
    reject = zoned.of(IN_THE_GAP).rejected_for("occurred_at")
    assert "America/New_York" in reject["reason"]


def test_assume_tz_reads_an_ambiguous_local_time_as_the_earlier_instant(zoned: BatchResult) -> None:
    assert zoned.of(AMBIGUOUS).accepted["occurred_at"] == datetime(2026, 11, 1, 5, 30)  # EDT, not EST


def test_assume_tz_with_an_unknown_zone_is_a_usage_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "events.jsonl", event(occurred_at="2026-05-21T10:00:00"))
    result = run(tmp_path / "s.duckdb", "ingest", "--assume-tz", "Mars/Olympus_Mons", str(path))
    assert result.exit_code == 2
    assert "Mars/Olympus_Mons" in error_line(result)


# --- 2.4 duplicates and conflicts ---------------------------------------------------------------------

def test_the_same_event_twice_in_a_file_is_one_event_and_one_duplicate(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "events.jsonl", event(), event(event_id="x2"), event())
    result = run(tmp_path / "s.duckdb", "ingest", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "accepted 2, duplicate 1, rejected 0"
    assert table(tmp_path / "s.duckdb", "SELECT event_id, line FROM events ORDER BY 1") == [("x1", 1), ("x2", 1 + 1)]
    duplicates = table(tmp_path / "s.duckdb", "SELECT brand, event_id, customer_id, source, line FROM duplicates")
    assert duplicates == [("default", "x1", "c1", str(path.resolve()), 3)]


def duplicate_pair(first: Record, again: Record, case_id: str) -> Any:
    """The same event written twice, differently; both lines go into the SINGLE batch."""
    event_id = f"dup-{case_id}"
    SINGLE.add(first | {"event_id": event_id})
    return pytest.param(SINGLE.add(again | {"event_id": event_id}), id=case_id)


EQUAL_AFTER_NORMALISATION = [
    duplicate_pair(event(), event(brand="default"), "brand-default-written"),
    duplicate_pair(event(), event(channel="CHAT"), "channel-upper-case"),
    duplicate_pair(event(), event(occurred_at="2026-05-21T12:00:00+02:00"), "same-instant-other-offset"),
    duplicate_pair(event(), event(occurred_at="2026-05-21T10:00:00.0000001Z"), "below-microseconds"),
    duplicate_pair(event(), event(text="", route="  "), "blank-optional-strings"),
    duplicate_pair(event("ai_message", guides=["A", "B"]), event("ai_message", guides=["A", "B"], route=""),
                   "same-guides"),
    duplicate_pair(event(), dict(reversed(event().items())), "fields-in-another-order"),
    duplicate_pair(event(priority="high", tier="gold"), dict(reversed(event(priority="high", tier="gold").items())),
                   "unknown-fields-in-another-order"),
    duplicate_pair(event(meta={"queue": "vip", "tries": 2}), event(meta={"tries": 2, "queue": "vip"}),
                   "nested-unknown-fields-in-another-order"),
    duplicate_pair(event(), event(inbox=" "), "blank-inbox"),
    duplicate_pair(event("conversation_close", inbox="7"), event("conversation_close", inbox="7"), "same-inbox"),
]


@pytest.mark.parametrize("again", EQUAL_AFTER_NORMALISATION)
def test_events_equal_after_normalisation_are_duplicates(single: BatchResult, again: Record) -> None:
    seen = single.of(again)
    assert seen.reject is None, seen.reject["reason"]
    assert seen.event is None
    assert seen.duplicate is not None
    assert seen.duplicate["event_id"] == again["event_id"]


def test_the_same_events_in_another_format_are_duplicates(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    ingest(db, WORKED_JSONL)
    again = ingest(db, WORKED_CSV, write_parquet(tmp_path / "worked.parquet", worked_records()))
    assert again.counts == (0, 20, 0)
    assert len(again.events) == 10


def test_the_same_event_id_with_other_content_is_a_conflict_and_the_first_stays(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    ingest(db, write_jsonl(tmp_path / "first.jsonl", event(text="hello")))
    second = write_jsonl(tmp_path / "second.jsonl", event(text="hello again"))

    result = run(db, "ingest", str(second))

    assert result.exit_code == 3
    assert result.stdout.strip() == "accepted 0, duplicate 0, rejected 1"
    assert table(db, "SELECT event_id, text FROM events") == [("x1", "hello")]
    [conflict] = rejects_csv(db)
    assert (conflict["kind"], conflict["source"], conflict["line"]) == ("conflict", str(second.resolve()), "1")
    assert "x1" in conflict["reason"]
    assert "event_id" in conflict["reason"]  # what to do: give it its own event_id (or drop it)


def test_a_conflict_reason_is_one_line_even_when_the_event_id_holds_a_line_separator(tmp_path: Path) -> None:
    outcome = ingest_records(tmp_path, event(event_id="x\u20281", text="hello"), event(event_id="x\u20281", text="bye"))
    assert outcome.reject["kind"] == "conflict"
    assert outcome.reject["reason"].splitlines() == [outcome.reject["reason"]]
    assert "'x 1'" in outcome.reject["reason"]


def test_a_conflict_within_one_file_keeps_the_first_line(tmp_path: Path) -> None:
    outcome = ingest_records(tmp_path, event(text="hello"), event(text="hello again"))
    assert outcome.counts == (1, 0, 1)
    assert outcome.stored["text"] == "hello"
    assert (outcome.reject["kind"], outcome.reject["line"]) == ("conflict", 2)


def test_the_same_event_id_in_two_brands_is_two_events(tmp_path: Path) -> None:
    outcome = ingest_records(tmp_path, event(brand="acme"), event(brand="globex", text="other"))
    assert outcome.counts == (2, 0, 0)
    assert [(e["brand"], e["event_id"]) for e in outcome.events] == [("acme", "x1"), ("globex", "x1")]


def test_ingesting_the_same_file_twice_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    path = tmp_path / "events.jsonl"
    worked = WORKED_JSONL.read_text()
    path.write_text(worked + worked.splitlines()[0] + "\n" + json.dumps(event(event_id="bad", type="nope")) + "\n"
                    + "{not json\n")

    first = run(db, "ingest", str(path))
    tables = {name: table(db, f"SELECT * FROM {name} ORDER BY ALL")
              for name in ("events", "sessions", "rejects", "duplicates")}
    second = run(db, "ingest", str(path))

    assert first.exit_code == second.exit_code == 3
    assert first.stdout.strip() == "accepted 10, duplicate 1, rejected 2"
    assert second.stdout.strip().startswith("accepted 0, ")
    assert len(tables["sessions"]) == 2  # SPEC 3.7
    for name, before in tables.items():
        assert table(db, f"SELECT * FROM {name} ORDER BY ALL") == before, name


# --- 2.4 rejects are kept and can be ingested again --------------------------------------------------

def test_rejects_exit_3_and_the_rest_is_stored(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "events.jsonl", event(), event(event_id="x2", type="nope"), event(event_id="x3"))
    result = run(tmp_path / "s.duckdb", "ingest", str(path))
    assert result.exit_code == 3
    assert result.stdout.strip() == "accepted 2, duplicate 0, rejected 1"
    assert table(tmp_path / "s.duckdb", "SELECT event_id FROM events ORDER BY 1") == [("x1",), ("x3",)]


def test_rejects_lists_source_line_and_reason(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    path = write_jsonl(tmp_path / "events.jsonl", event(), event(event_id="x2", brand="ACME"), "{oops")
    run(db, "ingest", str(path))

    listed = rejects_csv(db)

    assert [(r["kind"], r["source"], r["line"]) for r in listed] == [
        ("rejected", str(path.resolve()), "2"), ("rejected", str(path.resolve()), "3"),
    ]
    assert "brand" in listed[0]["reason"]
    assert "JSON" in listed[1]["reason"]
    assert listed[1]["raw"] == "{oops"


def test_a_reject_seen_again_from_the_same_line_is_kept_once(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    path = write_jsonl(tmp_path / "events.jsonl", event(), event(event_id="x2", type="nope"))
    ingest(db, path)
    again = ingest(db, path)
    assert again.rejected == 1  # counted for this run ...
    assert len(again.rejects) == 1  # ... but kept once


FIXES = [
    pytest.param(event(event_id="x2", channel="live chat"), event(event_id="x2", channel="live_chat"),
                 id="channel"),
    pytest.param(event(event_id="x2", occurred_at="2026-05-21T10:00:00"), event(event_id="x2"), id="occurred_at"),
    pytest.param(json.dumps(event(event_id="x2"))[:-1], event(event_id="x2"), id="malformed-json"),
    pytest.param(event(event_id="x2", brand="Acme"), event(event_id="x2", brand="acme"), id="brand"),
    pytest.param(event(event_id=DROP), event(event_id="x2"), id="event_id-missing"),
]


@pytest.mark.parametrize(("bad", "fixed"), FIXES)
def test_a_fixed_reject_is_stored_and_no_longer_listed(tmp_path: Path, bad: Record | str, fixed: Record) -> None:
    db = tmp_path / "s.duckdb"
    path = write_jsonl(tmp_path / "events.jsonl", event(), bad)
    assert ingest(db, path).counts == (1, 0, 1)
    assert len(rejects_csv(db)) == 1

    write_jsonl(path, event(), fixed)
    again = run(db, "ingest", str(path))

    assert again.exit_code == 0, again.output
    assert again.stdout.strip() == "accepted 1, duplicate 1, rejected 0"
    assert [e for (e,) in table(db, "SELECT event_id FROM events ORDER BY 1")] == ["x1", "x2"]
    assert rejects_csv(db) == []
    assert [r["line"] for r in rejects_csv(db, "--all")] == ["2"]


def test_rejects_raw_prints_the_raw_lines_to_fix_and_ingest_again(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    bad = [json.dumps(event(event_id="x2", type="nope")), '{"event_id": "x3", "type": "customer_message", "tex']
    path = write_jsonl(tmp_path / "events.jsonl", event(), *bad)
    run(db, "ingest", str(path))

    result = run(db, "rejects", "--raw")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == bad


def test_rejected_raw_lines_can_be_ingested_again_from_standard_input(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    path = write_jsonl(tmp_path / "events.jsonl", event(), event(event_id="x2", occurred_at="2026-05-21T12:00:00"))
    run(db, "ingest", str(path))
    raw = run(db, "rejects", "--raw").stdout

    again = run(db, "ingest", "--assume-tz", "Europe/Berlin", "-", input=raw)

    assert again.exit_code == 0, again.output
    assert again.stdout.strip() == "accepted 1, duplicate 0, rejected 0"
    assert rejects_csv(db) == []


def test_rejected_csv_records_come_with_their_header_and_ingest_again_once_fixed(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    path = tmp_path / "events.csv"
    path.write_text("event_id,type,occurred_at,customer_id,channel,text\r\n"
                    "c1,customer_message,2026-05-21T10:00:00Z,k1,chat,hello\r\n"
                    'c2,customer_message,21/05/2026 10:01,k1,chat,"where, is it"\r\n', encoding="utf-8")
    assert run(db, "ingest", str(path)).exit_code == 3

    raw = run(db, "rejects", "--raw")
    assert raw.exit_code == 0, raw.output
    assert raw.stdout.splitlines() == ["event_id,type,occurred_at,customer_id,channel,text",
                                       'c2,customer_message,21/05/2026 10:01,k1,chat,"where, is it"']
    fixed = tmp_path / "fixed.csv"
    fixed.write_text(raw.stdout.replace("21/05/2026 10:01", "2026-05-21T10:01:00Z"), encoding="utf-8")
    again = run(db, "ingest", str(fixed))
    assert again.stdout.strip() == "accepted 1, duplicate 0, rejected 0"
    assert rejects_csv(db) == []


def test_raw_records_of_several_sources_with_a_csv_among_them_are_printed_one_source_at_a_time(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    csv_path = tmp_path / "events.csv"
    csv_path.write_text("event_id,type,occurred_at,customer_id\nc9,nope,2026-05-21T10:00:00Z,k1\n", encoding="utf-8")
    jsonl_path = write_jsonl(tmp_path / "events.jsonl", event(event_id="x2", type="nope"))
    run(db, "ingest", str(csv_path), str(jsonl_path))

    mixed = run(db, "rejects", "--raw")
    assert mixed.exit_code == 2
    assert "--source" in mixed.stderr
    one = run(db, "rejects", "--raw", "--source", str(csv_path))
    assert one.stdout.splitlines() == ["event_id,type,occurred_at,customer_id", "c9,nope,2026-05-21T10:00:00Z,k1"]
    assert run(db, "rejects", "--raw", "--source", str(jsonl_path)).stdout.splitlines() == [
        json.dumps(event(event_id="x2", type="nope"))]


# --- 2.4 order independence ---------------------------------------------------------------------------

def test_shuffled_events_split_over_files_derive_the_same_sessions(tmp_path: Path) -> None:
    derived = "SELECT * FROM {} ORDER BY ALL"
    ingest(tmp_path / "whole.duckdb", WORKED_JSONL)
    lines = WORKED_JSONL.read_text().splitlines()
    random.Random(7).shuffle(lines)
    parts = [write_jsonl(tmp_path / f"part{i}.jsonl", *lines[i::3]) for i in range(3)]
    for part in reversed(parts):  # one ingestion per file: derivation catches up each time
        ingest(tmp_path / "split.duckdb", part)

    for name in ("sessions", "contacts", "conversations"):
        whole = table(tmp_path / "whole.duckdb", derived.format(name))
        assert whole, name
        assert table(tmp_path / "split.duckdb", derived.format(name)) == whole, name


# --- chunked reading ----------------------------------------------------------------------------------

def test_a_jsonl_file_spanning_many_chunks_is_ingested_whole_with_its_line_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "CHUNK_BYTES", 200)
    lines: list[Record | str] = []
    for n in range(1, 16):
        if n == 9:
            lines.append('{"event_id": "k09", "type": ')
        elif n == 12:
            lines.append("")
        else:
            text = "long " * 120 if n == 4 else f"message {n}"  # line 4 alone spans three chunks
            lines.append(event(event_id=f"k{n:02d}", customer_id=f"c{n % 3}", text=text,
                               occurred_at=f"2026-05-21T10:{n:02d}:00Z"))
    path = write_jsonl(tmp_path / "events.jsonl", *lines)
    assert path.stat().st_size > 10 * 200

    outcome = ingest(tmp_path / "s.duckdb", path)

    assert outcome.counts == (13, 0, 1)
    assert {e["event_id"]: e["line"] for e in outcome.events} == {
        f"k{n:02d}": n for n in range(1, 16) if n not in (9, 12)
    }
    assert next(e for e in outcome.events if e["event_id"] == "k04")["text"] == "long " * 120
    assert (outcome.reject["line"], outcome.reject["raw"]) == (9, '{"event_id": "k09", "type": ')


class Trickle(io.RawIOBase):
    """Input that arrives a few bytes at a time, as from a pipe."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._at, self._step = data, 0, step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        piece = self._data[self._at:self._at + min(self._step, len(buffer))]
        buffer[:len(piece)] = piece
        self._at += len(piece)
        return len(piece)


@pytest.mark.parametrize(("step", "first_buffer"), [(7, 16), (1000, 16), (7, 1000)])
def test_jsonl_chunks_are_whole_lines_of_the_input_however_it_arrives(
    monkeypatch: pytest.MonkeyPatch, step: int, first_buffer: int
) -> None:
    """Chunks take turns in two buffers, which grow from a small one while input of unknown size keeps
    coming: each chunk must be the input's next whole lines when it is handed over, a line longer than a
    chunk included, and a byte order mark is not part of the first."""
    monkeypatch.setattr(readers, "CHUNK_BYTES", 64)
    monkeypatch.setattr(readers, "FIRST_BUFFER", first_buffer)
    lines = [f'{{"n": {n}, "text": "{"x" * (150 if n == 5 else n)}"}}'.encode() for n in range(1, 30)]
    data = b"\n".join(lines) + b"\n" + b'{"last": "no line end"}'

    chunks = [bytes(chunk) for chunk in readers._line_chunks(Trickle(b"\xef\xbb\xbf" + data, step))]

    assert b"".join(chunks) == data
    assert all(chunk.endswith(b"\n") for chunk in chunks[:-1])
    assert any(len(chunk) > 150 for chunk in chunks)  # line 5 outgrew the buffer
    assert all(len(chunk) > 64 // 2 for chunk in chunks[:-1])  # chunks as large as CHUNK_BYTES allows
    assert len(chunks) > 5


@pytest.mark.parametrize("step", [7, 1000])
def test_a_jsonl_chunk_is_left_as_it_was_while_the_next_one_is_read(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """The reader reads a chunk while the chunk before is still being stored, whose rejected lines are
    then quoted from it: reading must not write over the chunk before."""
    monkeypatch.setattr(readers, "CHUNK_BYTES", 64)
    monkeypatch.setattr(readers, "FIRST_BUFFER", 16)
    data = b"".join(f'{{"n": {n}, "text": "{"y" * (90 if n == 7 else n % 9)}"}}\n'.encode() for n in range(1, 40))

    before: tuple[memoryview, bytes] | None = None
    handed = []
    for chunk in readers._line_chunks(Trickle(data, step)):
        if before is not None:
            assert bytes(before[0]) == before[1]
        before = (chunk, bytes(chunk))
        handed.append(before[1])

    assert b"".join(handed) == data
    assert len(handed) > 10


def test_chunks_are_read_one_ahead_and_a_read_error_comes_after_the_chunks_before_it() -> None:
    """What was read before damaged input is stored before the error is told."""
    made: list[int] = []

    def chunks() -> Iterator[int]:
        for n in range(4):
            made.append(n)
            yield n
        raise IngestError("damaged at the fifth chunk")

    taken = []
    with pytest.raises(IngestError, match="fifth"):
        for n in readers._ahead(chunks()):
            assert len(made) <= n + 2  # this chunk, and at most the next one, read
            taken.append(n)
    assert taken == [0, 1, 2, 3]


def small_csv_blocks(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    """The CSV reader cuts its input by pyarrow's block size rather than CHUNK_BYTES: shrink that too."""
    original: Callable[..., pacsv.ReadOptions] = pacsv.ReadOptions
    monkeypatch.setattr(pacsv, "ReadOptions", lambda *args, **kwargs: original(*args, **(kwargs | {"block_size": size})))


def test_a_csv_value_with_a_quoted_newline_keeps_later_line_numbers_right(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "CHUNK_BYTES", 200)
    small_csv_blocks(monkeypatch, 300)
    records = []
    for n in range(1, 21):
        text = "first line\nsecond line\nthird line" if n in (5, 14) else f"message {n}"
        kind = "nope" if n in (11, 18) else "customer_message"
        records.append(event(kind, event_id=f"k{n:02d}", text=text, occurred_at=f"2026-05-21T10:{n:02d}:00Z"))
    path = write_csv(tmp_path / "events.csv", *records)
    assert path.stat().st_size > 5 * 300

    outcome = ingest(tmp_path / "s.duckdb", path)

    def line(n: int) -> int:  # header on line 1, record n on line n + 1, two more after records 5 and 14
        return n + 1 + (2 if n > 5 else 0) + (2 if n > 14 else 0)

    assert outcome.counts == (18, 0, 2)
    assert {e["event_id"]: e["line"] for e in outcome.events} == {
        f"k{n:02d}": line(n) for n in range(1, 21) if n not in (11, 18)
    }
    assert next(e for e in outcome.events if e["event_id"] == "k14")["text"] == "first line\nsecond line\nthird line"
    assert [r["line"] for r in outcome.rejects] == [line(11), line(18)]


@pytest.mark.parametrize("first", ["null", "[]", "42", '"text"', "true"])
def test_a_line_that_is_no_object_is_rejected_even_first_in_the_file(tmp_path: Path, first: str) -> None:
    """pyarrow's JSON reader crashed the whole process on a file starting with `null`."""
    path = tmp_path / "events.jsonl"
    path.write_text(first + "\n" + json.dumps({"event_id": "e1", "type": "customer_message", "occurred_at": "2026-05-01T10:00:00Z",
                                                "customer_id": "c1", "channel": "chat"}) + "\n")
    result = subprocess.run([sys.executable, "-m", "convoscope.cli", "--db", str(tmp_path / "s.duckdb"), "ingest", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 3, result.stderr
    assert result.stdout.strip() == "accepted 1, duplicate 0, rejected 1"
