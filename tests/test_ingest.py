"""SPEC 2 (input: formats, fields, validation, duplicates, order) and the `ingest` / `rejects` commands
of SPEC 6.1, checked from what a user sees: the counts printed, the exit code, the stored `events`,
`rejects` and `duplicates` tables, and the derived `sessions`."""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from convoscope import service
from convoscope.cli import cli
from convoscope.config import Config
from convoscope.events import readers
from convoscope.store import Store

FIXTURES = Path(__file__).parent / "fixtures"
WORKED_JSONL = FIXTURES / "worked-example.jsonl"
WORKED_CSV = FIXTURES / "worked-example.csv"

FIELDS = (
    "event_id", "type", "occurred_at", "customer_id", "brand", "channel", "text", "route", "ai_agent",
    "guides", "category", "subcategory", "reason", "transfer_rationale", "agent",
)
# What an event is, without where it came from (source, line) or when it arrived.
EVENT_COLUMNS = ", ".join((*FIELDS, "attributes"))
MESSAGE_TYPES = ("customer_message", "ai_message", "agent_message")
DROP = object()  # a field value meaning "leave the field out"


# --- helpers ------------------------------------------------------------------------------------------

def event(type_: str = "customer_message", **fields: Any) -> dict[str, Any]:
    """A valid event of customer c1 (messages on chat, handoffs with a category), changed by `fields`."""
    record: dict[str, Any] = {"event_id": "x1", "type": type_, "occurred_at": "2026-05-21T10:00:00Z",
                              "customer_id": "c1"}
    if type_ in MESSAGE_TYPES:
        record["channel"] = "chat"
    if type_ == "handoff":
        record["category"] = "handoff_manual"
    record.update(fields)
    return {k: v for k, v in record.items() if v is not DROP}


