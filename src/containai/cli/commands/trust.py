"""``cai trust [--show | --revoke]``: accept this repository's own settings (SPEC 14)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from containai.cli.app import App
from containai.cli.options import add_json_option, add_workspace_option

if TYPE_CHECKING:
    import argparse

NAME = "trust"
HELP = "accept this repository's own settings (.containai/config.toml)"
DESCRIPTION = (
    "Accept this repository's own settings file (.containai/config.toml): its "
    "exact content (SHA-256) is recorded in the global config, and any change "
    "un-trusts it. Keys that could weaken the sandbox apply only while trusted; "
    "some (image.ca_bundle, ssh.forward_agent, network.policy, ...) never come "
    "from a repository."
)


def arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--show", action="store_true", help="show the file, its hash and status")
    g.add_argument("--revoke", action="store_true", help="forget the trust of this file")
    add_workspace_option(p, "workspace (default: here)")
    add_json_option(p, "with --show: print JSON")


def run(args: argparse.Namespace) -> int:
    from containai.services import trust

    app = App(args)
    workspace = app.workspace().path
    if args.revoke:
        file = trust.revoke(app.config, workspace)
        if file is None:
            app.out.warn(f"nothing to revoke: no trust recorded for workspace {workspace}")
        else:
            app.out.changed(f"revoked trust of {file}")
        return 0
    if args.show:
        current = trust.state(app.config, workspace)
        view = app.settings(workspace)
        if args.json:
            app.out.json(
                {
                    "file": current.file,
                    "sha256": current.digest,
                    "trusted": current.trusted,
                    "status": current.status,
                    "ignored": [{"key": i.key, "reason": i.reason} for i in view.ignored],
                }
            )
            return 0
        app.out.line(f"file: {current.file}")
        app.out.line(f"sha256: {current.digest}")
        app.out.line(f"status: {current.status}")
        for item in view.ignored:
            app.out.line(f"ignored: {item.key} ({item.reason})")
        return 0
    done = trust.trust(app.config, workspace)
    view = app.settings(workspace)
    applied = sorted(r.key for r in view.all() if r.source == "repo")
    what = ", ".join(applied) if applied else "nothing beyond the safe keys"
    app.out.changed(f"trusted {done.file} (sha256 {done.digest[:12]}): applies {what}")
    return 0
