"""Errors that reach the user as one line: what is wrong and what to do.

Each stage raises its own subclass; each interface renders it in its own words. An error about a
parameter (a command-line option, an API field, a form field) carries the parameter's canonical name
(`param`: `as_of`, `token_file`) and words its message given a namer (`worded`), so that the command line
says `--as-of`, the API `as_of` or `startAt` and a page its field's label, and no core module spells
an option the way one interface does, for another to rewrite. A message that ends by pointing to another
command (`list them with: convoscope users list`) carries that command's words (`command`), and the command
line repeats the global options the user gave in it (`cli.app.App.command`).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence

Namer = Callable[[str], str]  # a parameter's canonical name → what one interface calls it
Wording = Callable[[Namer], str]  # a message, given how the interface names parameters
Runner = Callable[[Sequence[str]], str]  # a command's words after `convoscope` → the line that runs it


def option_name(param: str) -> str:
    """The command line's name of a parameter: `as_of` → `--as-of`."""
    return "--" + param.replace("_", "-")


class ConvoscopeError(Exception):
    """A failure the user can act on. `exit_code` 1 = failure, 2 = usage error (SPEC 6.1). `message` is
    a string, or a `Wording` when it names a parameter (`param`, then, the one it is about); `self.message`
    is the command line's wording, `worded(namer)` any interface's. `command`: the words of the convoscope
    command the message ends by pointing to (`("users", "list")`), shown after a colon."""

    exit_code = 1

    def __init__(self, message: str | Wording, *, param: str | None = None, command: Sequence[str] = ()) -> None:
        self.say = as_wording(message)
        self.param = param
        self.command = tuple(command)
        self.message = self.worded(option_name)
        super().__init__(self.message)

    def worded(self, name: Namer, run: Runner | None = None) -> str:
        """The message with each parameter named by `name`, and its command as `run` writes it (by default
        plainly, without the options a command line was given)."""
        text = self.say(name)
        if not self.command:
            return text
        return f"{text}: {(run or command_line)(self.command)}"


def command_line(words: Sequence[str]) -> str:
    """`convoscope` and `words`, each quoted for a POSIX shell where it needs it."""
    return shlex.join(["convoscope", *words])


def as_wording(message: str | Wording) -> Wording:
    """`message` as a `Wording`: a plain string names no parameter, and reads the same to every interface."""
    if callable(message):
        return message
    return lambda _name: message


class UsageError(ConvoscopeError):
    exit_code = 2


class ConfigError(ConvoscopeError):
    """A bad configuration value: names the key and the expected form (SPEC 5)."""


class IngestError(ConvoscopeError):
    """A source that cannot be read at all (missing file, unknown format)."""


class ReportError(ConvoscopeError):
    """A report request that cannot be answered (bad parameter values)."""

    exit_code = 2


class ParameterError(UsageError):
    """A parameter that cannot be used (SPEC 4 common parameters, SPEC 6.1 options), a usage error. `param`
    is its canonical name (`from`, `as_of`, `where`, `token_file`); `say` words the message given a namer, so that each
    interface names the parameter its own way — the command line `--as-of`, the API `as_of` or
    `startAt`, a page its field's label — and no message is rewritten after the fact."""

    param: str

    def __init__(self, param: str, say: Wording) -> None:
        super().__init__(say, param=param)


class Forbidden(ConvoscopeError):
    """What the asker's role does not allow (SPEC 6.4); the API answers 403."""


class MissingDependency(ConvoscopeError):
    """An optional extra is not installed; the message carries the exact install command."""
