"""``cai status [--container NAME] [-w PATH] [--json]`` (SPEC section 7)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from containai.cli.app import App
from containai.cli.options import (
    add_container_option,
    add_json_option,
    add_workspace_option,
    check_container_or_workspace,
)
from containai.domain.errors import NotFound

if TYPE_CHECKING:
    import argparse

    from containai.services.status import StatusReport

NAME = "status"
HELP = "show one container's state"
DESCRIPTION = "Show the state of the workspace's container (or --container)."


def arguments(p: argparse.ArgumentParser) -> None:
    add_container_option(p, "the container to show")
    add_workspace_option(p, "workspace whose container to show")
    add_json_option(p)


def render_text(report: StatusReport) -> list[str]:
    """The SPEC section 7 layout; best-effort lines that are unknown are left out."""
    from containai.domain.age import format_duration
    from containai.domain.validation import format_bytes

    lines = [f"Container: {report.container}", f"  Status: {report.status}"]
    if report.uptime_seconds is not None:
        lines.append(f"  Uptime: {format_duration(report.uptime_seconds)}")
    lines.append(f"  Image: {report.image}")
    lines.append(f"  Isolation: {report.isolation}")
    lines.append(f"  SSH: ssh {report.ssh_alias}")
    if report.data_volume:
        lines.append(f"  Volume: {report.data_volume}")
    network = report.network_policy or "open"
    if report.network_policy is None:
        network += " (made before egress policies: `cai --fresh` moves it behind the gateway)"
    elif network == "open":
        network += " (warning: plain Docker egress, no allowlist)"
    elif report.denials is not None:
        network += f", {report.denials} denied (`cai network log`)"
    lines.append(f"  Network: {network}")
    if report.branch or report.current_branch:
        branch = f"  Branch: {report.branch or 'unknown'} (when created)"
        if report.current_branch and report.current_branch != report.branch:
            branch += f", now {report.current_branch} (one container per workspace directory)"
        lines.append(branch)
    for row in report.forwards:
        state = "active" if row["active"] else "inactive (restored by `cai run`)"
        lines.append(f"  Forward: {row['address']} -> port {row['port']}, {state}")
    if report.sessions is not None:
        lines += [
            "",
            "  Sessions (best-effort):",
            f"    SSH connections: {report.sessions.ssh_connections}",
            f"    Active terminals: {report.sessions.active_terminals}",
        ]
    res = report.resources
    usage: list[str] = []
    if res.memory_bytes is not None and res.memory_limit_bytes is not None:
        memory = f"{format_bytes(res.memory_bytes)} / {format_bytes(res.memory_limit_bytes)}"
        if res.memory_percent is not None:
            memory += f" ({res.memory_percent:.0f}%)"
        usage.append(f"    Memory: {memory}")
    if res.cpu_percent is not None:
        usage.append(f"    CPU: {res.cpu_percent:.1f}%")
    if usage:
        lines += ["", "  Resource Usage:", *usage]
    return lines


def run(args: argparse.Namespace) -> int:
    check_container_or_workspace(args)
    app = App(args)
    settings = app.settings(None)
    lookup = app.lookup
    workspace = app.workspace()
    target = lookup.find(workspace, args.container)  # unmanaged --container: exit 5
    if target.info is None:
        where = "" if args.container else f" (the container of workspace {workspace.path})"
        raise NotFound(
            f"container '{target.name}'{where} does not exist; create it with "
            "`cai run --detached`, or see `cai list`"
        )
    from containai.services.status import container_status

    egress = app.egress(settings)
    report = container_status(
        target.info,
        engine=app.engine,
        sessions=lookup.sessions,
        denials=lambda name: sum(1 for line in egress.log(name) if line.denied),
    )
    import dataclasses

    if not args.container or target.workspace == workspace.path:
        report = dataclasses.replace(report, current_branch=workspace.branch)
    if target.workspace:  # background forwards recorded for the container (SPEC 17)
        from containai.cli.commands.forward import forwards

        rows = forwards(app).listing(target.name, target.workspace)
        report = dataclasses.replace(report, forwards=tuple(r.to_json() for r in rows))
    if args.json:
        app.out.json({**report.to_json(), "context": app.context_label})
    else:
        lines = render_text(report)
        if app.endpoint.remote:  # SPEC section 16: say which machine
            lines.insert(1, f"  Context: {app.context_label} ({app.endpoint.url})")
        for line in lines:
            app.out.line(line)
    return 0
