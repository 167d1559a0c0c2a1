"""``cai setup [--dry-run]`` (SPEC section 9): the dedicated engine and its Docker context.

``--dry-run`` prints every step, one line each, to stdout (the product) and
changes nothing: ``change`` for what setup would do, ``ok`` for what is in
place. A real run reports each step it does on stderr, ``cai: setup: ...``
(``--verbose`` also lists the steps already in place), then a closing note;
a run that changes nothing prints nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from containai.cli.app import App
from containai.cli.options import add_dry_run_option

if TYPE_CHECKING:
    import argparse

NAME = "setup"
HELP = "prepare the isolated engine (gVisor) and its Docker context"
DESCRIPTION = (
    "Prepare a dedicated engine for agent work: install gVisor (runsc) from "
    "the distribution, start an engine whose default runtime is the strongest "
    "available, and create the Docker context 'containai-docker'. The user's own Docker "
    "configuration is left unchanged."
)


def arguments(p: argparse.ArgumentParser) -> None:
    add_dry_run_option(p, "print each step, change nothing")


def run(args: argparse.Namespace) -> int:
    from containai.adapters.daemon import DedicatedEngineHost
    from containai.domain.errors import CaiError
    from containai.services.setup import Setup

    app = App(args)
    try:
        template = str(app.settings(None).value("template"))
    except CaiError:
        template = "default"
    out = app.out

    def progress(summary: str) -> None:
        if not out.quiet:
            out.stderr.write(f"cai: setup: {summary}\n")
            out.stderr.flush()

    setup = Setup(DedicatedEngineHost(app.env), app.env, template=template, progress=progress)
    result = setup.run(dry_run=bool(args.dry_run))
    if result.dry_run:
        width = max((len(s.key) for s in result.steps), default=0)
        for s in result.steps:
            out.line(f"{'change' if s.changed else 'ok':<6}  {s.key:<{width}}  {s.summary}")
        return 0
    for s in result.steps:
        if not s.changed:
            out.info(f"setup: ok: {s.summary}")
    if not result.changed:
        out.info("setup: nothing to change")
    for note in result.notes:
        if not out.quiet:
            out.stderr.write(f"cai: {note}\n")
    return 0
