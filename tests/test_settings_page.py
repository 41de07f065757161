"""Brand settings seen and edited in the app (issue 28 point 1): the Definitions page shows every brand's windows
and where each comes from; administrators change a brand's table through a form that previews the headline figures
(what `convoscope compare --set` gives) and saves the file atomically, the rest of it kept byte for byte, audited; a
report afterwards is computed with the new definitions. Everything goes through a real `convoscope serve` over HTTP.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from cli_helpers import Convoscope
from convoscope.config import Config, load_config
from web_helpers import (
    LiveServer,
    add_user,
    bearer,
    cli_ok,
    csrf_of,
    generate_brand,
    log_in,
    past_start,
    serving,
)

# A file as people keep it: comments, the server's table, another brand's own windows.
CONFIG = """\
# Support analytics: kept by the platform team; ask before changing globex.
[server]
rate_limit = 0  # the tests send requests back to back

[sources.chatwoot]
brand = "acme"
webhook_token = "an-unguessable-token-of-at-least-32-characters"

[brands.globex]  # the other team's brand
session_inactivity = "1h"  # agreed with their leads
recontact_window = "48h"
"""
GLOBEX_TABLE = CONFIG[CONFIG.index("[brands.globex]"):]
START = past_start(40)
RANGE = {"from": START, "to": past_start(34)}  # the brands' seven days, well before now
USERS = {"admin": ("administrator", None), "acme-admin": ("administrator", "acme"),
         "manager": ("team_manager", None), "ana": ("analyst", None), "agent": ("agent", None)}
INPUT = re.compile(r'<input[^>]*?name="([^"]+)"[^>]*?value="([^"]*)"')


def make_site(directory: Path) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    store = Convoscope(directory)
    assert store.config is not None
    store.config.write_text(CONFIG)
    generate_brand(store, brand="acme", customers=80, days=7, seed=11, start=START)
    generate_brand(store, brand="globex", customers=40, days=7, seed=12, start=START)
    tokens = {name: add_user(store, name, role, brands=brands) for name, (role, brands) in USERS.items()}
    with serving(store) as server:
        yield server, tokens


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    """For the tests that save nothing (or nothing that stays): every user of USERS logs in to it."""
    yield from make_site(tmp_path_factory.mktemp("settings"))


@pytest.fixture
def own_site(tmp_path: Path) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    """A site of its own, for a test that saves."""
    yield from make_site(tmp_path)


@contextmanager
def browser_of(server: LiveServer, name: str) -> Iterator[httpx.Client]:
    """A client logged in through the form as `name`, as a browser is."""
    with server.client() as client:
        assert log_in(client, name).status_code == 303
        yield client


def form_of(page: str) -> dict[str, str]:
    """The settings form's fields as the page fills them (hidden ones too)."""
    start = page.index('id="settings-form"')
    section = page[start:page.index("</form>", start)]
    return {name: html.unescape(value) for name, value in INPUT.findall(section)}


def send(client: httpx.Client, fields: dict[str, str], action: str) -> httpx.Response:
    return client.post("/settings/edit", data=fields | {"action": action})


def rows_of(page: str, section_id: str) -> dict[str, tuple[str, str]]:
    """{key: (value, origin)} of the Definitions page's table of one brand (or `defaults`)."""
    start = page.index(f'id="{section_id}"')
    section = page[start:page.index("</section>", start)]
    found = re.findall(r'<tr data-key="([^"]+)" data-origin="([^"]+)">.*?<td class="value"><code>([^<]*)</code>',
                       section, re.S)
    return {key: (html.unescape(value), origin) for key, origin, value in found}


def preview_tables(page: str) -> list[dict[str, list[str]]]:
    """Each preview table as {figure: [stored cell, proposed cell]}, with the header under "Figure"."""
    tables = []
    for table in re.findall(r'<table class="report striped preview-table">(.*?)</table>', page, re.S):
        header = [html.unescape(h) for h in re.findall(r'<th scope="col">([^<]*)</th>', table)]
        body = {html.unescape(name): [html.unescape(c) for c in cells] for name, cells in (
            (row[0], re.findall(r'<td class="num" data-value="([^"]*)">', row[1]))
            for row in re.findall(r'<th scope="row">([^<]*)</th>(.*?)</tr>', table, re.S))}
        tables.append({"Figure": header[1:], **body})
    return tables


