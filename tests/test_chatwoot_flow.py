"""The whole Chatwoot flow over HTTP (issue 23 point 7): two days of a generated Chatwoot brand arrive as
signed webhooks at a real `convoscope serve`, then the same days are pulled from a server replaying
Chatwoot's REST API (tests/chatwoot_replay.py); every report then equals, byte for byte, the reports of
the events SOURCES.md says those payloads map to (the generator's own reading of it, not the mapping's),
ingested as plain events into another store.

The payloads follow the shapes of ../shared/samples/sources/chatwoot (Chatwoot's webhook listener and REST
views, as SOURCES.md cites them); src/convoscope/synth_chatwoot.py builds them from those samples."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from chatwoot_replay import TOKEN, Replay
from chatwoot_replay import serving as replaying
from cli_helpers import Convoscope
from convoscope import synth_chatwoot
from convoscope.reports import REPORTS
from convoscope.store import connect as connect_waiting
from source_helpers import sign
from web_helpers import cli_ok, csv_dicts, serving

AS_OF = "2026-05-10T00:00:00Z"
SECRET = "flow-secret"
CONFIG = (f'ai_channels = {json.dumps(list(synth_chatwoot.AI_CHANNELS))}\n'
          f'[sources.chatwoot]\nwebhook_secret = "{SECRET}"\nbrand = "acme"\n')
# The reports of the events themselves. data-quality and sources differ by design: the flow's store also
# holds the pull's duplicates and what each record became.
COMPARED = [name for name in REPORTS if name not in ("data-quality", "sources")]


@pytest.fixture(scope="module")
def account() -> synth_chatwoot.ChatwootAccount:
    return synth_chatwoot.generate(contacts=40, days=2, seed=11)


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory, account: synth_chatwoot.ChatwootAccount) -> Convoscope:
    """The store the live flow fills: webhooks, then a pull of the same days."""
    store = Convoscope(tmp_path_factory.mktemp("flow"))
    assert store.config is not None
    store.config.write_text(CONFIG)
    with serving(store) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        for i, delivery in enumerate(account.deliveries):
            answer = client.post(synth_chatwoot.WEBHOOK_PATH, content=delivery.body,
                                 headers={**sign(delivery.body, secret=SECRET), "X-Chatwoot-Delivery": f"d{i}"})
            assert answer.status_code == 200, answer.text
    token_file = store.dir / "token"
    token_file.write_text(TOKEN + "\n")
    with replaying(Replay(account.records)) as replay:
        result = store("pull", "chatwoot", "--url", replay.url, "--account", str(synth_chatwoot.ACCOUNT_ID),
                       "--token-file", str(token_file), "--since", account.start.date().isoformat())
    assert result.exit_code == 0, result.stderr
    messages = len(synth_chatwoot.generate(contacts=40, days=2, seed=11).backfill_events)
    # Every message the pull read had come by webhook already: all duplicates, nothing new.
    assert result.stdout.strip().splitlines()[-1].startswith(f"accepted 0, duplicate {messages:,}, ")
    return store


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, account: synth_chatwoot.ChatwootAccount) -> Convoscope:
    """The events SOURCES.md says the payloads map to, ingested as plain events."""
    store = Convoscope(tmp_path_factory.mktemp("plain"))
    assert store.config is not None
    store.config.write_text(CONFIG)
    path = store.write_events([{**event, "brand": "acme"} for event in account.events])
    cli_ok(store, "ingest", str(path))
    return store


@pytest.mark.parametrize("name", COMPARED)
def test_every_report_equals_the_plain_events_reports(flow: Convoscope, plain: Convoscope, name: str) -> None:
    extra = ["--extra"] if REPORTS[name].extra_columns else []
    period = ["--period", "half_hour"] if REPORTS[name].takes_period else []
    args = ["report", name, "--as-of", AS_OF, *extra, *period]
    ours, theirs = cli_ok(flow, *args), cli_ok(plain, *args)
    assert ours.count("\n") > 1, f"{name} is empty: nothing to compare"
    assert ours == theirs


def test_the_flow_stores_exactly_the_events(flow: Convoscope, plain: Convoscope) -> None:
    def events(db: Path) -> list[tuple]:
        con = connect_waiting(db, read_only=True)
        try:
            return con.execute("SELECT * EXCLUDE (source, line, ingested_at, attributes) FROM events "
                               "ORDER BY event_id").fetchall()
        finally:
            con.close()

    assert events(flow.db) == events(plain.db)


def test_the_sources_report_tells_the_webhook_missed_nothing(flow: Convoscope,
                                                             account: synth_chatwoot.ChatwootAccount) -> None:
    rows = csv_dicts(cli_ok(flow, "report", "sources", "--period", "year"))
    webhook = [r for r in rows if r["Via"] == "webhook" and r["Reason"] == ""]
    pull = [r for r in rows if r["Via"] == "pull" and r["Reason"] == ""]
    assert sum(int(r["Accepted"]) for r in webhook) == len(account.events)
    assert sum(int(r["Accepted"]) for r in pull) == 0
    assert sum(int(r["Duplicate"]) for r in pull) == len(account.backfill_events)
    assert not any(int(r["Rejected"]) for r in rows)
