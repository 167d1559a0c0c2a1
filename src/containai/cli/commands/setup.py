"""``cai setup``."""

from __future__ import annotations

import argparse

from containai.domain.errors import NotImplementedYet


def run(args: argparse.Namespace) -> int:
    raise NotImplementedYet("setup")