def sessions(server: LiveServer, token: str, brand: str) -> int:
    """The Sessions of `brand` over RANGE, as the server's report API answers now."""
    answer = httpx.get(f"{server.url}/api/v1/reports/sessions-summary", headers=bearer(token),
                       params={"brand": brand, "period": "year", **RANGE}, timeout=60)
    assert answer.status_code == 200, answer.text
    rows = list(csv.DictReader(io.StringIO(answer.text, newline="")))
    return sum(int(row["Sessions"]) for row in rows)


def test_a_reader_sees_each_brands_windows_and_where_they_come_from(site: tuple[LiveServer, dict[str, str]]) -> None:
    server, _ = site
    with browser_of(server, "ana") as ana:
        page = ana.get("/settings")
        assert page.status_code == 200
        assert str(server.store.config.resolve()) in page.text  # type: ignore[union-attr]
        globex, acme = rows_of(page.text, "brand-globex"), rows_of(page.text, "brand-acme")
        assert globex["session_inactivity"] == ("1h", "brand")
        assert globex["recontact_window"] == ("2d", "brand")
        assert globex["conversation_window"] == ("1d", "built-in")  # 24h, as durations are shown
        assert acme["session_inactivity"] == ("2h", "built-in")
        assert "S: an AI session ends this long after its last activity" in page.text
        assert "/settings/edit" not in page.text  # an analyst edits nothing
        report = ana.get("/reports/sessions-summary", params={"run": "1", **RANGE})
        assert 'href="/settings" id="definitions-link"' in report.text


@pytest.mark.parametrize("name", ["manager", "ana", "agent"])
def test_who_does_not_administer_cannot_change_settings(site: tuple[LiveServer, dict[str, str]], name: str) -> None:
    server, _ = site
    before = server.store.config.read_bytes()  # type: ignore[union-attr]
    with browser_of(server, name) as client:
        assert client.get("/settings/edit", params={"brand": "acme"}).status_code == 403
        csrf = csrf_of(client.get("/conversations").text)  # the log-out form's: the login's token
        answer = send(client, {"csrf": csrf or "", "brand": "acme", "session_inactivity": "30m"}, "save")
        assert answer.status_code == 403
        assert "may not" in answer.text
    assert server.store.config.read_bytes() == before  # type: ignore[union-attr]


def test_an_administrator_of_one_brand_edits_only_its_table(site: tuple[LiveServer, dict[str, str]]) -> None:
    server, _ = site
    before = server.store.config.read_bytes()  # type: ignore[union-attr]
    with browser_of(server, "acme-admin") as client:
        listing = client.get("/settings").text
        assert 'href="/settings/edit?brand=acme"' in listing
        assert "brand=globex" not in listing and 'href="/settings/edit"' not in listing
        assert "brand-globex" not in listing  # nor sees the other brand's settings
        own = form_of(client.get("/settings/edit", params={"brand": "acme"}).text)
        assert client.get("/settings/edit", params={"brand": "globex"}).status_code == 403
        refused = client.get("/settings/edit")  # the defaults: every brand's
        assert refused.status_code == 403 and "only an administrator of every brand" in refused.text
        answer = send(client, own | {"brand": "globex", "session_inactivity": "5m"}, "save")
        assert answer.status_code == 403 and "brand globex is not one of them" in answer.text
        assert send(client, own | {"brand": "", "session_inactivity": "5m"}, "save").status_code == 403
    assert server.store.config.read_bytes() == before  # type: ignore[union-attr]


def test_a_form_without_the_logins_csrf_token_is_refused(site: tuple[LiveServer, dict[str, str]]) -> None:
    server, _ = site
    with browser_of(server, "admin") as client:
        fields = form_of(client.get("/settings/edit", params={"brand": "acme"}).text)
        answer = send(client, fields | {"csrf": "forged", "session_inactivity": "30m"}, "save")
        assert answer.status_code == 403 and "stale or came from another site" in answer.text


