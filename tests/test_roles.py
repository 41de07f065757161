"""Who may see what (SPEC 6.2, 6.4), through a real `convoscope serve`: every page and API endpoint for
each role and without credentials, tokens (Bearer and HTTP Basic), the web login with its CSRF tokens,
and a user limited to one brand of a two-brand store.

One server per module over one store: brand `acme` (generated) and brand `default` (the worked example).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from cli_helpers import AS_OF, WORKED_EXAMPLE, Convoscope
from convoscope import reports
from web_helpers import (
    PASSWORD,
    WORKED_CONTACT,
    WORKED_CONVERSATION,
    WORKED_SESSION_2,
    LiveServer,
    add_user,
    bearer,
    cli_ok,
    csrf_of,
    csv_dicts,
    generate_brand,
    ingest_worked_example,
    log_in,
    serving,
)

REPORTS, WITH_MESSAGES, CONVERSATIONS, SEND_EVENTS, ADMINISTER = (
    "reports", "reports_with_messages", "conversations", "send_events", "administer")
# SPEC 6.4, written out from the table.
ALLOWED = {
    REPORTS: {"administrator", "team_manager", "analyst"},
    WITH_MESSAGES: {"administrator", "team_manager", "analyst"},
    CONVERSATIONS: {"administrator", "team_manager", "analyst", "agent"},
    SEND_EVENTS: {"administrator"},
    ADMINISTER: {"administrator"},
    "schedule": {"administrator", "team_manager"},  # issue 29: scheduling reports (decision 156)
    None: {"administrator", "team_manager", "analyst", "agent"},  # any logged-in user
}
WHO = ("nobody", "administrator", "team_manager", "analyst", "agent")
WORKED_DAY = {"from": "2026-05-21", "to": "2026-05-21", "as_of": AS_OF}
ONE_EVENT = WORKED_EXAMPLE.read_text().splitlines()[0]  # already stored: a duplicate, changes nothing


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    permission: str | None
    body: str | None = None

    def send(self, client: httpx.Client, headers: dict[str, str] | None = None, **kwargs: object) -> httpx.Response:
        extra = {"Content-Type": "application/json"} if self.body is not None else {}
        return client.request(self.method, self.path, content=self.body, headers={**extra, **(headers or {})},
                              follow_redirects=False, **kwargs)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.method} {self.path.split('?')[0]}"


PAGES = [
    Call("GET", "/", None),
    Call("GET", "/dashboard", REPORTS),
    Call("GET", "/reports", REPORTS),
    Call("GET", "/reports/sessions-summary", REPORTS),
    Call("GET", "/reports/sessions-detail-with-messages", WITH_MESSAGES),
    Call("GET", f"/conversations/{WORKED_CONVERSATION}", CONVERSATIONS),
    Call("GET", "/audit", ADMINISTER),
    Call("GET", "/users", ADMINISTER),
    Call("GET", "/events/upload", SEND_EVENTS),
    Call("GET", "/events/history", ADMINISTER),
    Call("GET", "/schedules", "schedule"),
]
ENDPOINTS = [
    Call("POST", "/api/v1/events", SEND_EVENTS, body="[" + ONE_EVENT + "]"),
    Call("POST", "/api/v1/reports", REPORTS,
         body=json.dumps({"metricSet": "sessions-detail", "startAt": "2026-05-21", "endAt": "2026-05-21"})),
    Call("GET", "/api/v1/reports/sessions-detail?from=2026-05-21&to=2026-05-21", REPORTS),
    Call("GET", "/api/v1/reports/sessions-detail-with-messages?from=2026-05-21&to=2026-05-21", WITH_MESSAGES),
    Call("GET", f"/api/v1/sessions/{WORKED_SESSION_2}", CONVERSATIONS),
    Call("GET", f"/api/v1/contacts/{WORKED_CONTACT}", CONVERSATIONS),
    Call("GET", f"/api/v1/conversations/{WORKED_CONVERSATION}", CONVERSATIONS),
]
# Every report of `reports.REPORTS` not named above (issue 26's among them): its page and its GET API, under
# the permission SPEC 6.4 gives reports with or without messages.
PAGES += [Call("GET", f"/reports/{name}", WITH_MESSAGES if report.personal_data else REPORTS)
          for name, report in reports.REPORTS.items() if f"/reports/{name}" not in {p.path for p in PAGES}]
ENDPOINTS += [Call("GET", f"/api/v1/reports/{name}?from=2026-05-21&to=2026-05-21",
                   WITH_MESSAGES if report.personal_data else REPORTS)
              for name, report in reports.REPORTS.items()
              if not any(e.path.startswith(f"/api/v1/reports/{name}?") for e in ENDPOINTS)]


@dataclass
class Site:
    store: Convoscope
    server: LiveServer
    tokens: dict[str, str]  # user name -> API token; the four role users are named after their role
    acme_conversation: str
    acme_conversations: set[str]

    def client(self) -> httpx.Client:
        return self.server.client()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    store = Convoscope(tmp_path_factory.mktemp("roles"))
    generate_brand(store, brand="acme")
    ingest_worked_example(store)
    tokens = {role: add_user(store, role, role) for role in ("administrator", "team_manager", "analyst", "agent")}
    tokens["acme-analyst"] = add_user(store, "acme-analyst", "analyst", brands="acme")
    tokens["acme-admin"] = add_user(store, "acme-admin", "administrator", brands="acme")
    conversations = csv_dicts(cli_ok(store, "report", "conversation-export", "--brand", "acme"))
    assert conversations
    with serving(store) as server:
        yield Site(store, server, tokens, conversations[0]["Conversation ID"],
                   {row["Conversation ID"] for row in conversations})


def expected_status(who: str, call: Call) -> int:
    if who == "nobody":
        return 401
    return 200 if who in ALLOWED[call.permission] else 403


def allowed(response: httpx.Response) -> bool:
    """200, or a redirect to somewhere other than the login form (GET / sends report roles onward)."""
    if response.status_code == 303:
        return not response.headers.get("location", "").startswith("/login")
    return response.status_code == 200


def as_seen(response: httpx.Response) -> int:
    return 200 if allowed(response) else response.status_code


# --- the matrix ----------------------------------------------------------------------------------------

def answer_of(site: Site, call: Call, who: str) -> tuple[httpx.Response, int]:
    """`call` made with `who`'s token (none for nobody), and the status SPEC 6.4 expects."""
    with site.client() as client:
        response = call.send(client, bearer(site.tokens[who]) if who != "nobody" else None)
    return response, expected_status(who, call)


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("page", PAGES, ids=str)
def test_pages_answer_each_role_as_spec_6_4_says(site: Site, page: Call, who: str) -> None:
    response, expected = answer_of(site, page, who)
    assert as_seen(response) == expected, (str(page), who, response.status_code, response.text[:300])
    if expected == 401:
        assert 'name="password"' in response.text, "a page answered 401 without the login form"
    if expected == 403:
        assert "text/html" in response.headers["content-type"]


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_api_answers_each_role_as_spec_6_4_says(site: Site, endpoint: Call, who: str) -> None:
    response, expected = answer_of(site, endpoint, who)
    assert response.status_code == expected, (str(endpoint), who, response.status_code, response.text[:300])
    if expected != 200:
        errors = response.json()["errors"]
        assert errors and errors[0]["code"] and errors[0]["detail"]
    if expected == 401:
        assert "www-authenticate" in response.headers


