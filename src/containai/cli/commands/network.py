"""``cai network show|allow|deny|log [--follow] [HOST]``: the workspace's egress policy
(SPEC section 15)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from containai.cli.app import App
from containai.cli.options import add_container_option, add_json_option, add_workspace_option
from containai.domain.errors import UsageError

if TYPE_CHECKING:
    import argparse

    from containai.services.workspace import Settings

NAME = "network"
HELP = "show and change the workspace's egress allowlist; its log"
DESCRIPTION = (
    "The workspace's egress policy (network.policy, presets, allow/deny) enforced "
    "by its gateway. allow/deny change the global config (or, with --workspace, "
    "the workspace's state) and apply to running containers at once."
)


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["show", "allow", "deny", "log"], help="what to do")
    p.add_argument("host", nargs="?", metavar="HOST", help="host, *.suffix, HOST:PORT")
    add_workspace_option(p, "this workspace only")
    add_container_option(p, "with log: this container")
    p.add_argument("--follow", "-f", action="store_true", help="with log: keep printing")
    add_json_option(p)


def _show(app: App, workspace: str, settings: Settings) -> int:
    policy = app.egress_policy(settings)
    mode = settings.get("network.policy")
    from containai.domain.egress import parse_entry

    deny = {str(v): src for v, src in settings.union("network.deny")}
    allow_src = {parse_entry(str(v)): src for v, src in settings.union("network.allow")}
    rows: list[dict[str, Any]] = []
    for entry in policy.allow:
        source = entry.source
        if source == "config":
            source = next(
                (
                    src
                    for e, src in allow_src.items()
                    if (e.host, e.ports) == (entry.host, entry.ports)
                ),
                "config",
            )
        rows.append({"host": entry.host, "ports": list(entry.ports), "source": source})
    denied = [{"host": h, "source": src} for h, src in deny.items()]
    if app.arg("json"):
        app.out.json(
            {
                "workspace": workspace,
                "policy": policy.mode,
                "policy_source": mode.source,
                "allow": rows,
                "deny": denied,
                "allow_cidrs": list(policy.allow_cidrs),
            }
        )
        return 0
    app.out.line(f"policy: {policy.mode} ({mode.source})")
    if policy.mode == "open":
        app.out.line("  every destination is reachable: plain Docker egress (not recommended)")
    elif policy.mode == "none":
        app.out.line("  no destination is reachable")
    else:
        width = max((len(r["host"]) for r in rows), default=4)
        for r in rows:
            ports = ",".join(str(p) for p in r["ports"])
            app.out.line(f"  allow {r['host']:<{width}}  {ports:<10} {r['source']}")
    for d in denied:
        app.out.line(f"  deny  {d['host']}  {d['source']}")
    for cidr in policy.allow_cidrs:
        app.out.line(f"  allow-cidr {cidr}  global")
    return 0


def _change(app: App, workspace: str, add: str, host: str) -> int:
    """``allow``/``deny`` HOST in the global config (or the workspace's state), then the
    policy of every running container it concerns, live."""
    from containai.domain import egress

    entry = egress.parse_entry(host)
    text = host.strip().lower()
    other = "network.deny" if add == "network.allow" else "network.allow"
    scoped = app.arg("workspace") is not None
    view = app.settings(workspace if scoped else None)
    layer = "workspace" if scoped else "global"

    def current(key: str) -> list[str]:
        return [str(v) for v, src in view.union(key) if src == layer]

    new_add = [*current(add), text] if text not in current(add) else current(add)
    new_other = [v for v in current(other) if v != text]
    if scoped:
        app.config.set_workspace_state(workspace, {add: new_add, other: new_other or None})
    else:
        app.config.set_value(app.config.global_path, add, new_add)
        if current(other) != new_other:
            app.config.set_value(app.config.global_path, other, new_other)
    verb = "allowed" if add == "network.allow" else "denied"
    app.out.changed(f"{verb} {entry.host} ({layer})")
    # Live: each running managed container of this engine whose policy this touches.
    from containai.services.egress import POLICY_LABEL

    for target in app.lookup.managed_targets():
        labels = target.labels
        if labels.get(POLICY_LABEL) != "allowlist" or target.state != "running":
            continue
        if scoped and target.workspace != workspace:
            continue
        settings = app.settings(target.workspace)
        if app.egress(settings).apply(target.name, app.egress_policy(settings)):
            app.out.changed(f"applied to {target.name}")
    return 0


def _log(app: App, workspace: str, settings: Settings) -> int:
    from datetime import UTC, datetime

    target = app.lookup.find_existing(app.workspace(), app.arg("container"))
    egress = app.egress(settings)

    def show(line: Any) -> None:
        when = datetime.fromtimestamp(line.time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        port = "" if line.port is None else str(line.port)
        if app.arg("json"):
            app.out.json(
                {
                    "time": when,
                    "host": line.host,
                    "port": line.port,
                    "decision": line.decision,
                    "method": line.method,
                }
            )
        else:
            app.out.line(f"{when}  {line.decision:<7}  {line.host}:{port}  {line.method}")
        app.out.stdout.flush()

    for line in egress.log(target.name):
        show(line)
    if app.arg("follow"):
        for line in egress.follow(target.name):
            show(line)
    return 0


def run(args: argparse.Namespace) -> int:
    app = App(args)
    action = args.action
    if action in ("allow", "deny") and not args.host:
        raise UsageError(f"network {action} needs a HOST, e.g. `cai network {action} example.org`")
    if action in ("show", "log") and args.host:
        raise UsageError(f"network {action} takes no HOST")
    if args.follow and action != "log":
        raise UsageError("--follow is only for `cai network log`")
    workspace = app.workspace().path
    settings = app.settings(workspace)
    if action == "show":
        return _show(app, workspace, settings)
    if action == "log":
        return _log(app, workspace, settings)
    return _change(
        app, workspace, "network.allow" if action == "allow" else "network.deny", args.host
    )