def test_preview_shows_the_figures_compare_gives_and_saves_nothing(site: tuple[LiveServer, dict[str, str]]) -> None:
    server, _ = site
    before = server.store.config.read_bytes()  # type: ignore[union-attr]
    with browser_of(server, "admin") as client:
        fields = form_of(client.get("/settings/edit", params={"brand": "acme"}).text)
        assert fields["session_inactivity"] == ""  # acme sets nothing itself: it takes the default
        answer = send(client, fields | {"session_inactivity": "30m", "recontact_window": "72h", **RANGE}, "preview")
        assert answer.status_code == 200, answer.text
        audit = client.get("/audit").text
    [table] = preview_tables(answer.text)
    expected = list(csv.reader(io.StringIO(cli_ok(
        server.store, "compare", "--set", "session_inactivity=30m,recontact_window=72h", "--brand", "acme",
        "--from", RANGE["from"], "--to", RANGE["to"], "--out", "-"), newline="")))
    assert table["Figure"] == expected[0][1:]  # stored (...), then the proposed set
    assert len(table["Figure"]) == 2
    for figure, *cells in expected[1:]:
        assert [float(c) if c else None for c in table[figure]] == [float(c) if c else None for c in cells], figure
    assert table["Sessions"][1] != table["Sessions"][0]  # a shorter window cuts more sessions: the preview shows it
    assert server.store.config.read_bytes() == before  # type: ignore[union-attr]
    assert 'data-action="settings"' not in audit


def test_preview_over_the_last_30_days_of_the_brands_data_by_default(site: tuple[LiveServer, dict[str, str]]) -> None:
    server, _ = site
    with browser_of(server, "admin") as client:
        fields = form_of(client.get("/settings/edit", params={"brand": "acme"}).text)
        answer = send(client, fields | {"session_inactivity": "30m"}, "preview")
    shown = form_of(answer.text)
    last = shown["to"]
    assert RANGE["to"] <= last <= past_start(33)  # the last day of acme's events (local), and 29 days before it
    assert len(preview_tables(answer.text)) == 1


def test_a_bad_value_is_one_line_beside_its_field_and_writes_nothing(site: tuple[LiveServer, dict[str, str]]) -> None:
    server, _ = site
    before = server.store.config.read_bytes()  # type: ignore[union-attr]
    with browser_of(server, "admin") as client:
        fields = form_of(client.get("/settings/edit", params={"brand": "acme"}).text)
        answer = send(client, fields | {"session_inactivity": "soon", "recontact_window": "72h"}, "save")
    assert answer.status_code == 400
    found = re.search(r'<small class="error" role="alert" id="error-session_inactivity">([^<]*)</small>', answer.text)
    assert found is not None
    message = html.unescape(found.group(1))
    assert message == ("[brands.acme]: session_inactivity = 'soon' is not valid; expected a duration such as \"2h\", "
                       "\"90m\" or \"1h30m\" (units s, m, h, d), at most 36500d")
    assert 'id="error-recontact_window"' not in answer.text
    assert form_of(answer.text)["session_inactivity"] == "soon"  # kept as typed, to be corrected
    assert server.store.config.read_bytes() == before  # type: ignore[union-attr]


def test_a_form_shown_before_the_file_changed_is_refused(site: tuple[LiveServer, dict[str, str]]) -> None:
    server, _ = site
    path = server.store.config
    assert path is not None
    with browser_of(server, "admin") as client:
        fields = form_of(client.get("/settings/edit", params={"brand": "acme"}).text)
        changed = path.read_text() + "# edited by hand meanwhile\n"
        path.write_text(changed)
        answer = send(client, fields | {"session_inactivity": "30m"}, "save")
        assert answer.status_code == 409
        assert "changed since this form was shown, so nothing was saved; reload the page" in answer.text
        assert path.read_text() == changed
        fresh = form_of(client.get("/settings/edit", params={"brand": "acme"}).text)
        assert fresh["fingerprint"] != fields["fingerprint"]


def test_save_writes_the_file_keeps_the_rest_and_the_next_report_uses_it(
        own_site: tuple[LiveServer, dict[str, str]]) -> None:
    server, tokens = own_site
    path = server.store.config
    assert path is not None
    mode = path.stat().st_mode
    before = sessions(server, tokens["ana"], "acme")
    globex_before = sessions(server, tokens["ana"], "globex")
    with browser_of(server, "acme-admin") as client:
        fields = form_of(client.get("/settings/edit", params={"brand": "acme"}).text)
        preview = preview_tables(send(client, fields | {"session_inactivity": "30m", **RANGE}, "preview").text)
        answer = send(client, fields | {"session_inactivity": "30m", **RANGE}, "save")
        assert answer.status_code == 200, answer.text
        assert 'id="saved"' in answer.text and "derived again" in answer.text
    text = path.read_text()
    assert text.startswith(CONFIG[:CONFIG.index("[brands.globex]")])  # the comment, [server], [sources.*] as they were
    assert path.stat().st_mode == mode
    assert GLOBEX_TABLE in text  # the other brand's table, with its comments, byte for byte
    config = load_config(path)
    assert config.for_brand("acme").session_inactivity.total_seconds() == 30 * 60
    assert config.origin("acme", "session_inactivity") == "brand"
    assert config.for_brand("globex") == load_config_of(CONFIG, path.parent).for_brand("globex")
    after = sessions(server, tokens["ana"], "acme")  # the server re-derives acme before answering
    assert after > before
    assert after == int(preview[0]["Sessions"][1])  # what the preview promised
    assert sessions(server, tokens["ana"], "globex") == globex_before
    with browser_of(server, "admin") as admin:
        audit = admin.get("/audit").text
        listing = admin.get("/settings").text
    entry = re.search(r'<tr data-action="settings">(.*?)</tr>', audit, re.S)
    assert entry is not None and "acme-admin" in entry.group(1) and "<td>acme</td>" in entry.group(1)
    parameters = json.loads(html.unescape(re.search(r'<code class="parameters">(.*?)</code>', entry.group(1)).group(1)))
    assert parameters == {"session_inactivity": {"old": None, "new": "30m"}, "file": str(path.resolve())}
    assert rows_of(listing, "brand-acme")["session_inactivity"] == ("30m", "brand")


