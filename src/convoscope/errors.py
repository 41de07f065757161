"""Errors that reach the user as one line: what is wrong and what to do.

Each stage raises its own subclass; the command line prints the message and exits with the code.
"""

from __future__ import annotations


class ConvoscopeError(Exception):
    """A failure the user can act on. `exit_code` 1 = failure, 2 = usage error (SPEC 6.1)."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(ConvoscopeError):
    exit_code = 2


class ConfigError(ConvoscopeError):
    """A bad configuration value: names the key and the expected form (SPEC 5)."""


class IngestError(ConvoscopeError):
    """A source that cannot be read at all (missing file, unknown format)."""


class ReportError(ConvoscopeError):
    """A report request that cannot be answered (bad parameter values)."""

    exit_code = 2


class MissingDependency(ConvoscopeError):
    """An optional extra is not installed; the message carries the exact install command."""
