"""The command line: argv -> one command module -> exit code. THE error boundary.

``cli/argv.py`` parses (argparse-free when it can, else ``cli/parser.py``); the command
is the module ``cli/commands/<name>.py`` (see that package for what a command declares),
imported lazily, only the one that runs, so the hot path (``cai exec`` on a running
container) loads nothing it does not use.
"""

from __future__ import annotations

import os
import sys

from containai import __version__
from containai.cli import commands
from containai.cli.argv import parse
from containai.domain.errors import EXIT_INTERRUPTED, CaiError

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    from collections.abc import Sequence


def _debug() -> bool:
    return os.environ.get("CAI_DEBUG", "") not in ("", "0")


def main(argv: Sequence[str] | None = None) -> int:
    """Run cai; return the exit code. Every expected failure ends here as one line."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse(argv)
        module = commands.load(args.command)
        assert module is not None  # parse() found it
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
    leave(main())


def leave(code: int) -> None:
    """Exit with ``code``. When the main thread is the only one left, after the ``atexit``
    functions and a flush of stdout and stderr, without the interpreter's teardown
    (freeing every module and object: ~20-40 ms after a ``cai run``, where the
    benchmark counts it; cai keeps no file open past its ``with``). Any other thread
    still running (a job not joined) gets the usual ``sys.exit``, which waits for it."""
    threading = sys.modules.get("threading")  # never imported: no thread was started
    if threading is not None and threading.active_count() > 1:
        sys.exit(code)
    import atexit  # built in: imports nothing (`cai list --json` counts its imports)

    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)  # what the interpreter says about it, as usual
    os._exit(code)