def test_emptying_a_field_gives_the_brand_the_default_again(own_site: tuple[LiveServer, dict[str, str]]) -> None:
    server, _ = own_site
    path = server.store.config
    assert path is not None
    with browser_of(server, "admin") as client:
        fields = form_of(client.get("/settings/edit", params={"brand": "globex"}).text)
        assert fields["session_inactivity"] == "1h"
        answer = send(client, fields | {"session_inactivity": ""}, "save")
        assert answer.status_code == 200, answer.text
    config = load_config(path)
    assert config.origin("globex", "session_inactivity") == "built-in"
    assert config.for_brand("globex").recontact_window.total_seconds() == 48 * 3600
    assert "# agreed with their leads" not in path.read_text()  # the key went, with the comment on its line
    assert "[brands.globex]  # the other team's brand" in path.read_text()


def load_config_of(text: str, folder: Path) -> Config:
    """The configuration `text` says, read as the command line reads a file."""
    copy = folder / "copy.toml"
    copy.write_text(text)
    return load_config(copy)


def test_an_administrator_of_every_brand_previews_the_defaults_for_the_brands_that_take_them(
        site: tuple[LiveServer, dict[str, str]]) -> None:
    """globex sets its own session_inactivity: a new default moves acme's figures only."""
    server, _ = site
    with browser_of(server, "admin") as client:
        fields = form_of(client.get("/settings/edit").text)
        answer = send(client, fields | {"session_inactivity": "45m", **RANGE}, "preview")
    assert answer.status_code == 200, answer.text
    [table] = preview_tables(answer.text)
    assert table["Figure"][1] == "session_inactivity=45m"
    assert "<h3>Brand acme</h3>" in answer.text and "globex</h3>" not in answer.text


def test_without_a_configuration_file_saving_starts_convoscope_toml_where_serve_reads_it(cs: Convoscope) -> None:
    """Decision 138: `serve` without `--config` reads ./convoscope.toml; the first save writes it there."""
    store = Convoscope(cs.dir, own_config=False)
    generate_brand(store, brand="acme", customers=20, days=2, seed=5, start=START)
    add_user(store, "admin", "administrator")
    with serving(store) as server, browser_of(server, "admin") as client:
        page = client.get("/settings/edit", params={"brand": "acme"})
        assert str(cs.dir.resolve() / "convoscope.toml") in page.text
        answer = send(client, form_of(page.text) | {"timezone": "Europe/Berlin"}, "save")
        assert answer.status_code == 200, answer.text
        listing = client.get("/settings").text
    written = cs.dir / "convoscope.toml"
    assert load_config(written).for_brand("acme").timezone == "Europe/Berlin"
    assert rows_of(listing, "brand-acme")["timezone"] == ("Europe/Berlin", "brand")


def test_a_preview_of_no_change_or_of_a_setting_no_figure_reads_says_so(site: tuple[LiveServer, dict[str, str]]) -> None:
    server, _ = site
    with browser_of(server, "admin") as client:
        fields = form_of(client.get("/settings/edit", params={"brand": "acme"}).text)
        same = send(client, fields, "preview")
        zone = send(client, fields | {"timezone": "Europe/Berlin"}, "preview")
    assert "The form&#39;s values are those of the file" in same.text and not preview_tables(same.text)
    assert "No headline figure depends on what this change sets" in zone.text and not preview_tables(zone.text)
