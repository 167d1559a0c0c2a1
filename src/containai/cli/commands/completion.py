"""``cai completion bash|zsh|fish``: a static completion script, generated from the
parser by ``shtab`` (SPEC section 17). Container names for ``--container`` come from
``cai list`` when the user presses TAB; generating the script adds nothing to the hot
path (shtab and the full parser are imported here only)."""

from __future__ import annotations

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    import argparse

NAME = "completion"
HELP = "print a shell completion script (bash, zsh, fish)"
DESCRIPTION = (
    "Print a completion script for SHELL on stdout: commands, options, and container "
    "names for --container (from `cai list`). Install it with, e.g., "
    "`cai completion bash > ~/.local/share/bash-completion/completions/cai`, "
    "`cai completion zsh > ~/.zfunc/_cai` (a directory in $fpath), or "
    "`cai completion fish > ~/.config/fish/completions/cai.fish`."
)
SHELLS = ("bash", "zsh", "fish")

# The names in `cai list`'s first column (after its header line), at completion time.
CONTAINER_NAMES = "cai list 2>/dev/null | awk 'NR > 1 { print $1 }'"


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("shell", choices=SHELLS, metavar="SHELL", help=" | ".join(SHELLS))


def script(shell: str) -> str:
    """The completion script for ``shell``, ending with a newline."""
    import shtab

    from containai.cli.parser import build_parser

    parser = build_parser()
    kinds = {
        "container": shtab.cmd(CONTAINER_NAMES),
        "directory": shtab.DIRECTORY,
        "file": shtab.FILE,
    }
    for action in _actions(parser):
        kind = getattr(action, "complete", None)
        if isinstance(kind, str):
            action.complete = kinds[kind]  # type: ignore[attr-defined]
    text: str = shtab.complete(parser, shell=shell)
    return text if text.endswith("\n") else text + "\n"


def _actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """Every action of ``parser`` and of its subcommands' parsers."""
    import argparse

    found: list[argparse.Action] = []
    for action in parser._actions:
        found.append(action)
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += _actions(child)
    return found


def run(args: argparse.Namespace) -> int:
    import sys

    sys.stdout.write(script(args.shell))
    return 0
