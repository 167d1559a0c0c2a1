"""``cai gc [--dry-run] [--age AGE] [--force] [--images] [--json]`` (SPEC section 12)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from containai.cli.app import App
from containai.domain.errors import ConfirmationNeeded, Failed

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

    from containai.services.gc import Candidate, GcPlan, GcResult

LOCK_WAIT_SECONDS = 10.0
"""How long gc waits for a workspace another cai command is working on (then spares it)."""


def describe(cand: Candidate) -> str:
    where = f", workspace {cand.workspace}" if cand.workspace else ""
    return f"{cand.name} ({cand.reason}{where})"


def render_text(result: GcResult) -> list[str]:
    """One line per container (and image) removed, or that would be with --dry-run."""
    verb = "would remove" if result.dry_run else "removed"
    lines = [f"{verb} {describe(c)}" for c in result.removed]
    lines += [f"{verb} image {i.reference}" for i in result.images]
    return lines


def _names(plan: GcPlan, limit: int = 5) -> str:
    names = [c.name for c in plan.candidates] + [i.reference for i in plan.images]
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _ask(app: App, plan: GcPlan) -> bool:
    err = app.out.stderr
    count = len(plan.candidates)
    err.write(
        f"cai gc would remove {count} container{'s' if count != 1 else ''} "
        "(their data volumes are kept):\n"
    )
    for cand in plan.candidates:
        err.write(f"  {describe(cand)}\n")
    for image in plan.images:
        err.write(f"  image {image.reference}\n")
    return app.out.confirm("Remove them?")


class _SshWhenNeeded:
    """``app.ssh`` resolved at the first removal, not before the first engine call."""

    def __init__(self, app: App) -> None:
        self.app = app

    def remove(self, name: str) -> list[Path]:
        return self.app.ssh.remove(name)


def run(args: argparse.Namespace) -> int:
    from containai.domain.age import parse_age

    app = App(args)
    # gc spans every workspace: the global config (and the command line) decide the age.
    age_text = str(args.age if args.age is not None else app.settings(None).value("gc.age"))
    min_age = parse_age(age_text)  # bad age: exit 2, before the engine is asked anything

    from containai.adapters.locks import FileLocks
    from containai.services.gc import GarbageCollector, GcResult

    collector = GarbageCollector(
        app.engine,
        _SshWhenNeeded(app),
        app.config,
        FileLocks(app.paths.locks_dir, timeout=LOCK_WAIT_SECONDS),
    )
    if args.force and not args.dry_run:
        # Nothing to show first: list, then lock + inspect + remove (no double inspect).
        result = collector.collect(min_age, age_text.strip(), images=args.images)
    else:
        plan = collector.plan(min_age, age_text.strip(), images=args.images)
        if args.dry_run:
            result = collector.dry_run(plan)
        elif not plan.candidates and not plan.images:
            result = GcResult(False, plan.age, spared=list(plan.spared))
        else:
            if not app.out.interactive:
                raise ConfirmationNeeded(
                    f"gc would remove {_names(plan)} and there is no TTY to ask; add --force "
                    "(or --dry-run to only list them)"
                )
            if not _ask(app, plan):
                raise Failed("gc removed nothing (not confirmed)")
            result = collector.apply(plan)
    for spared in result.spared:
        if not spared.changed:
            app.out.info(f"keeping {spared.name}: {spared.reason}")

    if args.json:
        app.out.json(result.to_json())
    elif result.dry_run or not app.out.quiet:
        for line in render_text(result):
            app.out.line(line)
    for spared in result.spared:
        if spared.changed:
            app.out.warn(f"spared container '{spared.name}': {spared.reason}")
    if result.failed:
        detail = "; ".join(f"'{f.name}': {f.reason}" for f in result.failed)
        raise Failed(f"gc could not remove {detail}")
    return 0
