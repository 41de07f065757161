"""Events in from the web app (issue 28) through a real `convoscope serve`: the upload page answers what
`POST /api/v1/events` answers for the same body — compared with the API of a second server over a store
that has had the same history — within the API's limits and brands, behind the login's CSRF token; the
ingest history lists what came in, per source, and links each source to its problems in data-quality.

Two stores, each with the worked example (SPEC 3.7) and the same users: the page's and the API's. Every
batch sent to one goes to the other too, so that a duplicate or a conflict is one on both sides.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from cli_helpers import Convoscope
from web_helpers import (
    LiveServer,
    add_user,
    bearer,
    csrf_of,
    csv_dicts,
    ingest_worked_example,
    log_in,
    serving,
)

DAY = "2026-05-12"


@dataclass
class Site:
    store: Convoscope
    server: LiveServer
    tokens: dict[str, str]


@dataclass
class Sites:
    page: Site  # where the tests upload through the form
    api: Site  # where the same bodies go to POST /api/v1/events

    @contextmanager
    def browser(self, name: str) -> Iterator[httpx.Client]:
        """A client of the page's server, logged in as `name` through the login form."""
        with self.page.server.client() as client:
            assert log_in(client, name).status_code == 303
            yield client

    def api_answer(self, name: str, body: bytes, content_type: str) -> dict[str, Any]:
        with self.api.server.client(headers=bearer(self.api.tokens[name])) as client:
            response = client.post("/api/v1/events", content=body, headers={"Content-Type": content_type})
        assert response.status_code == 200, response.text
        return response.json()


def _site(store: Convoscope) -> Iterator[Site]:
    ingest_worked_example(store)
    tokens = {name: add_user(store, name, role, brands=brands) for name, role, brands in (
        ("admin", "administrator", None), ("ana", "analyst", None), ("acme-admin", "administrator", "acme"))}
    with serving(store) as server:
        yield Site(store, server, tokens)


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:
    page_sites = _site(Convoscope(tmp_path_factory.mktemp("pages")))
    api_sites = _site(Convoscope(tmp_path_factory.mktemp("api")))
    yield Sites(next(page_sites), next(api_sites))
    for rest in (page_sites, api_sites):
        next(rest, None)


def event(event_id: str, type_: str, minute: int, customer: str, **fields: Any) -> dict[str, Any]:
    found = {"event_id": event_id, "type": type_, "occurred_at": f"{DAY}T10:{minute:02d}:00Z", "customer_id": customer}
    if type_ in ("customer_message", "ai_message", "agent_message"):
        found["channel"] = "chat"
    return found | fields


WORKED_E01 = {"event_id": "e01", "type": "customer_message", "occurred_at": "2026-05-21T10:00:00Z",
              "customer_id": "c1", "channel": "chat", "text": "Hi, where is my order #1234?"}
GOOD_AND_BAD = [
    event("up-1", "customer_message", 0, "up-c1", text="Where is my parcel?"),
    event("up-2", "ai_message", 1, "up-c1", text="On its way.", ai_agent="Care"),
    event("up-3", "telepathy", 2, "up-c1"),  # an unknown type
    {"event_id": "up-4", "type": "customer_message", "customer_id": "up-c1", "channel": "chat"},  # no time
    event("up-5", "ai_message", 3, "up-c1", route="team"),  # a route on an AI message
    WORKED_E01,  # stored already, the same: a duplicate
    WORKED_E01 | {"text": "Something else"},  # stored already, different: a conflict
    event("up-1", "customer_message", 0, "up-c1", text="Where is my parcel?"),  # twice in the file
]


def ndjson(events: list[Any], *, extra: Sequence[str] = ()) -> bytes:
    """The events as JSON Lines, with the `extra` lines after the third."""
    lines = [json.dumps(e) for e in events]
    return ("\n".join([*lines[:3], *extra, *lines[3:]]) + "\n").encode()


def upload(client: httpx.Client, body: bytes, *, filename: str = "events.jsonl", csrf: str | None = "page",
           content_type: str = "application/x-ndjson") -> httpx.Response:
    """The upload form sent as a browser sends it: the file and the page's CSRF token (`csrf="page"`), another
    token, or none (None)."""
    if csrf == "page":
        form = client.get("/events/upload")
        assert form.status_code == 200, form.text
        csrf = csrf_of(form.text)
    data = {"csrf": csrf} if csrf is not None else {}
    return client.post("/events/upload", data=data, files={"file": (filename, body, content_type)})


@dataclass
class PageAnswer:
    accepted: int
    duplicate: int
    rejected: int
    errors: dict[int, str]  # as the API's: by index from 0
    source: str


