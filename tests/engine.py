"""Run the production derivation (DuckDB store + numba kernel) on normalised event dicts and return
its tables in the shape of `reference.derive_reference`, so every scenario can be checked against
both readings of SPEC 3; `assert_tables_equal` compares two such results with a readable diff."""

from __future__ import annotations

import csv
import json
import random
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from convoscope import service
from convoscope.config import BrandSettings, Config
from convoscope.derive.duckdb_engine import derive
from convoscope.store import Store, event_key_sql
from reference import Settings

EVENT_SCHEMA = pa.schema([
    ("brand", pa.string()), ("event_id", pa.string()), ("type", pa.string()), ("occurred_at", pa.timestamp("us")),
    ("customer_id", pa.string()), ("channel", pa.string()), ("text", pa.string()), ("route", pa.string()),
    ("ai_agent", pa.string()), ("guides", pa.list_(pa.string())), ("category", pa.string()),
    ("subcategory", pa.string()), ("reason", pa.string()), ("transfer_rationale", pa.string()), ("agent", pa.string()),
    ("inbox", pa.string()), ("rating", pa.string()), ("score", pa.int64()),
])

# The reference's columns and order per table.
TABLES = {
    "sessions": ("brand, customer_id, session_id, conversation_id, created_at, last_activity_at, ended_at, end_reason, "
                 "channel, ai_agent, guides_used, responded, handed_off, handoff_category, handoff_subcategory, "
                 "handoff_reason, transfer_rationale, recontacted, recontact_known_at, inbox, feedback, feedback_score",
                 "session_id"),
    "contacts": ("brand, customer_id, contact_id, conversation_id, session_id, source, channel, created_at, "
                 "first_response_at, last_activity_at, ended_at, end_reason, agents, agent_names, customer_messages, "
                 "agent_messages, inbox, feedback, feedback_score", "contact_id"),
    "conversations": ("brand, customer_id, conversation_id, created_at, ended_at, times_reopened, first_channel, "
                      "last_channel, channel_count, channels, session_count, contact_count, handled_by, inbox_at_created",
                      "conversation_id"),
    "conversation_closes": ("brand, conversation_id, closed_at, counted, inbox", "conversation_id, closed_at, counted"),
    "anomalies": ("brand, customer_id, event_id, kind, occurred_at", "brand, event_id, kind"),
    "session_messages": ("m.brand, session_id, seq, m.event_id, m.occurred_at, speaker, e.text",
                         "session_id, seq"),
}


def config_for(events: list[dict], settings_for: Callable[[str], Settings]) -> Config:
    def brand_settings(s: Settings) -> BrandSettings:
        return BrandSettings(
            session_inactivity=s.session_inactivity, contact_inactivity=s.contact_inactivity,
            conversation_window=s.conversation_window, recontact_window=s.recontact_window,
            ai_channels=tuple(s.ai_channels), feedback_window=s.feedback_window,
        )

    brands = {e["brand"] for e in events} | {"default", "acme"}
    return Config(defaults=brand_settings(settings_for("default")),
                  brands={b: brand_settings(settings_for(b)) for b in brands})


def load_events(store: Store, events: list[dict]) -> None:
    rows = {name: [e.get(name) for e in events] for name in EVENT_SCHEMA.names}
    store.con.register("_new", pa.table(rows, schema=EVENT_SCHEMA))
    store.con.execute(f"INSERT INTO events ({', '.join(EVENT_SCHEMA.names)}, event_key) "
                      f"SELECT *, {event_key_sql('brand', 'customer_id', 'event_id')} FROM _new")
    store.con.unregister("_new")


def tables(store: Store) -> dict[str, list[dict]]:
    out = {}
    for table, (columns, order) in TABLES.items():
        source = table if table != "session_messages" else \
            "session_messages m JOIN events e ON e.brand = m.brand AND e.event_id = m.event_id"
        cursor = store.con.execute(f"SELECT {columns} FROM {source} ORDER BY {order}")
        names = [d[0] for d in cursor.description]
        out[table] = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return out


def derive_engine(
    events: list[dict], settings_for: Callable[[str], Settings] = lambda brand: Settings()
) -> dict[str, list[dict]]:
    """The production derivation of `events` (full rebuild), as reference-shaped tables."""
    with Store(":memory:") as store:
        load_events(store, events)
        derive(store, config_for(events, settings_for), full=True)
        return tables(store)


def assert_tables_equal(got: dict[str, list[dict]], want: dict[str, list[dict]]) -> None:
    """Equal table by table and row by row, with the first differing row shown."""
    for table in TABLES:
        g, w = got.get(table, []), want.get(table, [])
        for i, (a, b) in enumerate(zip(g, w, strict=False)):
            diff = {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
            assert not diff, f"{table} row {i} differs (got, want): {diff}"
        assert len(g) == len(w), f"{table}: {len(g)} rows, expected {len(w)}"


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def write_events(path: Path, events: list[dict], fields: Sequence[str]) -> None:
    """Events as the file a user would ingest: CSV (guides as a JSON list) for a .csv path, else JSON Lines."""
    def text(e: dict) -> dict:
        out = {k: v for k, v in e.items() if v is not None}
        out["occurred_at"] = e["occurred_at"].isoformat() + "Z"
        return out

    if path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            for e in events:
                row = text(e)
                if "guides" in row:
                    row["guides"] = json.dumps(row["guides"])
                writer.writerow(row)
    else:
        path.write_text("".join(json.dumps(text(e)) + "\n" for e in events), encoding="utf-8")


def ingest_in_parts(
    store: Store, config: Config, events: list[dict], parts: int, rnd: random.Random, fields: Sequence[str]
) -> None:
    """Ingest `events` shuffled and cut into up to `parts` files, JSON Lines and CSV by turns, the files
    in a random order, one ingest per file: each derives only the customers it touched."""
    with tempfile.TemporaryDirectory() as tmp:
        shuffled = events[:]
        rnd.shuffle(shuffled)
        cuts = sorted(rnd.sample(range(len(shuffled) + 1), min(parts - 1, len(shuffled) + 1)))
        files = []
        for i, (a, b) in enumerate(zip([0, *cuts], [*cuts, len(shuffled)], strict=True)):
            path = Path(tmp) / f"part{i}.{'csv' if i % 2 else 'jsonl'}"
            write_events(path, shuffled[a:b], fields)
            files.append(path)
        rnd.shuffle(files)
        for path in files:
            service.ingest(store, config, [str(path)])