def test_a_role_without_send_events_stores_nothing(site: Site) -> None:
    event = {"event_id": "roles-forbidden-1", "type": "customer_message", "occurred_at": "2026-05-21T09:00:00Z",
             "customer_id": "roles-forbidden", "channel": "chat", "text": "hello"}
    with site.client() as client:
        for who in ("team_manager", "analyst", "agent"):
            response = client.post("/api/v1/events", json=[event], headers=bearer(site.tokens[who]))
            assert response.status_code == 403
        rows = client.get("/api/v1/reports/sessions-detail", params=WORKED_DAY,
                          headers=bearer(site.tokens["administrator"]))
    assert rows.status_code == 200
    assert "roles-forbidden" not in rows.text


# --- tokens: Bearer and HTTP Basic ------------------------------------------------------------------------

REPORT_CALL = "/api/v1/reports/sessions-detail?from=2026-05-21&to=2026-05-21"


def test_http_basic_with_user_name_and_token_is_accepted(site: Site) -> None:
    with site.client() as client:
        response = client.get(REPORT_CALL, auth=("analyst", site.tokens["analyst"]))
        by_bearer = client.get(REPORT_CALL, headers=bearer(site.tokens["analyst"]))
    assert response.status_code == 200
    assert response.content == by_bearer.content


