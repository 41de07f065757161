"""Files of input events for the ingestion tests: records written as JSON Lines, CSV or Parquet, one
column per field of SPEC 2.2 (and Appendix B's `inbox`)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

FIELDS = (
    "event_id", "type", "occurred_at", "customer_id", "brand", "channel", "text", "route", "ai_agent",
    "guides", "category", "subcategory", "reason", "transfer_rationale", "agent", "inbox",
)
Record = dict[str, Any]


def write_jsonl(path: Path, *records: Record | str) -> Path:
    """One line per record: a dict as JSON, a string as it is (to write broken lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def write_csv(path: Path, *records: Record) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def write_parquet(path: Path, records: list[Record], *, occurred_at: pa.DataType | None = None,
                  inbox: pa.DataType | None = None) -> Path:
    """Every field a column (strings, guides a list); `occurred_at` as a timestamp column when given its
    type, `inbox` of the type given."""
    columns: dict[str, pa.Array] = {}
    for name in FIELDS:
        values = [r.get(name) for r in records]
        if name == "guides":
            columns[name] = pa.array(values, pa.list_(pa.string()))
        elif name == "occurred_at" and occurred_at is not None:
            columns[name] = pa.array([datetime.fromisoformat(str(v).replace("Z", "+00:00")) for v in values], occurred_at)
        else:
            columns[name] = pa.array(values, inbox if name == "inbox" and inbox is not None else pa.string())
    pq.write_table(pa.table(columns), path)
    return path
