"""The HTTP API against its own OpenAPI document (issue 6): schemathesis generates requests from the
document served by a real `convoscope serve` — valid ones and, as often, invalid ones — and sends them
with the API token of each role of SPEC 6.4, and with none. Whatever it sends, the server answers no 5xx,
only status codes the document lists for the operation, in a documented content type, with a body
that matches the documented schema.

Free generation mostly finds unknown report names and ids, so part of the requests are steered to real
ones: every report name, the worked example's session, contact and conversation, and the report names
in `metricSet`. `make test` sends a few examples per role and operation; a long run:

    CONVOSCOPE_CONTRACT_EXAMPLES=500 .venv/bin/pytest tests/test_api_contract.py -p no:xdist
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cli_helpers import Convoscope
from convoscope import accounts, reports
from web_helpers import (
    ROLES,
    WORKED_CONTACT,
    WORKED_CONVERSATION,
    WORKED_SESSION_2,
    add_user,
    bearer,
    generate_brand,
    ingest_worked_example,
    serving,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = int(os.environ.get("CONVOSCOPE_CONTRACT_EXAMPLES") or 0)

# Every operation of the document, with the permission it needs (SPEC 6.4; None: no role's, the helpdesk's
# signature or token) and the ids worth steering to.
OPERATIONS: dict[tuple[str, str], str | None] = {
    ("POST", "/api/v1/events"): accounts.SEND_EVENTS,
    ("POST", "/api/v1/reports"): accounts.REPORTS,
    ("GET", "/api/v1/reports/{name}"): accounts.REPORTS,
    ("GET", "/api/v1/compare"): accounts.REPORTS,
    ("GET", "/api/v1/sessions/{session_id}"): accounts.CONVERSATIONS,
    ("GET", "/api/v1/contacts/{contact_id}"): accounts.CONVERSATIONS,
    ("GET", "/api/v1/conversations/{conversation_id}"): accounts.CONVERSATIONS,
    ("GET", "/api/v1/organization"): accounts.CONVERSATIONS,
    ("GET", "/api/v1/agents"): accounts.CONVERSATIONS,
    ("GET", "/api/v1/customer-profiles/{customer_id}"): accounts.CONVERSATIONS,
    ("GET", "/api/v1/search"): accounts.CONVERSATIONS,
    ("POST", "/api/v1/sources/chatwoot/webhook"): None,
    ("POST", "/api/v1/sources/chatwoot/webhook/{token}"): None,
}
KNOWN_IDS = {"session_id": WORKED_SESSION_2, "contact_id": WORKED_CONTACT, "conversation_id": WORKED_CONVERSATION,
             "customer_id": "c1", "name": None, "token": "t" * 40}  # None: every report name


@dataclass
class Target:
    url: str
    tokens: dict[str, str]
    schema: schemathesis.BaseSchema


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    store = Convoscope(tmp_path_factory.mktemp("contract"))
    generate_brand(store, customers=60, days=5, bad_rate=0.02)
    ingest_worked_example(store)
    tokens = {role: add_user(store, role, role) for role in ROLES}
    with serving(store) as server:
        schema = schemathesis.openapi.from_url(f"{server.url}/api/v1/openapi.json")
        yield Target(server.url, tokens, schema)


def cases(target: Target, method: str, path: str) -> st.SearchStrategy[Case]:
    """Valid and invalid requests for the operation, and about as many valid ones with a real id or
    report name."""
    operation = target.schema[path][method]
    free = st.one_of(operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                     operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    steered: st.SearchStrategy[Case] | None = None
    names = [parameter.name for parameter in operation.path_parameters]
    if names:
        (name,) = names  # every operation has one path parameter at most
        known = KNOWN_IDS[name]
        values = [known] if known is not None else list(reports.REPORTS)
        steered = st.sampled_from(values).flatmap(partial(_with_path_parameter, operation, name))
    if path == "/api/v1/reports":
        steered = st.tuples(operation.as_strategy(), st.sampled_from(list(reports.REPORTS))).map(_with_metric_set)
    return free if steered is None else st.one_of(free, steered)


def _with_path_parameter(operation: APIOperation, name: str, value: str) -> st.SearchStrategy[Case]:
    return operation.as_strategy(path_parameters={name: value})


def _with_metric_set(pair: tuple[Case, str]) -> Case:
    case, name = pair
    if isinstance(case.body, dict):
        case.body["metricSet"] = name
    return case


def examples(allowed: bool) -> int:
    """Fewer for refusals (401, 403): they answer before the operation reads anything."""
    if EXAMPLES:
        return EXAMPLES
    return 10 if allowed else 4


@pytest.mark.parametrize("role", [*ROLES, None], ids=[*ROLES, "anonymous"])
@pytest.mark.parametrize(("method", "path"), list(OPERATIONS), ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_answer_matches_the_document(target: Target, method: str, path: str, role: str | None) -> None:
    headers = bearer(target.tokens[role]) if role is not None else {}
    permission = OPERATIONS[method, path]
    allowed = role is not None and permission is not None and permission in accounts.ROLES[role]

    with_token: list[int] = []

    @given(case=cases(target, method, path))
    @settings(max_examples=examples(allowed), deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
    def answers_match(case: Case) -> None:
        response = case.call_and_validate(base_url=target.url, headers=headers, checks=CHECKS, timeout=60)
        # The document declares the API's credentials (issue 28), so schemathesis makes up some of its own: the
        # role's token must still be what goes (or no answer here would be the role's), and be taken.
        sent = response.request.headers.get("Authorization")
        if allowed and sent == headers["Authorization"]:
            with_token.append(response.status_code)
            assert response.status_code != 401, (case.method, case.path, response.text)
        if not allowed:  # refused: 401 or 403, or 400 when the request is malformed anyway; made-up Basic
            # credentials are failed logins, refused with 429 past their limit (decision 49)
            throttled = response.status_code == 429 and (sent or "").lower().startswith("basic")
            assert response.status_code in (400, 401, 403) or throttled, (case.method, case.path, response.status_code)

    answers_match()
    assert not allowed or with_token, "no request went with the role's token"


def test_a_batch_that_starts_with_null_is_rejected_not_fatal(tmp_path: Path) -> None:
    """Found by schemathesis (`[null]`, or the body `null`): pyarrow's JSON reader crashed the server on a
    block starting with `null`. On a store of its own, should it ever come back."""
    store = Convoscope(tmp_path)
    token = add_user(store, "admin", "administrator")
    with serving(store) as server, server.client() as client:
        try:
            answer = client.post("/api/v1/events", content=b"[null]", headers={**bearer(token),
                                                                               "Content-Type": "application/json"})
        except httpx.TransportError as exc:
            pytest.fail(f"the server died: {exc!r}; exit status {server.process.poll()}")
    assert answer.status_code == 200, answer.text
    assert (answer.json()["accepted"], answer.json()["rejected"]) == (0, 1)


def test_every_operation_of_the_document_is_exercised(target: Target) -> None:
    documented: set[tuple[str, str]] = set()
    for result in target.schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        documented.add((operation.method.upper(), operation.path))
    assert documented == set(OPERATIONS)


def test_the_document_names_every_report_and_its_columns(target: Target) -> None:
    """GET /api/v1/reports/{name}: its `name` lists every report of REPORTS (issue 26's four included), and its
    description every column each report gives, with and without `extra` (issue 26 point 6)."""
    (parameter,) = [p for p in target.schema.raw_schema["paths"]["/api/v1/reports/{name}"]["get"]["parameters"]
                    if p["name"] == "name"]
    assert parameter["schema"]["enum"] == list(reports.REPORTS)
    for name, report in reports.REPORTS.items():
        (line,) = [line for line in parameter["description"].splitlines() if line.startswith(f"- `{name}`:")]
        for column in (*report.columns, *report.by_columns.values(), *report.extra_columns):
            assert column.display in line, (name, column.display)


def test_the_document_declares_the_credentials_each_operation_takes(target: Target) -> None:
    """Issue 28 point 3: the document declares the API token as HTTP bearer and HTTP Basic (user name and token),
    every operation that needs a role references both, as alternatives, and the webhooks, which a signature or a
    URL's secret authenticates, reference none; so Swagger's page at /api/docs offers to authorize."""
    document = target.schema.raw_schema
    schemes = document["components"]["securitySchemes"]
    assert {name: (scheme["type"], scheme["scheme"]) for name, scheme in schemes.items()} == {
        "apiToken": ("http", "bearer"), "userAndToken": ("http", "basic")}
    for (method, path), permission in OPERATIONS.items():
        security = document["paths"][path][method.lower()]["security"]
        assert security == ([{"apiToken": []}, {"userAndToken": []}] if permission is not None else []), (method, path)