@pytest.mark.parametrize(("name", "secret"), [
    ("agent", "analyst"),  # someone else's name with the analyst's token
    ("nobody-by-that-name", "analyst"),
    ("analyst", None),  # the password is not a token
], ids=["other-users-name", "unknown-name", "password-instead-of-token"])
def test_http_basic_with_the_wrong_name_or_secret_is_401(site: Site, name: str, secret: str | None) -> None:
    with site.client() as client:
        response = client.get(REPORT_CALL, auth=(name, site.tokens[secret] if secret else PASSWORD))
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"]


@pytest.mark.parametrize("authorization", [
    "Bearer cvs_not-a-token",
    "Basic !!!not-base64!!!",
    "Basic " + "YW5hbHlzdA==",  # base64 of "analyst": no colon, no token
    "Token abc",
    "Bearer",
], ids=["unknown-token", "bad-base64", "basic-without-colon", "other-scheme", "empty-bearer"])
def test_malformed_or_unknown_credentials_are_401(site: Site, authorization: str) -> None:
    with site.client() as client:
        response = client.get(REPORT_CALL, headers={"Authorization": authorization})
    assert response.status_code == 401, response.text
    assert response.json()["errors"][0]["detail"]


@pytest.mark.parametrize(("method", "path", "shape"), [
    ("post", "/api/v1/reports", {"json": {"metricSet": "sessions-detail", "filters": {"agent": "x"}}}),
    ("post", "/api/v1/reports", {"content": b"not json", "headers": {"Content-Type": "application/json"}}),
    ("get", "/api/v1/reports/sessions-detail", {"params": {"headers": "camel"}}),
], ids=["unknown-filter", "not-json", "bad-query-value"])
def test_a_malformed_request_is_refused_as_a_well_formed_one_would_be(
    site: Site, method: str, path: str, shape: dict[str, Any]
) -> None:
    """The framework checks a request's shape before the endpoint checks the caller; what is wrong with
    it is told only to a caller who may make it (SPEC 6.2: 401 without credentials, 403 without the
    permission)."""
    with site.client() as client:
        anonymous = client.request(method.upper(), path, **shape)
        signed = {**shape, "headers": {**shape.get("headers", {}), **bearer(site.tokens["analyst"])}}
        known = client.request(method.upper(), path, **signed)
    with site.client() as client:
        agent = {**shape, "headers": {**shape.get("headers", {}), **bearer(site.tokens["agent"])}}
        unpermitted = client.request(method.upper(), path, **agent)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.json()["errors"][0]["code"] == "not_authenticated"
    assert unpermitted.status_code == 403, unpermitted.text  # an agent may not run reports at all
    assert known.status_code == 400, known.text


def test_an_altered_token_is_401(site: Site) -> None:
    token = site.tokens["analyst"]
    with site.client() as client:
        altered = client.get(REPORT_CALL, headers=bearer(token[:-1] + ("x" if token[-1] != "x" else "y")))
    assert altered.status_code == 401


# --- the web login ---------------------------------------------------------------------------------------------

COMPARED = [
    "/",
    "/dashboard",
    "/audit",
    f"/conversations/{WORKED_CONVERSATION}",
    REPORT_CALL,
    f"/api/v1/conversations/{WORKED_CONVERSATION}",
]


