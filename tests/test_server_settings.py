"""The `[server]` table (decision 98) and `serve`'s warning about Conversation Links (issue 25 point 6): a bad
value stops a command naming the key and the form expected, as every setting does (SPEC 5); `serve` listening
beyond this machine while `public_url` is still the default says, in one line on standard error, what to set.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli_helpers import Convoscope
from convoscope.cli import serve as serve_module
from convoscope.config import KEYS, SERVER_KEYS, ServerSettings, load_config
from web_helpers import CONVOSCOPE, free_port

DEFAULT_URL = KEYS["public_url"][0]


def test_the_defaults_are_gladlys_limit_and_convoscopes_name(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert load_config(empty).server == ServerSettings("convoscope", 10)
    assert {key: default for key, (default, _) in SERVER_KEYS.items()} == {"name": "convoscope", "rate_limit": 10}
    given = tmp_path / "given.toml"
    given.write_text('[server]\nname = "Acme support"\nrate_limit = 0\n')
    assert load_config(given).server == ServerSettings("Acme support", 0)


@pytest.mark.parametrize(("toml", "words"), [
    ("[server]\nrate_limit = -1", "rate_limit = -1 is not valid; expected a whole number"),
    ('[server]\nrate_limit = "10"', "rate_limit = '10' is not valid"),
    ("[server]\nrate_limit = 2.5", "rate_limit = 2.5 is not valid"),
    ("[server]\nrate_limit = true", "rate_limit = True is not valid"),
    ('[server]\nname = ""', "name = '' is not valid; expected the installation's name"),
    ('[server]\nname = "two\\nlines"', "on one line"),
    ("[server]\nport = 80", "unknown key 'port'; known keys: name, rate_limit"),
    ("rate_limit = 10", "unknown key 'rate_limit' (rate_limit belongs in the [server] table)"),
    ("server = 3", "server must be a table such as [server]"),
])
def test_a_bad_server_setting_stops_the_command_naming_it(cs: Convoscope, toml: str, words: str) -> None:
    assert cs.config is not None
    cs.config.write_text(toml + "\n")
    result = cs("report", "sessions-detail")
    assert result.exit_code == 1, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("convoscope: error:") and words in line, line


# --- serve's warning ---------------------------------------------------------------------------------------

def serve_stderr(cs: Convoscope, monkeypatch: pytest.MonkeyPatch, config: str, *args: str) -> str:
    """What `serve ARGS` writes on standard error before it would start serving (the server is not started)."""
    started: list[tuple[Any, ...]] = []
    monkeypatch.setattr(serve_module, "serve_app", lambda *a, **k: started.append(a))
    assert cs.config is not None
    cs.config.write_text(config)
    result = cs("serve", *args)
    assert result.exit_code == 0, result.stderr
    assert len(started) == 1
    return result.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "reports.example.com"])
def test_serving_beyond_localhost_with_the_default_public_url_warns(cs: Convoscope, monkeypatch: pytest.MonkeyPatch,
                                                                    host: str) -> None:
    stderr = serve_stderr(cs, monkeypatch, "", "--host", host, "--port", "8123")
    (line,) = stderr.strip().splitlines()
    assert line.startswith("convoscope: warning:"), line
    assert f"serving on {host}" in line and DEFAULT_URL in line and "Conversation Link" in line
    assert 'set public_url = "http://THIS-HOST:8123"' in line and str(cs.config) in line


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_serving_on_localhost_does_not_warn(cs: Convoscope, monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    assert serve_stderr(cs, monkeypatch, "", "--host", host) == ""


def test_a_public_url_of_its_own_does_not_warn(cs: Convoscope, monkeypatch: pytest.MonkeyPatch) -> None:
    config = 'public_url = "https://reports.example.com"\n'
    assert serve_stderr(cs, monkeypatch, config, "--host", "0.0.0.0") == ""


def test_a_brand_set_back_to_the_default_public_url_warns_naming_it(cs: Convoscope,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    config = f'public_url = "https://reports.example.com"\n\n[brands.acme]\npublic_url = "{DEFAULT_URL}"\n'
    (line,) = serve_stderr(cs, monkeypatch, config, "--host", "0.0.0.0").strip().splitlines()
    assert "public_url of [brands.acme] is still" in line, line


def test_the_warning_comes_from_a_real_serve(tmp_path: Path) -> None:
    """Once over the real command: the server starts all the same, and the warning is one line of its stderr."""
    cs = Convoscope(tmp_path)
    port = free_port()
    log = cs.dir / "serve.err"
    with log.open("wb") as err:
        process = subprocess.Popen([str(CONVOSCOPE), "--db", str(cs.db), "--config", str(cs.config), "serve",
                                    "--host", "0.0.0.0", "--port", str(port)],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/login", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()
            time.sleep(0.1)
        else:
            pytest.fail(f"serve did not answer: {log.read_text()}")
    finally:
        process.terminate()
        process.wait(timeout=20)
    warnings = [line for line in log.read_text().splitlines() if line.startswith("convoscope: warning:")]
    assert len(warnings) == 1 and "public_url is still" in warnings[0], log.read_text()
