"""``cai gc [--dry-run] [--age AGE] [--force] [--images] [--json]`` (SPEC section 12)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from containai.cli.app import App
from containai.cli.options import add_dry_run_option, add_force_option, add_json_option
from containai.domain import labels as L
from containai.domain.errors import ConfirmationNeeded, Failed

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from pathlib import Path

    from containai.domain.engine_objects import ContainerInfo
    from containai.services.archive import Leftover, VolumeArchives
    from containai.services.gc_gateways import GcGateways
    from containai.services.gc_results import Candidate, GcPlan, GcResult

LOCK_WAIT_SECONDS = 10.0
"""How long gc waits for a workspace another cai command is working on (then spares it)."""

NAME = "gc"
HELP = "remove stale stopped containers (and unused images)"
DESCRIPTION = (
    "Remove managed containers that have been stopped longer than --age. Never "
    "a running one, one created with --keep, or a volume."
)


def arguments(p: argparse.ArgumentParser) -> None:
    add_dry_run_option(p, "list what would go, change nothing")
    p.add_argument("--age", metavar="AGE", help="minimum age, e.g. 7d, 36h (default: gc.age, 30d)")
    add_force_option(p, "do not ask for confirmation")
    p.add_argument("--images", action="store_true", help="also remove unused containai images")
    add_json_option(p, "print what was (or would be) removed")


def describe(cand: Candidate) -> str:
    where = f", workspace {cand.workspace}" if cand.workspace else ""
    return f"{cand.name} ({cand.reason}{where})"


def describe_leftover(left: Leftover) -> str:
    what = {"helper": "helper container", "gateway": "gateway container"}.get(left.kind, "file")
    return f"{what} {left.name} ({left.reason})"


def render_text(result: GcResult, leftovers: Sequence[Leftover] = ()) -> list[str]:
    """One line per container (and image, and leftover of a killed cai) removed, or that
    would be with --dry-run."""
    verb = "would remove" if result.dry_run else "removed"
    lines = [f"{verb} {describe(c)}" for c in result.removed]
    lines += [f"{verb} image {i.reference}" for i in result.images]
    lines += [f"{verb} {describe_leftover(left)}" for left in leftovers]
    return lines


class _Killed:
    """What killed imports and exports left behind: their helper containers (found in
    gc's listing) and export temp files (found through the export journal). The archive
    service, and its ~15 ms of imports, is made only when there may be some."""

    def __init__(self, app: App, listing: Sequence[ContainerInfo]) -> None:
        self.service: VolumeArchives | None = None
        if any(row.labels.get(L.HELPER) == L.TRUE for row in listing) or _has_entries(
            app.paths.exports_journal
        ):
            from containai.cli.commands.export import archives

            self.service = archives(app)
        self.found = [] if self.service is None else self.service.leftovers(listing)

    def remove(self, leftovers: Sequence[Leftover]) -> list[Leftover]:
        return [] if self.service is None else self.service.remove_leftovers(leftovers)


def _has_entries(directory: Path) -> bool:
    import os

    try:
        with os.scandir(directory) as entries:
            return any(True for _entry in entries)
    except OSError:
        return False


def _orphans_shown(gateways: GcGateways) -> list[Leftover]:
    if not gateways.orphans:
        return []
    from containai.services.volume_helpers import Leftover

    return [
        Leftover("gateway", gateway, f"egress gateway of '{container}', which no longer exists")
        for gateway, container in gateways.orphans
    ]


def _remove_gateways(
    gateways: GcGateways, leftovers: Sequence[Leftover], result: GcResult
) -> list[Leftover]:
    """The orphaned gateways among ``leftovers`` that are orphans still (checked under
    their workspace locks), with their networks; what was spared or could not go is
    added to ``result``."""
    from containai.services.gc_results import Spared

    shown = {left.name: left for left in leftovers if left.kind == "gateway"}
    removed, spared, failed = gateways.remove_orphans(shown)
    result.spared.extend(spared)
    result.failed.extend(Spared(what, why) for what, why in sorted(failed.items()))
    return [shown[gateway] for gateway in removed]


def _names(plan: GcPlan, limit: int = 5) -> str:
    names = [c.name for c in plan.candidates] + [i.reference for i in plan.images]
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _ask(app: App, plan: GcPlan, leftovers: Sequence[Leftover]) -> bool:
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
    for left in leftovers:
        err.write(f"  {describe_leftover(left)}\n")
    return app.out.confirm("Remove them?")


class _SshWhenNeeded:
    """``app.ssh`` resolved at the first removal, not before the first engine call."""

    def __init__(self, app: App) -> None:
        self.app = app

    def remove_many(self, names: Sequence[str]) -> list[Path]:
        return self.app.ssh.remove_many(names)


def run(args: argparse.Namespace) -> int:
    from containai.domain.age import parse_age

    app = App(args)
    # gc spans every workspace: the global config (and the command line) decide the age.
    age_text = str(args.age if args.age is not None else app.settings(None).value("gc.age"))
    min_age = parse_age(age_text)  # bad age: exit 2, before the engine is asked anything

    from containai.adapters.locks import FileLocks
    from containai.services.gc import GarbageCollector, survey
    from containai.services.gc_gateways import GcGateways
    from containai.services.gc_results import GcResult

    # ONE listing of the engine: the managed containers gc decides on, the helpers of
    # killed imports and exports, the gateways (of the containers gc removes, and those
    # whose container is gone).
    listing = survey(app.engine)
    locks = FileLocks(app.paths.locks_dir, timeout=LOCK_WAIT_SECONDS)
    gateways = GcGateways(app.engine, listing, locks)

    def templates() -> list[str]:  # whose alias containai:<name> --images keeps
        return [t.name for t in app.images(app.settings(None)).templates()]

    def keep_images() -> list[str]:  # today's gateway build (--images keeps it)
        return [app.images(app.settings(None)).gateway_tag()]

    collector = GarbageCollector(
        app.engine,
        _SshWhenNeeded(app),
        app.config,
        locks,
        on_removed=gateways.of_removed,
        templates=templates,
        keep_images=keep_images,
    )
    # What killed imports and exports left behind (helpers, temp files; issue 13), and
    # the gateways of containers removed by other means.
    killed = _Killed(app, listing)
    leftovers = killed.found + _orphans_shown(gateways)
    if args.force and not args.dry_run:
        # Nothing to show first: list, then lock + inspect + remove (no double inspect).
        result = collector.collect(min_age, age_text.strip(), images=args.images, listing=listing)
        leftovers = killed.remove(leftovers) + _remove_gateways(gateways, leftovers, result)
    else:
        plan = collector.plan(min_age, age_text.strip(), images=args.images, listing=listing)
        if args.dry_run:
            result = collector.dry_run(plan)
        elif not plan.candidates and not plan.images and not leftovers:
            result = GcResult(False, plan.age, spared=list(plan.spared))
        else:
            if not app.out.interactive:
                parts = [_names(plan)] if plan.candidates or plan.images else []
                if leftovers:
                    parts.append(f"{len(leftovers)} leftovers of killed imports/exports")
                names = " and ".join(parts)
                raise ConfirmationNeeded(
                    f"gc would remove {names} and there is no TTY to ask; add --force "
                    "(or --dry-run to only list them)"
                )
            if not _ask(app, plan, leftovers):
                raise Failed("gc removed nothing (not confirmed)")
            result = collector.apply(plan)
            leftovers = killed.remove(leftovers) + _remove_gateways(gateways, leftovers, result)
    # what looks like a gateway but was not made by cai: never removed, said so
    result.spared = sorted([*result.spared, *gateways.spared], key=lambda s: s.name)
    for spared in result.spared:
        if not spared.changed:
            app.out.info(f"keeping {spared.name}: {spared.reason}")

    if args.json:
        app.out.json(
            {
                **result.to_json(),
                "leftovers": [left.to_json() for left in leftovers],
                "context": app.context_label,
            }
        )
    elif result.dry_run:  # the list asked for: stdout
        lines = render_text(result, leftovers)
        if lines and app.endpoint.remote:  # SPEC section 16: name the machine
            app.out.line(f"context {app.context_label}:")
        for line in lines:
            app.out.line(line)
        if not lines:
            app.out.changed("nothing to remove")
    else:  # state changes: one line each on stderr (SPEC section 2)
        lines = render_text(result, leftovers)
        if lines and app.endpoint.remote:  # SPEC section 16: name the machine
            app.out.changed(f"context {app.context_label}:")
        for line in lines:
            app.out.changed(line)
    for spared in result.spared:
        if spared.changed:
            app.out.warn(f"spared container '{spared.name}': {spared.reason}")
    if result.failed:
        detail = "; ".join(f"'{f.name}': {f.reason}" for f in result.failed)
        raise Failed(f"gc could not remove {detail}")
    return 0