def page_answer(text: str) -> PageAnswer:
    counts = {key: int(re.search(rf'id="count-{key}" data-count="(\d+)"', text).group(1))  # type: ignore[union-attr]
              for key in ("accepted", "duplicate", "rejected")}
    rows = re.findall(r'<tr data-index="(\d+)"><td class="num">(\d+)</td><td>(.*?)</td></tr>', text, re.S)
    assert all(int(number) == int(index) + 1 for index, number, _ in rows), "a line's number is its index plus one"
    source = re.search(r'<code id="upload-source">(.*?)</code>', text).group(1)  # type: ignore[union-attr]
    return PageAnswer(**counts, errors={int(i): html.unescape(reason) for i, _, reason in rows},
                      source=html.unescape(source))


def api_view(answer: dict[str, Any]) -> tuple[int, int, int, dict[int, str]]:
    return (answer["accepted"], answer["duplicate"], answer["rejected"],
            {item["index"]: item["reason"] for item in answer["errors"]})


def error_line(text: str) -> str:
    found = re.search(r'<p class="error" role="alert" id="upload-error">(.*?)</p>', text, re.S)
    assert found, text[:2000]
    return html.unescape(found.group(1))


@pytest.mark.parametrize("shape", ["ndjson", "array"])
def test_an_upload_answers_what_the_api_answers_for_the_same_body(sites: Sites, shape: str) -> None:
    events = [e | {"event_id": f"{shape}-{e['event_id']}"} if e["event_id"].startswith("up-") else e
              for e in GOOD_AND_BAD]
    if shape == "ndjson":  # a line that is no JSON and a blank line too
        body, content_type = ndjson(events, extra=['{"event_id": "broken', ""]), "application/x-ndjson"
    else:
        body, content_type = json.dumps(events).encode(), "application/json"
    with sites.browser("admin") as client:
        response = upload(client, body, filename=f"good-and-bad.{'jsonl' if shape == 'ndjson' else 'json'}",
                          content_type=content_type)
    assert response.status_code == 200, response.text[:2000]
    shown = page_answer(response.text)
    expected = api_view(sites.api_answer("admin", body, content_type))
    assert (shown.accepted, shown.duplicate, shown.rejected, shown.errors) == expected
    assert shown.accepted == 2 and shown.duplicate == 2  # the worked example's e01, and up-1 again
    assert len(shown.errors) == shown.rejected >= 4
    assert ("Event" if shape == "array" else "Line") + "</th>" in response.text
    # The source names how it came, when, who sent it, a few random digits and the file's name.
    extension = "jsonl" if shape == "ndjson" else "json"
    assert re.fullmatch(rf"upload:\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ:admin:[0-9a-f]{{8}}:good-and-bad\.{extension}",
                        shown.source), shown.source


def test_a_user_of_some_brands_may_upload_only_their_events_as_through_the_api(sites: Sites) -> None:
    body = ndjson([event("acme-1", "customer_message", 10, "acme-c", brand="acme", text="Hello"),
                   event("acme-2", "customer_message", 11, "other-c", brand="globex", text="Hello"),
                   event("acme-3", "customer_message", 12, "default-c", text="Hello")])  # brand default
    with sites.browser("acme-admin") as client:
        response = upload(client, body, filename="brands.jsonl")
        assert response.status_code == 200, response.text[:2000]
        shown = page_answer(response.text)
        expected = api_view(sites.api_answer("acme-admin", body, "application/x-ndjson"))
        assert (shown.accepted, shown.duplicate, shown.rejected, shown.errors) == expected
        assert shown.accepted == 1 and sorted(shown.errors) == [1, 2]
        assert "'globex' is not one of yours" in shown.errors[1]
        # Their history counts only what is theirs: the refused events belong to no brand.
        mine = history_row(client, shown.source)
    assert (mine["accepted"], mine["duplicate"], mine["rejected"]) == (1, 0, 0)
    with sites.browser("admin") as client:
        every = history_row(client, shown.source)
    assert (every["accepted"], every["duplicate"], every["rejected"]) == (1, 0, 2)


def history_row(client: httpx.Client, source: str) -> dict[str, Any]:
    """The ingest history's row of `source`: its counts, times and data-quality link."""
    page = client.get("/events/history")
    assert page.status_code == 200, page.text[:2000]
    rows = re.findall(r'<tr data-source="([^"]*)">(.*?)</tr>', page.text, re.S)
    found = {html.unescape(name): cells for name, cells in rows}
    assert source in found, f"{source} is not in the history: {list(found)[:10]}"
    cells = found[source]
    row: dict[str, Any] = {key: int(re.search(rf'data-figure="{key}">([\d,]+)<', cells).group(1).replace(",", ""))  # type: ignore[union-attr]
                           for key in ("accepted", "duplicate", "rejected")}
    row["times"] = re.findall(r'<time datetime="([^"]+)">', cells)
    row["link"] = html.unescape(re.search(r'<a href="([^"]+)" class="quality">', cells).group(1))  # type: ignore[union-attr]
    row["order"] = [html.unescape(name) for name, _ in rows]
    return row


