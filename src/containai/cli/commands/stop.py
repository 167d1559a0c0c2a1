"""``cai stop [--container NAME] [--all] [--remove] [--force] [--export [--output PATH]]``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from containai.cli.app import App
from containai.cli.options import (
    add_container_option,
    add_force_option,
    add_workspace_option,
    check_container_or_workspace,
)
from containai.domain import validation
from containai.domain.errors import NotFound, UsageError

if TYPE_CHECKING:
    import argparse

NAME = "stop"
HELP = "stop (or remove) containers; volumes are never removed"
DESCRIPTION = "Stop the workspace's container (or remove it). Volumes are never removed."


def arguments(p: argparse.ArgumentParser) -> None:
    add_container_option(p, "the container to stop")
    add_workspace_option(p, "workspace whose container to stop")
    p.add_argument("--all", action="store_true", help="every managed container in the context")
    p.add_argument(
        "--remove",
        action="store_true",
        help="remove the container(s) and their SSH entries (never a volume)",
    )
    add_force_option(p, "do not ask about active sessions")
    p.add_argument(
        "--export",
        action="store_true",
        help="export the data volume first; abort the stop if that fails",
    )
    p.add_argument("--output", metavar="PATH", help="with --export: archive path or directory")


def run(args: argparse.Namespace) -> int:
    if args.container is not None:
        validation.validate_container_name(args.container)
    if args.all and (args.container is not None or args.workspace is not None):
        raise UsageError("--all excludes --container and --workspace")
    check_container_or_workspace(args)
    if args.output is not None and not args.export:
        raise UsageError("--output goes with --export")
    app = App(args)
    settings = app.settings(None)
    if args.all:
        targets = app.lookup.managed_targets()
    else:
        workspace = app.workspace()
        target = app.lookup.find(workspace, args.container)
        if not target.exists:
            what = f"container '{target.name}'"
            raise NotFound(f"{what} does not exist (nothing to stop); see `cai list`")
        targets = [target]
    if args.export:
        from containai.cli.commands.export import export_targets

        export_targets(app, targets, args.output, force=args.force)
    done = app.stopping(settings).stop(
        targets, remove=args.remove, force=args.force, confirm=app.confirm_sessions
    )
    from containai.domain import labels as L
    from containai.services.changes import stop_line

    # SPEC section 16: on a remote engine, name the machine it happened on.
    where = f" (context {app.context_label})" if app.endpoint.remote else ""
    for target in targets:
        if target.name in done:
            volume = target.labels.get(L.DATA_VOLUME)
            line = stop_line(target.name, target.state, removed=args.remove, volume=volume)
            app.out.changed(f"{line}{where}")
    return 0
