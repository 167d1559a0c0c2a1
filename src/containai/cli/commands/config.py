"""``cai config list|get|set|unset [KEY] [VALUE] [--global | --workspace PATH]``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from containai.cli.app import App
from containai.cli.options import add_json_option, add_workspace_option
from containai.domain import settings as S
from containai.domain.errors import UsageError

if TYPE_CHECKING:
    import argparse

NAME = "config"
HELP = "read and change settings and workspace state"
DESCRIPTION = "Read and change settings (global, repo-local) and workspace state."


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list", "get", "set", "unset"], help="what to do")
    p.add_argument("key", nargs="?", metavar="KEY", help="setting, e.g. agent.default")
    p.add_argument("value", nargs="?", metavar="VALUE", help="new value (for set)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--global", dest="global_", action="store_true", help="the global config file")
    add_workspace_option(g, "the state of this workspace (default for data_volume)")
    add_json_option(p, "with list: print JSON")


def render(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def _origin(source: str, app: App) -> str:
    """``global`` or ``repo`` for the file an ignored setting came from."""
    return "global" if source == str(app.config.global_path) else "repo"


def run(args: argparse.Namespace) -> int:
    app = App(args)
    action = args.action
    if action in ("get", "set", "unset") and not args.key:
        raise UsageError(f"config {action} needs a KEY; see `cai config list`")
    if action == "set" and args.value is None:
        raise UsageError(f"config set {args.key} needs a VALUE")
    if action in ("list", "get", "unset") and args.value is not None:
        raise UsageError(f"config {action} takes no VALUE")
    if action == "list" and args.key:
        raise UsageError("config list takes no KEY; use `cai config get KEY`")
    if args.key:
        S.key(args.key)  # unknown key -> exit 2 before anything else

    if action in ("list", "get"):
        workspace = None if args.global_ else app.workspace().path
        view = app.settings(workspace)
        if action == "get":
            app.out.line(render(view.value(args.key)))
            return 0
        rows = [(r.key, r.value, r.source) for r in view.all()]
        if args.json:
            app.out.json(
                {
                    "workspace": workspace,
                    "repo_trusted": view.repo_trusted,
                    "settings": [{"key": k, "value": v, "source": src} for k, v, src in rows],
                    "ignored": [
                        {
                            "key": i.key,
                            "value": i.value,
                            "source": _origin(i.source, app),
                            "reason": i.reason,
                        }
                        for i in view.ignored
                    ],
                }
            )
            return 0
        # What a file set but cai did not apply (SPEC section 14): shown, marked ignored.
        rows += [
            (i.key, i.value, f"{_origin(i.source, app)} (ignored: {i.reason})")
            for i in view.ignored
        ]
        width = max(len(row[0]) for row in rows)
        vwidth = max(len(render(row[1])) for row in rows)
        for k, v, src in rows:
            app.out.line(f"{k:<{width}}  {render(v):<{vwidth}}  {src}")
        return 0

    to_workspace = args.workspace is not None or (not args.global_ and args.key in S.WORKSPACE_KEYS)
    if action == "set":
        value = S.parse_value(args.key, args.value)
        if to_workspace:
            ws = app.workspace(args.workspace).path
            app.config.set_workspace_state(ws, {args.key: value})
        else:
            app.config.set_value(app.config.global_path, args.key, value)
        return 0
    # unset
    if to_workspace:
        ws = app.workspace(args.workspace).path
        app.config.set_workspace_state(ws, {args.key: None})
    else:
        app.config.unset_value(app.config.global_path, args.key)
    return 0
