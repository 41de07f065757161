"""Errors that reach the user as one line: what is wrong and what to do.

Each stage raises its own subclass; the command line prints the message and exits with the code.
"""

from __future__ import annotations

from collections.abc import Callable


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


Namer = Callable[[str], str]  # a parameter's canonical name → what one interface calls it


def option_name(param: str) -> str:
    """The command line's name of a parameter: `as_of` → `--as-of`."""
    return "--" + param.replace("_", "-")


class ParameterError(ReportError):
    """A parameter that cannot be used (SPEC 4 common parameters, SPEC 6.1 options). `param` is its
    canonical name (`from`, `as_of`, `where`); `say` words the message given a namer, so that each
    interface names the parameter its own way — the command line `--as-of`, the API `as_of` or
    `startAt`, a page its field's label — and no message is rewritten after the fact."""

    def __init__(self, param: str, say: Callable[[Namer], str]) -> None:
        self.param = param
        self.say = say
        super().__init__(say(option_name))

    def worded(self, name: Namer) -> str:
        return self.say(name)


class Forbidden(ConvoscopeError):
    """What the asker's role does not allow (SPEC 6.4); the API answers 403."""


class MissingDependency(ConvoscopeError):
    """An optional extra is not installed; the message carries the exact install command."""