@pytest.mark.parametrize("role", ["analyst", "agent"])
def test_a_form_login_gives_the_same_access_as_the_users_token(site: Site, role: str) -> None:
    with site.client() as browser:
        answer = log_in(browser, role)
        assert answer.status_code == 303, answer.text[:300]
        assert answer.headers["location"] == "/"
        assert browser.cookies, "logging in set no session cookie"
        by_cookie = {path: as_seen(browser.get(path, follow_redirects=False)) for path in COMPARED}
    with site.client() as script:
        by_token = {path: as_seen(script.get(path, headers=bearer(site.tokens[role]), follow_redirects=False))
                    for path in COMPARED}
    assert by_cookie == by_token
    expected = {path: 200 if (role != "agent" or path in ("/", f"/conversations/{WORKED_CONVERSATION}",
                                                          f"/api/v1/conversations/{WORKED_CONVERSATION}"))
                else 403 for path in COMPARED}
    expected["/audit"] = 403
    assert by_cookie == expected


def test_the_login_form_returns_to_the_page_asked_for(site: Site) -> None:
    with site.client() as browser:
        answer = log_in(browser, "agent", next_page=f"/conversations/{WORKED_CONVERSATION}")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/conversations/{WORKED_CONVERSATION}"


def test_a_wrong_password_shows_the_form_again_and_logs_nobody_in(site: Site) -> None:
    with site.client() as browser:
        answer = log_in(browser, "analyst", password="not the password")
        assert answer.status_code == 401
        assert 'name="password"' in answer.text
        assert "wrong password" in answer.text.lower()
        assert browser.get(REPORT_CALL).status_code == 401


def test_a_login_form_without_its_csrf_cookie_is_refused(site: Site) -> None:
    with site.client() as browser:
        token = csrf_of(browser.get("/login").text)
        browser.cookies.clear()  # a form posted from another site carries no login-CSRF cookie
        answer = browser.post("/login", data={"name": "analyst", "password": PASSWORD, "csrf": token or "", "next": "/"},
                              follow_redirects=False)
        assert answer.status_code == 403
        assert browser.get(REPORT_CALL).status_code == 401


def test_a_cookie_session_must_send_the_csrf_token_to_change_anything(site: Site) -> None:
    with site.client() as browser:
        assert log_in(browser, "administrator").status_code == 303
        answer = browser.post("/api/v1/events", content="[" + ONE_EVENT + "]",
                              headers={"Content-Type": "application/json"})
        assert answer.status_code == 403
        assert answer.json()["errors"][0]["code"] == "csrf"
        # reading needs no CSRF token
        assert browser.get(REPORT_CALL).status_code == 200


def test_logging_out_needs_the_csrf_token_and_then_ends_the_session(site: Site) -> None:
    with site.client() as browser:
        assert log_in(browser, "agent").status_code == 303
        home = browser.get("/")
        assert home.status_code == 200
        csrf = csrf_of(home.text)
        assert csrf, "a logged-in page has no log-out form with a csrf token"
        cookie = dict(browser.cookies)

        refused = browser.post("/logout", data={}, follow_redirects=False)
        assert refused.status_code == 403
        assert browser.get("/").status_code == 200, "a log-out without the CSRF token ended the session"

        done = browser.post("/logout", data={"csrf": csrf}, follow_redirects=False)
        assert done.status_code == 303
        assert done.headers["location"] == "/login"
        assert browser.get("/", follow_redirects=False).status_code == 401
    with site.client() as replay:  # the old cookie, sent again, no longer works
        for name, value in cookie.items():
            replay.cookies.set(name, value)
        assert replay.get("/", follow_redirects=False).status_code == 401
        assert replay.get(f"/api/v1/conversations/{WORKED_CONVERSATION}").status_code == 401


