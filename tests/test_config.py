"""SPEC 5 through the real command line: the TOML configuration, its errors, per-brand overrides, and
the rebuild of derived tables when a derivation setting changes.

Each test runs in its own temporary directory (the working directory, so `./convoscope.toml` is the
file the test writes) and drives `convoscope ingest` and `convoscope report` through Click's runner.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import Result

import cli_helpers
from cli_helpers import ev, make_id


def gap_events(brand: str = "default", customer: str = "c1") -> list[dict]:
    """Two exchanges 45 minutes apart: one session with the default 2h, two with 30m."""
    return [
        ev(f"{brand}-g1", "customer_message", "2026-05-21T10:00:00Z", customer=customer, brand=brand),
        ev(f"{brand}-g2", "ai_message", "2026-05-21T10:01:00Z", customer=customer, brand=brand),
        ev(f"{brand}-g3", "customer_message", "2026-05-21T10:46:00Z", customer=customer, brand=brand),
        ev(f"{brand}-g4", "ai_message", "2026-05-21T10:47:00Z", customer=customer, brand=brand),
    ]


class Convoscope(cli_helpers.Convoscope):
    """The CLI without --config unless a test sets `config`: ./convoscope.toml is read as users would."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, own_config=False)

    def session_ids(self, *args: str) -> list[str]:
        return [row["Session ID"] for row in self.rows(*args)]


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def failure_line(result: Result) -> str:
    """Exit 1 with one line on stderr beginning `convoscope: error:` (SPEC 5, 6.1); that line."""
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    assert isinstance(result.exception, SystemExit), result.exception  # a message, not a crash
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("convoscope: error:"), lines
    assert result.stdout_bytes == b""
    return lines[0]


@pytest.fixture
def cs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Convoscope:
    monkeypatch.chdir(tmp_path)
    return Convoscope(tmp_path)


# --- 9. bad configuration stops the command (SPEC 5) ----------------------------------------------------


DURATION = r"\d+[smhd]"  # shows an example such as "2h" or "90m"
ZONE = r"IANA|UTC|Europe/|America/"
CHANNELS = r"\[|list"
URL = r"https?://"

BAD_VALUES = [
    ('session_inactivity = "two hours"', "session_inactivity", "two hours", DURATION),
    ('session_inactivity = "2 h"', "session_inactivity", "2 h", DURATION),
    ('session_inactivity = "2h30"', "session_inactivity", "2h30", DURATION),
    ('contact_inactivity = "1.5h"', "contact_inactivity", "1.5h", DURATION),
    ('conversation_window = 24', "conversation_window", "24", DURATION),
    ('recontact_window = "24hours"', "recontact_window", "24hours", DURATION),
    ('recontact_window = "-1h"', "recontact_window", "-1h", DURATION),
    ('recontact_window = "99999999999999999999d"', "recontact_window", "99999999999999999999d", DURATION),
    ('contact_inactivity = "36501d"', "contact_inactivity", "36501d", DURATION),  # more than 100 years
    ('session_inactivity = "\u0661h"', "session_inactivity", "\u0661h", DURATION),  # an Arabic-Indic 1
    ('timezone = "Mars/Olympus"', "timezone", "Mars/Olympus", ZONE),
    ('timezone = "posixrules"', "timezone", "posixrules", ZONE),  # a file Python opens, not a zone DuckDB knows
    ('timezone = 1', "timezone", "1", ZONE),
    ('ai_channels = "chat"', "ai_channels", "chat", CHANNELS),
    ('ai_channels = ["chat", 5]', "ai_channels", "5", CHANNELS),
    ('ai_channels = ["live chat"]', "ai_channels", "live chat", CHANNELS),
    ('public_url = 42', "public_url", "42", URL),
    ('[brands.acme]\nsession_inactivity = "soon"', "session_inactivity", "soon", DURATION),
    ('[brands.acme]\ntimezone = "Nowhere/Town"', "timezone", "Nowhere/Town", ZONE),
]


@pytest.mark.parametrize("command", ["report", "ingest", "derive"])
@pytest.mark.parametrize(("toml", "key", "value", "form"), BAD_VALUES)
def test_bad_value_names_the_key_and_the_expected_form(
    cs: Convoscope, command: str, toml: str, key: str, value: str, form: str
) -> None:
    cs.config = write_toml(cs.dir / "bad.toml", toml + "\n")
    args = {"report": ["report", "sessions-detail"], "ingest": ["ingest", str(cs.write_events(gap_events()))],
            "derive": ["derive"]}[command]
    line = failure_line(cs(*args))
    assert key in line
    hint = line.replace(str(cs.config), "").replace(value, "")
    assert re.search(form, hint), f"no expected form in: {line}"


def test_convoscope_toml_in_the_working_directory_is_read(cs: Convoscope) -> None:
    write_toml(cs.dir / "convoscope.toml", 'session_inactivity = "two hours"\n')
    line = failure_line(cs("report", "sessions-detail"))
    assert "session_inactivity" in line


