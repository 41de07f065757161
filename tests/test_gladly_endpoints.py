"""Gladly's endpoints beyond reports, over a real server (issue 25 point 3): what Gladly's connectors call to test
a connection — `GET /api/v1/organization`, `/api/v1/agents`, `/api/v1/customer-profiles/{id}` — answered from
the log, checked against what its events say, under the conversation pages' roles and scoped to the caller's
brands; and everything convoscope does not have answered 404 with the `errors` body naming it and listing what
the API answers, never 405 (decision 95, 96).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from cli_helpers import WORKED_EXAMPLE, Convoscope, ev
from convoscope import accounts
from web_helpers import (
    ROLES,
    WORKED_CONVERSATION,
    LiveServer,
    add_user,
    bearer,
    csv_dicts,
    ingest_worked_example,
    serving,
)

NAME = "Acme & Co. support"
# A second brand where the worked example's customer id comes again, with a team member named by e-mail, and a
# customer of the first brand only.
ACME = [
    ev("a1", "customer_message", "2026-05-22T09:00:00Z", brand="acme", channel="email", route="team"),
    ev("a2", "agent_message", "2026-05-22T09:05:00Z", brand="acme", channel="email", agent="lee@acme.example"),
    ev("a3", "contact_end", "2026-05-22T09:10:00Z", brand="acme", agent="lee@acme.example"),
]
ONLY_DEFAULT = [ev("d1", "customer_message", "2026-05-23T08:00:00Z", customer="d2")]


@dataclass
class Site:
    store: Convoscope
    server: LiveServer
    tokens: dict[str, str]  # user name → API token; the role users are named after their role

    def get(self, path: str, who: str | None = "analyst", **kwargs: Any) -> httpx.Response:
        with self.server.client() as client:
            return client.get(path, headers=bearer(self.tokens[who]) if who else {}, **kwargs)

    def call(self, method: str, path: str, body: bytes | None = None) -> httpx.Response:
        """The analyst's request; a body is sent as JSON, as Gladly's clients send theirs."""
        headers = bearer(self.tokens["analyst"]) | ({"Content-Type": "application/json"} if body else {})
        with self.server.client() as client:
            return client.request(method, path, headers=headers, content=body)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    store = Convoscope(tmp_path_factory.mktemp("gladly-endpoints"))
    assert store.config is not None
    store.config.write_text(f'[server]\nrate_limit = 0\nname = {json.dumps(NAME)}\n\n'
                            '[brands.acme]\ntimezone = "America/Los_Angeles"\n')
    ingest_worked_example(store)
    store.ingest(ACME + ONLY_DEFAULT, "acme.jsonl")
    tokens = {role: add_user(store, role, role) for role in ROLES}
    tokens["acme-agent"] = add_user(store, "acme-agent", "agent", brands="acme")
    with serving(store) as server:
        yield Site(store, server, tokens)


def worked_events() -> list[dict[str, Any]]:
    return [json.loads(line) for line in WORKED_EXAMPLE.read_text().splitlines() if line.strip()]


def errors_of(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, (answer.status_code, answer.text)
    assert answer.headers["content-type"].startswith("application/json")
    (error,) = answer.json()["errors"]
    assert set(error) == {"attr", "code", "detail"}
    return dict(error)


# --- organization, agents, customer profiles -------------------------------------------------------------

def test_the_organization_is_the_installation_with_its_brands(site: Site) -> None:
    answer = site.get("/api/v1/organization")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": NAME, "name": NAME, "timezone": "UTC", "brands": [
        {"id": "acme", "name": "acme", "timezone": "America/Los_Angeles"},
        {"id": "default", "name": "default", "timezone": "UTC"}]}


def test_the_agents_are_the_team_members_the_events_name(site: Site) -> None:
    named = {e["agent"] for e in worked_events() if "agent" in e}
    assert named == {"sam"}
    answer = site.get("/api/v1/agents")
    assert answer.status_code == 200, answer.text
    assert answer.json() == [
        {"id": "lee@acme.example", "name": "lee@acme.example", "emailAddress": "lee@acme.example", "brands": ["acme"]},
        *({"id": n, "name": n, "emailAddress": None, "brands": ["default"]} for n in sorted(named))]


def test_a_customer_profile_is_what_the_log_knows_of_the_customer(site: Site) -> None:
    events = worked_events()
    times = sorted(e["occurred_at"] for e in events)
    answer = site.get("/api/v1/customer-profiles/c1")
    assert answer.status_code == 200, answer.text
    profile = answer.json()
    # The worked example (SPEC 3.7) in brand default, and three events of the same customer id in acme.
    assert profile["id"] == "c1" and profile["brands"] == ["acme", "default"]
    assert (profile["createdAt"], profile["firstActivityAt"], profile["lastActivityAt"]) == (
        times[0], times[0], "2026-05-22T09:10:00Z")
    reported = {name: csv_dicts(site.get(f"/api/v1/reports/{name}", params={"from": "2026-05-01", "to": "2026-05-31"}).text)
                for name in ("sessions-detail", "contact-export", "conversation-export")}
    counts = {kind: sum(1 for row in reported[name] if row["Customer ID"] == "c1")
              for kind, name in (("sessions", "sessions-detail"), ("contacts", "contact-export"),
                                 ("conversations", "conversation-export"))}
    assert counts == {"sessions": 2, "contacts": 2, "conversations": 2}  # SPEC 3.7's, and acme's contact
    assert profile["counts"] == {"events": len(events) + len(ACME), **counts}


def test_a_customer_no_event_names_is_404_in_the_errors_body(site: Site) -> None:
    error = errors_of(site.get("/api/v1/customer-profiles/nobody"), 404)
    assert (error["attr"], error["code"]) == ("id", "not_found") and "'nobody'" in error["detail"]


def test_a_customer_id_with_a_slash_is_found(site: Site) -> None:
    """Connectors put the id in the path as it is; one with a slash must still name the customer."""
    site.store.ingest([ev("s1", "customer_message", "2026-05-24T08:00:00Z", customer="shop/42")], "slash.jsonl")
    answer = site.get("/api/v1/customer-profiles/shop/42")
    assert answer.status_code == 200, answer.text
    assert (answer.json()["id"], answer.json()["counts"]["events"]) == ("shop/42", 1)


# --- roles and brands --------------------------------------------------------------------------------------

GLADLY_PATHS = ("/api/v1/organization", "/api/v1/agents", "/api/v1/customer-profiles/c1")


@pytest.mark.parametrize("path", GLADLY_PATHS)
@pytest.mark.parametrize("who", [*ROLES, None], ids=[*ROLES, "anonymous"])
def test_the_roles_are_those_of_conversation_pages(site: Site, path: str, who: str | None) -> None:
    """SPEC 6.4: whoever may open a conversation (every role) may ask; nobody without credentials."""
    conversation = site.get(f"/api/v1/conversations/{WORKED_CONVERSATION}", who)
    answer = site.get(path, who)
    assert answer.status_code == conversation.status_code == (401 if who is None else 200), answer.text
    if who is not None:
        assert accounts.CONVERSATIONS in accounts.ROLES[who]


def test_a_bad_token_is_401(site: Site) -> None:
    with site.server.client() as client:
        for path in GLADLY_PATHS:
            assert errors_of(client.get(path, headers=bearer("not-a-token")), 401)["code"] == "bad_credentials"


def test_a_user_of_one_brand_sees_only_that_brand(site: Site) -> None:
    assert [b["id"] for b in site.get("/api/v1/organization", "acme-agent").json()["brands"]] == ["acme"]
    assert [a["id"] for a in site.get("/api/v1/agents", "acme-agent").json()] == ["lee@acme.example"]
    profile = site.get("/api/v1/customer-profiles/c1", "acme-agent").json()
    assert (profile["brands"], profile["counts"]) == (
        ["acme"], {"events": 3, "sessions": 0, "contacts": 1, "conversations": 1})
    assert profile["firstActivityAt"] == "2026-05-22T09:00:00Z"
    # d2 is only in brand default: to this user it does not exist, in the same words as an unknown id.
    assert site.get("/api/v1/customer-profiles/d2").status_code == 200
    hidden = errors_of(site.get("/api/v1/customer-profiles/d2", "acme-agent"), 404)
    unknown = errors_of(site.get("/api/v1/customer-profiles/d3", "acme-agent"), 404)
    assert hidden["detail"].replace("d2", "d3") == unknown["detail"]


def test_the_openapi_document_declares_them_with_their_models(site: Site) -> None:
    document = site.get("/api/v1/openapi.json", None).json()
    schemas = document["components"]["schemas"]
    for path, model in (("/api/v1/organization", "OrganizationOut"), ("/api/v1/agents", "AgentOut"),
                        ("/api/v1/customer-profiles/{customer_id}", "CustomerProfileOut")):
        ok = document["paths"][path]["get"]["responses"]["200"]
        assert model in json.dumps(ok["content"]["application/json"]["schema"]), path
        assert {"Ratelimit-Limit-Second", "Ratelimit-Remaining-Second"} <= set(ok["headers"]), path
        assert "429" in document["paths"][path]["get"]["responses"]
    assert set(schemas["AgentOut"]["properties"]) == {"id", "name", "emailAddress", "brands"}
    # What convoscope answers 404 to is no operation of the document.
    assert not [p for p in document["paths"] if "export" in p or "work-session" in p or p == "/api/v1/teams"]


# --- what convoscope does not have ---------------------------------------------------------------------------

def operations(site: Site) -> list[str]:
    document = site.get("/api/v1/openapi.json", None).json()
    return [f"{method.upper()} {path}" for path, methods in document["paths"].items() for method in methods]


# Gladly's example script's first request, byte for byte (docs of issue 25: research on the three clients).
WORK_SESSIONS = b'{"startAtTime":"2021-09-28T00:00-07:00","endAtTime":"2021-09-29T00:00-07:00"}'


@pytest.mark.parametrize(("method", "path", "body", "words"), [
    ("POST", "/api/v1/reports/work-session-events", WORK_SESSIONS, "no agent work sessions"),
    ("GET", "/api/v1/export/jobs?status=COMPLETED", None, "no export jobs"),
    ("GET", "/api/v1/export/jobs/j1/files/conversation_items.jsonl", None, "no export jobs"),
    ("GET", "/api/v1/export/schedules", None, "no export jobs or schedules"),
    ("GET", "/api/v1/events?startAt=2021-11-09T00:00:00-08:00&entities=CONTACT&entities=AGENT_AVAILABILITY",
     None, "no Events API to read"),
    ("GET", "/api/v1/customer-profiles?email=someone@example.com", None, "cannot search customers"),
    ("GET", f"/api/v1/conversations/{WORKED_CONVERSATION}/items", None, "no conversation items"),
    ("GET", "/api/v1/tasks", None, "no tasks"),
    ("GET", "/api/v1/topics", None, "no topics"),
    ("GET", "/api/v1/answers", None, "no knowledge base"),
    ("GET", "/api/v1/inboxes", None, "no list of inboxes"),
    ("GET", "/api/v1/teams", None, "no teams"),
])
def test_gladly_endpoints_convoscope_lacks_say_so(site: Site, method: str, path: str, body: bytes | None,
                                                  words: str) -> None:
    answer = site.call(method, path, body)
    error = errors_of(answer, 404)
    assert error["code"] == "not_found"
    assert words in error["detail"]
    assert f"{method} {path.split('?')[0]} is not in convoscope's API" in error["detail"]
    assert all(operation in error["detail"] for operation in operations(site))


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/no/such/thing"), ("GET", "/api/v2/reports"),
    # Known paths with another method: FastAPI's 405 before issue 25.
    ("GET", "/api/v1/reports"), ("DELETE", "/api/v1/events"), ("PUT", "/api/v1/organization"),
    ("PATCH", "/api/v1/customer-profiles/c1"), ("POST", f"/api/v1/conversations/{WORKED_CONVERSATION}"),
])
def test_any_other_api_request_that_matches_nothing_is_404_listing_the_api(site: Site, method: str, path: str) -> None:
    error = errors_of(site.call(method, path), 404)
    assert error["code"] == "not_found"
    assert error["detail"].startswith(f"convoscope's API has no {method} {path};"), error["detail"]
    listed = operations(site)
    assert len(listed) >= 10 and all(operation in error["detail"] for operation in listed)
    assert "/api/v1/openapi.json" in error["detail"]


def test_web_pages_keep_their_html_error_pages(site: Site) -> None:
    with site.server.client() as browser:
        for path in ("/no/such/page", "/api-like/but/not"):
            answer = browser.get(path)
            assert answer.status_code == 404 and answer.headers["content-type"].startswith("text/html"), path