def test_a_stale_login_form_from_a_second_tab_logs_nobody_in_and_is_not_a_dead_end(site: Site) -> None:
    """Two tabs opened on the login page each draw a CSRF token; the cookie holds the last one."""
    target = f"/conversations/{WORKED_CONVERSATION}"
    with site.client() as browser:
        first = csrf_of(browser.get(target).text)
        second = csrf_of(browser.get(target).text)
        assert first and second and first != second
        form = {"name": "analyst", "password": PASSWORD, "next": target}
        stale = browser.post("/login", data={**form, "csrf": first}, follow_redirects=False)
        assert stale.status_code == 403
        assert "log in again" in stale.text and 'name="password"' in stale.text
        assert f'value="{target}"' in stale.text, "the page asked for was forgotten"
        assert browser.get(REPORT_CALL).status_code == 401
        # the fresh form works; then the other tab's stale form just goes on to its page, logged in
        assert browser.post("/login", data={**form, "csrf": csrf_of(stale.text)},
                            follow_redirects=False).headers["location"] == target
        again = browser.post("/login", data={**form, "csrf": second}, follow_redirects=False)
        assert (again.status_code, again.headers["location"]) == (303, target)


def test_pages_and_answers_are_not_kept_by_the_browser_cache(site: Site) -> None:
    """After logging out, the back button must not show a conversation again from the cache (SPEC 6.5)."""
    with site.client() as browser:
        log_in(browser, "analyst")
        for path in ("/reports", f"/conversations/{WORKED_CONVERSATION}", REPORT_CALL, "/reports/sessions-detail",
                     f"/api/v1/conversations/{WORKED_CONVERSATION}"):
            answer = browser.get(path)
            assert answer.status_code == 200, path
            assert answer.headers.get("cache-control") == "no-store", path
        assert "no-store" not in browser.get("/static/app.css").headers.get("cache-control", "")


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/no/such/page", 404), ("GET", "/reports/sessions-detail/extra", 404),
    ("GET", "/conversations/a/b", 404), ("GET", "/logout", 405)])
def test_an_unknown_page_is_the_apps_error_page_not_json(site: Site, method: str, path: str, status: int) -> None:
    with site.client() as browser:
        log_in(browser, "agent")
        answer = browser.request(method, path)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/html")
    assert ("Not found" if status == 404 else "does not answer a GET request") in answer.text
    assert 'action="/logout"' in answer.text, "the error page lost the app's navigation"


@pytest.mark.parametrize(("zone", "first_message"), [
    ("America/New_York", "2026-05-21 06:00:00 -04:00"), ("Asia/Kolkata", "2026-05-21 15:30:00 +05:30"),
    ("UTC", "2026-05-21 10:00:00 +00:00")])
def test_the_timeline_gives_every_time_with_its_utc_offset(site: Site, zone: str, first_message: str) -> None:
    """A local time alone is ambiguous in the hour the clocks go back, and hides the hour they skip."""
    with site.client() as browser:
        log_in(browser, "agent")
        page = browser.get(f"/conversations/{WORKED_CONVERSATION}", params={"tz": zone}).text
    times = re.findall(r"<time[^>]*>([^<]+)</time>", page)
    assert first_message in times
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d", t) for t in times), times


@pytest.mark.parametrize("typed", [
    WORKED_CONVERSATION, f"  {WORKED_CONVERSATION} ", WORKED_SESSION_2, WORKED_CONTACT, "c1",
    f"http://localhost:8000/conversations/{WORKED_CONVERSATION}?tz=UTC", f"/conversations/{WORKED_CONVERSATION}"])
def test_an_agent_opens_a_conversation_by_any_of_its_ids_or_a_pasted_link(site: Site, typed: str) -> None:
    """Agents run no reports: what they have is a customer's, session's or contact's id, or a link."""
    with site.client() as browser:
        log_in(browser, "agent")
        answer = browser.get("/conversations", params={"id": typed}, follow_redirects=False)
    assert (answer.status_code, answer.headers.get("location")) == (303, f"/conversations/{WORKED_CONVERSATION}")


