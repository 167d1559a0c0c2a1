"""``cai run [AGENT]`` / bare ``cai``: ensure the container, then attach over SSH.

Also the handler of ``cai shell`` and ``cai exec`` (their modules declare their own
arguments), and RUN-OPTIONS, which the three share.

The hot path (DESIGN decision 2): when the container's SSH control master is
alive, the container is provably up, so attach through it at once, asking the
engine nothing, and ``os.execvp`` into ``ssh`` so signals, the TTY and the
exit code are ssh's own.
"""

from __future__ import annotations

import os
import sys

from containai.cli.app import App
from containai.cli.options import (
    add_container_option,
    add_data_volume_option,
    add_dry_run_option,
    add_force_option,
    add_json_option,
    add_workspace_option,
)
from containai.domain import validation
from containai.domain.errors import EngineUnreachable, UnknownContext, UsageError
from containai.domain.labels import ssh_alias

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from containai.cli.options import Arguments
    from containai.services.run_request import RunRequest
    from containai.services.workspace import Settings, Workspace

NAME = "run"
HELP = "start an agent in the workspace's container (the default command)"
DESCRIPTION = (
    "Make sure the workspace's container exists, runs and is reachable, then "
    "start AGENT in it over SSH. Arguments after `--` go to the agent."
)
REST = "after --"


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "agent",
        nargs="?",
        metavar="AGENT",
        help="agent to start (default: config agent.default, 'claude')",
    )
    add_run_options(p)


def add_run_options(p: Arguments) -> None:
    """RUN-OPTIONS (SPEC section 1), for run, bare ``cai``, shell and exec."""
    add_workspace_option(p, "workspace directory (default: git top level of the current directory)")
    add_container_option(p, "use (or create) the container with this name")
    add_data_volume_option(p, "data volume for agent state")
    p.add_argument("--template", metavar="NAME", help="image template (default: config template)")
    p.add_argument(
        "--fresh",
        "--restart",
        dest="fresh",
        action="store_true",
        help="remove and recreate the container (same data volume)",
    )
    p.add_argument(
        "--reset",
        action="store_true",
        help="recreate the container with a new, empty data volume (old one kept)",
    )
    p.add_argument("--keep", action="store_true", help="protect the new container from gc")
    p.add_argument(
        "-d",
        "--detached",
        action="store_true",
        help="make sure the container runs and is reachable; attach nothing",
    )
    add_dry_run_option(p, "print the plan, change nothing")
    add_json_option(p, "with --dry-run: print the plan as JSON")
    p.add_argument(
        "-e",
        "--env",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="environment variable for the command (repeatable)",
    )
    p.add_argument(
        "--memory", metavar="SIZE", help="memory limit (default: half the host's, at least 2 GiB)"
    )
    p.add_argument("--cpus", metavar="N", help="CPU limit (default: half the host's, at least 1)")
    p.add_argument(
        "--runtime",
        metavar="auto|sysbox-runc|runsc|runc",
        help="OCI runtime (default auto: the strongest the engine has)",
    )
    add_force_option(p, "skip the active-session confirmation of --fresh/--reset")


def _validate(args: argparse.Namespace) -> dict[str, str]:
    if args.container is not None:
        validation.validate_container_name(args.container)
        if args.workspace is not None:
            raise UsageError("--container and --workspace exclude each other; give one of them")
    if args.data_volume is not None:
        validation.validate_volume_name(args.data_volume)
    if args.template is not None:
        validation.validate_template_name(args.template)
    if args.runtime is not None:
        validation.validate_runtime(args.runtime)
    if args.memory is not None:
        validation.parse_memory(args.memory)
    if args.cpus is not None:
        validation.parse_cpus(args.cpus)
    if args.fresh and args.reset:
        raise UsageError("--fresh and --reset exclude each other (--reset already recreates)")
    if args.json and not args.dry_run:
        raise UsageError("--json is only for --dry-run here; use `cai status --json`")
    env: dict[str, str] = {}
    for item in args.env:
        key, value = validation.parse_env_assignment(item)
        env[key] = value
    if args.command == "exec" and not args.rest and not args.dry_run and not args.detached:
        raise UsageError("exec needs a command: cai exec [OPTIONS] [--] CMD [ARGS]")
    if args.command == "shell" and args.rest:
        raise UsageError("shell takes no arguments after '--'; use `cai exec -- CMD`")
    if args.detached and args.rest:
        raise UsageError("--detached attaches nothing, so it takes no command after '--'")
    if getattr(args, "root", False) and not args.rest and not args.dry_run:
        raise UsageError("exec --root needs a command: cai exec --root -- CMD [ARGS]")
    return env


