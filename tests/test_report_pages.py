"""What goes beside a report (issue 24 points 4 and 5): the definitions that produced it — the API's
`X-Convoscope-Definitions` header and JSON `definitions` field, a line under a page's table and under the
dashboard, never a line of the CSV — and, on a page, a parameter's error beside the field it is about.
"""

from __future__ import annotations

import re

import pytest

from cli_helpers import AS_OF
from web_helpers import AnalystSite, bearer

DAY = "2026-05-21"
HEADER = "X-Convoscope-Definitions"

def definitions_line(html: str) -> str:
    found = re.findall(r'<small id="definitions">([^<]*)</small>', html)
    assert len(found) == 1, html
    return found[0]


@pytest.mark.parametrize("name", ["sessions-detail", "sessions-summary", "conversation-export"])
def test_the_api_gives_the_definitions_beside_the_report_never_in_it(served: AnalystSite, name: str) -> None:
    query = {"from": DAY, "to": DAY, "as_of": AS_OF, "tz": "Europe/Berlin"}
    with served.server.client(headers=bearer(served.token)) as client:
        as_csv = client.get(f"/api/v1/reports/{name}", params=query)
        as_json = client.get(f"/api/v1/reports/{name}", params=query, headers={"Accept": "application/json"})
        posted = client.post("/api/v1/reports", json={"metricSet": name, "startAt": DAY, "endAt": DAY,
                                                      "timezone": "Europe/Berlin"})
    definitions = as_csv.headers[HEADER]
    assert definitions.startswith(f"{name} as of 2026-06-01T00:00:00Z, time zone Europe/Berlin; derived with default: S=2h")
    assert as_json.headers[HEADER] == as_json.json()["definitions"] == definitions
    assert posted.headers[HEADER].startswith(f"{name} as of ")
    by_cli = served.store("report", name, "--from", DAY, "--to", DAY, "--as-of", AS_OF, "--tz", "Europe/Berlin")
    assert as_csv.content == by_cli.stdout_bytes  # the command line's very bytes: no line was added
    assert "derived with" not in as_csv.text and "derived with" not in posted.text


def test_a_report_page_and_the_dashboard_show_the_definitions_under_the_table(served: AnalystSite) -> None:
    page = served.browser.get("/reports/sessions-summary", params={"from": DAY, "to": DAY, "run": "1"})
    assert page.status_code == 200
    assert definitions_line(page.text).startswith("sessions-summary as of ")
    assert page.text.index('id="report-rows"') < page.text.index('id="definitions"')
    board = served.browser.get("/dashboard", params={"from": DAY, "to": DAY})
    assert definitions_line(board.text).startswith("sessions-summary as of ")
    assert 'id="definitions"' not in served.browser.get("/reports/sessions-summary").text  # nothing run: no line


@pytest.mark.parametrize(("path", "query", "field", "words"), [
    ("/reports/sessions-detail", {"tz": "Mars/Olympus", "run": "1"}, "tz", "tz 'Mars/Olympus' is not an IANA"),
    ("/reports/sessions-summary", {"period": "fortnight", "run": "1"}, "period", "period 'fortnight' is not one of"),
    ("/dashboard", {"from": "2026-05-22", "to": "2026-05-01"}, "from", "from 2026-05-22 is after to 2026-05-01"),
    ("/dashboard", {"from": "last tuesday"}, "from", "from 'last tuesday' is not a date"),
])
def test_a_pages_parameter_error_is_shown_beside_its_field(served: AnalystSite, path: str, query: dict[str, str], field: str,
                                                          words: str) -> None:
    page = served.browser.get(path, params=query)
    assert page.status_code == 400
    label = re.search(rf'<label>[^<]*<(?:input|select)[^>]*name="{field}"(?:(?!</label>).)*</label>', page.text, re.S)
    assert label is not None, page.text
    assert 'aria-invalid="true"' in label.group(0)
    message = re.search(r'<small class="error" role="alert" id="form-error">([^<]*)</small>', label.group(0))
    assert message is not None and words in message.group(1).replace("&#39;", "'")
    assert page.text.count('id="form-error"') == 1


def test_a_filters_error_is_shown_above_the_fields(served: AnalystSite) -> None:
    page = served.browser.get("/reports/sessions-detail", params={"where.outcome": "nope", "run": "1"})
    assert page.status_code == 400
    assert re.search(r'<p class="error" role="alert" id="form-error">outcome &#39;nope&#39; is not one of', page.text)
