"""``cai version [--json]`` (= ``cai --version``)."""

from __future__ import annotations

import platform

from containai import __version__
from containai.cli.options import add_json_option
from containai.cli.output import Output

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    import argparse

NAME = "version"
HELP = "print cai's version (also `cai --version`, `cai -V`)"
DESCRIPTION = "Print cai's version (`cai --version` and `cai -V` are the same)."


def arguments(p: argparse.ArgumentParser) -> None:
    add_json_option(p)


def run(args: argparse.Namespace) -> int:
    out = Output()
    if args.json:
        out.json({"version": __version__, "python": platform.python_version()})
    else:
        out.line(f"cai {__version__}")
    return 0