def test_an_ingest_stopped_by_the_configuration_stores_nothing(cs: Convoscope) -> None:
    cs.config = write_toml(cs.dir / "bad.toml", 'session_inactivity = "two hours"\n')
    failure_line(cs("ingest", str(cs.write_events(gap_events()))))
    cs.config = write_toml(cs.dir / "good.toml", 'session_inactivity = "2h"\n')
    # Nothing was stored, not even an empty store: the report says to ingest first.
    assert "ingest" in failure_line(cs("report", "sessions-detail"))


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ('sesion_inactivity = "2h"\n', "sesion_inactivity"),
        ('[brands.acme]\ncolour = "red"\n', "colour"),
        ('timezone = "UTC\n', "bad.toml"),  # invalid TOML: an unterminated string
        ("session_inactivity = 2h\n", "bad.toml"),  # invalid TOML: a bare word
        ("[brands]\nacme = 3\n", "acme"),  # a brand must be a table
    ],
)
def test_unknown_keys_and_invalid_toml(cs: Convoscope, toml: str, named: str) -> None:
    cs.config = write_toml(cs.dir / "bad.toml", toml)
    for args in (["report", "sessions-detail"], ["ingest", str(cs.write_events(gap_events()))]):
        assert named in failure_line(cs(*args))


def test_missing_config_file(cs: Convoscope) -> None:
    cs.config = cs.dir / "nowhere" / "convoscope.toml"
    assert "nowhere" in failure_line(cs("report", "sessions-detail"))


def test_every_key_with_a_good_value(cs: Convoscope) -> None:
    cs.config = write_toml(cs.dir / "all.toml", """
timezone = "Europe/Berlin"
session_inactivity = "1h30m"
contact_inactivity = "2d"
conversation_window = "90m"
recontact_window = "86400s"
ai_channels = ["chat", "email"]
public_url = "https://reports.example.com"

[brands.acme]
timezone = "UTC"
session_inactivity = "45s"
ai_channels = ["*"]
""")
    cs.ingest(gap_events())
    (row,) = cs.rows()
    assert row["Conversation Link"].startswith("https://reports.example.com/conversations/cnv_")


# --- 10. per-brand overrides (SPEC 5) ---------------------------------------------------------------


def test_brand_session_inactivity_changes_only_that_brand(cs: Convoscope) -> None:
    cs.config = write_toml(cs.dir / "c.toml", '[brands.acme]\nsession_inactivity = "30m"\n')
    cs.ingest(gap_events("acme") + gap_events("beta"))
    assert cs.session_ids("--brand", "acme") == [make_id("ses_", "acme", "c1", "acme-g1"),
                                                 make_id("ses_", "acme", "c1", "acme-g3")]
    assert cs.session_ids("--brand", "beta") == [make_id("ses_", "beta", "c1", "beta-g1")]


def test_brand_table_inherits_the_top_level_values(cs: Convoscope) -> None:
    cs.config = write_toml(cs.dir / "c.toml", """
session_inactivity = "30m"
[brands.beta]
session_inactivity = "2h"
[brands.gamma]
timezone = "Asia/Tokyo"
""")
    cs.ingest(gap_events("acme") + gap_events("beta") + gap_events("gamma"))
    assert len(cs.session_ids("--brand", "acme")) == 2  # no table: the top level
    assert len(cs.session_ids("--brand", "beta")) == 1
    assert len(cs.session_ids("--brand", "gamma")) == 2  # a table that does not name the key inherits it


TZ_CONFIG = """
timezone = "Asia/Tokyo"
public_url = "https://cs.example.com"

[brands.acme]
timezone = "America/Los_Angeles"
public_url = "https://acme.example.com/support"

[brands.beta]
session_inactivity = "2h"
"""


@pytest.fixture
def two_zones(cs: Convoscope) -> Convoscope:
    cs.config = write_toml(cs.dir / "c.toml", TZ_CONFIG)
    cs.ingest([ev(f"{brand}-1", "customer_message", "2026-05-22T03:30:00Z", brand=brand) for brand in ("acme", "beta")])
    return cs


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--brand", "acme"], {"acme": ("2026-05-21", "2026-05-21T20:30:00-07:00")}),
        (["--brand", "acme", "--brand", "acme"], {"acme": ("2026-05-21", "2026-05-21T20:30:00-07:00")}),  # still one
        (["--brand", "beta"], {"beta": ("2026-05-22", "2026-05-22T12:30:00+09:00")}),  # the top-level zone
        (["--brand", "acme", "--tz", "UTC"], {"acme": ("2026-05-22", "2026-05-22T03:30:00+00:00")}),
        (["--brand", "beta", "--tz", "America/Los_Angeles"], {"beta": ("2026-05-21", "2026-05-21T20:30:00-07:00")}),
        # more than one brand: UTC (SPEC 4, tz)
        ([], {"acme": ("2026-05-22", "2026-05-22T03:30:00+00:00"), "beta": ("2026-05-22", "2026-05-22T03:30:00+00:00")}),
        (["--brand", "acme", "--brand", "beta"],
         {"acme": ("2026-05-22", "2026-05-22T03:30:00+00:00"), "beta": ("2026-05-22", "2026-05-22T03:30:00+00:00")}),
    ],
)
def test_brand_timezone_is_the_report_default(two_zones: Convoscope, args: list[str], expected: dict) -> None:
    rows = two_zones.rows("--extra", *args)
    assert {row["Brand"]: (row["Created Date"], row["Created At"]) for row in rows} == expected


