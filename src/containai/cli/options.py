"""Options shared by several commands, each defined once (as pipx does).

A command module's ``arguments(p)`` calls these with its argparse parser, or with
``cli/argv.py``'s recorder on the argparse-free path: so this module imports nothing,
and ``p`` is only ever asked to ``add_argument``. ``p`` may also be a mutually exclusive
group (``add_container_option(group, ...)``).

The ``complete`` attribute set on an option names what the shell completes for its value
(``cai completion``): ``"container"`` (the names ``cai list`` shows), ``"directory"``
or ``"file"``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    import argparse
    from typing import Any, Protocol

    class Arguments(Protocol):
        """A parser, a group of one, or the recorder of ``cli/argv.py``."""

        def add_argument(self, *names: str, **kwargs: Any) -> Any: ...


def add_global_options(p: Arguments, *, suppress: bool) -> None:
    """``--context``, ``-q/--quiet``, ``--verbose``: on the top-level parser (defaults)
    and again on every command's parser (``suppress``: no defaults there, so ``cai -q
    list`` and ``cai list -q`` both work and neither undoes the other). Only argparse
    parsers take them twice, so only they are asked to ``suppress``."""
    context: Any = None
    flag: Any = False
    if suppress:
        from argparse import SUPPRESS  # compared by identity: argparse's own object

        context = flag = SUPPRESS
    p.add_argument(
        "--context",
        metavar="NAME",
        default=context,
        help="Docker context to use (else CONTAINAI_CONTEXT, config engine.context, "
        "'containai-docker' if it exists, then Docker's own choice)",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=flag,
        help="print nothing but what was asked for and errors",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        default=flag,
        help="explain each step on stderr (also CONTAINAI_VERBOSE=1)",
    )


def add_container_option(p: Arguments, help: str) -> None:
    """``--container NAME``."""
    p.add_argument("--container", metavar="NAME", help=help).complete = "container"


def check_container_or_workspace(args: argparse.Namespace) -> None:
    """``--container NAME`` is a valid name and excludes ``-w/--workspace`` (exit 2)."""
    if args.container is None:
        return
    from containai.domain import validation
    from containai.domain.errors import UsageError

    validation.validate_container_name(args.container)
    if args.workspace is not None:
        raise UsageError("--container and --workspace exclude each other; give one of them")


def add_workspace_option(p: Arguments, help: str) -> None:
    """``-w/--workspace PATH``."""
    p.add_argument("-w", "--workspace", metavar="PATH", help=help).complete = "directory"


def add_data_volume_option(p: Arguments, help: str) -> None:
    """``--data-volume NAME``."""
    p.add_argument("--data-volume", metavar="NAME", help=help)


def add_json_option(p: Arguments, help: str = "print JSON") -> None:
    """``--json``: the product as JSON (``"schema": 1``, one final newline)."""
    p.add_argument("--json", action="store_true", help=help)


def add_dry_run_option(p: Arguments, help: str) -> None:
    """``--dry-run``: say what would happen, change nothing."""
    p.add_argument("--dry-run", action="store_true", help=help)


def add_force_option(p: Arguments, help: str) -> None:
    """``--force``: do without the confirmation this command would ask for."""
    p.add_argument("--force", action="store_true", help=help)


def add_subcommands(p: argparse.ArgumentParser, dest: str) -> Any:
    """The required SUBCOMMAND of a command (``cai ssh cleanup``); its parsers are made
    with ``add_subcommand``."""
    return p.add_subparsers(dest=dest, metavar="SUBCOMMAND", required=True)


def add_subcommand(sub: Any, name: str, help: str, description: str) -> argparse.ArgumentParser:
    """One SUBCOMMAND's parser, which takes the global options too."""
    q: argparse.ArgumentParser = sub.add_parser(name, help=help, description=description)
    add_global_options(q, suppress=True)
    return q
