"""The argparse parser, built from the command modules (``cli/commands/``).

Used when ``cli/argv.py``'s argparse-free path declines, and then only the invoked
command's subparser is built (all of them cost ~20 ms more; ``cai --help`` and ``cai
completion`` build them all). Options are never abbreviated (``--remov`` is an error,
not ``--remove``); an unknown option or choice suggests the closest one.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from containai import __version__
from containai.cli import commands
from containai.cli.options import add_global_options

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from types import ModuleType


class CaiArgumentParser(argparse.ArgumentParser):
    """argparse without abbreviations, whose usage errors are one line, ``cai: error:
    ...``, exit 2, with a "did you mean" where one is close."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)  # subparsers are made with the same class
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"cai: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(2)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as exc:
            hint = commands.closest(str(value), [str(c) for c in action.choices or ()])
            if hint is None:
                raise
            raise argparse.ArgumentError(action, f"{exc.message}; did you mean '{hint}'?") from None


def build_parser(only: ModuleType | None = None) -> CaiArgumentParser:
    """The parser of every command; with ``only``, of that command alone."""
    parser = CaiArgumentParser(
        prog="cai",
        description="cai (ContainAI): a persistent, isolated Docker container per workspace "
        "for AI coding agents. Bare `cai` is `cai run`.",
    )
    add_global_options(parser, suppress=False)
    parser.add_argument(
        "-V",
        "--version",
        action="version",
        version=f"cai {__version__}",
        help="print cai's version (same as `cai version`)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in [only] if only is not None else commands.modules():
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.DESCRIPTION)
        add_global_options(p, suppress=True)
        module.arguments(p)
    return parser


def parse_top(argv: Sequence[str]) -> NoReturn:
    """A command line with no command: ``cai [-q] [--context NAME] --help``."""
    build_parser().parse_args(argv)
    raise SystemExit(0)  # pragma: no cover - --help exited


def parse_command(argv: Sequence[str], module: ModuleType) -> argparse.Namespace:
    """``argv`` (global options, the command word, its own), parsed by argparse."""
    parser = build_parser(module)
    args, extras = parser.parse_known_args(argv)
    if extras:
        command = _subparser(parser, module.NAME)
        wrong = next((word for word in extras if word.startswith("-")), None)
        hint = None
        if wrong is not None:
            known = sorted({s for p in _parsers(command) for s in p._option_string_actions})
            hint = commands.closest(wrong.partition("=")[0], known)
        mean = f"; did you mean '{hint}'?" if hint else ""
        command.error(f"unrecognized arguments: {' '.join(extras)}{mean}")
    return args


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser = action.choices[name]
            return found
    raise LookupError(name)  # pragma: no cover - build_parser made it


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and its subcommands' parsers, recursively."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _parsers(child)