def test_brand_timezone_decides_the_date_range(two_zones: Convoscope) -> None:
    assert [r["Brand"] for r in two_zones.rows("--extra", "--brand", "acme", "--to", "2026-05-21")] == ["acme"]
    assert [r["Brand"] for r in two_zones.rows("--extra", "--brand", "beta", "--to", "2026-05-21")] == []
    assert [r["Brand"] for r in two_zones.rows("--extra", "--to", "2026-05-21")] == []  # UTC


def test_public_url_makes_the_conversation_link(two_zones: Convoscope) -> None:
    links = {row["Brand"]: row["Conversation Link"] for row in two_zones.rows("--extra")}
    assert links == {
        "acme": "https://acme.example.com/support/conversations/" + make_id("cnv_", "acme", "c1", "acme-1"),
        "beta": "https://cs.example.com/conversations/" + make_id("cnv_", "beta", "c1", "beta-1"),
    }


# --- 11. a changed derivation setting rebuilds before the next report (SPEC 5) -------------------------


def test_changed_session_inactivity_rebuilds_before_the_report(cs: Convoscope) -> None:
    cs.ingest(gap_events())  # no configuration file: the default 2h
    one = [make_id("ses_", "default", "c1", "default-g1")]
    two = [*one, make_id("ses_", "default", "c1", "default-g3")]
    assert cs.session_ids() == one

    toml = cs.dir / "convoscope.toml"
    write_toml(toml, 'session_inactivity = "30m"\n')
    assert cs.session_ids() == two  # no `derive` in between
    write_toml(toml, 'session_inactivity = "1h30m"\n')
    assert cs.session_ids() == one
    write_toml(toml, 'session_inactivity = "90m"\n')  # the same duration, spelled differently
    assert cs.session_ids() == one
    write_toml(toml, '[brands.default]\nsession_inactivity = "40m"\n')
    assert cs.session_ids() == two
    toml.unlink()
    assert cs.session_ids() == one


def test_changed_brand_setting_rebuilds_that_brand(cs: Convoscope) -> None:
    cs.ingest(gap_events("acme") + gap_events("beta"))
    assert [len(cs.session_ids("--brand", b)) for b in ("acme", "beta")] == [1, 1]
    cs.config = write_toml(cs.dir / "c.toml", '[brands.beta]\nsession_inactivity = "30m"\n')
    assert [len(cs.session_ids("--brand", b)) for b in ("acme", "beta")] == [1, 2]


AI_CHANNEL_EVENTS = [
    ev("e1", "customer_message", "2026-05-21T10:00:00Z", customer="emailer", channel="email"),
    ev("c1", "customer_message", "2026-05-21T10:00:00Z", customer="chatter"),
    ev("r1", "customer_message", "2026-05-21T10:00:00Z", customer="routed", channel="email", route="ai"),
    # an email while a chat session is open goes to that session (SPEC 3.4)
    ev("m1", "customer_message", "2026-05-21T10:00:00Z", customer="mixed"),
    ev("m2", "ai_message", "2026-05-21T10:01:00Z", customer="mixed"),
    ev("m3", "customer_message", "2026-05-21T10:05:00Z", customer="mixed", channel="email"),
]


def test_each_brand_routes_its_customers_by_its_own_ai_channels(cs: Convoscope) -> None:
    """Customers of two brands, interleaved in one derivation: an email starts a session only where
    the brand's ai_channels allow it."""
    cs.config = write_toml(cs.dir / "c.toml", '[brands.acme]\nai_channels = ["chat"]\n')
    customers = [f"u{n}" for n in range(12)]
    cs.ingest([ev(f"{brand}-{c}", "customer_message", "2026-05-21T10:00:00Z", customer=c, brand=brand, channel="email")
               for c in customers for brand in ("acme", "beta")])
    assert cs.rows("--brand", "acme") == []
    assert sorted(row["Customer ID"] for row in cs.rows("--brand", "beta")) == sorted(customers)


def test_ai_channels_decides_what_starts_a_session(cs: Convoscope) -> None:
    toml = write_toml(cs.dir / "convoscope.toml", 'ai_channels = ["chat"]\n')
    cs.ingest(AI_CHANNEL_EVENTS)
    rows = cs.rows("--extra")
    # the unrouted email started a team contact, not a session
    assert sorted(row["Customer ID"] for row in rows) == ["chatter", "mixed", "routed"]
    mixed = next(row for row in rows if row["Customer ID"] == "mixed")
    assert (mixed["Was Handed Off"], mixed["Outcome"]) == ("false", "resolved")

    toml.unlink()  # back to ["*"]: rebuilt before the report
    assert sorted(row["Customer ID"] for row in cs.rows()) == ["chatter", "emailer", "mixed", "routed"]
    write_toml(toml, 'ai_channels = ["sms", "chat"]\n')
    assert sorted(row["Customer ID"] for row in cs.rows()) == ["chatter", "mixed", "routed"]