def test_a_customer_of_several_conversations_gets_a_list_and_nothing_else_gets_a_404(site: Site) -> None:
    rows = csv_dicts(site.server.client().get("/api/v1/reports/conversation-export", params={"brand": "acme"},
                                              headers=bearer(site.tokens["analyst"])).text)
    by_customer: dict[str, list[str]] = {}
    for row in rows:
        by_customer.setdefault(row["Customer ID"], []).append(row["Conversation ID"])
    customer, conversations = max(by_customer.items(), key=lambda item: len(item[1]))
    assert len(conversations) > 1, "the generated brand should have a customer who came back"
    with site.client() as browser:
        log_in(browser, "agent")
        listed = browser.get("/conversations", params={"id": customer})
        assert listed.status_code == 200
        assert set(re.findall(r'href="/conversations/(cnv_[0-9a-f]+)"', listed.text)) == set(conversations)
        missing = browser.get("/conversations", params={"id": "CNV_NOPE"})
        assert missing.status_code == 404
        assert "No conversation, session, contact or customer" in missing.text
    with site.client() as browser:  # a user limited to acme does not find the default brand's customer
        log_in(browser, "acme-analyst")
        assert browser.get("/conversations", params={"id": "c1"}).status_code == 404
        assert browser.get("/conversations", params={"id": WORKED_SESSION_2}).status_code == 404


# --- a user limited to one brand --------------------------------------------------------------------------

def limited(site: Site) -> dict[str, str]:
    return bearer(site.tokens["acme-analyst"])


@pytest.mark.parametrize("name", ["sessions-detail", "sessions-detail-with-messages", "contact-export",
                                  "conversation-export"])
def test_a_brand_limited_user_gets_only_their_brand_in_csv_and_json(site: Site, name: str) -> None:
    params = {"as_of": AS_OF, **({"extra": "true"} if name.startswith("sessions") else {})}
    with site.client() as client:
        as_csv = client.get(f"/api/v1/reports/{name}", params=params, headers=limited(site))
        as_json = client.get(f"/api/v1/reports/{name}", params=params,
                             headers={**limited(site), "Accept": "application/json"})
        everyone = client.get(f"/api/v1/reports/{name}", params=params, headers=bearer(site.tokens["analyst"]))
    assert as_csv.status_code == as_json.status_code == everyone.status_code == 200
    rows = csv_dicts(as_csv.text)
    assert rows, "the limited user sees none of their own brand"
    assert {row["Brand"] for row in rows} == {"acme"}
    assert {row["Brand"] for row in as_json.json()["rows"]} == {"acme"}
    assert not {row["Customer ID"] for row in rows} & {"c1"}
    assert "default" in {row["Brand"] for row in csv_dicts(everyone.text)}  # the other brand is there to hide


@pytest.mark.parametrize("metric_set", ["ConversationExportReport", "GladlyAISessionsDetailReport"])
def test_a_brand_limited_user_gets_only_their_brand_through_post(site: Site, metric_set: str) -> None:
    body = {"metricSet": metric_set, "startAt": "2000-01-01", "endAt": "2099-12-31"}  # Gladly requires a range
    with site.client() as client:
        mine = client.post("/api/v1/reports", json=body, headers=limited(site))
        everyone = client.post("/api/v1/reports", json=body, headers=bearer(site.tokens["analyst"]))
    assert mine.status_code == everyone.status_code == 200
    rows = csv_dicts(mine.text)
    assert rows
    assert {row["Conversation ID"] for row in rows} <= site.acme_conversations
    assert "c1" not in {row["Customer ID"] for row in rows}
    assert "c1" in {row["Customer ID"] for row in csv_dicts(everyone.text)}


@pytest.mark.parametrize("name", ["sessions-summary", "contact-summary", "conversation-summary"])
def test_a_brand_limited_users_summary_is_the_cli_report_of_their_brand(site: Site, name: str) -> None:
    with site.client() as client:
        mine = client.get(f"/api/v1/reports/{name}", params={"as_of": AS_OF}, headers=limited(site))
    assert mine.status_code == 200
    result = site.store("report", name, "--brand", "acme", "--as-of", AS_OF)
    assert result.exit_code == 0, result.stderr
    assert mine.content == result.stdout_bytes
    assert "2026-05-21" not in mine.text  # the day of the other brand's worked example


