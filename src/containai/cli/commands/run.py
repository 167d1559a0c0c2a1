"""``cai run [AGENT]`` / bare ``cai``: ensure the container, then attach over SSH.

Also the handler of ``cai shell`` and ``cai exec`` (their modules declare their own
arguments), and RUN-OPTIONS, which the three share. The use case is
``services/run.py``; this module validates the arguments, builds its ``Request``,
prints a ``--dry-run`` plan, and ``os.execvp``s into the program the service names
(``ssh``, or the engine for ``--root``), so signals, the TTY and the exit code are
that program's own.
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
    check_container_or_workspace,
)
from containai.domain import validation
from containai.domain.errors import UsageError

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    import argparse

    from containai.cli.options import Arguments

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
    check_container_or_workspace(args)
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


def run(args: argparse.Namespace) -> int:
    env = _validate(args)
    app = App(args)
    from containai.services.run import Request, start

    outcome = start(
        Request(
            command=args.command,
            workspace=app.workspace(),
            agent=getattr(args, "agent", None),
            rest=args.rest,
            env=env,
            container=args.container,
            data_volume=args.data_volume,
            template=args.template,
            runtime=args.runtime,
            memory=args.memory,
            cpus=args.cpus,
            fresh=args.fresh,
            reset=args.reset,
            keep=args.keep,
            force=args.force,
            detached=args.detached,
            dry_run=args.dry_run,
            root=bool(getattr(args, "root", False)),
            stdin_tty=sys.stdin.isatty(),
            stdout_tty=sys.stdout.isatty(),
        ),
        app,
    )
    if outcome.plan is not None:
        if args.json:
            app.out.json(outcome.plan)
        else:
            for key, value in outcome.plan.items():
                app.out.line(f"{key.upper()}={'' if value is None else value}")
        return 0
    if outcome.argv is None:  # --detached
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(outcome.argv[0], outcome.argv)
    return 255  # pragma: no cover - execvp does not return
