"""Errors that carry their fields (issue 24 point 4): an error about a parameter names it (`param`) and
words its message for whichever interface renders it, so that no core module spells a command-line option
that another interface would have to rewrite. The command line words it `--token-file`; another namer
(here `<token_file>`, as an API says `tokenFile`) is used everywhere the parameter is named."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from convoscope import accounts
from convoscope.config import load_config
from convoscope.errors import ConvoscopeError, ParameterError, option_name
from convoscope.events.readers import detect_format
from convoscope.sources import chatwoot_api
from convoscope.store import Store


def raised(call: Callable[[], Any]) -> ConvoscopeError:
    with pytest.raises(ConvoscopeError) as error:
        call()
    return error.value


def bad_toml(tmp_path: Path) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text("timezone = \n")
    return path


CASES: dict[str, tuple[str, Callable[[Path], Any]]] = {
    "users --brands with no brand": ("brands", lambda _: accounts.parse_brands(" , ")),
    "users token --expires-in too long": (
        "expires_in", lambda _: accounts.new_token(None, "x", lifetime=timedelta(days=400))),  # type: ignore[arg-type]
    "pull --token-file unreadable": ("token_file", lambda tmp: chatwoot_api.read_token(tmp / "no-such-file")),
    "pull --url not http": ("url", lambda _: chatwoot_api.site_of("ftp://chat.example.com")),
    "pull --url with a password": ("url", lambda _: chatwoot_api.site_of("https://u:p@chat.example.com")),
    "pull --since not a date": ("since", lambda _: chatwoot_api.parse_since("yesterday")),
    "pull --url unreachable": ("url", lambda _: chatwoot_api.Chatwoot("http://127.0.0.1:1", "secret", 3).role()),
    "ingest --format unknown": ("format", lambda tmp: detect_format(tmp / "events.txt", None)),
    "--config missing": ("config", lambda tmp: load_config(tmp / "missing.toml")),
    "--config not TOML": ("config", lambda tmp: load_config(bad_toml(tmp))),
    "--db not a store": ("db", lambda tmp: Store(Path(__file__))),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_error_about_a_parameter_names_it_as_each_interface_does(case: str, tmp_path: Path) -> None:
    param, call = CASES[case]
    error = raised(lambda: call(tmp_path))
    assert error.param == param
    assert option_name(param) in error.message  # the command line's wording, as before
    other = error.worded(lambda name: f"<{name}>")
    assert f"<{param}>" in other and "--" not in other, other
    assert re.sub(r"<(\w+)>", lambda named: option_name(named[1]), other) == error.message


def test_a_usage_error_about_a_parameter_is_a_parameter_error_with_exit_2() -> None:
    error = raised(lambda: chatwoot_api.parse_since("yesterday"))
    assert isinstance(error, ParameterError) and error.exit_code == 2


def test_an_error_naming_no_parameter_reads_the_same_to_every_interface() -> None:
    error = ConvoscopeError("the store is busy; try again")
    assert error.param is None and error.worded(str.upper) == error.message == "the store is busy; try again"


def test_a_pull_error_never_shows_the_token_whatever_the_interface() -> None:
    client = chatwoot_api.Chatwoot("http://127.0.0.1:1", "s3cret-token", 3)
    error = client._check("Chatwoot quoted s3cret-token back", "url", "account")
    assert error.message == "Chatwoot quoted [token] back; check --url and --account"
    assert error.worded(str.upper) == "Chatwoot quoted [token] back; check URL and ACCOUNT"