def _agent(args: argparse.Namespace, settings: Settings) -> str:
    """The agent ``cai run`` starts: AGENT, else the setting ``agent.default``."""
    return str(args.agent or settings.value("agent.default"))


def _remote(app: App, workspace: str, env: dict[str, str], settings: Settings | None) -> str:
    from containai.adapters.ssh import remote_command

    args = app.args
    if args.command == "exec":
        return remote_command(workspace, args.rest, env)
    if args.command == "shell":
        return remote_command(workspace, [], env)
    from containai.agents import agent_command

    agent = _agent(args, settings or app.settings(workspace))
    if agent == "shell":
        return remote_command(workspace, [], env)
    return agent_command(agent, workspace, list(args.rest), env)


def _attach(app: App, name: str, remote: str, settings: Settings | None = None) -> int:
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    if app.args.command == "exec":
        tty = sys.stdin.isatty()
    extra: list[str] = []
    if app.args.command == "run":
        from containai import agents

        agent = _agent(app.args, settings or app.settings(None))
        for var in agents.send_env(agent, app.env):
            extra += ["-o", f"SendEnv={var}"]
    argv = app.ssh.ssh_argv(name, remote, tty=tty, extra=extra)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)
    return 255  # pragma: no cover - execvp does not return


def _exec_root(app: App, name: str, workspace: str, env: dict[str, str]) -> int:
    """``cai exec --root -- CMD``: CMD as root through the engine (``docker exec -u 0``),
    never through the agent's SSH account, which has no way to root (SPEC section 8)."""
    # A TTY only when stdin is one, as for `cai exec`; stdin always passes through.
    argv = ["exec", "-it" if sys.stdin.isatty() else "-i", "-u", "0", "-w", workspace]
    argv += ["-e", "HOME=/root"]
    for key, value in env.items():
        argv += ["-e", f"{key}={value}"]
    full = app.engine.argv(*argv, name, *app.args.rest)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(full[0], full)
    return 255  # pragma: no cover - execvp does not return


def _fast_path(app: App, env: dict[str, str]) -> int | None:
    """Attach at once through a live control master; ``None`` when that is not proven."""
    args = app.args
    if args.dry_run or args.detached or args.fresh or args.reset or args.keep:
        return None
    if getattr(args, "root", False):
        return None
    if args.data_volume is not None or args.container is not None:
        return None
    from containai.adapters import hotcache

    workspace = app.workspace()
    if app.arg("container") is None:
        workspace.check()  # /, /tmp, ~: exit 2 before anything is made or granted
    name = hotcache.read(
        app.paths, workspace.path, hotcache.engine_key(app.paths, app.env, args.context)
    )
    if name is None:
        return None
    if not app.ssh.master_alive(name):
        return None
    app.out.info(f"attaching to '{name}' through its live SSH control master")
    settings = app.settings(workspace.path) if args.command == "run" else None
    return _attach(app, name, _remote(app, workspace.path, env, settings), settings)


def build_request(
    app: App, workspace: Workspace, env: dict[str, str]
) -> tuple[RunRequest, Settings]:
    from containai.services.run_request import RunRequest

    args = app.args
    settings = app.settings(
        workspace.path,
        {
            "data_volume": args.data_volume,
            "template": args.template,
            "runtime": args.runtime,
            "container.memory": args.memory,
            "container.cpus": args.cpus,
        },
    )
    runtime = settings.get("runtime")
    memory = settings.get("container.memory")
    cpus = settings.get("container.cpus")
    volume = settings.get("data_volume")
    req = RunRequest(
        workspace=workspace,
        container=args.container,
        data_volume=str(settings.value("data_volume")),
        data_volume_explicit=args.data_volume is not None,
        data_volume_vetted=volume.source in ("cli", "workspace"),
        template=str(settings.value("template")),
        runtime=str(runtime.value),
        runtime_may_lower=runtime.source != "repo",
        runtime_source=_source_name(app, workspace, runtime.source),
        fresh=args.fresh,
        reset=args.reset,
        keep=args.keep,
        force=args.force,
        memory=memory.value,
        cpus=cpus.value,
        memory_from_repo=memory.source == "repo",
        cpus_from_repo=cpus.source == "repo",
        memory_user=settings.user("container.memory"),
        cpus_user=settings.user("container.cpus"),
        env=env,
        port_range=settings.port_range(),
        forward_agent=bool(settings.value("ssh.forward_agent")),
        git_config_writable=bool(settings.value("git.config_writable")),
        egress=None if args.dry_run else app.egress_policy(settings),
    )
    return req, settings


