"""``cai exec [RUN-OPTIONS] [--root] [--] CMD [ARGS]``: one command in the workspace's
container; ``--`` may be left out when CMD is no option of exec (``cai exec ls -la``)."""

from __future__ import annotations

from containai.cli.commands import run as _run

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    import argparse

NAME = "exec"
HELP = "run one command in the workspace's container"
DESCRIPTION = (
    "Same as run, but run one command non-interactively: `cai exec [OPTIONS] [--] CMD "
    "[ARGS]` (`--` is needed only when CMD starts with '-'). stdin/stdout/stderr pass "
    "through, a TTY only when stdin is one, and the command's exit code is cai's."
)
REST = "command"


def arguments(p: argparse.ArgumentParser) -> None:
    _run.add_run_options(p)
    p.add_argument(
        "--root",
        action="store_true",
        help="run CMD as root in the container, through the engine (e.g. to install a "
        "package); the agent's own account never gains root",
    )


run = _run.run  # ensure, then attach (cli/commands/run.py)
