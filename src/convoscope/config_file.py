"""The configuration file edited in place (issue 28): one table changed — a brand's `[brands.NAME]`, or the defaults at
the file's top — and every other byte kept as written (comments, the other brands, `[server]`, `[sources.*]`),
through tomlkit, which keeps a TOML document's layout. The changed text is read by `config.parse_config`, the very
reading `load_config` gives the file, before it replaces the file; it replaces it atomically (a temporary file in the
same folder, fsync, `os.replace`), so that a server following the file never reads half of it; and only when the file
is still the one the change was made to (its fingerprint), so that an edit made meanwhile is never overwritten.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import Table

from convoscope.config import KEYS, Config, parse_config, parse_setting
from convoscope.errors import ConfigError

ABSENT = "absent"  # the fingerprint of a file that does not exist yet
NEW_FILE_HEADER = "convoscope's configuration (docs/settings.md); started by the settings page of the web app"
_writing = threading.Lock()  # one edit at a time in this process: read, check, replace


class StaleFile(ConfigError):
    """The file changed since the form was shown: the change was made to a text that is no longer there."""


@dataclass(frozen=True)
class Snapshot:
    """The file as read once: its text ("" when absent) and fingerprint, so a form shows the values it will edit."""

    path: Path
    text: str
    fingerprint: str

    def own(self, brand: str | None) -> dict[str, Any]:
        """The brand keys `brand`'s table (None: the file's top, the defaults) sets itself, as written."""
        document = _parse(self)
        table: Any = document
        if brand is not None:
            table = document.get("brands", {}).get(brand, {})
        return {key: _plain(table[key]) for key in KEYS if key in table}


@dataclass(frozen=True)
class Change:
    """One key of the table: its value as written before and after (None: the table does not set it)."""

    key: str
    old: Any
    new: Any


def fingerprint(data: bytes | None) -> str:
    return ABSENT if data is None else hashlib.sha256(data).hexdigest()


def read(path: Path) -> Snapshot:
    """The file at `path` now (a symbolic link followed: it is the file it names that is edited)."""
    path = path.resolve()
    try:
        data: bytes | None = path.read_bytes()
    except FileNotFoundError:
        data = None
    try:
        text = data.decode("utf-8") if data is not None else ""
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; fix the file before changing settings here") from None
    return Snapshot(path, text, fingerprint(data))


def form_value(key: str, text: str) -> Any:
    """A form field's text as the file writes the key: None for an empty field (the table then takes the default);
    `ai_channels` a list of the comma-separated names; anything else the string as typed, trimmed."""
    text = text.strip()
    if not text:
        return None
    if key == "ai_channels":
        return [name.strip() for name in text.split(",") if name.strip()]
    return text


def check(brand: str | None, key: str, value: Any) -> str | None:
    """What is wrong with `value` for `key`, in `load_config`'s words, or None."""
    if value is None:
        return None
    try:
        parse_setting(key, value, f"[brands.{brand}]" if brand is not None else "defaults")
    except ConfigError as exc:
        return exc.message
    return None


def changes(snapshot: Snapshot, brand: str | None, values: dict[str, Any]) -> list[Change]:
    """The keys whose value `values` changes in the table, in KEYS' order."""
    own = snapshot.own(brand)
    return [Change(key, own.get(key), values[key]) for key in KEYS if key in values and own.get(key) != values[key]]


def edited(snapshot: Snapshot, brand: str | None, found: list[Change]) -> tuple[str, Config]:
    """The file's text with `found` made in the table, and the configuration it reads as; a ConfigError, in
    `load_config`'s words, when it does not read."""
    document = _parse(snapshot)
    if not snapshot.text:
        document.add(tomlkit.comment(NEW_FILE_HEADER))
    table = _table(document, brand, create=any(change.new is not None for change in found))
    for change in found:
        if table is None:
            break
        if change.new is None:
            table.pop(change.key, None)
        else:
            table[change.key] = change.new
    text = tomlkit.dumps(document)
    return text, parse_config(text, snapshot.path)


def write(snapshot: Snapshot, text: str, *, expected: str) -> None:
    """Replace the file by `text` (made from `snapshot`) atomically, unless the file is no longer the one whose
    fingerprint is `expected` (the one a form was shown with): StaleFile. The file keeps its permissions; a new one is
    readable by its owner alone, as it may come to hold a webhook's secret."""
    path = snapshot.path
    with _writing:
        if not read(path).fingerprint == snapshot.fingerprint == expected:
            raise StaleFile(f"{path} changed since this form was shown, so nothing was saved; reload the page to see "
                            "the file as it is now and make the change again")
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            mode = 0o600
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, mode)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # the rename itself survives a crash
        finally:
            os.close(folder)


def _parse(snapshot: Snapshot) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(snapshot.text)
    except TOMLKitError as exc:
        raise ConfigError(f"{snapshot.path}: not valid TOML ({exc}); fix the file before changing settings here") \
            from None


def _table(document: tomlkit.TOMLDocument, brand: str | None, *, create: bool) -> Any:
    """The table the brand's keys are in (the document itself for the defaults); created when `create`, else None
    when the file has none."""
    if brand is None:
        return document
    if "brands" not in document:
        if not create:
            return None
        document.add("brands", tomlkit.table(is_super_table=True))
    brands = document["brands"]
    if brand not in brands:
        if not create:
            return None
        brands.add(brand, tomlkit.table())
    table = brands[brand]
    if not isinstance(table, Table | dict):
        raise ConfigError(f"brands.{brand} must be a table such as [brands.{brand}]; fix the file first")
    return table


def _plain(value: Any) -> Any:
    """A tomlkit item as the plain Python value tomllib would give."""
    return value.unwrap() if hasattr(value, "unwrap") else value