def _source_name(app: App, workspace: Workspace, source: str) -> str:
    """Where a setting came from, for messages: the file for ``repo``/``global``."""
    if source == "repo":
        return str(app.config.repo_path(workspace.path))
    if source == "global":
        return str(app.config.global_path)
    return source


def _dry_run(app: App, req: RunRequest, settings: Settings) -> int:
    plan: dict[str, Any] = {
        "action": None,
        "container": req.container,
        "workspace": req.workspace.path,
        "branch": req.workspace.branch,
        "data_volume": None if req.reset else req.data_volume,
        "image": f"containai:{req.template}",
        "template": req.template,
        "runtime": None if req.runtime == "auto" else req.runtime,
        "context": None,
        "ssh_port": None,
        "ssh_alias": None,
        # Beyond SPEC's list (decision in docs/decisions.md): what would run once attached.
        "agent": None,
        "command": _planned_command(app, settings),
    }
    if app.args.command == "run":
        plan["agent"] = _agent(app.args, settings)
    try:
        plan["context"] = app.selection.context or "DOCKER_HOST"
        from containai.adapters.host import Host
        from containai.services.run_plan import plan as engine_plan

        plan.update(engine_plan(app.lookup, Host(app.env), req))
    except UnknownContext:
        raise  # naming a context that does not exist is an error even for a plan (exit 3)
    except EngineUnreachable as exc:
        app.out.info(f"no engine for the plan's engine fields: {exc}")
        if plan["container"] is None:
            state = app.config.workspace_state(req.workspace.path).get("container_name")
            plan["container"] = state if isinstance(state, str) else req.workspace.base_name
    if plan["container"] is not None:
        plan["ssh_alias"] = ssh_alias(plan["container"])
    if args_json(app):
        app.out.json(plan)
    else:
        for key, value in plan.items():
            app.out.line(f"{key.upper()}={'' if value is None else value}")
    return 0


def _planned_command(app: App, settings: Settings) -> list[str] | None:
    """The argv that attaching would run (``None`` for --detached and shell)."""
    args = app.args
    if args.detached or args.command == "shell":
        return None
    if args.command == "exec":
        return list(args.rest)
    from containai import agents

    name = _agent(args, settings)
    if name == "shell":
        return None
    agent = agents.load(name)
    return [agent.binary, *agent.default_args, *args.rest]


def args_json(app: App) -> bool:
    return bool(app.args.json)


def run(args: argparse.Namespace) -> int:
    env = _validate(args)
    app = App(args)
    fast = _fast_path(app, env)
    if fast is not None:  # pragma: no cover - execvp replaced the process
        return fast
    workspace = app.workspace()
    if app.arg("container") is None:
        workspace.check()  # /, /tmp, ~: exit 2 before anything is made or granted
    req, settings = build_request(app, workspace, env)
    if args.dry_run:
        return _dry_run(app, req, settings)
    ready = app.lifecycle(settings).ensure_running(req, app.confirm_sessions)
    if args.container is None:
        from containai.adapters import hotcache

        key = hotcache.engine_key(app.paths, app.env, args.context)
        hotcache.write(app.paths, ready.workspace, ready.name, key)
    app.out.info(f"container '{ready.name}' ready ({ready.action}) on port {ready.ssh_port}")
    if args.detached:
        return 0
    if getattr(args, "root", False):
        return _exec_root(app, ready.name, ready.workspace, env)
    return _attach(app, ready.name, _remote(app, ready.workspace, env, settings), settings)