def test_the_history_lists_an_upload_first_and_links_to_its_problems(sites: Sites) -> None:
    body = ndjson([event("hist-1", "customer_message", 20, "hist-c", text="Hi"),
                   event("hist-2", "telepathy", 21, "hist-c"),
                   event("hist-1", "customer_message", 20, "hist-c", text="Hi")])
    with sites.browser("admin") as client:
        shown = page_answer(upload(client, body, filename="history.jsonl").text)
        sites.api_answer("admin", body, "application/x-ndjson")
        row = history_row(client, shown.source)
        assert row["order"][0] == shown.source, "the newest source comes first"
        assert (row["accepted"], row["duplicate"], row["rejected"]) == (shown.accepted, shown.duplicate,
                                                                       shown.rejected) == (1, 1, 1)
        assert len(row["times"]) == 2 and row["times"][0] <= row["times"][1]
        quality = client.get(row["link"])
        assert quality.status_code == 200, quality.text[:2000]
        assert 'data-count="2"' in quality.text  # the reject and the duplicate of this upload, nothing else
        api = client.get("/api/v1/reports/data-quality", params={"where": f"source={shown.source}"})
    assert api.status_code == 200, api.text
    problems = csv_dicts(api.text)
    assert sorted((r["Kind"], r["Event ID"], r["Source"]) for r in problems) == [
        ("duplicate", "hist-1", f"{shown.source}:3"), ("rejected", "hist-2", f"{shown.source}:2")]


def test_an_analyst_may_neither_upload_nor_read_the_history(sites: Sites) -> None:
    with sites.browser("ana") as client:
        home = client.get("/", follow_redirects=True)
        assert 'href="/events/upload"' not in home.text
        assert client.get("/events/upload").status_code == 403
        assert client.get("/events/history").status_code == 403
        token = csrf_of(home.text)
        refused = upload(client, ndjson([event("ana-1", "customer_message", 30, "ana-c")]), filename="ana.jsonl",
                         csrf=token)
        assert refused.status_code == 403
    with sites.browser("admin") as client:
        assert 'href="/events/upload"' in client.get("/", follow_redirects=True).text
        assert all(":ana:" not in name for name in history_row_names(client))


def history_row_names(client: httpx.Client) -> list[str]:
    page = client.get("/events/history")
    assert page.status_code == 200
    return [html.unescape(name) for name in re.findall(r'<tr data-source="([^"]*)">', page.text)]


@pytest.mark.parametrize("csrf", [None, "not-the-token"])
def test_an_upload_without_the_login_s_csrf_token_is_refused(sites: Sites, csrf: str | None) -> None:
    with sites.browser("admin") as client:
        refused = upload(client, ndjson([event("csrf-1", "customer_message", 40, "csrf-c")]), filename="csrf.jsonl",
                         csrf=csrf)
        assert refused.status_code == 403
        assert "reload the page" in refused.text
        assert all(not name.endswith(":csrf.jsonl") for name in history_row_names(client))


def test_a_batch_over_the_api_s_limits_gets_one_line_saying_what_to_do(sites: Sites) -> None:
    many = "".join(json.dumps(event(f"many-{i}", "customer_message", 50, f"many-{i}")) + "\n"
                   for i in range(10_001)).encode()
    with sites.browser("admin") as client:
        response = upload(client, many, filename="too-many.jsonl")
        assert response.status_code == 413, response.text[:2000]
        line = error_line(response.text)
        assert line == ("The file holds 10,001 events; send at most 10,000 per upload; split the file, or store it "
                        "with 'convoscope ingest FILE', which takes any size.")
        large = upload(client, b"[" + b" " * 50_000_000 + b"]", filename="too-large.json",
                       content_type="application/json")
        assert large.status_code == 413, large.text[:2000]
        assert "the file is over 50,000,000 bytes; upload at most that at a time; split the file" in \
            html.unescape(large.text)
        assert all(not name.endswith((":too-many.jsonl", ":too-large.json")) for name in history_row_names(client))


@pytest.mark.parametrize(("body", "said"), [
    (b"", "The file holds no events"),
    (b"\n \n", "The file holds no events"),
    (b'[{"event_id": ', "The file is not a JSON array"),
])
def test_a_file_that_is_no_batch_is_told_on_the_page(sites: Sites, body: bytes, said: str) -> None:
    with sites.browser("admin") as client:
        response = upload(client, body, filename="broken.json")
    assert response.status_code == 400, response.text[:2000]
    assert error_line(response.text).startswith(said)


def test_the_uploads_left_no_trace_of_a_server_error(sites: Sites) -> None:
    """Nothing the tests above sent made either server log an exception."""
    for site in (sites.page, sites.api):
        assert "Traceback" not in site.server.output(), site.server.output()[-3000:]
