"""The command line up to its parse: which command (bare ``cai`` is ``cai run``,
``cai --version`` is ``cai version``), the words after ``--`` (or after ``cai exec``'s
first word that is no option), then the parse itself.

Parsing without argparse: importing it and building one subparser costs ~5 ms, more than
``cai list``'s own work and as much as the rest of a warm ``cai exec``. The command's
``arguments(p)`` is called with a ``Recorder`` instead of a parser, so the options are
declared once; a command line made only of the options it records (flags, options with
one value, repeatable ones, the global ones) is parsed here. Anything else (``--help``, a
positional, a typo or abbreviation, a value that starts with ``-``, a subcommand, two
options of an exclusive group) goes to argparse (``cli/parser.py``), which owns every
message. ``tests/unit/test_cli.py`` checks both agree (hypothesis).
"""

from __future__ import annotations

from containai.cli import commands
from containai.cli.options import add_global_options
from containai.domain.errors import UsageError

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    from argparse import Namespace
    from collections.abc import Sequence
    from types import ModuleType
    from typing import Any

VERSION_OPTIONS = ("--version", "-V")  # `cai --version` = `cai version`
HELP_OPTIONS = ("-h", "--help")


class _Declined(Exception):
    """The declaration uses what only argparse parses (a subcommand, choices, ...)."""


class Option:
    """One ``add_argument`` call, as the argparse-free parser needs it."""

    def __init__(self, dest: str, kind: str, default: Any, group: int | None) -> None:
        self.dest = dest
        self.kind = kind  # flag | value | append | positional
        self.default = default
        self.group = group  # mutually exclusive group, by number
        self.complete: str | None = None  # see cli/options.py


class Recorder:
    """Stands in for an argparse parser in a command's ``arguments(p)``."""

    def __init__(self) -> None:
        self.options: dict[str, Option] = {}  # option string -> option
        self.positionals: list[Option] = []
        self.groups = 0

    def add_argument(self, *names: str, **kwargs: Any) -> Option:
        return self.add(names, kwargs, None)

    def add(self, names: tuple[str, ...], kwargs: dict[str, Any], group: int | None) -> Option:
        action = kwargs.pop("action", "store")
        dest = kwargs.pop("dest", None)
        default = kwargs.pop("default", False if action == "store_true" else None)
        kwargs.pop("help", None)
        kwargs.pop("metavar", None)
        if not names[0].startswith("-"):
            if kwargs.pop("nargs", None) != "?" or kwargs:
                raise _Declined  # a required positional, choices, ...
            option = Option(dest or names[0], "positional", default, None)
            self.positionals.append(option)
            return option
        if kwargs or action not in ("store", "store_true", "append"):
            raise _Declined  # choices, type, nargs, const, required, another action
        if dest is None:  # argparse's rule: the first long option, else the first one
            longs = [name for name in names if name.startswith("--")]
            dest = (longs or list(names))[0].lstrip("-").replace("-", "_")
        kind = {"store": "value", "store_true": "flag", "append": "append"}[action]
        option = Option(dest, kind, default, group)
        for name in names:
            self.options[name] = option
        return option

    def add_mutually_exclusive_group(self, required: bool = False) -> _Group:
        if required:
            raise _Declined
        self.groups += 1
        return _Group(self, self.groups)

    def add_subparsers(self, **kwargs: Any) -> Any:
        raise _Declined


class _Group:
    """A mutually exclusive group: at most one of its options on a command line."""

    def __init__(self, recorder: Recorder, number: int) -> None:
        self.recorder = recorder
        self.number = number

    def add_argument(self, *names: str, **kwargs: Any) -> Option:
        return self.recorder.add(names, kwargs, self.number)


def _global_options() -> Recorder:
    recorder = Recorder()
    add_global_options(recorder, suppress=False)
    return recorder


GLOBAL = _global_options()


def record(module: ModuleType) -> Recorder | None:
    """What ``module.arguments`` declares, or ``None`` when only argparse can parse it."""
    recorder = Recorder()
    try:
        module.arguments(recorder)
    except _Declined:
        return None
    return recorder


