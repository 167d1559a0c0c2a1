"""``cai logs [-f] [--tail N] [--container NAME]``: the container's log (the entrypoint,
sshd) and the output of its lifecycle commands (SPEC sections 1 and 18)."""

from __future__ import annotations

from containai.cli.app import App
from containai.cli.options import (
    add_container_option,
    add_workspace_option,
    check_container_or_workspace,
)
from containai.domain import validation
from containai.domain.errors import UsageError

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    import argparse

NAME = "logs"
HELP = "show the container's log and its setup commands' output"
DESCRIPTION = (
    "Print the output of the container's lifecycle commands (devcontainer "
    "postCreateCommand/postStartCommand, kept in ~/.containai/logs/ inside, on the data "
    "volume), then the container's own log (entrypoint, sshd). -f keeps printing the "
    "container's log until Ctrl-C or until the container stops."
)


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new lines of the container's log"
    )
    p.add_argument("--tail", metavar="N", help="only the last N lines of each log (default: all)")
    add_container_option(p, "the container whose log to show")
    add_workspace_option(p, "workspace whose container's log to show")


def parse_tail(text: str | None) -> int | None:
    """``--tail N``: a whole number >= 0 (``all``: every line)."""
    if text is None or text == "all":
        return None
    if not text.isdecimal() or not text.isascii():
        raise UsageError(f"invalid --tail {validation.show(text)}: use a whole number of lines")
    return int(text)


def run(args: argparse.Namespace) -> int:
    from containai.services import logs

    tail = parse_tail(args.tail)
    check_container_or_workspace(args)
    app = App(args)
    target = app.lookup.find_existing(app.workspace(), args.container)
    out = app.out
    files: list[logs.LogFile] = []
    if target.state == "running":
        from containai.services.container_spec import container_user

        files = logs.lifecycle_logs(app.engine, target.name, container_user(target.info), tail)
    for item in files:
        out.line(f"==> {validation.terminal_safe(item.path)} <==")
        for line in item.lines:
            out.line(validation.terminal_safe(line))
    if files:
        out.line(f"==> container {target.name} <==")
    out.stdout.flush()
    for line in logs.container_logs(app.engine, target.name, tail=tail, follow=args.follow):
        out.line(validation.terminal_safe(line))
        if args.follow:
            out.stdout.flush()
    return 0
