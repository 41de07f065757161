"""Attempts to get around the roles (SPEC 6.2, 6.4, 6.5), through a real `convoscope serve`, each checked
by what the attacker (or the user attacked) would notice: an Agent asking for reports by every route, an
Analyst reaching for user management, expired and revoked tokens, forged and replayed session cookies,
cross-site form posts, guessing passwords, path traversal, and secrets or message texts in the logs.

One server per module over one store: the worked example (SPEC 3.7) and one customer whose messages are
canaries that must never reach the server's output or the audit log. Throttling tests each come from
their own client address (X-Forwarded-For, which uvicorn takes from a proxy on the loopback address), so
that no test's failed logins count against another's.
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import io
import json
import re
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import convoscope
from cli_helpers import AS_OF, Convoscope, ev, make_id
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
    ingest_worked_example,
    log_in,
    serving,
)

# SPEC 4: every report; SPEC 6.2: the aliases POST /api/v1/reports takes, without regard to case.
REPORT_NAMES = ("sessions-detail", "sessions-detail-with-messages", "sessions-summary", "contact-export",
                "contact-summary", "conversation-export", "conversation-summary", "data-quality")
ALIASES = {
    "GladlyAISessionsDetailReport": "sessions-detail",
    "GladlyAISessionsDetailWithMessagesReport": "sessions-detail-with-messages",
    "ContactExportReport": "contact-export",
    "ContactExportReportV3": "contact-export",
    "ContactSummaryReport": "contact-summary",
    "ContactSummaryReportV2": "contact-summary",
    "ConversationExportReport": "conversation-export",
    "ConversationSummaryReport": "conversation-summary",
}
# Messages of one customer, written so that any copy of them anywhere is found.
CANARY = secrets.token_hex(6)
MESSAGES = (f"my card is 4111 1111 1111 1111 canary-customer-{CANARY}", f"noted your card canary-ai-{CANARY}",
            f"thanks, bye canary-customer-2-{CANARY}")
LEAK_CUSTOMER = "leak-check"
LEAK_CONVERSATION = make_id("cnv_", "default", LEAK_CUSTOMER, "lk1")
WORKED_DAY = {"from": "2026-05-21", "to": "2026-05-21", "as_of": AS_OF}
ENTITY_PATHS = (f"/api/v1/conversations/{WORKED_CONVERSATION}", f"/api/v1/sessions/{WORKED_SESSION_2}",
                f"/api/v1/contacts/{WORKED_CONTACT}", f"/conversations/{WORKED_CONVERSATION}")


@dataclass
class Site:
    store: Convoscope
    server: LiveServer
    tokens: dict[str, str]  # user name -> API token

    def client(self, **kwargs: object) -> httpx.Client:
        return self.server.client(**kwargs)

    def cli(self, *args: str, input: str | None = None) -> str:
        return cli_ok(self.store, *args, input=input)

    def add(self, name: str, role: str) -> str:
        self.tokens[name] = add_user(self.store, name, role)
        return self.tokens[name]

    def audit(self) -> list[dict[str, str]]:
        """`convoscope audit`, every entry, newest first."""
        return list(csv.DictReader(io.StringIO(self.cli("audit", "--limit", "1000000"))))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    store = Convoscope(tmp_path_factory.mktemp("attacks"))
    ingest_worked_example(store)
    store.ingest([
        ev("lk1", "customer_message", "2026-05-21T11:00:00Z", LEAK_CUSTOMER, text=MESSAGES[0]),
        ev("lk2", "ai_message", "2026-05-21T11:00:20Z", LEAK_CUSTOMER, text=MESSAGES[1], ai_agent="Care Agent"),
        ev("lk3", "customer_message", "2026-05-21T11:01:00Z", LEAK_CUSTOMER, text=MESSAGES[2]),
    ], name="leak.jsonl")
    (store.dir / "canary.txt").write_text(f"outside the package {CANARY}\n")
    tokens = {role: add_user(store, role, role) for role in ("administrator", "team_manager", "analyst", "agent")}
    with serving(store) as server:
        yield Site(store, server, tokens)


@contextmanager
def browser_of(site: Site, name: str) -> Iterator[httpx.Client]:
    """A client logged in through the form as `name`."""
    with site.client() as browser:
        answer = log_in(browser, name)
        assert answer.status_code == 303, answer.text[:300]
        yield browser


def csrf_on_page(browser: httpx.Client) -> str:
    token = csrf_of(browser.get("/conversations").text)
    assert token, "a logged-in page has no log-out form with its csrf token"
    return token


def problem_code(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["code"])


def leaked(text: str) -> list[str]:
    return [message for message in MESSAGES if message in text]


# --- an Agent asking for reports ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def agent_browser(site: Site) -> Iterator[httpx.Client]:
    with browser_of(site, "agent") as browser:
        yield browser


def report_requests(name: str) -> list[tuple[str, str, dict[str, str], object]]:
    """(method, path, headers, JSON body) of every way to ask for report `name`."""
    query = "from=2026-05-21&to=2026-05-21"
    found: list[tuple[str, str, dict[str, str], object]] = [
        ("GET", f"/reports/{name}", {}, None),
        ("GET", f"/reports/{name}?{query}&run=1", {}, None),
        ("GET", f"/reports/{name}?{query}&download=1", {}, None),
        ("GET", f"/api/v1/reports/{name}?{query}", {}, None),
        ("GET", f"/api/v1/reports/{name}?{query}", {"Accept": "text/csv"}, None),
        ("GET", f"/api/v1/reports/{name}?{query}", {"Accept": "application/json"}, None),
        ("GET", f"/api/v1/reports/{name}?{query}&headers=snake&extra=true", {"Accept": "application/json"}, None),
    ]
    metric_sets = [name, name.upper()] + [v for alias, target in ALIASES.items() if target == name
                                          for v in (alias, alias.lower(), alias.upper())]
    for metric_set in metric_sets:  # existing clients send Accept: application/json and read CSV
        found.append(("POST", "/api/v1/reports", {"Accept": "application/json"},
                      {"metricSet": metric_set, "startAt": "2026-05-21", "endAt": "2026-05-21"}))
    return found


@pytest.mark.parametrize("how", ["cookie", "bearer", "basic"])
@pytest.mark.parametrize("name", REPORT_NAMES)
def test_an_agent_gets_403_for_every_report_by_every_route(site: Site, agent_browser: httpx.Client, name: str,
                                                           how: str) -> None:
    csrf = csrf_on_page(agent_browser) if how == "cookie" else None
    wrong = []
    with site.client() as script:
        for method, path, headers, body in report_requests(name):
            if how == "cookie":
                client, auth = agent_browser, None
                headers = {**headers, "X-CSRF-Token": csrf or ""}  # so that a 403 is the role's, not the form's
            else:
                client = script
                auth = ("agent", site.tokens["agent"]) if how == "basic" else None
                headers = {**headers, **(bearer(site.tokens["agent"]) if how == "bearer" else {})}
            answer = client.request(method, path, headers=headers, json=body, auth=auth,
                                    follow_redirects=False)
            problems = []
            if answer.status_code != 403:
                problems.append(f"status {answer.status_code}")
            elif path.startswith("/api/"):
                if problem_code(answer) != "forbidden":
                    problems.append(f"code {problem_code(answer)}")
            elif "Not allowed" not in answer.text:
                problems.append("no 'Not allowed' page")
            if "content-disposition" in answer.headers or leaked(answer.text) or "c1," in answer.text:
                problems.append("report content in the answer")
            if problems:
                wrong.append((method, path, headers.get("Accept"), body, problems))
    assert not wrong, wrong


@pytest.mark.parametrize("how", ["cookie", "bearer"])
def test_an_agent_gets_403_for_the_dashboard_and_the_report_list(site: Site, agent_browser: httpx.Client,
                                                                 how: str) -> None:
    with site.client() as script:
        client, headers = (agent_browser, {}) if how == "cookie" else (script, bearer(site.tokens["agent"]))
        for path in ("/dashboard", "/dashboard?from=2026-05-21&to=2026-05-21&period=day", "/reports"):
            answer = client.get(path, headers=headers, follow_redirects=False)
            assert answer.status_code == 403, (path, answer.status_code)
            assert "Not allowed" in answer.text
        # what an Agent may see still works: the refusals above are the role's, not a broken login
        assert client.get(f"/conversations/{WORKED_CONVERSATION}", headers=headers).status_code == 200


# --- an Analyst (or Team Manager) reaching for user management ---------------------------------------------

@pytest.mark.parametrize("who", ["analyst", "team_manager", "agent"])
def test_only_an_administrator_reaches_users_and_the_audit_log(site: Site, who: str) -> None:
    before = site.cli("users", "list")
    with browser_of(site, who) as browser, site.client() as script:
        for client, headers in ((browser, {}), (script, bearer(site.tokens[who]))):
            for path in ("/users", "/audit"):
                answer = client.get(path, headers=headers, follow_redirects=False)
                assert answer.status_code == 403, (who, path, answer.status_code)
                assert "data-user=" not in answer.text and "data-action=" not in answer.text
            # the forms a user-management page would post to do not exist, for anyone
            for method, path in (("POST", "/users"), ("DELETE", "/users/administrator"), ("POST", "/users/agent/role"),
                                 ("POST", "/api/v1/users"), ("GET", "/api/v1/users"), ("GET", "/api/v1/audit"),
                                 ("POST", "/api/v1/users/agent/token")):
                answer = client.request(method, path, headers=headers, follow_redirects=False,
                                        data={"role": "administrator"} if method != "GET" else None)
                assert answer.status_code in (403, 404, 405), (method, path, answer.status_code)
        csrf = csrf_on_page(browser)
        assert browser.post("/users", data={"csrf": csrf, "name": "intruder", "role": "administrator"},
                            follow_redirects=False).status_code in (403, 404, 405)
    assert site.cli("users", "list") == before


def test_the_api_offers_no_user_management_at_all(site: Site) -> None:
    with site.client() as client:
        document = client.get("/api/v1/openapi.json").json()
        for path in ("/api/v1/users", "/api/v1/audit", "/api/v1/tokens"):
            assert client.get(path, headers=bearer(site.tokens["administrator"])).status_code == 404
    # A path's parameters are left out: the Chatwoot webhook's URL ends in the helpdesk's own {token}.
    paths = [re.sub(r"\{[^}]*\}", "", p) for p in document["paths"]]
    assert not [p for p in paths if any(word in p for word in ("user", "audit", "token", "role"))]


# --- expired and revoked tokens ------------------------------------------------------------------------------

REPORT_CALL = "/api/v1/reports/sessions-detail?from=2026-05-21&to=2026-05-21"


def unknown_token_answer(site: Site) -> dict[str, object]:
    with site.client() as client:
        answer = client.get(REPORT_CALL, headers=bearer("cvs_" + secrets.token_urlsafe(32)))
    assert answer.status_code == 401
    body: dict[str, object] = answer.json()
    return body


def test_an_expired_token_gets_the_same_401_as_one_that_never_existed(site: Site) -> None:
    site.add("shortlived", "analyst")
    made = site.store("users", "token", "shortlived", "--expires-in", "3s")  # stdout holds the token alone
    assert made.exit_code == 0, made.stderr
    token = made.stdout.strip()
    # the expiry is said on standard error, after a line saying the command waited, if the live server had the store
    assert made.stderr.splitlines()[-1].startswith("expires "), made.stderr
    born = time.monotonic()
    with site.client() as client:
        assert client.get(REPORT_CALL, headers=bearer(token)).status_code == 200
        time.sleep(max(0.0, 3.5 - (time.monotonic() - born)))
        expired = client.get(REPORT_CALL, headers=bearer(token))
        by_basic = client.get(REPORT_CALL, auth=("shortlived", token), headers={"X-Forwarded-For": "192.0.2.50"})
        still = client.get(REPORT_CALL, headers=bearer(site.tokens["shortlived"]))  # the user's other token
    assert expired.status_code == by_basic.status_code == 401
    assert expired.json() == unknown_token_answer(site)
    assert len(expired.json()["errors"]) == 1 and "\n" not in expired.json()["errors"][0]["detail"]
    assert still.status_code == 200
    listed = site.cli("users", "tokens", "shortlived").splitlines()
    assert sorted(line.split("\t")[-1] for line in listed) == ["active", "expired"]


def test_revoking_one_token_by_value_or_id_then_all_of_them(site: Site) -> None:
    first, second, third = (site.add("revoker", "analyst"), site.cli("users", "token", "revoker").strip(),
                            site.cli("users", "token", "revoker").strip())
    with browser_of(site, "revoker") as browser, site.client() as client:
        assert browser.get(REPORT_CALL).status_code == 200

        site.cli("users", "revoke-token", "revoker", first)
        assert client.get(REPORT_CALL, headers=bearer(first)).status_code == 401
        assert client.get(REPORT_CALL, headers=bearer(second)).status_code == 200

        active = [line.split("\t") for line in site.cli("users", "tokens", "revoker").splitlines()]
        assert [state for *_, state in active] == ["revoked", "active", "active"]
        site.cli("users", "revoke-token", "revoker", active[1][0])  # by the id `users tokens` shows
        assert client.get(REPORT_CALL, headers=bearer(second)).status_code == 401
        assert client.get(REPORT_CALL, headers=bearer(third)).status_code == 200
        assert browser.get(REPORT_CALL).status_code == 200  # one token revoked: the web login stays

        site.cli("users", "revoke-token", "revoker", "--all")
        revoked = client.get(REPORT_CALL, headers=bearer(third))
        by_basic = client.get(REPORT_CALL, auth=("revoker", third), headers={"X-Forwarded-For": "192.0.2.51"})
        assert revoked.status_code == by_basic.status_code == 401
        assert revoked.json() == unknown_token_answer(site)
        assert browser.get(REPORT_CALL).status_code == 401  # --all ends the web logins too
        assert browser.get("/", follow_redirects=False).status_code == 401
    refused = [e for e in site.audit() if e["action"] == "token_refused" and e["user"] == "revoker"]
    assert refused and all(json.loads(e["parameters"])["reason"] == "revoked" for e in refused)
    assert not [e for e in site.audit() if any(t in str(e) for t in (first, second, third))]


@pytest.mark.parametrize(("args", "exit_code"), [
    (["revoke-token", "agent"], 2),
    (["revoke-token", "agent", "0123456789ab", "--all"], 2),
    (["revoke-token", "agent", "0123456789ab"], 1),
    (["revoke-token", "agent", "cvs_not-a-token-of-anyone"], 1),
    (["revoke-token", "ghost", "--all"], 1),
    (["token", "agent", "--expires-in", "soon"], 2),
    (["token", "agent", "--expires-in", "400d"], 2),
], ids=["neither", "both", "unknown-id", "unknown-token", "unknown-user", "bad-duration", "too-long"])
def test_token_commands_refuse_in_one_line(site: Site, args: list[str], exit_code: int) -> None:
    result = site.store(*["users", *args])
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("convoscope: error: ")
    assert result.stdout == ""


def test_another_users_token_id_cannot_be_revoked_by_naming_yourself(site: Site) -> None:
    site.add("bystander", "agent")
    theirs = site.cli("users", "tokens", "bystander").split("\t")[0]
    result = site.store("users", "revoke-token", "agent", theirs)
    assert result.exit_code == 1
    with site.client() as client:
        assert client.get(f"/api/v1/conversations/{WORKED_CONVERSATION}",
                          headers=bearer(site.tokens["bystander"])).status_code == 200


def test_a_token_in_the_query_string_is_not_accepted_nor_written_down(site: Site) -> None:
    token = site.tokens["administrator"]
    with site.client() as client:
        for key in ("token", "access_token", "api_key", "auth"):
            assert client.get(REPORT_CALL, params={key: token}).status_code == 401
        # a script that sends its token both ways is told that the copy in the query is no parameter,
        # without the token being repeated or written down
        answer = client.get("/api/v1/reports/sessions-detail-with-messages",
                            params={**WORKED_DAY, "access_token": token}, headers=bearer(token))
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["attr"] == "access_token"
    assert token not in answer.text
    assert token not in json.dumps(site.audit())


# --- forged and replayed session cookies ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def admin_login(site: Site) -> Iterator[tuple[httpx.Client, str]]:
    with browser_of(site, "administrator") as browser:
        yield browser, str(browser.cookies["convoscope_session"])


FORGERIES = ["random", "empty", "admin", "sql", "traversal", "jwt", "long", "digest-of-real", "real-altered",
             "real-upper", "csrf-token", "login-csrf"]


def forged_value(kind: str, real: str, csrf: str, login_csrf: str) -> str:
    return {
        "random": secrets.token_urlsafe(32),
        "empty": "",
        "admin": "administrator",
        "sql": "x' OR '1'='1",
        "traversal": "../../../../etc/passwd",
        "jwt": "eyJhbGciOiJub25lIn0.eyJ1c2VyIjoiYWRtaW5pc3RyYXRvciJ9.",
        "long": "A" * 4000,
        "digest-of-real": hashlib.sha256(real.encode()).hexdigest(),  # what a copy of the store holds
        "real-altered": real[:-1] + ("B" if real[-1] != "B" else "C"),
        "real-upper": real.upper() if real.upper() != real else real.lower(),
        "csrf-token": csrf,  # printed in every page: must not double as a login
        "login-csrf": login_csrf,
    }[kind]


@pytest.mark.parametrize("kind", FORGERIES)
def test_a_forged_session_cookie_gets_the_login_form_or_401(site: Site, admin_login: tuple[httpx.Client, str],
                                                            kind: str) -> None:
    browser, real = admin_login
    with site.client() as stranger:
        login_csrf = csrf_of(stranger.get("/login").text) or ""
    value = forged_value(kind, real, csrf_on_page(browser), login_csrf)
    cookie = {"Cookie": f"convoscope_session={value}"}
    with site.client() as attacker:
        for path in ("/", "/users", "/audit", f"/conversations/{WORKED_CONVERSATION}"):
            page = attacker.get(path, headers=cookie, follow_redirects=False)
            assert page.status_code == 401, (kind, path, page.status_code)
            assert 'name="password"' in page.text
        for path in (REPORT_CALL, *ENTITY_PATHS[:3]):
            answer = attacker.get(path, headers=cookie)
            assert answer.status_code == 401, (kind, path)
            assert problem_code(answer) == "not_authenticated"
    assert browser.get("/users").status_code == 200  # the real login was not disturbed


def test_a_cookie_replayed_after_logout_is_refused_everywhere(site: Site) -> None:
    with browser_of(site, "analyst") as browser:
        cookie = str(browser.cookies["convoscope_session"])
        csrf = csrf_on_page(browser)
        assert browser.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    with site.client() as replay:
        replay.cookies.set("convoscope_session", cookie)
        assert replay.get("/dashboard", follow_redirects=False).status_code == 401
        assert replay.get(REPORT_CALL).status_code == 401
        answer = replay.post("/api/v1/reports", json={"metricSet": "sessions-detail"}, headers={"X-CSRF-Token": csrf})
        assert answer.status_code == 401


def test_a_cookie_of_a_user_whose_role_changed_or_who_was_removed_is_refused(site: Site) -> None:
    site.add("roleswap", "analyst")
    site.add("leaver", "analyst")
    with browser_of(site, "roleswap") as swapped, browser_of(site, "leaver") as leaving:
        assert swapped.get("/dashboard").status_code == leaving.get("/dashboard").status_code == 200
        site.cli("users", "set-role", "roleswap", "agent")
        site.cli("users", "remove", "leaver")
        # a login from before the change does not keep the old role: it has to log in again
        assert swapped.get("/dashboard", follow_redirects=False).status_code == 401
        assert swapped.get(REPORT_CALL).status_code == 401
        assert leaving.get("/dashboard", follow_redirects=False).status_code == 401
        assert leaving.get(f"/api/v1/conversations/{WORKED_CONVERSATION}").status_code == 401
    with site.client() as again:
        assert log_in(again, "roleswap").status_code == 303
        assert again.get("/dashboard", follow_redirects=False).status_code == 403  # an Agent now
        assert log_in(again, "leaver").status_code == 401
    with site.client() as script:
        assert script.get(REPORT_CALL, headers=bearer(site.tokens["leaver"])).status_code == 401
        assert script.get(REPORT_CALL, headers=bearer(site.tokens["roleswap"])).status_code == 403


# --- cross-site form posts ------------------------------------------------------------------------------------

def test_cross_site_logout_without_the_right_csrf_token_changes_nothing(site: Site) -> None:
    with browser_of(site, "team_manager") as victim, browser_of(site, "agent") as other:
        other_csrf = csrf_on_page(other)
        for data in ({}, {"csrf": ""}, {"csrf": "x" * 43}, {"csrf": other_csrf}):
            refused = victim.post("/logout", data=data, follow_redirects=False)
            assert refused.status_code == 403, data
            assert victim.get("/dashboard").status_code == 200, f"{data} ended the login"
        # a page of another site posts a form: its own origin, no token
        refused = victim.post("/logout", data={"csrf": ""}, headers={"Origin": "https://evil.example",
                                                                     "Referer": "https://evil.example/"},
                              follow_redirects=False)
        assert refused.status_code == 403
        assert victim.get("/dashboard").status_code == 200


def test_cross_site_posts_to_the_api_with_a_login_cookie_change_nothing(site: Site) -> None:
    event = {"event_id": "csrf-1", "type": "customer_message", "occurred_at": "2026-05-21T12:00:00Z",
             "customer_id": "csrf-customer", "channel": "chat", "text": "from another site"}
    downloads = len([e for e in site.audit() if e["action"] == "download"])
    with browser_of(site, "administrator") as browser:
        csrf = csrf_on_page(browser)
        for headers in ({"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"},
                        {"Content-Type": "application/json"}, {"Content-Type": "application/json",
                                                               "X-CSRF-Token": "not-it"}):
            answer = browser.post("/api/v1/events", content=json.dumps([event]), headers=headers)
            assert answer.status_code == 403, headers
            assert problem_code(answer) == "csrf"
            report = browser.post("/api/v1/reports", headers=headers,
                                  content=json.dumps({"metricSet": "GladlyAISessionsDetailWithMessagesReport"}))
            assert report.status_code == 403, headers  # also when the body is not JSON at all
            assert problem_code(report) == "csrf"
            assert not leaked(report.text)
        rows = browser.get("/api/v1/reports/sessions-detail", params=WORKED_DAY)
        assert "csrf-customer" not in rows.text
        assert len([e for e in site.audit() if e["action"] == "download"]) == downloads
        # the same request with the login's token goes through: the token was the only thing missing
        assert browser.post("/api/v1/events", json=[event], headers={"X-CSRF-Token": csrf}).status_code == 200


@pytest.mark.parametrize("forgery", ["no-cookie", "other-cookie", "no-field", "empty-both"])
def test_a_cross_site_login_form_is_refused(site: Site, forgery: str) -> None:
    with site.client() as browser:
        token = csrf_of(browser.get("/login").text) or ""
        with site.client() as other:
            other_token = csrf_of(other.get("/login").text) or ""
        if forgery == "no-cookie":
            browser.cookies.clear()
        elif forgery == "other-cookie":
            browser.cookies.set("convoscope_login_csrf", other_token)
        elif forgery == "empty-both":
            browser.cookies.set("convoscope_login_csrf", "")
            token = ""
        data = {"name": "administrator", "password": PASSWORD, "next": "/"}
        if forgery != "no-field":
            data["csrf"] = token
        answer = browser.post("/login", data=data, follow_redirects=False)
        assert answer.status_code in (400, 403), answer.status_code
        assert "convoscope_session" not in answer.cookies
        assert browser.get("/users", follow_redirects=False).status_code == 401


@pytest.mark.parametrize("target", ["//evil.example/", "/\\evil.example", "https://evil.example/", "/\t/evil.example",
                                    "\\\\evil.example", " //evil.example", "javascript:alert(1)"])
def test_the_login_never_sends_the_browser_to_another_site(site: Site, target: str) -> None:
    with site.client() as browser:
        answer = log_in(browser, "agent", next_page=target)
    assert answer.status_code == 303
    location = httpx.URL(site.server.url).join(answer.headers["location"])
    assert location.host == "127.0.0.1", answer.headers["location"]


# --- guessing passwords ------------------------------------------------------------------------------------------

def attempt(site: Site, name: str, password: str, client_address: str) -> httpx.Response:
    with site.client(headers={"X-Forwarded-For": client_address}) as browser:
        answer = log_in(browser, name, password=password)
        assert ("convoscope_session" in answer.cookies) == (answer.status_code == 303)
        return answer


def entries(site: Site, name: str, action: str) -> list[dict[str, str]]:
    return [e for e in site.audit() if e["user"] == name and e["action"] == action]


def test_five_wrong_passwords_then_even_the_right_one_is_refused_and_logged(site: Site) -> None:
    token = site.add("victim", "analyst")
    guesses = [f"guess-{i}-{secrets.token_hex(4)}" for i in range(5)]
    for guess in guesses:
        answer = attempt(site, "victim", guess, "198.51.100.10")
        assert answer.status_code == 401
        assert "wrong password" in answer.text.lower()
    refused = attempt(site, "victim", PASSWORD, "198.51.100.10")
    assert refused.status_code == 429
    assert 0 < int(refused.headers["retry-after"]) <= 15 * 60
    assert "wait" in refused.text.lower() and 'name="password"' in refused.text
    # the name is what is limited: another address, or HTTP Basic with the right token, fares no better
    assert attempt(site, "victim", PASSWORD, "198.51.100.11").status_code == 429
    with site.client() as script:
        basic = script.get(REPORT_CALL, auth=("victim", token), headers={"X-Forwarded-For": "198.51.100.12"})
        assert basic.status_code == 429
        assert problem_code(basic) == "throttled" and int(basic.headers["retry-after"]) > 0
        # a bearer token names no user to guess for and cannot be guessed itself: scripts keep working
        assert script.get(REPORT_CALL, headers=bearer(token)).status_code == 200
        assert script.get("/dashboard", auth=("victim", token)).status_code == 429  # a page says so too
    failed, throttled = entries(site, "victim", "login_failed"), entries(site, "victim", "login_throttled")
    assert len(failed) == 5 and len(throttled) >= 3
    assert {json.loads(e["parameters"])["client"] for e in failed} == {"198.51.100.10"}
    written = json.dumps(site.audit())
    assert not [guess for guess in guesses if guess in written]
    assert PASSWORD not in written and token not in written


def test_wrong_tokens_over_http_basic_are_limited_like_passwords(site: Site) -> None:
    token = site.add("scripted", "analyst")
    with site.client(headers={"X-Forwarded-For": "198.51.100.20"}) as script:
        for _ in range(5):
            assert script.get(REPORT_CALL, auth=("scripted", "cvs_" + secrets.token_urlsafe(32))).status_code == 401
        assert script.get(REPORT_CALL, auth=("scripted", token)).status_code == 429
    assert attempt(site, "scripted", PASSWORD, "198.51.100.21").status_code == 429
    failed = entries(site, "scripted", "login_failed")
    assert len(failed) == 5 and {json.loads(e["parameters"])["via"] for e in failed} == {"basic"}


def test_a_successful_login_starts_the_count_again(site: Site) -> None:
    site.add("typist", "agent")
    for _ in range(2):
        for _ in range(4):
            assert attempt(site, "typist", "not the password", "198.51.100.30").status_code == 401
        assert attempt(site, "typist", PASSWORD, "198.51.100.30").status_code == 303


def test_parallel_guesses_cannot_slip_past_the_count(site: Site) -> None:
    site.add("raced", "agent")

    def guess(i: int) -> int:
        return attempt(site, "raced", f"parallel-{i}", "198.51.100.80").status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = sorted(pool.map(guess, range(10)))
    assert statuses == [401] * 5 + [429] * 5
    assert len(entries(site, "raced", "login_failed")) == 5


def test_guessing_across_many_names_from_one_address_is_limited(site: Site) -> None:
    site.add("sprayed", "agent")
    for i in range(30):  # one guess for each of many names: no name reaches its own limit
        assert attempt(site, f"spray-{i}", "Summer2026!", "203.0.113.40").status_code == 401
    assert attempt(site, "sprayed", PASSWORD, "203.0.113.40").status_code == 429
    assert attempt(site, "sprayed", PASSWORD, "203.0.113.41").status_code == 303  # someone else, elsewhere


def test_a_password_typed_as_the_user_name_is_not_written_to_the_audit_log(site: Site) -> None:
    typed = f"my secret {secrets.token_hex(4)}!"
    assert attempt(site, typed, typed, "198.51.100.60").status_code == 401
    assert typed not in json.dumps(site.audit())


# --- path traversal ----------------------------------------------------------------------------------------------

def raw_get(site: Site, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET `path` exactly as written (httpx would resolve the dot segments before sending)."""
    connection = http.client.HTTPConnection("127.0.0.1", site.server.port, timeout=60)
    try:
        connection.request("GET", path, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def traversals(site: Site) -> list[str]:
    static = Path(convoscope.__file__).parent / "web" / "static"
    up = "../" * (len(static.resolve().parts) - 1)
    store, canary = site.store.db.resolve(), (site.store.dir / "canary.txt").resolve()
    found = []
    for prefix in ("/static/", "/vendor/chart.js/", "/vendor/pico/", "/reports/", "/api/v1/reports/",
                   "/conversations/", "/api/v1/conversations/", "/api/v1/sessions/", "/api/v1/contacts/"):
        for target in ("etc/passwd", str(store).lstrip("/"), str(canary).lstrip("/")):
            found += [
                prefix + up + target,
                prefix + (up + target).replace("../", "%2e%2e%2f"),
                prefix + (up + target).replace("../", "..%2F"),
                prefix + (up + target).replace("../", "%2E%2E/"),
                prefix + (up + target).replace("../", "..%5c"),
                prefix + "/" + target,  # absolute
                prefix + "%2F" + target.replace("/", "%2F"),
            ]
        found += [prefix + "../app.py", prefix + "..%2fapp.py", prefix + "%2e%2e%2fapi.py", prefix + "..",
                  prefix + "%2e%2e", prefix + "../templates/base.html", prefix + "..%2f..%2f..%2fpyproject.toml"]
    return found


def test_no_file_name_or_id_reaches_outside_the_static_folders(site: Site) -> None:
    assert raw_get(site, "/static/app.css")[0] == 200  # what the folder holds is served
    store_start = site.store.db.read_bytes()[:64]
    passwd = Path("/etc/passwd").read_bytes()[:32] if Path("/etc/passwd").exists() else b"root:x:0:0"
    wrong = []
    for path in traversals(site):
        status, body = raw_get(site, path, bearer(site.tokens["administrator"]))
        if status not in (400, 404) or passwd in body or store_start in body or CANARY.encode() in body \
                or b"from __future__" in body or b"{% extends" in body or b"[project]" in body:
            wrong.append((path, status, body[:80]))
    assert not wrong, wrong


@pytest.mark.parametrize("zone", ["../../../../etc/passwd", "/etc/passwd", "..%2f..%2fetc%2fpasswd",
                                  "../../../../" + "tmp", "Europe/../../etc/passwd"])
def test_a_time_zone_that_is_a_path_is_refused(site: Site, zone: str) -> None:
    with site.client() as client:
        headers = bearer(site.tokens["administrator"])
        answer = client.get("/api/v1/reports/sessions-summary", params={"tz": zone}, headers=headers)
        assert answer.status_code == 400
        assert problem_code(answer) == "invalid"
        page = client.get(f"/conversations/{WORKED_CONVERSATION}", params={"tz": zone}, headers=headers)
        assert page.status_code == 200 and "not an IANA time zone" in page.text
        assert "root:" not in answer.text + page.text


# --- secrets and message texts in the logs ------------------------------------------------------------------------

def test_no_password_token_cookie_or_message_reaches_the_logs(site: Site) -> None:
    password = f"Pw-{secrets.token_hex(8)} with spaces"
    wrong = f"Wrong-{secrets.token_hex(8)}"
    site.cli("users", "add", "careful", "--role", "analyst", "--password-stdin", input=password + "\n")
    token = site.cli("users", "token", "careful").strip()
    other_token = site.cli("users", "token", "careful", "--expires-in", "1h").strip()
    secrets_seen = [password, wrong, token, other_token]
    with site.client(headers={"X-Forwarded-For": "198.51.100.70"}) as browser:
        assert log_in(browser, "careful", password=wrong).status_code == 401
        assert log_in(browser, "careful", password=password).status_code == 303
        cookie = str(browser.cookies["convoscope_session"])
        csrf = csrf_on_page(browser)
        secrets_seen += [cookie, csrf]
        by_cookie = browser.get("/api/v1/reports/sessions-detail-with-messages", params=WORKED_DAY)
        by_page = browser.get("/reports/sessions-detail-with-messages", params={**WORKED_DAY, "run": "1"})
        by_post = browser.post("/api/v1/reports", headers={"X-CSRF-Token": csrf, "Accept": "application/json"},
                               json={"metricSet": "GladlyAISessionsDetailWithMessagesReport", "startAt": "2026-05-21",
                                     "endAt": "2026-05-21"})
        conversation = browser.get(f"/conversations/{LEAK_CONVERSATION}")
        for answer in (by_cookie, by_page, by_post, conversation):
            assert answer.status_code == 200 and set(leaked(answer.text)) == set(MESSAGES)  # the content is there
        assert browser.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    with site.client() as script:
        for headers, auth in ((bearer(token), None), ({"Accept": "application/json"}, ("careful", other_token)),
                              (bearer("cvs_" + wrong), None), ({}, ("careful", wrong))):
            answer = script.get("/api/v1/reports/sessions-detail-with-messages", params=WORKED_DAY, headers=headers,
                                auth=auth)
            assert answer.status_code in (200, 401)
        assert script.get(f"/api/v1/conversations/{LEAK_CONVERSATION}", headers=bearer(token)).status_code == 200
    output = site.server.output()
    written = site.cli("audit", "--limit", "1000000")
    assert "careful" in written and "sessions-detail-with-messages" in written  # the audit names who and what
    for where, text in (("server output", output), ("audit log", written)):
        found = [s for s in secrets_seen if s in text] + leaked(text)
        assert not found, (where, found)
    # no request lines either, so no query string (a report's parameters, a conversation's id) is printed
    assert "GET /" not in output and "POST /" not in output and "HTTP/1.1" not in output
