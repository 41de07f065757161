"""The running server follows its configuration file (issue 24 point 5, SPEC 5): after `convoscope.toml`
changes, `serve` uses the new settings without a restart, so the server and the command line give the
same numbers, and the store is re-derived once per change — not once each time the other process runs a
report. A file that no longer reads leaves the server on the configuration it had, and says so in its log
and to administrators on every page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli_helpers import Convoscope
from convoscope.config import load_config
from convoscope.derive import duckdb_engine
from convoscope.errors import ConvoscopeError
from convoscope.store import connect as connect_waiting
from web_helpers import LiveServer, add_user, bearer, generate_brand, log_in, serving

SUMMARY = "/api/v1/reports/sessions-summary"  # judged now: every session of the generated brand has ended


@dataclass
class Site:
    store: Convoscope
    server: LiveServer
    token: str
    rebuilds: list[int]  # derivations run by the command line of this test process

    def api_summary(self) -> httpx.Response:
        with self.server.client() as client:
            answer = client.get(SUMMARY, headers=bearer(self.token))
        assert answer.status_code == 200, answer.text
        return answer

    def cli_summary(self) -> bytes:
        result = self.store("report", "sessions-summary")
        assert result.exit_code == 0, result.stderr
        return result.stdout_bytes

    def configure(self, text: str) -> str:
        """Write the configuration file; the derivation settings it gives the brand (of a file that reads)."""
        assert self.store.config is not None
        self.store.config.write_text(text, encoding="utf-8")
        try:
            return load_config(self.store.config).for_brand("default").derivation_fingerprint()
        except ConvoscopeError:
            return "unreadable"

    def derived_settings(self) -> dict[str, str]:
        """What the derived tables were built with, read as a command reads the store: the server lets go of it
        once no request uses it (`store.wanted`)."""
        with connect_waiting(self.store.db, read_only=True) as con:
            return dict(con.execute("SELECT brand, fingerprint FROM derived_settings").fetchall())


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    store = Convoscope(tmp_path)
    generate_brand(store, customers=150, days=7)
    token = add_user(store, "admin", "administrator")
    rebuilds: list[int] = []
    derive: Callable[..., Any] = duckdb_engine.derive

    def counted(*args: Any, **kwargs: Any) -> Any:
        rebuilds.append(1)
        return derive(*args, **kwargs)

    monkeypatch.setattr(duckdb_engine, "derive", counted)
    with serving(store) as server:
        yield Site(store, server, token, rebuilds)


def test_a_changed_configuration_reaches_the_running_server_and_derives_once(site: Site) -> None:
    before = site.api_summary()
    assert before.content == site.cli_summary()

    # The server asks first: it notices the change and rebuilds the brand; the command line then finds the
    # tables built with its own settings, and the two give the same numbers.
    shorter = site.configure('session_inactivity = "30m"\n')
    after = site.api_summary()
    assert after.content != before.content  # shorter sessions: more of them
    assert site.derived_settings() == {"default": shorter}
    assert site.cli_summary() == after.content
    assert site.rebuilds == []
    assert site.api_summary().content == after.content
    assert site.derived_settings() == {"default": shorter}  # the server did not rebuild for its old settings
    assert "S=30m" in after.headers["X-Convoscope-Definitions"]

    # The command line asks first: it asks the running server (decision 167), which rebuilds, once, in its own
    # process; this one never derives, and both give the numbers of the settings the file says now.
    longer = site.configure('session_inactivity = "45m"\n')
    by_cli = site.cli_summary()
    assert site.derived_settings() == {"default": longer}
    assert site.api_summary().content == by_cli
    assert by_cli != after.content
    assert site.cli_summary() == by_cli
    assert site.rebuilds == []


def test_a_broken_configuration_keeps_the_one_before_and_says_so(site: Site) -> None:
    kept = site.configure('session_inactivity = "30m"\n')
    good = site.api_summary()
    site.configure('session_inactivity = "soon"\n')
    answer = site.api_summary()
    assert answer.content == good.content  # no failed requests: the configuration of before
    assert site.derived_settings() == {"default": kept}
    with site.server.client() as browser:
        assert log_in(browser, "admin").status_code == 303
        page = browser.get("/reports")
    assert 'id="config-problem"' in page.text and "session_inactivity" in page.text
    assert "session_inactivity" in site.server.output()  # the server's log

    site.configure('session_inactivity = "30m"\n')
    with site.server.client() as browser:
        assert log_in(browser, "admin").status_code == 303
        assert 'id="config-problem"' not in browser.get("/reports").text
