"""``cai shell [RUN-OPTIONS]``: an interactive login shell in the workspace's container."""

from __future__ import annotations

from containai.cli.commands import run as _run

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    import argparse

NAME = "shell"
HELP = "open an interactive login shell in the workspace's container"
DESCRIPTION = "Same as run, but open an interactive login shell in the workspace directory."


def arguments(p: argparse.ArgumentParser) -> None:
    _run.add_run_options(p)


run = _run.run  # ensure, then attach (cli/commands/run.py)
