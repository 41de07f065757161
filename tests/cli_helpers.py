"""What the command-line tests share: input events, SPEC 3.5 ids, and the CLI on a temporary store."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from convoscope.cli import cli

FIXTURES = Path(__file__).parent / "fixtures"
WORKED_EXAMPLE = FIXTURES / "worked-example.jsonl"
AS_OF = "2026-06-01T00:00:00Z"
MESSAGE_TYPES = ("customer_message", "ai_message", "agent_message")


def ev(event_id: str, type_: str, occurred_at: str, customer: str = "c1", **fields: object) -> dict:
    """One input event; messages get channel `chat` unless told otherwise, None drops a field."""
    event: dict = {"event_id": event_id, "type": type_, "occurred_at": occurred_at, "customer_id": customer}
    if type_ in MESSAGE_TYPES:
        event["channel"] = "chat"
    event.update(fields)
    return {key: value for key, value in event.items() if value is not None}


def make_id(prefix: str, brand: str, customer: str, event_id: str) -> str:
    """SPEC 3.5, recomputed the way a user would."""
    digest = hashlib.sha256(f"{brand}\n{customer}\n{event_id}".encode()).hexdigest()
    return prefix + digest[:16]


# The tests' own configuration file: every key at its default, but the servers they start take any number of
# requests a second — most tests send theirs back to back, faster than the default rate limit (decision 97),
# which tests/test_rate_limit.py tests with configurations of its own.
TEST_CONFIG = "[server]\nrate_limit = 0\n"


class Convoscope:
    """The CLI on one store in a temporary directory. `config` is passed as --config when set: TEST_CONFIG by
    default, so that no ./convoscope.toml is read unless a test asks for it."""

    def __init__(self, directory: Path, *, own_config: bool = True) -> None:
        self.dir = directory
        self.db = directory / "store.duckdb"
        self.config: Path | None = None
        if own_config:
            self.config = directory / "tests.toml"
            self.config.write_text(TEST_CONFIG)
        self.runner = CliRunner()

    def __call__(self, *args: str) -> Result:
        config = ["--config", str(self.config)] if self.config is not None else []
        return self.runner.invoke(cli, ["--db", str(self.db), *config, *args])

    def write_events(self, events: list[dict], name: str = "events.jsonl") -> Path:
        path = self.dir / name
        path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
        return path

    def ingest(self, events: list[dict], name: str = "events.jsonl") -> None:
        result = self("ingest", str(self.write_events(events, name)))
        assert result.exit_code == 0, result.stderr

    def report(self, *args: str, name: str = "sessions-detail", as_of: str = AS_OF) -> Result:
        result = self("report", name, "--as-of", as_of, *args)
        assert result.exit_code == 0, result.stderr
        return result

    def rows(self, *args: str, name: str = "sessions-detail", as_of: str = AS_OF) -> list[dict[str, str]]:
        return parse(self.report(*args, name=name, as_of=as_of))


def parse(result: Result) -> list[dict[str, str]]:
    """The CSV rows of a report (from the raw bytes: Click's `stdout` rewrites CRLF)."""
    return list(csv.DictReader(io.StringIO(result.stdout_bytes.decode("utf-8"), newline="")))


def header(result: Result) -> list[str]:
    return next(csv.reader(io.StringIO(result.stdout_bytes.decode("utf-8"), newline="")))


def assert_usage_error(result: Result) -> None:
    """Exit 2, one line on stderr beginning `convoscope: error:`, and no partial CSV (SPEC 6.1)."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("convoscope: error:"), lines
    assert result.stdout_bytes == b""


def one_message_each(tmp_path_factory: pytest.TempPathFactory, at_by_customer: dict[str, str]) -> Iterator[Convoscope]:
    """A shared store holding one customer message per customer, at the given instants."""
    events = [ev(f"{customer}-1", "customer_message", at, customer=customer) for customer, at in at_by_customer.items()]
    yield from shared_store(tmp_path_factory, events)


def shared_store(tmp_path_factory: pytest.TempPathFactory, events: list[dict]) -> Iterator[Convoscope]:
    """A store shared by a module's read-only report tests, to keep the suite fast."""
    store = Convoscope(tmp_path_factory.mktemp("store"))
    store.ingest(events)
    yield store
