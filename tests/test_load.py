"""Concurrent load on a real `convoscope serve` (issue 6): writers post event batches while readers run
reports and viewers open conversations, through the API and as pages, for a bounded time. No request
fails, every posted event is in the store afterwards, and no report shows part of a batch.

The scenario is bench/load.py's, run here for LOAD_SECONDS on a small generated brand; the benchmark
runs it longer and prints the latencies (docs/benchmarks.md).
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType

import pytest

from cli_helpers import Convoscope
from web_helpers import add_user, cli_ok, csv_dicts, generate_brand, past_start, serving

LOAD_SECONDS = 25


def _bench_load() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "bench" / "load.py"
    spec = importlib.util.spec_from_file_location("bench_load", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


load = _bench_load()


def test_batches_reports_and_pages_side_by_side(tmp_path: Path) -> None:
    store = Convoscope(tmp_path)
    start = date.fromisoformat(past_start())
    generate_brand(store, customers=150, days=7, start=start.isoformat())
    credentials = load.Credentials(
        writer_token=add_user(store, "writer", "administrator"),
        reader_token=add_user(store, "reader", "analyst"),
        viewer_token=add_user(store, "viewer", "agent", password=load.PASSWORD),  # logs in to the pages too
        page_user="viewer",
    )
    last = start + timedelta(days=6)
    baseline = {"from": start.isoformat(), "to": last.isoformat(), "tz": "UTC",
                "as_of": f"{(last + timedelta(days=3)).isoformat()}T00:00:00Z"}

    with serving(store) as server:
        observed = load.run_load(server.url, credentials, seconds=LOAD_SECONDS, baseline_query=baseline,
                                 writers=3, readers=2, viewers=2)
        log = server.output()

    assert observed.failures == [], (observed.failures[:10], log[-3000:])
    assert observed.inconsistencies == [], observed.inconsistencies[:10]
    for kind in load.KINDS:  # every kind of client got answers, not just the fastest
        assert len(observed.latencies[kind]) >= 3, (kind, {k: len(v) for k, v in observed.latencies.items()})
    assert len(observed.batches) >= 5
    # The reports ran while batches arrived: they saw the store at several sizes, each time whole batches.
    assert len(observed.report_sizes) >= 3, observed.report_sizes
    assert load.verify_store(store.db, observed) == []
    # The command line, as a user would check it, agrees with what the clients posted.
    summary = cli_ok(store, "report", "sessions-summary", "--from", load.LOAD_DAY, "--to", load.LOAD_DAY,
                     "--tz", "UTC", "--as-of", load.LOAD_AS_OF, "--headers", "snake")
    (row,) = csv_dicts(summary)
    assert int(row["sessions"]) == len(observed.batches) * load.CUSTOMERS_PER_BATCH


@pytest.mark.parametrize(("customer", "batch"), [("load-w0-000012-c3", "load-w0-000012"), ("c1", None),
                                                 ("load-w1-000001", None)])
def test_batch_of_names_the_batch_of_a_load_customer(customer: str, batch: str | None) -> None:
    assert load.batch_of(customer) == batch


def test_a_report_with_part_of_a_batch_is_caught() -> None:
    seen = load.Observed()
    whole = [{"Customer ID": f"load-w0-000001-c{j}"} for j in range(load.CUSTOMERS_PER_BATCH)]
    part = [{"Customer ID": "load-w2-000007-c0"}]
    assert load.whole_batches(whole + part, seen) == {"load-w0-000001", "load-w2-000007"}
    assert seen.inconsistencies == [f"sessions-detail shows 1 of the {load.CUSTOMERS_PER_BATCH} sessions of batch "
                                    "load-w2-000007"]