def write_jsonl(path: Path, *records: dict[str, Any] | str) -> Path:
    """One line per record: a dict as JSON, a string as it is (to write broken lines)."""
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def write_csv(path: Path, *records: dict[str, Any]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def worked_records() -> list[dict[str, Any]]:
    return [json.loads(line) for line in WORKED_JSONL.read_text().splitlines()]


def write_parquet(path: Path, records: list[dict[str, Any]], *, occurred_at: pa.DataType = pa.string()) -> Path:
    columns: dict[str, pa.Array] = {}
    for name in FIELDS:
        values = [r.get(name) for r in records]
        if name == "guides":
            columns[name] = pa.array(values, pa.list_(pa.string()))
        elif name == "occurred_at" and pa.types.is_timestamp(occurred_at):
            instants = [datetime.fromisoformat(v.replace("Z", "+00:00")) for v in values]
            columns[name] = pa.array(instants, occurred_at)
        else:
            columns[name] = pa.array(values, pa.string())
    pq.write_table(pa.table(columns), path)
    return path


def rows(store: Store, sql: str) -> list[dict[str, Any]]:
    cursor = store.con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@dataclass
class Outcome:
    accepted: int
    duplicate: int
    rejected: int
    events: list[dict[str, Any]]
    rejects: list[dict[str, Any]]

    @property
    def reject(self) -> dict[str, Any]:
        """The one reject, when exactly one was expected."""
        assert len(self.rejects) == 1, self.rejects
        return self.rejects[0]

    @property
    def stored(self) -> dict[str, Any]:
        """The one stored event, when exactly one was expected."""
        assert len(self.events) == 1, (self.events, self.rejects)
        return self.events[0]


def ingest(db: Path, *paths: Path | str, fmt: str | None = None, assume_tz: str | None = None) -> Outcome:
    """Ingest through the service into the store `db`; the counts of this run and the tables after it."""
    with Store(db) as store:
        result = service.ingest(store, Config(), [str(p) for p in paths], fmt=fmt, assume_tz=assume_tz)
        return Outcome(
            result.counts.accepted, result.counts.duplicate, result.counts.rejected,
            rows(store, "SELECT * FROM events ORDER BY brand, event_id, source, line"),
            rows(store, "SELECT * FROM rejects ORDER BY source, line, kind"),
        )


def ingest_records(tmp_path: Path, *records: dict[str, Any] | str, assume_tz: str | None = None) -> Outcome:
    return ingest(tmp_path / "s.duckdb", write_jsonl(tmp_path / "events.jsonl", *records), assume_tz=assume_tz)


def table(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with Store(db) as store:
        return store.con.execute(sql).fetchall()


def run(db: Path, *args: str, input: str | bytes | None = None) -> Result:
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


# --- 2.1 formats and sources --------------------------------------------------------------------------

def test_jsonl_csv_and_parquet_of_the_same_events_store_identical_events(tmp_path: Path) -> None:
    parquet = write_parquet(tmp_path / "worked.parquet", worked_records())
    stored = {}
    for name, path in [("jsonl", WORKED_JSONL), ("csv", WORKED_CSV), ("parquet", parquet)]:
        db = tmp_path / f"{name}.duckdb"
        assert ingest(db, path).accepted == 10
        stored[name] = table(db, f"SELECT {EVENT_COLUMNS} FROM events ORDER BY brand, event_id")
    assert len(stored["jsonl"]) == 10
    assert stored["csv"] == stored["jsonl"]
    assert stored["parquet"] == stored["jsonl"]


def test_parquet_with_a_utc_timestamp_column_stores_the_same_events(tmp_path: Path) -> None:
    parquet = write_parquet(tmp_path / "worked.parquet", worked_records(), occurred_at=pa.timestamp("us", tz="UTC"))
    ingest(tmp_path / "a.duckdb", WORKED_JSONL)
    assert ingest(tmp_path / "b.duckdb", parquet).accepted == 10
    sql = f"SELECT {EVENT_COLUMNS} FROM events ORDER BY event_id"
    assert table(tmp_path / "b.duckdb", sql) == table(tmp_path / "a.duckdb", sql)


def test_parquet_line_is_the_row_number_from_one(tmp_path: Path) -> None:
    records = worked_records()
    records[3]["type"] = "ai_reply"
    outcome = ingest(tmp_path / "s.duckdb", write_parquet(tmp_path / "worked.parquet", records))
    assert (outcome.accepted, outcome.rejected) == (9, 1)
    assert outcome.reject["line"] == 4
    assert {e["event_id"]: e["line"] for e in outcome.events}["e05"] == 5


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
    unnamed = tmp_path / "export.txt"
    unnamed.write_text(WORKED_CSV.read_text())

    first = run(tmp_path / "a.duckdb", "ingest", "--format", "jsonl", str(misnamed))
    second = run(tmp_path / "b.duckdb", "ingest", "--format", "csv", str(unnamed))

    assert (first.exit_code, second.exit_code) == (0, 0), first.output + second.output
    assert first.stdout.strip() == second.stdout.strip() == "accepted 10, duplicate 0, rejected 0"


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


# --- 2.2-2.3 validation: one rule per case --------------------------------------------------------------

REJECTED = [
    pytest.param(event(event_id=DROP), "event_id", id="event_id-missing"),
    pytest.param(event(event_id="   "), "event_id", id="event_id-blank"),
    pytest.param(event(event_id="e" * 201), "event_id", id="event_id-over-200-chars"),
    pytest.param(event(event_id=17), "event_id", id="event_id-a-number"),
    pytest.param(event(customer_id=DROP), "customer_id", id="customer_id-missing"),
    pytest.param(event(customer_id="c\x071"), "customer_id", id="customer_id-control-character"),
    pytest.param(event(customer_id="c1\n"), "customer_id", id="customer_id-newline"),
    pytest.param(event(type="customer_msg"), "type", id="type-unknown"),
    pytest.param(event(type=DROP), "type", id="type-missing"),
    pytest.param(event(occurred_at=DROP), "occurred_at", id="occurred_at-missing"),
    pytest.param(event(occurred_at="21/05/2026 10:00"), "occurred_at", id="occurred_at-not-rfc3339"),
    pytest.param(event(occurred_at="2026-05-21"), "occurred_at", id="occurred_at-date-only"),
    pytest.param(event(occurred_at="2026-05-21T10:00Z"), "occurred_at", id="occurred_at-no-seconds"),
    pytest.param(event(occurred_at="2026-02-30T10:00:00Z"), "occurred_at", id="occurred_at-invalid-date"),
    pytest.param(event(occurred_at="2026-05-21T24:30:00Z"), "occurred_at", id="occurred_at-invalid-hour"),
    pytest.param(event(occurred_at="2026-05-21T10:00:00+25:00"), "occurred_at", id="occurred_at-invalid-offset"),
    pytest.param(event(brand="Acme"), "brand", id="brand-upper-case"),
    pytest.param(event(brand="-acme"), "brand", id="brand-leading-dash"),
    pytest.param(event(brand="a" * 65), "brand", id="brand-over-64-chars"),
    pytest.param(event(channel="live chat"), "channel", id="channel-with-space"),
    pytest.param(event(channel="c" * 33), "channel", id="channel-over-32-chars"),
    pytest.param(event(text="t" * 100_001), "text", id="text-over-100000-chars"),
    pytest.param(event("ai_message", route="ai"), "route", id="route-on-ai_message"),
    pytest.param(event(route="bot"), "route", id="route-bot"),
    pytest.param(event(ai_agent="Care Agent"), "ai_agent", id="ai_agent-on-customer_message"),
    pytest.param(event("ai_message", ai_agent="a" * 201), "ai_agent", id="ai_agent-over-200-chars"),
    pytest.param(event(guides=["Refunds"]), "guides", id="guides-on-customer_message"),
    pytest.param(event("ai_message", guides="Refunds"), "guides", id="guides-a-string-in-json"),
    pytest.param(event("ai_message", guides=["Refunds", 3]), "guides", id="guides-with-a-number"),
    pytest.param(event("ai_message", guides=["g" * 201]), "guide", id="guide-over-200-chars"),
    pytest.param(event("handoff", category=DROP), "category", id="category-missing-on-handoff"),
    pytest.param(event("handoff", category="   "), "category", id="category-blank-on-handoff"),
    pytest.param(event("ai_message", category="handoff_manual"), "category", id="category-on-ai_message"),
    pytest.param(event("ai_message", subcategory="refund"), "subcategory", id="subcategory-on-ai_message"),
    pytest.param(event("handoff", reason="r" * 10_001), "reason", id="reason-over-10000-chars"),
    pytest.param(event("ai_message", agent="sam"), "agent", id="agent-on-ai_message"),
    pytest.param(event("agent_message", agent={"name": "sam"}), "agent", id="agent-an-object"),
    pytest.param(event(text=True), "text", id="text-a-boolean"),
]


@pytest.mark.parametrize(("record", "field"), REJECTED)
def test_an_event_breaking_a_field_rule_is_rejected_with_a_reason_naming_the_field(
    tmp_path: Path, record: dict[str, Any], field: str
) -> None:
    outcome = ingest_records(tmp_path, record)
    assert (outcome.accepted, outcome.rejected) == (0, 1)
    assert outcome.events == []
    reject = outcome.reject
    assert field in reject["reason"]
    assert "\n" not in reject["reason"]
    assert reject["kind"] == "rejected"
    assert reject["source"] == str((tmp_path / "events.jsonl").resolve())
    assert reject["line"] == 1
    assert reject["raw"] == json.dumps(record)


@pytest.mark.parametrize("type_", MESSAGE_TYPES)
def test_channel_is_required_on_messages(tmp_path: Path, type_: str) -> None:
    outcome = ingest_records(tmp_path, event(type_, channel=DROP))
    assert (outcome.accepted, outcome.rejected) == (0, 1)
    assert "channel" in outcome.reject["reason"]


@pytest.mark.parametrize("type_", ["handoff", "contact_end", "conversation_close", "conversation_reopen"])
def test_channel_is_optional_on_other_types(tmp_path: Path, type_: str) -> None:
    outcome = ingest_records(tmp_path, event(type_))
    assert (outcome.accepted, outcome.rejected) == (1, 0)


def test_occurred_at_without_offset_is_rejected_pointing_at_assume_tz(tmp_path: Path) -> None:
    outcome = ingest_records(tmp_path, event(occurred_at="2026-05-21T10:00:00"))
    assert (outcome.accepted, outcome.rejected) == (0, 1)
    assert "occurred_at" in outcome.reject["reason"]
    assert "--assume-tz" in outcome.reject["reason"]


@pytest.mark.parametrize(
    "line",
    [
        pytest.param('{"event_id": "x1", "type": "customer_message", ', id="truncated"),
        pytest.param("event_id=x1 type=customer_message", id="not-json"),
        pytest.param('{"event_id": "x1",, "type": "customer_message"}', id="stray-comma"),
    ],
)
def test_a_malformed_json_line_is_rejected(tmp_path: Path, line: str) -> None:
    outcome = ingest_records(tmp_path, line)
    assert (outcome.accepted, outcome.rejected) == (0, 1)
    assert "JSON" in outcome.reject["reason"]
    assert outcome.reject["raw"] == line


def test_a_json_array_line_is_rejected_as_not_an_object(tmp_path: Path) -> None:
    line = '["x1", "customer_message", "2026-05-21T10:00:00Z", "c1"]'
    outcome = ingest_records(tmp_path, line)
    assert (outcome.accepted, outcome.rejected) == (0, 1)
    assert "object" in outcome.reject["reason"]


def test_the_longest_allowed_values_are_accepted(tmp_path: Path) -> None:
    outcome = ingest_records(
        tmp_path,
        event(event_id="e" * 200, customer_id="c" * 200, brand="b" * 64, channel="c" * 32, text="t" * 100_000),
    )
    assert (outcome.accepted, outcome.rejected) == (1, 0)
    assert len(outcome.stored["text"]) == 100_000


@pytest.mark.parametrize(
    ("field", "blank"),
    [("text", ""), ("route", "   "), ("ai_agent", " "), ("guides", []), ("agent", "\t"), ("category", ""),
     ("subcategory", " "), ("reason", ""), ("transfer_rationale", "  ")],
)
def test_empty_or_whitespace_optional_strings_count_as_absent(tmp_path: Path, field: str, blank: Any) -> None:
    # Blank, these fields are absent, so even those not allowed on customer_message are accepted.
    outcome = ingest_records(tmp_path, event(**{field: blank}))
    assert (outcome.accepted, outcome.rejected) == (1, 0), outcome.rejects
    assert outcome.stored[field] is None


def test_blank_brand_and_channel_count_as_absent(tmp_path: Path) -> None:
    outcome = ingest_records(tmp_path, event("handoff", brand=" ", channel=""))
    assert (outcome.accepted, outcome.rejected) == (1, 0), outcome.rejects
    assert (outcome.stored["brand"], outcome.stored["channel"]) == ("default", None)


def test_brand_absent_is_default(tmp_path: Path) -> None:
    assert ingest_records(tmp_path, event()).stored["brand"] == "default"


def test_channel_in_upper_case_is_accepted_and_stored_lower_cased(tmp_path: Path) -> None:
    outcome = ingest_records(tmp_path, event(channel="WhatsApp"))
    assert (outcome.accepted, outcome.rejected) == (1, 0)
    assert outcome.stored["channel"] == "whatsapp"


def test_unknown_extra_fields_are_kept_in_attributes(tmp_path: Path) -> None:
    outcome = ingest_records(tmp_path, event(priority="high", meta={"queue": "vip", "tries": 2}))
    assert (outcome.accepted, outcome.rejected) == (1, 0)
    assert json.loads(outcome.stored["attributes"]) == {"priority": "high", "meta": {"queue": "vip", "tries": 2}}


def test_unknown_extra_csv_columns_are_kept_in_attributes(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("event_id,type,occurred_at,customer_id,channel,priority\n"
                    "x1,customer_message,2026-05-21T10:00:00Z,c1,chat,high\n")
    outcome = ingest(tmp_path / "s.duckdb", path)
    assert (outcome.accepted, outcome.rejected) == (1, 0)
    assert json.loads(outcome.stored["attributes"]) == {"priority": "high"}


def test_an_event_without_extra_fields_has_no_attributes(tmp_path: Path) -> None:
    assert ingest_records(tmp_path, event()).stored["attributes"] is None


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        pytest.param("2026-05-21T10:00:00.1234569Z", datetime(2026, 5, 21, 10, 0, 0, 123456), id="nanoseconds"),
        pytest.param("2026-05-21T10:00:00.5Z", datetime(2026, 5, 21, 10, 0, 0, 500000), id="tenths"),
        pytest.param("2026-05-21T12:00:00+02:00", datetime(2026, 5, 21, 10, 0), id="plus-two-hours"),
        pytest.param("2026-05-21T05:30:00-04:30", datetime(2026, 5, 21, 10, 0), id="minus-four-thirty"),
        pytest.param("2026-05-22T01:00:00+15:00", datetime(2026, 5, 21, 10, 0), id="across-midnight"),
        pytest.param("2026-05-21t10:00:00z", datetime(2026, 5, 21, 10, 0), id="lower-case-t-and-z"),
    ],
)
def test_occurred_at_is_stored_as_the_utc_instant_truncated_to_microseconds(
    tmp_path: Path, written: str, stored: datetime
) -> None:
    outcome = ingest_records(tmp_path, event(occurred_at=written))
    assert (outcome.accepted, outcome.rejected) == (1, 0), outcome.rejects
    assert outcome.stored["occurred_at"] == stored


@pytest.mark.parametrize("guides", ["Order Status|Shipping Times", '["Order Status","Shipping Times"]'])
def test_csv_guides_as_pipe_separated_or_json_list(tmp_path: Path, guides: str) -> None:
    path = write_csv(tmp_path / "events.csv", event("ai_message", guides=guides))
    outcome = ingest(tmp_path / "s.duckdb", path)
    assert (outcome.accepted, outcome.rejected) == (1, 0), outcome.rejects
    assert outcome.stored["guides"] == ["Order Status", "Shipping Times"]


def test_csv_empty_cells_are_absent_fields(tmp_path: Path) -> None:
    outcome = ingest(tmp_path / "s.duckdb", WORKED_CSV)
    handoff = next(e for e in outcome.events if e["event_id"] == "e07")
    assert (handoff["brand"], handoff["channel"], handoff["text"], handoff["guides"]) == ("default", None, None, None)


def test_csv_line_is_the_physical_line_where_the_record_starts(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("event_id,type,occurred_at,customer_id,channel,text\n"
                    "x1,customer_message,2026-05-21T10:00:00Z,c1,chat,\"two\nlines\"\n"
                    "x2,customer_msg,2026-05-21T10:01:00Z,c1,chat,hello\n")
    outcome = ingest(tmp_path / "s.duckdb", path)
    assert (outcome.accepted, outcome.rejected) == (1, 1)
    assert (outcome.stored["line"], outcome.stored["text"]) == (2, "two\nlines")
    assert outcome.reject["line"] == 4


def test_blank_lines_are_skipped_and_not_counted(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(event(event_id="x1")) + "\n\n   \n" + json.dumps(event(event_id="x2")) + "\n\n")
    outcome = ingest(tmp_path / "s.duckdb", path)
    assert (outcome.accepted, outcome.duplicate, outcome.rejected) == (2, 0, 0)
    assert [(e["event_id"], e["line"]) for e in outcome.events] == [("x1", 1), ("x2", 4)]


def test_windows_line_endings_are_read(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(json.dumps(event(event_id=f"x{i}")).encode() + b"\r\n" for i in range(3)))
    outcome = ingest(tmp_path / "s.duckdb", path)
    assert (outcome.accepted, outcome.rejected) == (3, 0)


def test_invalid_utf8_in_one_line_rejects_only_that_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    bad = json.dumps(event(event_id="x2", text="caf_")).encode().replace(b"caf_", b"caf\xe9")
    path.write_bytes(json.dumps(event(event_id="x1")).encode() + b"\n" + bad + b"\n"
                     + json.dumps(event(event_id="x3")).encode() + b"\n")
    outcome = ingest(tmp_path / "s.duckdb", path)
    assert (outcome.accepted, outcome.rejected) == (2, 1)
    assert [e["event_id"] for e in outcome.events] == ["x1", "x3"]
    assert outcome.reject["line"] == 2
    assert "UTF-8" in outcome.reject["reason"]


# --- --assume-tz --------------------------------------------------------------------------------------

def test_assume_tz_gives_naive_timestamps_the_zone(tmp_path: Path) -> None:
    outcome = ingest_records(tmp_path, event(occurred_at="2026-05-21T12:00:00.25"), assume_tz="Europe/Berlin")
    assert (outcome.accepted, outcome.rejected) == (1, 0), outcome.rejects
    assert outcome.stored["occurred_at"] == datetime(2026, 5, 21, 10, 0, 0, 250000)


def test_assume_tz_leaves_timestamps_with_an_offset_alone(tmp_path: Path) -> None:
    outcome = ingest_records(tmp_path, event(occurred_at="2026-05-21T12:00:00Z"), assume_tz="Europe/Berlin")
    assert outcome.stored["occurred_at"] == datetime(2026, 5, 21, 12, 0)


def test_assume_tz_rejects_a_local_time_in_the_dst_gap(tmp_path: Path) -> None:
    outcome = ingest_records(tmp_path, event(occurred_at="2026-03-08T02:30:00"), assume_tz="America/New_York")
    assert (outcome.accepted, outcome.rejected) == (0, 1)
    assert "occurred_at" in outcome.reject["reason"]
    assert "America/New_York" in outcome.reject["reason"]


def test_assume_tz_reads_an_ambiguous_local_time_as_the_earlier_instant(tmp_path: Path) -> None:
    outcome = ingest_records(tmp_path, event(occurred_at="2026-11-01T01:30:00"), assume_tz="America/New_York")
    assert (outcome.accepted, outcome.rejected) == (1, 0), outcome.rejects
    assert outcome.stored["occurred_at"] == datetime(2026, 11, 1, 5, 30)


def test_assume_tz_around_the_dst_changes_of_new_york(tmp_path: Path) -> None:
    times = ["2026-03-08T01:59:59", "2026-03-08T03:00:00", "2026-11-01T00:59:59", "2026-11-01T02:00:00"]
    outcome = ingest_records(tmp_path, *[event(event_id=f"x{i}", occurred_at=t) for i, t in enumerate(times)],
                             assume_tz="America/New_York")
    assert [e["occurred_at"] for e in outcome.events] == [
        datetime(2026, 3, 8, 6, 59, 59), datetime(2026, 3, 8, 7, 0),
        datetime(2026, 11, 1, 4, 59, 59), datetime(2026, 11, 1, 7, 0),
    ]


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
    assert table(tmp_path / "s.duckdb", "SELECT count(*) FROM events WHERE event_id = 'x1'") == [(1,)]
    duplicates = table(tmp_path / "s.duckdb", "SELECT brand, event_id, customer_id, source, line FROM duplicates")
    assert duplicates == [("default", "x1", "c1", str(path.resolve()), 3)]


@pytest.mark.parametrize(
    "again",
    [
        pytest.param(event(brand="default"), id="brand-default-written"),
        pytest.param(event(channel="CHAT"), id="channel-upper-case"),
        pytest.param(event(occurred_at="2026-05-21T12:00:00+02:00"), id="same-instant-other-offset"),
        pytest.param(event(occurred_at="2026-05-21T10:00:00.0000001Z"), id="below-microseconds"),
        pytest.param(event(text="", route="  "), id="blank-optional-strings"),
    ],
)
def test_events_equal_after_normalisation_are_duplicates(tmp_path: Path, again: dict[str, Any]) -> None:
    outcome = ingest_records(tmp_path, event(), again)
    assert (outcome.accepted, outcome.duplicate, outcome.rejected) == (1, 1, 0), outcome.rejects


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
    assert "event_id" in conflict["reason"]


def test_a_conflict_within_one_file_keeps_the_first_line(tmp_path: Path) -> None:
    outcome = ingest_records(tmp_path, event(text="hello"), event(text="hello again"))
    assert (outcome.accepted, outcome.duplicate, outcome.rejected) == (1, 0, 1)
    assert outcome.stored["text"] == "hello"
    assert (outcome.reject["kind"], outcome.reject["line"]) == ("conflict", 2)


def test_the_same_event_id_in_two_brands_is_two_events(tmp_path: Path) -> None:
    outcome = ingest_records(tmp_path, event(brand="acme"), event(brand="globex"))
    assert (outcome.accepted, outcome.duplicate, outcome.rejected) == (2, 0, 0)
    assert [(e["brand"], e["event_id"]) for e in outcome.events] == [("acme", "x1"), ("globex", "x1")]


def test_ingesting_the_same_file_twice_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    path = tmp_path / "events.jsonl"
    path.write_text(WORKED_JSONL.read_text() + WORKED_JSONL.read_text().splitlines()[0] + "\n"
                    + json.dumps(event(event_id="bad", type="nope")) + "\n" + "{not json\n")

    first = run(db, "ingest", str(path))
    tables = {name: table(db, f"SELECT * FROM {name} ORDER BY ALL")
              for name in ("events", "sessions", "rejects", "duplicates")}
    second = run(db, "ingest", str(path))

    assert first.exit_code == second.exit_code == 3
    assert first.stdout.strip() == "accepted 10, duplicate 1, rejected 2"
    assert second.stdout.strip().startswith("accepted 0, ")
    assert len(tables["sessions"]) == 2
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


def test_a_fixed_reject_is_stored_and_no_longer_listed(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    path = write_jsonl(tmp_path / "events.jsonl", event(), event(event_id="x2", channel="live chat"))
    assert run(db, "ingest", str(path)).exit_code == 3
    assert len(rejects_csv(db)) == 1

    write_jsonl(path, event(), event(event_id="x2", channel="live_chat"))
    fixed = run(db, "ingest", str(path))

    assert fixed.exit_code == 0, fixed.output
    assert fixed.stdout.strip() == "accepted 1, duplicate 1, rejected 0"
    assert table(db, "SELECT event_id, channel FROM events ORDER BY 1") == [("x1", "chat"), ("x2", "live_chat")]
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


# --- 2.4 order independence ---------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [1, 2])
def test_shuffled_events_split_over_files_derive_the_same_sessions(tmp_path: Path, seed: int) -> None:
    derived = "SELECT * FROM {} ORDER BY ALL"
    ingest(tmp_path / "whole.duckdb", WORKED_JSONL)
    lines = WORKED_JSONL.read_text().splitlines()
    random.Random(seed).shuffle(lines)
    parts = [write_jsonl(tmp_path / f"part{i}.jsonl", *lines[i::3]) for i in range(3)]
    for part in parts:  # one ingestion per file: derivation catches up each time
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
    lines: list[dict[str, Any] | str] = []
    for n in range(1, 41):
        if n == 23:
            lines.append('{"event_id": "k23", "type": ')
        elif n == 30:
            lines.append("")
        else:
            text = "long " * 120 if n == 11 else f"message {n}"  # line 11 alone is longer than a chunk
            lines.append(event(event_id=f"k{n:02d}", customer_id=f"c{n % 3}", text=text,
                               occurred_at=f"2026-05-21T10:{n:02d}:00Z"))
    path = write_jsonl(tmp_path / "events.jsonl", *lines)
    assert path.stat().st_size > 20 * 200

    outcome = ingest(tmp_path / "s.duckdb", path)

    assert (outcome.accepted, outcome.duplicate, outcome.rejected) == (38, 0, 1)
    assert {e["event_id"]: e["line"] for e in outcome.events} == {
        f"k{n:02d}": n for n in range(1, 41) if n not in (23, 30)
    }
    assert next(e for e in outcome.events if e["event_id"] == "k11")["text"] == "long " * 120
    assert (outcome.reject["line"], outcome.reject["raw"]) == (23, '{"event_id": "k23", "type": ')


def test_a_csv_value_with_a_quoted_newline_keeps_later_line_numbers_right(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "CHUNK_BYTES", 200)
    records = []
    for n in range(1, 31):
        text = "first line\nsecond line\nthird line" if n == 5 else f"message {n}"
        kind = "nope" if n == 20 else "customer_message"
        records.append(event(kind, event_id=f"k{n:02d}", text=text, occurred_at=f"2026-05-21T10:{n:02d}:00Z"))
    path = write_csv(tmp_path / "events.csv", *records)

    outcome = ingest(tmp_path / "s.duckdb", path)

    # Header on line 1, record n on line n + 1, and two more lines for every record after record 5.
    def line(n: int) -> int:
        return n + 1 + (2 if n > 5 else 0)

    assert (outcome.accepted, outcome.rejected) == (29, 1)
    assert {e["event_id"]: e["line"] for e in outcome.events} == {f"k{n:02d}": line(n) for n in range(1, 31) if n != 20}
    assert next(e for e in outcome.events if e["event_id"] == "k05")["text"] == "first line\nsecond line\nthird line"
    assert outcome.reject["line"] == line(20)