@pytest.mark.parametrize(("report", "key", "column"), [
    ("sessions-detail", "ai_agent", "Gladly Agent"), ("sessions-detail", "handoff_category", "Handoff Category"),
    ("contact-export", "agent", "Agents"), ("contact-export", "channel", "Channel")])
def test_free_text_filters_suggest_the_values_of_the_users_brands(site: Site, report: str, key: str, column: str) -> None:
    """A typo in a filter gives '0 rows'; the field offers the values the user's brands hold instead."""
    with site.client() as browser:
        log_in(browser, "acme-analyst")
        page = browser.get(f"/reports/{report}").text
    found = re.search(rf'<datalist id="values-{key}">(.*?)</datalist>', page, re.S)
    assert found, f"no suggestions for {key}"
    offered = re.findall(r'<option value="([^"]*)">', found.group(1))
    rows = csv_dicts(site.server.client().get(f"/api/v1/reports/{report}", params={"brand": "acme"},
                                              headers=limited(site)).text)
    held = {value for row in rows for value in (row[column].split(", ") if key == "agent" else [row[column]]) if value}
    assert set(offered) == held
    assert offered == sorted(offered)


def test_a_brand_limited_user_naming_another_brand_gets_400(site: Site) -> None:
    with site.client() as client:
        by_get = client.get("/api/v1/reports/sessions-detail", params={"brand": "default"}, headers=limited(site))
        by_post = client.post("/api/v1/reports", json={"metricSet": "sessions-detail", "filters": {"brand": "default"}},
                              headers=limited(site))
        by_post_list = client.post("/api/v1/reports", json={"metricSet": "sessions-detail",
                                                            "filters": {"brand": ["acme", "default"]}},
                                   headers=limited(site))
        unknown = client.get("/api/v1/reports/sessions-detail", params={"brand": "nosuchbrand"},
                             headers=limited(site))
        own = client.post("/api/v1/reports", json={"metricSet": "sessions-detail", "filters": {"brand": "acme"}},
                          headers=limited(site))
    for response, attr in ((by_get, "brand"), (by_post, "filters.brand"), (by_post_list, "filters.brand")):
        assert response.status_code == 400, response.text
        error = response.json()["errors"][0]
        assert error["attr"] == attr  # as the request named it
        assert "default" in error["detail"]
    # the answer does not tell a brand that exists from one that does not
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["detail"].replace("nosuchbrand", "default") == \
        by_get.json()["errors"][0]["detail"]
    assert own.status_code == 200


def test_a_brand_limited_user_cannot_open_the_other_brands_entities(site: Site) -> None:
    with site.client() as client:
        for path in (f"/api/v1/conversations/{WORKED_CONVERSATION}", f"/api/v1/sessions/{WORKED_SESSION_2}",
                     f"/api/v1/contacts/{WORKED_CONTACT}"):
            hidden = client.get(path, headers=limited(site))
            assert hidden.status_code == 404, path
            assert "c1" not in hidden.text and "refund" not in hidden.text.lower()
            assert client.get(path, headers=bearer(site.tokens["analyst"])).status_code == 200
        own = client.get(f"/api/v1/conversations/{site.acme_conversation}", headers=limited(site))
        assert own.status_code == 200
        assert own.json()["brand"] == "acme"
        assert client.get(f"/conversations/{WORKED_CONVERSATION}", headers=limited(site)).status_code == 404
        assert client.get(f"/conversations/{site.acme_conversation}", headers=limited(site)).status_code == 200


