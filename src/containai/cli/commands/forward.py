"""``cai forward PORT[:HOSTPORT]... [--background | --list | --stop [PORT]]`` (SPEC
section 17): a container port on the host's 127.0.0.1 through SSH."""

from __future__ import annotations

from containai.cli.app import App
from containai.cli.options import (
    add_container_option,
    add_json_option,
    add_workspace_option,
    check_container_or_workspace,
)
from containai.domain.errors import Failed, UsageError

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    import argparse

    from containai.domain.forwards import Forward
    from containai.services.forward import Forwards
    from containai.services.lookup import Target
    from containai.services.workspace import Settings

NAME = "forward"
HELP = "forward container ports to 127.0.0.1 on the host"
DESCRIPTION = (
    "Forward the container's PORT to 127.0.0.1:HOSTPORT on the host through SSH (HOSTPORT: "
    "the same number by default, the next free one when that is taken; a HOSTPORT you "
    "name must be free). In the foreground until Ctrl-C; with --background the forward "
    "stays while the container runs, is recorded, and `cai run` restores it. --list shows "
    "the background forwards, --stop [PORT] ends one (by host port, else container port) "
    "or all of them."
)


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "ports",
        nargs="*",
        metavar="PORT[:HOSTPORT]",
        help="container port, optionally with the host port on 127.0.0.1",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--background",
        action="store_true",
        help="keep the forward while the container runs; `cai run` restores it",
    )
    mode.add_argument("--list", action="store_true", help="show the background forwards")
    mode.add_argument(
        "--stop",
        nargs="?",
        const="all",
        metavar="PORT",
        help="end the background forward on PORT (all of them without PORT)",
    )
    add_container_option(p, "the container whose ports to forward")
    add_workspace_option(p, "workspace whose container's ports to forward")
    add_json_option(p, "with --list: print JSON")


def forwards(app: App) -> Forwards:
    from containai.adapters.locks import FileLocks
    from containai.services.forward import Forwards

    return Forwards(
        app.ssh.forwards, app.config, FileLocks(app.paths.locks_dir), app.host.port_is_free
    )


def restore_forwards(app: App, name: str, workspace: str, settings: Settings | None = None) -> None:
    """``cai run``'s call once the container runs (SPEC section 17): the container's
    recorded background forwards and the ``forward`` setting's ports, back on
    127.0.0.1. One line per forward made; a forward that cannot be made is a warning,
    never an error (the container is up and the session goes on)."""
    settings = settings or app.settings(workspace)
    configured = [str(v) for v in settings.value("forward")]
    configured += _devcontainer_ports(app, workspace, enabled=bool(settings.value("devcontainer")))
    for item in forwards(app).restore(name, workspace, configured):
        if item.problem is None:
            app.out.changed(_line(name, item.forward))
        else:
            app.out.warn(f"forward of port {item.forward.port} not restored: {item.problem}")


def _devcontainer_ports(app: App, workspace: str, *, enabled: bool) -> list[str]:
    """The devcontainer's ``forwardPorts`` (SPEC 18, no trust needed); its parser is
    loaded only when the workspace has the file, and a file that does not parse is a
    warning here (the container is up), as for any forward that cannot be made."""
    from containai.adapters.devcontainer_path import find

    if not enabled or find(workspace) is None:
        return []
    from containai.domain.errors import ConfigError
    from containai.services.devcontainer import forward_ports

    try:
        return [str(port) for port in forward_ports(app.devcontainer_files(), workspace)]
    except ConfigError as exc:
        app.out.warn(f"devcontainer forwardPorts not restored: {exc}")
        return []


def _line(name: str, forward: Forward) -> str:
    return f"forwarding 127.0.0.1:{forward.host_port} -> port {forward.port} of {name}"


def _target(app: App) -> Target:
    target = app.lookup.find_existing(app.workspace(), app.arg("container"))
    return target


def _running(target: Target) -> None:
    if target.state != "running":
        raise Failed(
            f"container '{target.name}' is {target.state}, not running; start it with "
            "`cai run --detached`"
        )


def _foreground(app: App, target: Target, wanted: list[Forward]) -> int:
    import signal

    service = forwards(app)
    chosen, tunnel = service.foreground(target.name, wanted)

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C, a kill or a closed terminal end the forward, and ssh with it (SIGINT too
    # when the shell started cai with it ignored, as `cmd &` does).
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    try:
        for forward in chosen:
            app.out.changed(_line(target.name, forward) + " (Ctrl-C to stop)")
        app.out.stderr.flush()
        code = tunnel.wait()
    except KeyboardInterrupt:
        tunnel.close()
        for forward in chosen:
            app.out.changed(f"removed forward 127.0.0.1:{forward.host_port}")
        return 130
    problem = tunnel.error()
    tunnel.close()
    raise Failed(f"the forward to container '{target.name}' ended (ssh exit {code}): {problem}")


def run(args: argparse.Namespace) -> int:
    from containai.domain import forwards as F

    check_container_or_workspace(args)
    if args.list or args.stop is not None:
        if args.ports:
            what = "--list" if args.list else "--stop"
            raise UsageError(
                f"{what} takes no PORT[:HOSTPORT] arguments (`cai forward --stop PORT`)"
            )
    elif not args.ports:
        raise UsageError("give a PORT to forward, e.g. `cai forward 8000` (or --list, --stop)")
    if args.json and not args.list:
        raise UsageError("--json goes with --list")
    stop_port: int | None = None
    if args.stop not in (None, "all"):
        stop_port = F.parse(args.stop).port if ":" not in args.stop else None
        if stop_port is None:
            raise UsageError(f"--stop takes one PORT, not '{args.stop}'")
    wanted = F.parse_all(args.ports)
    app = App(args)
    target = _target(app)
    service = forwards(app)
    if args.list:
        rows = service.listing(target.name, target.workspace)
        if args.json:
            app.out.json({"container": target.name, "forwards": [r.to_json() for r in rows]})
            return 0
        if not rows:
            app.out.changed(f"container '{target.name}' has no background forwards")
            return 0
        app.out.line(f"{'ADDRESS':<16}  {'PORT':>5}  STATE")
        for row in rows:
            state = "active" if row.active else "inactive (`cai run -d` restores it)"
            app.out.line(f"{'127.0.0.1:' + str(row.host_port):<16}  {row.port:>5}  {state}")
        return 0
    if args.stop is not None:
        gone = service.stop(target.name, target.workspace, stop_port)
        if not gone:
            app.out.changed(f"container '{target.name}' has no background forwards")
        for forward in gone:
            app.out.changed(
                f"removed forward 127.0.0.1:{forward.host_port} -> port {forward.port} "
                f"of {target.name}"
            )
        return 0
    _running(target)
    if args.background:
        made = service.background(target.name, target.workspace, wanted)
        for forward in made:
            app.out.changed(_line(target.name, forward) + " (background)")
        if not made:
            app.out.changed(
                f"already forwarded (see `cai forward --list --container {target.name}`)"
            )
        return 0
    return _foreground(app, target, wanted)
