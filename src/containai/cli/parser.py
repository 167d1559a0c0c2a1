"""The full argparse parser: built only when ``cli/main.py``'s flag-only fast path does
not apply (argparse and one subparser cost ~10 ms; the hot path avoids them).

Only the invoked command's subparser is built (all sixteen cost ~20 ms more).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, NoReturn

from containai.cli.main import COMMANDS

if TYPE_CHECKING:
    from collections.abc import Sequence

# Options that take a value, for finding where the command word is (bare `cai` = `cai run`).
_VALUE_OPTIONS = {
    "--context",
    "-w",
    "--workspace",
    "--container",
    "--data-volume",
    "--template",
    "-e",
    "--env",
    "--memory",
    "--cpus",
    "--runtime",
}


class CaiArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, ``cai: error: ...``, exit 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"cai: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(2)


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--context",
        metavar="NAME",
        default=default,
        help="Docker context to use (else CONTAINAI_CONTEXT, config engine.context, "
        "'containai-docker' if it exists, then Docker's own choice)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="print nothing but what was asked for and errors",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="explain each step on stderr (also CONTAINAI_VERBOSE=1)",
    )


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-w",
        "--workspace",
        metavar="PATH",
        help="workspace directory (default: git top level of the current directory)",
    )
    p.add_argument(
        "--container", metavar="NAME", help="use (or create) the container with this name"
    )
    p.add_argument("--data-volume", metavar="NAME", help="data volume for agent state")
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
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.add_argument("--json", action="store_true", help="with --dry-run: print the plan as JSON")
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
    p.add_argument(
        "--force",
        action="store_true",
        help="skip the active-session confirmation of --fresh/--reset",
    )


def build_parser(only: str | None = None) -> CaiArgumentParser:
    """The parser; with ``only``, just that command's subparser (the hot path builds one,
    not sixteen: argparse spends ~20 ms on the full tree)."""
    parser = CaiArgumentParser(
        prog="cai",
        description="cai (ContainAI): a persistent, isolated Docker container per workspace "
        "for AI coding agents. Bare `cai` is `cai run`.",
    )
    _global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CaiArgumentParser)

    def add(name: str, description: str) -> CaiArgumentParser:
        p: CaiArgumentParser = sub.add_parser(name, help=COMMANDS[name][1], description=description)
        _global_options(p, suppress=True)
        return p

    def _run() -> None:
        p = add(
            "run",
            "Make sure the workspace's container exists, runs and is reachable, then "
            "start AGENT in it over SSH. Arguments after `--` go to the agent.",
        )
        p.add_argument(
            "agent",
            nargs="?",
            metavar="AGENT",
            help="agent to start (default: config agent.default, 'claude')",
        )
        _run_options(p)

    def _shell() -> None:
        p = add(
            "shell", "Same as run, but open an interactive login shell in the workspace directory."
        )
        _run_options(p)

    def _exec() -> None:
        p = add(
            "exec",
            "Same as run, but run one command non-interactively: `cai exec -- CMD "
            "[ARGS]`. stdin/stdout/stderr pass through, a TTY only when stdin is one, and the "
            "command's exit code is cai's.",
        )
        _run_options(p)
        p.add_argument(
            "--root",
            action="store_true",
            help="run CMD as root in the container, through the engine (e.g. to install a "
            "package); the agent's own account never gains root",
        )

    def _stop() -> None:
        p = add("stop", "Stop the workspace's container (or remove it). Volumes are never removed.")
        p.add_argument("--container", metavar="NAME", help="the container to stop")
        p.add_argument(
            "-w", "--workspace", metavar="PATH", help="workspace whose container to stop"
        )
        p.add_argument("--all", action="store_true", help="every managed container in the context")
        p.add_argument(
            "--remove",
            action="store_true",
            help="remove the container(s) and their SSH entries (never a volume)",
        )
        p.add_argument("--force", action="store_true", help="do not ask about active sessions")
        p.add_argument(
            "--export",
            action="store_true",
            help="export the data volume first; abort the stop if that fails",
        )
        p.add_argument("--output", metavar="PATH", help="with --export: archive path or directory")

    def _status() -> None:
        p = add("status", "Show the state of the workspace's container (or --container).")
        p.add_argument("--container", metavar="NAME", help="the container to show")
        p.add_argument(
            "-w", "--workspace", metavar="PATH", help="workspace whose container to show"
        )
        p.add_argument("--json", action="store_true", help="print JSON")

    def _list() -> None:
        p = add(
            "list",
            "List every managed container: name, status, workspace, SSH alias, volume, "
            "image, isolation, age, keep.",
        )
        p.add_argument("--json", action="store_true", help="print JSON")

    def _export() -> None:
        p = add(
            "export",
            "Export a data volume to a .tgz archive (default: the workspace's "
            "volume, to ./containai-export-<volume>-<UTC time>.tgz).",
        )
        p.add_argument("-o", "--output", metavar="PATH", help="archive path, or a directory for it")
        g = p.add_mutually_exclusive_group()
        g.add_argument("--container", metavar="NAME", help="export this container's data volume")
        g.add_argument("--data-volume", metavar="NAME", help="export this volume")
        p.add_argument("-w", "--workspace", metavar="PATH", help="workspace whose volume to export")

    def _import() -> None:
        p = add(
            "import",
            "Import host configuration (default: from $HOME) or a previous export "
            "into the data volume.",
        )
        p.add_argument(
            "--from",
            dest="source",
            metavar="DIR|ARCHIVE",
            help="directory of host configuration, or a .tgz made by `cai export`",
        )
        g = p.add_mutually_exclusive_group()
        g.add_argument("--container", metavar="NAME", help="import into this container's volume")
        g.add_argument("--data-volume", metavar="NAME", help="import into this volume")
        p.add_argument("-w", "--workspace", metavar="PATH", help="workspace whose volume to use")
        p.add_argument("--dry-run", action="store_true", help="list what would be copied")
        p.add_argument("--no-secrets", action="store_true", help="skip entries marked secret")
        p.add_argument(
            "--force",
            action="store_true",
            help="replace the volume's content from an archive without asking",
        )

    def _gc() -> None:
        p = add(
            "gc",
            "Remove managed containers that have been stopped longer than --age. Never "
            "a running one, one created with --keep, or a volume.",
        )
        p.add_argument("--dry-run", action="store_true", help="list what would go, change nothing")
        p.add_argument(
            "--age", metavar="AGE", help="minimum age, e.g. 7d, 36h (default: gc.age, 30d)"
        )
        p.add_argument("--force", action="store_true", help="do not ask for confirmation")
        p.add_argument("--images", action="store_true", help="also remove unused containai images")
        p.add_argument("--json", action="store_true", help="print what was (or would be) removed")

    def _config() -> None:
        p = add("config", "Read and change settings (global, repo-local) and workspace state.")
        p.add_argument("action", choices=["list", "get", "set", "unset"], help="what to do")
        p.add_argument("key", nargs="?", metavar="KEY", help="setting, e.g. agent.default")
        p.add_argument("value", nargs="?", metavar="VALUE", help="new value (for set)")
        g = p.add_mutually_exclusive_group()
        g.add_argument(
            "--global", dest="global_", action="store_true", help="the global config file"
        )
        g.add_argument(
            "-w",
            "--workspace",
            metavar="PATH",
            help="the state of this workspace (default for data_volume)",
        )
        p.add_argument("--json", action="store_true", help="with list: print JSON")

    def _doctor() -> None:
        p = add(
            "doctor",
            "Check the machine (engine, context, isolation, base image, OpenSSH, "
            "keys, ports, disk) and say how to fix what is missing.",
        )
        p.add_argument("--json", action="store_true", help="print JSON")

    def _ssh() -> None:
        p = add("ssh", "Manage cai's SSH entries.")
        ssh_sub = p.add_subparsers(
            dest="ssh_command", metavar="SUBCOMMAND", required=True, parser_class=CaiArgumentParser
        )
        q = ssh_sub.add_parser(
            "cleanup",
            help="remove SSH entries, pinned keys and control sockets "
            "of containers that no longer exist",
            description="Remove SSH entries, pinned host keys and control "
            "sockets of containers that no longer exist.",
        )
        _global_options(q, suppress=True)
        q.add_argument("--dry-run", action="store_true", help="list what would be removed")

    def _image() -> None:
        p = add("image", "Build images from templates.")
        img_sub = p.add_subparsers(
            dest="image_command",
            metavar="SUBCOMMAND",
            required=True,
            parser_class=CaiArgumentParser,
        )
        q = img_sub.add_parser(
            "build",
            help="build containai:<template>",
            description="Build containai:<template> from a template plus cai's "
            "system layer. Without a usable base image, bootstrap one offline.",
        )
        _global_options(q, suppress=True)
        q.add_argument(
            "--template",
            metavar="NAME",
            help="template to build (default: config template, 'default')",
        )
        q.add_argument(
            "--offline",
            action="store_true",
            help="bootstrap the base image with debootstrap from the apt mirror",
        )

    def _template() -> None:
        p = add("template", "List image templates.")
        t_sub = p.add_subparsers(
            dest="template_command",
            metavar="SUBCOMMAND",
            required=True,
            parser_class=CaiArgumentParser,
        )
        q = t_sub.add_parser(
            "list",
            help="list built-in and user templates",
            description="List built-in and user templates.",
        )
        _global_options(q, suppress=True)
        q.add_argument("--json", action="store_true", help="print JSON")

    def _setup() -> None:
        p = add(
            "setup",
            "Prepare a dedicated engine for agent work: install gVisor (runsc) from "
            "the distribution, start an engine whose default runtime is the strongest "
            "available, and create the Docker context 'containai-docker'. The user's own Docker "
            "configuration is left unchanged.",
        )
        p.add_argument("--dry-run", action="store_true", help="print each step, change nothing")

    def _version() -> None:
        p = add("version", "Print cai's version.")
        p.add_argument("--json", action="store_true", help="print JSON")

    def _trust() -> None:
        p = add(
            "trust",
            "Accept this repository's own settings file (.containai/config.toml): its "
            "exact content (SHA-256) is recorded in the global config, and any change "
            "un-trusts it. Keys that could weaken the sandbox apply only while trusted; "
            "some (image.ca_bundle, ssh.forward_agent, network.policy, ...) never come "
            "from a repository.",
        )
        g = p.add_mutually_exclusive_group()
        g.add_argument("--show", action="store_true", help="show the file, its hash and status")
        g.add_argument("--revoke", action="store_true", help="forget the trust of this file")
        p.add_argument("-w", "--workspace", metavar="PATH", help="workspace (default: here)")
        p.add_argument("--json", action="store_true", help="with --show: print JSON")

    def _network() -> None:
        p = add(
            "network",
            "The workspace's egress policy (network.policy, presets, allow/deny) enforced "
            "by its gateway. allow/deny change the global config (or, with --workspace, "
            "the workspace's state) and apply to running containers at once.",
        )
        p.add_argument("action", choices=["show", "allow", "deny", "log"], help="what to do")
        p.add_argument("host", nargs="?", metavar="HOST", help="host, *.suffix, HOST:PORT")
        p.add_argument("-w", "--workspace", metavar="PATH", help="this workspace only")
        p.add_argument("--container", metavar="NAME", help="with log: this container")
        p.add_argument("--follow", "-f", action="store_true", help="with log: keep printing")
        p.add_argument("--json", action="store_true", help="print JSON")

    for name, define in (
        ("run", _run),
        ("shell", _shell),
        ("exec", _exec),
        ("stop", _stop),
        ("status", _status),
        ("list", _list),
        ("export", _export),
        ("import", _import),
        ("gc", _gc),
        ("config", _config),
        ("doctor", _doctor),
        ("ssh", _ssh),
        ("image", _image),
        ("template", _template),
        ("setup", _setup),
        ("version", _version),
        ("trust", _trust),
        ("network", _network),
    ):
        if only is None or only == name:
            define()
    return parser


def _insert_default_command(argv: list[str]) -> list[str]:
    """Bare ``cai [RUN-OPTIONS] [-- ARGS]`` means ``cai run ...``."""
    i = 0
    while i < len(argv):
        token = argv[i]
        if token in ("-h", "--help"):
            return argv
        if token == "--" or (
            token.startswith("-")
            and token not in ("--context", "-q", "--quiet", "--verbose")
            and not token.startswith("--context=")
        ):
            break
        if not token.startswith("-"):
            # A command, or a word that is none: argparse reports the latter (exit 2).
            return argv
        i += 2 if token in _VALUE_OPTIONS else 1
    return ["run", *argv]


def _command_word(argv: list[str]) -> str | None:
    """The command named in ``argv`` (after global options), or ``None`` (full parser)."""
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("-"):
            return token if token in COMMANDS else None
        if token in ("-h", "--help"):
            return None
        i += 2 if token == "--context" else 1
    return None


def parse(argv: Sequence[str]) -> argparse.Namespace:
    args_list = list(argv)
    rest: list[str] = []
    if "--" in args_list:
        cut = args_list.index("--")
        args_list, rest = args_list[:cut], args_list[cut + 1 :]
    args_list = _insert_default_command(args_list)
    args = build_parser(_command_word(args_list)).parse_args(args_list)
    if args.command is None:  # pragma: no cover - _insert_default_command always names one
        args.command = "run"
    args.rest = rest
    if rest and args.command not in ("run", "exec"):
        build_parser().error(f"'{args.command}' takes no arguments after '--'")
    return args
