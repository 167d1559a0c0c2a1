"""``cai export [--output PATH] [--container NAME | --data-volume NAME] [-w PATH]``.

Prints the archive's path (the product asked for) on stdout, one line.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from containai.cli.app import App
from containai.cli.options import add_container_option, add_data_volume_option, add_workspace_option
from containai.domain import validation
from containai.domain.errors import CaiError, UsageError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from pathlib import Path

    from containai.services.archive import VolumeArchives, VolumeTarget
    from containai.services.lookup import Target

NAME = "export"
HELP = "export a data volume to a .tgz archive"
DESCRIPTION = (
    "Export a data volume to a .tgz archive (default: the workspace's "
    "volume, to ./containai-export-<volume>-<UTC time>.tgz)."
)


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", metavar="PATH", help="archive path, or a directory for it")
    g = p.add_mutually_exclusive_group()
    add_container_option(g, "export this container's data volume")
    add_data_volume_option(g, "export this volume")
    add_workspace_option(p, "workspace whose volume to export")


class Meter:
    """Progress on stderr, redrawn in place, only when stderr is a TTY (and not --quiet)."""

    def __init__(self, app: App, label: str) -> None:
        self.stream = app.out.stderr
        self.enabled = not app.out.quiet and self.stream.isatty()
        self.label = label
        self.start = time.monotonic()
        self.drawn = False

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        elapsed = max(time.monotonic() - self.start, 1e-6)
        text = f"cai: {self.label}: {validation.format_bytes(done)}"
        if total:
            text += f" of {validation.format_bytes(total)} ({100 * done // total}%)"
        text += f", {validation.format_bytes(int(done / elapsed))}/s"
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


def archives(app: App) -> VolumeArchives:
    from containai.adapters import procs
    from containai.adapters.archive import DockerArchive
    from containai.services.archive import VolumeArchives

    return VolumeArchives(
        app.engine,
        DockerArchive(app.engine, journal=app.paths.exports_journal),
        owner=procs.owner_token(),
        owner_alive=procs.owner_alive,
    )


def resolve_target(
    app: App, container: str | None, data_volume: str | None, workspace_flag: str | None
) -> VolumeTarget:
    """The volume to work on: ``--data-volume``; ``--container``'s; else the workspace's
    container's, or (no container) the workspace's effective ``data_volume`` setting."""
    from containai.services.archive import VolumeTarget, target_of

    if container is not None:
        validation.validate_container_name(container)
        if workspace_flag is not None:
            raise UsageError("--container and --workspace exclude each other; give one of them")
    if data_volume is not None:
        validation.validate_volume_name(data_volume)
        return VolumeTarget(data_volume)
    workspace = app.workspace()
    settings = app.settings(workspace.path)
    if container is not None:
        return target_of(app.lookup.find_existing(workspace, container))
    found = app.lookup.find(workspace)
    if found.exists:
        return target_of(found)
    volume = str(settings.value("data_volume"))
    validation.validate_volume_name(volume)
    return VolumeTarget(volume)


def export_one(app: App, service: VolumeArchives, target: VolumeTarget, path: Path) -> Path:
    meter = Meter(app, f"exporting volume '{target.volume}'")
    try:
        result = service.export(target, path, progress=meter)
    finally:
        meter.close()
    app.out.info(
        f"exported volume '{target.volume}': {result.members} entries, "
        f"{validation.format_bytes(result.bytes_in)} -> {validation.format_bytes(result.bytes_out)}"
        + (f", {result.hardlinks} hard links written as files" if result.hardlinks else "")
    )
    if app.endpoint.remote:  # SPEC section 16: streamed from another machine
        app.out.changed(
            f"exported volume '{target.volume}' of context '{app.context_label}' to {path}"
        )
    app.out.line(str(path))
    return path


def export_targets(app: App, targets: Sequence[Target], output: str | None, *, force: bool) -> None:
    """``cai stop --export``: export each target's data volume (once per volume) first.

    A failed export raises, so the stop is aborted; with ``force`` it is a
    warning and the stop goes on.
    """
    from containai.services.archive import archive_path, target_of

    service = archives(app)
    volumes: dict[str, VolumeTarget] = {}
    for target in targets:
        try:
            found = target_of(target)
        except CaiError as exc:
            if not force:
                raise
            app.out.warn(f"{exc}; not exported (--force: stopping anyway)")
            continue
        volumes.setdefault(found.volume, found)
    if output is not None and len(volumes) > 1 and not (app.cwd / output).is_dir():
        raise UsageError(
            f"--output {output} names one file but {len(volumes)} volumes are to be exported "
            f"({', '.join(sorted(volumes))}); give a directory"
        )
    now = datetime.now(UTC)
    for found in volumes.values():
        try:
            export_one(app, service, found, archive_path(output, app.cwd, found.volume, now))
        except CaiError as exc:
            if not force:
                exc.message = f"{exc.message}; nothing was stopped (--force stops anyway)"
                raise
            app.out.warn(f"exporting volume '{found.volume}' failed ({exc}); stopping anyway")


def run(args: argparse.Namespace) -> int:
    from containai.services.archive import archive_path

    app = App(args)
    target = resolve_target(app, args.container, args.data_volume, args.workspace)
    path = archive_path(args.output, app.cwd, target.volume, datetime.now(UTC))
    export_one(app, archives(app), target, path)
    return 0
