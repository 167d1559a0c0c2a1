"""``cai export``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from containai.domain.errors import NotImplementedYet


def export_targets(app: Any, targets: Sequence[Any], output: str | None, *, force: bool) -> None:
    raise NotImplementedYet("stop --export")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedYet("export")
