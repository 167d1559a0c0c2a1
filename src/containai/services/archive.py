"""Export of data volumes, and the use cases of ``cai export``/``cai import`` (SPEC
section 11).

* ``export``: the volume's content is streamed out of the workspace's container
  (running or stopped) or, when it has none, out of a helper container that is
  created from a LOCAL image and never started, and written atomically to a
  0600 ``.tgz`` (the tar work is the archive adapter's).
* ``check``/``restore`` (``cai import --from ARCHIVE``): ``services/volume_import.py``.
* ``copy_items`` (host configuration import): a tar built by cai is copied into
  the volume (merged: entries replace what they name, nothing else changes).

Helper containers and what a killed ``cai`` leaves behind (``leftovers``, for ``cai
gc``): ``services/volume_helpers.py``. An export never includes a staging directory.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from containai.domain import labels as L
from containai.domain.archive_rules import Member
from containai.domain.engine_objects import ContainerInfo
from containai.domain.errors import Failed, NotFound
from containai.services.lookup import Target
from containai.services.ports import Engine, ExportResult, Progress, Streams
from containai.services.volume_helpers import (
    DATA_MOUNT,
    FALLBACK_IMAGE,
    SWEEP_SCRIPT,
    Leftover,
    VolumeHelpers,
)
from containai.services.volume_import import SWAP_SCRIPT, VolumeImport

HELPER_LABEL = L.HELPER

__all__ = [
    "DATA_MOUNT",
    "FALLBACK_IMAGE",
    "HELPER_LABEL",
    "SWAP_SCRIPT",
    "SWEEP_SCRIPT",
    "ExportResult",
    "Leftover",
    "Progress",
    "Streams",
    "VolumeArchives",
    "VolumeTarget",
    "archive_path",
    "data_volume_of",
    "default_archive_name",
    "target_of",
]


@dataclass(frozen=True)
class VolumeTarget:
    """A data volume, and the existing container that mounts it (if there is one)."""

    volume: str
    container: str | None = None
    image: str | None = None  # that container's image: local for sure, usable for helpers


def data_volume_of(info: ContainerInfo) -> str | None:
    """The volume a container mounts at ``DATA_MOUNT`` (else its data-volume label)."""
    for mount in info.mounts:
        if mount.target == DATA_MOUNT and mount.kind == "volume" and mount.source:
            return mount.source
    return info.labels.get(L.DATA_VOLUME) or None


def target_of(found: Target) -> VolumeTarget:
    """The volume of an existing container (``NotFound`` when it mounts none)."""
    info = found.info
    volume = None if info is None else data_volume_of(info)
    if info is None or volume is None:
        raise NotFound(f"container '{found.name}' has no data volume mounted at {DATA_MOUNT}")
    return VolumeTarget(volume, found.name, info.image_id or None)


def default_archive_name(volume: str, now: datetime) -> str:
    """``containai-export-<volume>-<UTC yyyymmdd-HHMMSS>.tgz`` (``now`` must be UTC)."""
    return f"containai-export-{volume}-{now:%Y%m%d-%H%M%S}.tgz"


def archive_path(output: str | None, cwd: Path, volume: str, now: datetime) -> Path:
    """Where ``cai export`` writes: ``--output`` (a directory gets the default name)."""
    name = default_archive_name(volume, now)
    if output is None:
        return _not_existing(cwd / name)
    path = cwd / Path(output).expanduser()
    if path.is_dir():
        return _not_existing(path / name)
    if output.endswith("/"):
        raise NotFound(f"directory {path} does not exist; create it or choose another --output")
    if not path.parent.is_dir():
        raise NotFound(
            f"directory {path.parent} does not exist; create it or choose another --output"
        )
    return _not_existing(path)


def _not_existing(path: Path) -> Path:
    """An export never replaces a file that is already there (it may be the user's)."""
    if path.exists() or path.is_symlink():
        raise Failed(
            f"{path} already exists; cai will not overwrite it: choose another --output or "
            "move that file away"
        )
    return path


class VolumeArchives:
    """Export, import and host import of data volumes (``cli/commands/export.py`` wires it)."""

    def __init__(
        self,
        engine: Engine,
        streams: Streams,
        *,
        token: Callable[[], str] = lambda: secrets.token_hex(6),
        owner: str = "",
        owner_alive: Callable[[str], bool | None] = lambda _owner: None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """The keyword arguments are ``VolumeHelpers``'s (``token`` names staging too)."""
        self.engine = engine
        self.streams = streams
        self.helpers = VolumeHelpers(
            engine, streams, token=token, owner=owner, owner_alive=owner_alive, clock=clock
        )
        self.importer = VolumeImport(engine, streams, self.helpers, token=token)

    def volume_exists(self, volume: str) -> bool:
        return self.helpers.volume_exists(volume)

    def helper_image(self, preferred: str | None = None) -> str:
        return self.helpers.image(preferred)

    # ------------------------------------------------------------ leftovers
    def leftovers(self, listing: Sequence[ContainerInfo] | None = None) -> list[Leftover]:
        return self.helpers.leftovers(listing)

    def remove_leftovers(self, found: Sequence[Leftover]) -> list[Leftover]:
        return self.helpers.remove_leftovers(found)

    # -------------------------------------------------------------- export
    def export(
        self, target: VolumeTarget, output: Path, *, progress: Progress | None = None
    ) -> ExportResult:
        """Write the volume's content to ``output`` (atomically, 0600)."""
        if target.container is not None:
            return self.streams.export_volume(
                target.container, DATA_MOUNT, output, progress=progress
            )
        self.helpers.require_volume(target.volume)
        helper = self.helpers.create(target.volume, self.helpers.image(), ["-c", ":"])
        try:
            return self.streams.export_volume(helper, DATA_MOUNT, output, progress=progress)
        finally:
            self.helpers.remove(helper)

    # -------------------------------------------------------------- import
    def check(self, archive: Path, *, progress: Progress | None = None) -> list[Member]:
        """Read the whole archive and refuse it (``Failed``, member named) if any member is bad."""
        return self.importer.check(archive, progress=progress)

    def restore(
        self,
        target: VolumeTarget,
        archive: Path,
        members: Sequence[Member],
        *,
        progress: Progress | None = None,
        owner: tuple[int, int] | None = None,
    ) -> None:
        """Replace the volume's content with the (checked) ``members`` of ``archive``;
        the volume root is then owned by ``owner`` (uid, gid), mode 0755."""
        self.importer.restore(
            target.volume, archive, members, image=target.image, progress=progress, owner=owner
        )

    # --------------------------------------------------------- host import
    def copy_items(
        self, target: VolumeTarget, items: Sequence[Any], *, uid: int, gid: int
    ) -> list[str]:
        """Merge ``items`` (paths relative to the volume root) into the volume, owned uid:gid.

        Through the workspace's container when it exists, else a helper. Returns warnings.
        """
        if target.container is not None:
            return self.streams.copy_items_in(target.container, DATA_MOUNT, items, uid=uid, gid=gid)
        self.helpers.ensure_volume(target.volume)
        helper = self.helpers.create(target.volume, self.helpers.image(target.image), ["-c", ":"])
        try:
            return self.streams.copy_items_in(helper, DATA_MOUNT, items, uid=uid, gid=gid)
        finally:
            self.helpers.remove(helper)
