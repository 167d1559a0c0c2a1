"""The command line: argv -> one command module -> exit code. THE error boundary.

Command modules are imported lazily, only the one that runs, so the hot path
(``cai exec`` on a running container) loads nothing it does not use. Commands whose
options are all flags (``cai list --json``) are parsed here without argparse; every
other command line goes to the full parser in ``cli/parser.py``.
"""

from __future__ import annotations

import os
import sys

from containai import __version__
from containai.domain.errors import EXIT_INTERRUPTED, CaiError

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    from argparse import Namespace
    from collections.abc import Sequence

# command name -> (module under containai.cli.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "start an agent in the workspace's container (the default command)"),
    "shell": ("run", "open an interactive login shell in the workspace's container"),
    "exec": ("run", "run one command in the workspace's container"),
    "stop": ("stop", "stop (or remove) containers; volumes are never removed"),
    "status": ("status", "show one container's state"),
    "list": ("list_", "list every container managed by cai"),
    "export": ("export", "export a data volume to a .tgz archive"),
    "import": ("import_", "import host configuration or an export into a data volume"),
    "gc": ("gc", "remove stale stopped containers (and unused images)"),
    "config": ("config", "read and change settings and workspace state"),
    "doctor": ("doctor", "check this machine and say how to fix what is missing"),
    "ssh": ("ssh", "manage cai's SSH entries"),
    "image": ("image", "build images from templates"),
    "template": ("image", "list image templates"),
    "setup": ("setup", "prepare the isolated engine (gVisor) and its Docker context"),
    "version": ("version", "print cai's version"),
    "trust": ("trust", "accept this repository's own settings (.containai/config.toml)"),
    "network": ("network", "show and change the workspace's egress allowlist; its log"),
}

# Commands parsed without argparse (its import and one subparser cost ~5 ms) when their
# command line holds only these options (and the global -q/--quiet/--verbose/--context
# NAME): (flags: option -> dest, values: option -> dest). Anything else (--help, a
# typo, an abbreviation, a value that starts with '-', --opt= with nothing) goes to
# argparse, which also owns every message. tests/unit/test_cli.py checks the fast path
# against argparse's own result (hypothesis).
FAST: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "list": ({"--json": "json"}, {}),
    "version": ({"--json": "json"}, {}),
    "doctor": ({"--json": "json"}, {}),
    "status": (
        {"--json": "json"},
        {"--container": "container", "-w": "workspace", "--workspace": "workspace"},
    ),
    "gc": (
        {"--dry-run": "dry_run", "--force": "force", "--images": "images", "--json": "json"},
        {"--age": "age"},
    ),
}
_GLOBAL_FLAGS = {"-q": "quiet", "--quiet": "quiet", "--verbose": "verbose"}
_GLOBAL_VALUES = {"--context": "context"}


def fast_parse(argv: Sequence[str]) -> Namespace | None:
    """``argv`` as argparse would parse it, for the commands in ``FAST``; else ``None``."""
    values: dict[str, object] = {"context": None, "quiet": False, "verbose": False}
    command: str | None = None
    flags: dict[str, str] = {}
    options: dict[str, str] = dict(_GLOBAL_VALUES)
    i = 0
    while i < len(argv):
        token = argv[i]
        name, eq, attached = token.partition("=") if token.startswith("--") else (token, "", "")
        if token in _GLOBAL_FLAGS:
            values[_GLOBAL_FLAGS[token]] = True
        elif name in options:
            if eq:
                value = attached
            elif i + 1 < len(argv):
                i += 1
                value = argv[i]
            else:
                return None
            if not value or value.startswith("-"):
                return None
            values[options[name]] = value
        elif command is None and token in FAST:
            command = token
            flags, more = FAST[token]
            options.update(more)
            for dest in flags.values():
                values[dest] = False
            for dest in more.values():
                values[dest] = None
        elif command is not None and token in flags:
            values[flags[token]] = True
        else:
            return None
        i += 1
    if command is None:
        return None
    from types import SimpleNamespace

    args = SimpleNamespace(command=command, rest=[], **values)
    return args  # type: ignore[return-value]  # attribute access only, like Namespace


def parse(argv: Sequence[str]) -> Namespace:
    """``argv`` -> the parsed command line (fast path first, then argparse)."""
    args = fast_parse(argv)
    if args is not None:
        return args
    from containai.cli.parser import parse as full_parse

    return full_parse(argv)


def _debug() -> bool:
    return os.environ.get("CAI_DEBUG", "") not in ("", "0")


def main(argv: Sequence[str] | None = None) -> int:
    """Run cai; return the exit code. Every expected failure ends here as one line."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse(argv)
        import importlib

        module = importlib.import_module(f"containai.cli.commands.{COMMANDS[args.command][0]}")
        code: int = module.run(args)
        return code
    except SystemExit as exc:  # argparse: --help (0) or usage error (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except CaiError as exc:
        sys.stderr.write(f"cai: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("cai: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `cai list | head`): nothing more to say.
        import contextlib

        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        if _debug():
            import traceback

            traceback.print_exc()
        else:
            sys.stderr.write(
                f"cai: error: internal error ({type(exc).__name__}: {exc}); this is a bug in "
                f"cai {__version__}: rerun with CAI_DEBUG=1 for the traceback and report it\n"
            )
        return 1


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
