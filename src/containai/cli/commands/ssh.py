"""``cai ssh cleanup [--dry-run]`` (SPEC section 10)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from containai.cli.app import App
from containai.cli.options import add_dry_run_option, add_subcommand, add_subcommands
from containai.domain.errors import UsageError

if TYPE_CHECKING:
    import argparse

NAME = "ssh"
HELP = "manage cai's SSH entries"
DESCRIPTION = "Manage cai's SSH entries."


def arguments(p: argparse.ArgumentParser) -> None:
    sub = add_subcommands(p, "ssh_command")
    q = add_subcommand(
        sub,
        "cleanup",
        help="remove SSH entries, pinned keys and control sockets "
        "of containers that no longer exist",
        description="Remove SSH entries, pinned host keys and control "
        "sockets of containers that no longer exist.",
    )
    add_dry_run_option(q, "list what would be removed")


def run(args: argparse.Namespace) -> int:
    if args.ssh_command != "cleanup":  # pragma: no cover - argparse allows only cleanup
        raise UsageError(f"unknown ssh subcommand {args.ssh_command!r}")
    from containai.services.ssh_cleanup import ssh_cleanup

    app = App(args)
    from containai.services.remote import OfContext

    # Only the entries of containers on the selected engine can be judged here: a remote
    # context's entries (and, on a remote one, the local ones) are left alone.
    context = app.context_label if app.endpoint.remote else None
    names = ssh_cleanup(app.engine, OfContext(app.ssh, context), dry_run=args.dry_run)
    if args.dry_run:
        for name in names:
            app.out.line(f"would remove SSH entry, pinned key and socket of {name}")
    elif not app.out.quiet:
        for name in names:
            app.out.line(f"removed SSH entry, pinned key and socket of {name}")
    return 0