def locate(argv: Sequence[str]) -> tuple[list[str], int | None]:
    """``argv`` with its command word, and where that is (``None``: the top-level help).
    Bare ``cai [RUN-OPTIONS] [-- ARGS]`` gets ``run`` in front, as today's argparse
    line did; ``--version``/``-V`` where the command goes becomes ``version``."""
    words = list(argv)
    i = 0
    while i < len(words):
        token = words[i]
        name = token.partition("=")[0] if token.startswith("--") else token
        option = GLOBAL.options.get(name)
        if option is not None and option.kind == "flag" and name == token:
            i += 1
        elif option is not None and option.kind == "value":
            i += 1 if name != token else 2
        elif token in HELP_OPTIONS:
            return words, None
        elif token in VERSION_OPTIONS:
            words[i] = "version"
            return words, i
        elif token.startswith("-"):  # a run option, or `--`
            break
        else:
            return words, i
    return ["run", *words], 0


def split_rest(
    words: list[str], at: int, module: ModuleType, spec: Recorder | None
) -> tuple[list[str], list[str]]:
    """``words`` (command word at ``at``) cut into (options, rest): at the first ``--``,
    or, for ``REST = "command"``, at the first word that is no option (or the value of
    one) if that comes first: ``cai exec -e A=1 ls -la`` runs ``ls -la``."""
    cut = words.index("--", at + 1) if "--" in words[at + 1 :] else len(words)
    if spec is not None and getattr(module, "REST", None) == "command":
        i = at + 1
        while i < cut:
            token = words[i]
            if not token.startswith("-"):
                return words[:i], words[i:]
            name = token.partition("=")[0] if token.startswith("--") else token
            option = spec.options.get(name) or GLOBAL.options.get(name)
            if option is not None and option.kind != "flag" and name == token:
                i += 1  # its value, whatever it looks like
            i += 1
    return words[:cut], words[cut + 1 :]


def fast_parse(argv: Sequence[str]) -> Any | None:
    """``argv`` parsed as argparse would, when the argparse-free path can; else ``None``."""
    words, at = locate(argv)
    module = commands.load(words[at]) if at is not None else None
    if module is None or at is None:
        return None
    spec = record(module)
    head, rest = split_rest(words, at, module, spec)
    return _parse_options(head[:at] + head[at + 1 :], words[at], spec, rest)


def _parse_options(
    tokens: list[str], name: str, spec: Recorder | None, rest: list[str]
) -> Any | None:
    """``tokens`` (the command line less its command word and rest) as argparse would
    parse them, or ``None`` when only argparse can."""
    if spec is None:
        return None
    table = {**GLOBAL.options, **spec.options}
    values: dict[str, Any] = {}
    for declared in (*table.values(), *spec.positionals):
        values[declared.dest] = declared.default
    groups: dict[int, str] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        key, eq, attached = token.partition("=") if token.startswith("--") else (token, "", "")
        option = table.get(key)
        if option is None:
            return None  # a positional, --help, a typo: argparse
        if option.kind == "flag":
            if eq:
                return None  # --flag=value: argparse says it takes none
            values[option.dest] = True
        else:
            if eq:
                value = attached
            elif i + 1 < len(tokens):
                i += 1
                value = tokens[i]
            else:
                return None
            if not value or value.startswith("-"):
                return None  # argparse decides: an option, a negative number, an error
            if option.kind == "append":
                values[option.dest] = [*(values[option.dest] or []), value]
            else:
                values[option.dest] = value
        if option.group is not None and groups.setdefault(option.group, option.dest) != option.dest:
            return None  # "not allowed with": argparse says so
        i += 1
    from types import SimpleNamespace

    return SimpleNamespace(command=name, **values, rest=rest)


def parse(argv: Sequence[str], *, fast: bool = True) -> Namespace:
    """``argv`` -> the parsed command line; a usage error raises ``UsageError`` or, from
    argparse, ``SystemExit(2)`` (``--help``: ``SystemExit(0)``). ``fast=False``: always
    argparse (the tests compare both)."""
    words, at = locate(argv)
    if at is None:
        from containai.cli.parser import parse_top

        parse_top(words)  # prints the help and exits
    name = words[at]
    module = commands.load(name)
    if module is None:
        hint = commands.closest(name, commands.names())
        mean = f"; did you mean '{hint}'?" if hint else ""
        raise UsageError(f"unknown command '{name}'{mean} (see 'cai --help')")
    spec = record(module)
    head, rest = split_rest(words, at, module, spec)
    args = _parse_options(head[:at] + head[at + 1 :], name, spec, rest) if fast else None
    if args is None:
        from containai.cli.parser import parse_command

        args = parse_command(head, module)
        args.rest = rest
    if rest and getattr(module, "REST", None) is None:
        raise UsageError(f"'{name}' takes no arguments after '--' (see 'cai {name} --help')")
    result: Namespace = args
    return result
