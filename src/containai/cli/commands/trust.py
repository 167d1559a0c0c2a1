"""``cai trust [--show | --revoke]``: accept this repository's own settings (SPEC 14)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from containai.cli.app import App
from containai.cli.options import add_json_option, add_workspace_option

if TYPE_CHECKING:
    import argparse
    from typing import Any

    from containai.adapters.devcontainer_file import DevcontainerFiles

NAME = "trust"
HELP = "accept this repository's own settings (.containai/config.toml, devcontainer.json)"
DESCRIPTION = (
    "Accept this repository's own settings files (.containai/config.toml and "
    ".devcontainer/devcontainer.json with its Dockerfile): their exact content "
    "(SHA-256) is recorded in the global config, and any change un-trusts them. "
    "Keys that could weaken the sandbox (and a devcontainer's image/build) apply "
    "only while trusted; "
    "some (image.ca_bundle, ssh.forward_agent, network.policy, ...) never come "
    "from a repository."
)


def arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--show", action="store_true", help="show the file, its hash and status")
    g.add_argument("--revoke", action="store_true", help="forget the trust of this file")
    add_workspace_option(p, "workspace (default: here)")
    add_json_option(p, "with --show: print JSON")


def _devcontainer(app: App, workspace: str) -> DevcontainerFiles | None:
    """The devcontainer.json source, unless the user turned it off (``devcontainer``)."""
    if not app.settings(workspace).value("devcontainer"):
        return None
    from containai.adapters.devcontainer_file import DevcontainerFiles

    return DevcontainerFiles()


def run(args: argparse.Namespace) -> int:
    from containai.services import trust

    app = App(args)
    workspace = app.workspace().path
    devcontainer = _devcontainer(app, workspace)
    if args.revoke:
        files = trust.revoke_all(app.config, workspace, devcontainer)
        if not files:
            app.out.warn(f"nothing to revoke: no trust recorded for workspace {workspace}")
        for file in files:
            app.out.changed(f"revoked trust of {file}")
        return 0
    if args.show:
        found = trust.states(app.config, workspace, devcontainer)
        view = app.settings(workspace)
        if args.json:
            shown: list[dict[str, Any]] = [
                {
                    "file": s.file,
                    "sha256": s.digest,
                    "trusted": s.trusted,
                    "status": s.status,
                    "kind": "devcontainer" if s.file.endswith(".json") else "settings",
                }
                for s in found
            ]
            first = shown[0]
            app.out.json(
                {
                    "file": first["file"],
                    "sha256": first["sha256"],
                    "trusted": first["trusted"],
                    "status": first["status"],
                    "files": shown,
                    "ignored": [{"key": i.key, "reason": i.reason} for i in view.ignored],
                }
            )
            return 0
        for current in found:
            app.out.line(f"file: {current.file}")
            app.out.line(f"sha256: {current.digest}")
            app.out.line(f"status: {current.status}")
        for item in view.ignored:
            app.out.line(f"ignored: {item.key} ({item.reason})")
        return 0
    for done in trust.trust_all(app.config, workspace, devcontainer):
        if done.file.endswith(".json"):
            what = "its image/build (with the Dockerfile as it is now)"
        else:
            view = app.settings(workspace)
            applied = sorted(r.key for r in view.all() if r.source == "repo")
            what = ", ".join(applied) if applied else "nothing beyond the safe keys"
        app.out.changed(f"trusted {done.file} (sha256 {done.digest[:12]}): applies {what}")
    return 0