def test_a_brand_limited_administrator_cannot_send_the_other_brands_events(site: Site) -> None:
    ours = {"event_id": "roles-acme-1", "type": "customer_message", "occurred_at": "2026-05-21T09:00:00Z",
            "customer_id": "roles-acme-customer", "brand": "acme", "channel": "chat", "text": "hello"}
    theirs = {**ours, "event_id": "roles-default-1", "customer_id": "roles-default-customer", "brand": "default"}
    with site.client() as client:
        answer = client.post("/api/v1/events", json=[ours, theirs], headers=bearer(site.tokens["acme-admin"]))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["accepted"], body["rejected"]) == (1, 1)
        assert [e["index"] for e in body["errors"]] == [1]
        assert "default" in body["errors"][0]["reason"]
        seen = client.get("/api/v1/reports/sessions-detail", params=WORKED_DAY,
                          headers=bearer(site.tokens["administrator"]))
    customers = {row["Customer ID"] for row in csv_dicts(seen.text)}
    assert "roles-acme-customer" in customers
    assert "roles-default-customer" not in customers
    kept = [r for r in csv_dicts(cli_ok(site.store, "rejects")) if "roles-default-1" in r["raw"]]
    assert len(kept) == 1, kept  # rejected, and kept like any reject (SPEC 2.4), under no brand
    assert kept[0]["line"] == "2" and "default" in kept[0]["reason"]
    assert json.loads(kept[0]["raw"]) == theirs


def test_a_line_a_brand_limited_sender_sent_that_cannot_be_checked_is_kept(site: Site) -> None:
    """Broken JSON, or a brand written twice, cannot be checked against the sender's brands: refused, and
    kept with its reason and raw text like every reject (SPEC 2.4), under no brand."""
    body = '{"event_id": "roles-broken-1", "brand": "acme",\n'
    with site.client() as client:
        answer = client.post("/api/v1/events", content=body.encode(), headers={
            **bearer(site.tokens["acme-admin"]), "Content-Type": "application/x-ndjson"})
    assert answer.status_code == 200, answer.text
    assert (answer.json()["rejected"], [e["index"] for e in answer.json()["errors"]]) == (1, [0])
    kept = [r for r in csv_dicts(cli_ok(site.store, "rejects")) if "roles-broken-1" in r["raw"]]
    assert [(r["kind"], r["line"], r["raw"]) for r in kept] == [("rejected", "1", body.strip())]
    assert "acme" in kept[0]["reason"]  # what to do: send valid JSON of acme


def test_a_brand_limited_administrator_reads_only_the_audit_entries_and_users_of_their_brands(site: Site) -> None:
    """The audit log and the users cover every brand; an administrator limited to acme sees what
    concerns acme alone (SPEC 6.4, 6.5), while an administrator of every brand sees all of it."""
    everyone = bearer(site.tokens["analyst"])
    with site.client() as client:
        for conversation in (WORKED_CONVERSATION, site.acme_conversation):
            assert client.get(f"/conversations/{conversation}", headers=everyone).status_code == 200
        for brand in ("default", "acme"):
            assert client.get("/api/v1/reports/sessions-detail-with-messages", headers=everyone,
                              params={**WORKED_DAY, "brand": brand}).status_code == 200
        assert client.get("/api/v1/reports/sessions-detail-with-messages", headers=everyone,
                          params=WORKED_DAY).status_code == 200  # every brand at once
        limited_audit = client.get("/audit", headers=bearer(site.tokens["acme-admin"])).text
        full_audit = client.get("/audit", headers=bearer(site.tokens["administrator"])).text
        limited_users = client.get("/users", headers=bearer(site.tokens["acme-admin"])).text
        full_users = client.get("/users", headers=bearer(site.tokens["administrator"])).text
    assert site.acme_conversation in limited_audit and site.acme_conversation in full_audit
    assert WORKED_CONVERSATION not in limited_audit and WORKED_CONVERSATION in full_audit
    assert "&#34;default&#34;" not in limited_audit and "&#34;default&#34;" in full_audit  # the brand parameter
    downloads = re.findall(r'<tr data-action="download">(.*?)</tr>', limited_audit, re.S)
    by_analyst = [row for row in downloads if "<td>analyst</td>" in row]
    assert by_analyst and all("&#34;acme&#34;" in row for row in by_analyst)  # not default's, not every brand's
    assert not any("&#34;default&#34;" in row for row in downloads)
    assert len(re.findall(r'<tr data-action="download">', full_audit)) >= len(downloads) + 2
    assert set(re.findall(r'data-user="([^"]+)"', limited_users)) == {"acme-analyst", "acme-admin"}
    assert {"analyst", "administrator", "acme-admin"} <= set(re.findall(r'data-user="([^"]+)"', full_users))
