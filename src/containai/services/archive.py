"""Export and import of data volumes (SPEC section 11).

* ``export``: the volume's content is streamed out of the workspace's container
  (running or stopped) or, when it has none, out of a helper container that is
  created from a LOCAL image and never started, and written atomically to a
  0600 ``.tgz`` (the tar work is the archive adapter's).
* ``restore`` (``cai import --from ARCHIVE``): every member is checked first
  (``domain/archive_rules``); only then is anything touched. The archive goes
  into a hidden staging directory of the volume, followed by a completion
  marker; a helper container then swaps it in with renames (old content moved
  aside, new content moved up, old content deleted) or, without the marker,
  deletes the staging directory. So a failed or interrupted copy leaves the
  volume as it was.
* ``copy_items`` (host configuration import): a tar built by cai is copied into
  the volume (merged: entries replace what they name, nothing else changes).

Helper containers are labelled ``containai.helper=true`` (and with the ``cai`` that
made them, the volume and the staging directory) and removed here; they never run an
image that is not already local (nothing is pulled). A ``cai`` killed mid-way leaves
its helper (never started) and staging directory behind: the next import into that
volume, and ``cai gc``, remove helpers whose ``cai`` is gone and staging directories
no live helper owns (``sweep``); an export never includes a staging directory.
Before anything is copied, an import checks that the archive's expanded size fits on
the engine's disk (its free space, read by a helper, less a margin).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from containai.domain import labels as L
from containai.domain.archive_rules import (
    STAGING_PREFIX,
    Member,
    check_members,
    expanded_bytes,
    space_problem,
)
from containai.domain.engine_objects import ContainerInfo, ContainerSpec, Mount
from containai.domain.errors import CaiError, Failed, NotFound, summarize
from containai.domain.gc_policy import helper_stale
from containai.services.container_spec import DATA_MOUNT
from containai.services.lookup import Target
from containai.services.ports import Engine

HELPER_LABEL = "containai.helper"
HELPER_OWNER = "containai.helper.owner"  # the cai process that made it (adapters/procs.py)
HELPER_VOLUME = "containai.helper.volume"
HELPER_STAGING = "containai.helper.staging"  # an import's staging directory in that volume
FALLBACK_IMAGE = "containai-base:bookworm"

# Run by a helper as root before an import: removes the staging directories (and
# their completion markers) that no live helper owns ($@: the ones to keep), then
# prints the volume's file system as `df -Pk` does (size and free KiB).
SWEEP_SCRIPT = r"""
cd /mnt/agent-data || exit 1
for f in .containai-import-*; do
    [ -e "$f" ] || [ -L "$f" ] || continue
    for k in "$@"; do
        case $f in "$k" | "$k.done") continue 2 ;; esac
    done
    rm -rf "$f" && echo "swept $f"
done
df -Pk /mnt/agent-data | tail -n 1
"""

# progress(done_bytes, total_bytes_or_None)
Progress = Callable[[int, int | None], None]

# Run by the import helper as root, with the volume at /mnt/agent-data:
# $1 = staging directory, $2 = completion marker, $3 = directory for the old content,
# $4 = uid:gid that owns the volume root afterwards (cai's, whatever the archive says;
# empty: left as it is).
SWAP_SCRIPT = r"""
set -u
trap '' INT TERM HUP  # `docker start --attach` forwards Ctrl-C: finish the swap regardless
cd /mnt/agent-data || exit 1
S=$1 M=$2 O=$3 U=${4-}
if [ ! -f "$M" ]; then
    rm -rf "$S" "$M"
    echo "containai: the copy did not complete; the volume was left as it was" >&2
    exit 3
fi
each() { # each DIR CMD...: CMD ENTRY for every entry of DIR except ours
    d=$1; shift
    for f in "$d"/* "$d"/.[!.]* "$d"/..?*; do
        case ${f##*/} in "$S" | "$M" | "$O") continue ;; esac
        if [ -e "$f" ] || [ -L "$f" ]; then "$@" "$f" || return 1; fi
    done
}
to_old() { mv -f "$1" "$O/"; }
to_top() { mv -f "$1" ./; }
to_staging() { mv -f "$1" "$S/"; }
# the archive root's mtime, read before moving anything changes it (its owner and
# mode are not taken: the volume root stays cai's, 0755)
mtime=$(stat -c %Y "$S" 2>/dev/null) || mtime=
mkdir "$O" || exit 1
if ! each . to_old; then
    each "$O" to_top
    rmdir "$O"
    rm -rf "$S" "$M"
    echo "containai: could not move the old content aside; the volume was left as it was" >&2
    exit 1
fi
if ! each "$S" to_top; then
    each . to_staging
    each "$O" to_top
    rmdir "$O"
    rm -rf "$S" "$M"
    echo "containai: could not move the new content in; the volume was left as it was" >&2
    exit 1
fi
rmdir "$S" && rm -f "$M" && rm -rf "$O" || exit 1
if [ -n "$U" ]; then chown "$U" . && chmod 0755 . || exit 1; fi
if [ -n "$mtime" ]; then touch -d "@$mtime" . 2>/dev/null; fi
exit 0
"""


class ExportResult(Protocol):
    @property
    def members(self) -> int: ...

    @property
    def bytes_in(self) -> int: ...

    @property
    def bytes_out(self) -> int: ...

    @property
    def hardlinks(self) -> int: ...


class Streams(Protocol):
    """The tar streams (``adapters/archive.py``) that move data through ``docker cp``."""

    def export_volume(
        self, container: str, source: str, output: Path, *, progress: Progress | None = None
    ) -> ExportResult: ...

    def read_members(self, archive: Path, *, progress: Progress | None = None) -> list[Member]: ...

    def copy_archive_in(
        self,
        container: str,
        dest: str,
        archive: Path,
        expected: Sequence[Member],
        *,
        staging: str,
        marker: str,
        progress: Progress | None = None,
    ) -> None: ...

    def copy_items_in(
        self, container: str, dest: str, items: Sequence[Any], *, uid: int, gid: int
    ) -> list[str]: ...

    def stale_exports(self) -> list[Path]: ...

    def remove_files(self, paths: Sequence[Path]) -> list[Path]: ...


@dataclass(frozen=True)
class VolumeTarget:
    """A data volume, and the existing container that mounts it (if there is one)."""

    volume: str
    container: str | None = None
    image: str | None = None  # that container's image: local for sure, usable for helpers


def data_volume_of(info: ContainerInfo) -> str | None:
    """The volume a container mounts at /mnt/agent-data (else its data-volume label)."""
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


@dataclass(frozen=True)
class Leftover:
    """Something a killed ``cai`` left behind: a helper container or a temp file."""

    kind: str  # helper | file
    name: str  # the container's name, or the file's path
    reason: str
    volume: str | None = None  # a helper's volume (its staging directory is swept too)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "reason": self.reason, "volume": self.volume}


@dataclass(frozen=True)
class _Helper:
    name: str
    state: str
    volume: str | None
    staging: str | None
    stale: str | None  # why it is garbage, else None


class VolumeArchives:
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
        """``owner``: this process's token (``adapters/procs.owner_token``), put on each
        helper; ``owner_alive`` says whether a token's process still runs (``None``:
        cannot tell)."""
        self.engine = engine
        self.streams = streams
        self.token = token
        self.owner = owner
        self.owner_alive = owner_alive
        self.clock = clock

    # ------------------------------------------------------------- helpers
    def volume_exists(self, volume: str) -> bool:
        return self.engine.volume(volume) is not None

    def helper_image(self, preferred: str | None = None) -> str:
        """A local image for helper containers: never pulled.

        ``preferred`` (the workspace container's image), else any ``containai:*``
        image, else ``containai-base:bookworm``, else any local image.
        """
        if preferred and self.engine.image(preferred) is not None:
            return preferred
        ours = [i for i in self.engine.list_images("containai:*") if i.tag not in ("", "<none>")]
        ours.sort(key=lambda i: (i.tag != "default", i.tag))
        if ours:
            return f"{ours[0].repository or 'containai'}:{ours[0].tag}"
        if self.engine.image(FALLBACK_IMAGE) is not None:
            return FALLBACK_IMAGE
        local = self.engine.list_images()
        for image in local:
            repo, tag = image.repository, image.tag
            if repo and repo != "<none>" and tag and tag != "<none>":
                return f"{repo}:{tag}"
        for image in local:
            if image.id:
                return image.id
        raise Failed(
            "no local image to run a helper container from (export and import pull nothing); "
            "build one with `cai image build`"
        )

    def _create_helper(
        self,
        volume: str,
        image: str,
        command: Sequence[str],
        *,
        auto_remove: bool = False,
        staging: str | None = None,
    ) -> str:
        """A stopped helper container with ``volume`` at /mnt/agent-data (never copied up).

        ``auto_remove``: one that is started removes itself when it ends, so an
        interrupted cai never has to kill it mid-way.
        """
        name = f"containai-helper-{self.token()}"
        labels = {HELPER_LABEL: "true", HELPER_VOLUME: volume}
        if self.owner:
            labels[HELPER_OWNER] = self.owner
        if staging:
            labels[HELPER_STAGING] = staging
        self.engine.create(
            ContainerSpec(
                name=name,
                auto_remove=auto_remove,
                labels=labels,
                network="none",
                user="0:0",
                entrypoint="/bin/sh",
                mounts=[Mount("volume", volume, DATA_MOUNT, no_copy=True)],
                image=image,
                command=command,
            )
        )
        return name

    def _remove_helper(self, name: str) -> None:
        with contextlib.suppress(NotFound):
            self.engine.remove(name, force=True)

    def _release_helper(self, name: str) -> None:
        """Remove an auto-removing helper unless it is still running (it then removes itself)."""
        info = self.engine.find(name)
        if info is None or info.state == "running":
            return
        with contextlib.suppress(NotFound, Failed):  # Failed: removal already in progress
            self.engine.remove(name, force=True)

    # ------------------------------------------------------------ leftovers
    def _helpers(self) -> list[_Helper]:
        """Every helper container of the engine (one ``docker ps``), each judged stale or not."""
        from datetime import UTC
        from datetime import datetime as _dt

        found = self.engine.list_containers(
            {HELPER_LABEL: "true"}, keys=(HELPER_OWNER, HELPER_VOLUME, HELPER_STAGING), mounts=True
        )
        now = self.clock() if self.clock is not None else _dt.now(UTC)
        helpers: list[_Helper] = []
        for row in found:
            owner = row.labels.get(HELPER_OWNER, "")
            volume = row.labels.get(HELPER_VOLUME, "")
            if not volume:  # made by an older cai: its only volume mount
                volume = row.mounts[0].source if len(row.mounts) == 1 else ""
            age = None if row.created is None else now - row.created
            alive = self.owner_alive(owner) if owner else None
            helpers.append(
                _Helper(
                    row.name,
                    row.state,
                    volume or None,
                    row.labels.get(HELPER_STAGING) or None,
                    helper_stale(row.state, owner or None, alive, age),
                )
            )
        return helpers

    def leftovers(self) -> list[Leftover]:
        """Helper containers and export temp files whose ``cai`` is gone (``cai gc`` lists
        and removes them)."""
        found = [
            Leftover("helper", h.name, f"import/export helper; {h.stale}", h.volume)
            for h in self._helpers()
            if h.stale is not None
        ]
        found += [
            Leftover("file", str(path), "temp file of a killed cai export")
            for path in self.streams.stale_exports()
        ]
        return found

    def remove_leftovers(self, found: Sequence[Leftover]) -> list[Leftover]:
        """Remove the stale files and helpers in ``found`` (never ``docker rm --force``: a
        helper started since is spared), then sweep the helpers' volumes' staging
        directories; return what was removed."""
        files = {f.name: f for f in found if f.kind == "file"}
        removed = [files[str(p)] for p in self.streams.remove_files([Path(n) for n in files])]
        names = [f.name for f in found if f.kind == "helper"]
        if not names:
            return removed
        try:
            gone = set(self.engine.remove_stopped(names).removed)
        except Failed:
            gone = set()
        removed += [f for f in found if f.kind == "helper" and f.name in gone]
        volumes = sorted({f.volume for f in removed if f.volume})
        if volumes:
            live = self._helpers()
            for volume in volumes:
                if self.volume_exists(volume):
                    self._sweep_volume(volume, live)
        return removed

    def _sweep_volume(self, volume: str, helpers: Sequence[_Helper]) -> tuple[int, int] | None:
        """Remove ``volume``'s staging directories that no live helper owns; return the
        size and free bytes of its file system (``None`` when the helper cannot tell)."""
        keep = sorted(
            {h.staging for h in helpers if h.volume == volume and h.staging and not h.stale}
        )
        helper = self._create_helper(
            volume,
            self.helper_image(),
            ["-c", SWEEP_SCRIPT, "containai-sweep", *keep],
            auto_remove=True,
        )
        try:
            proc = self.engine.start_attached(helper, timeout=300)
        finally:
            self._release_helper(helper)
        return _df(proc.stdout) if proc.returncode == 0 else None

    def _prepare(self, volume: str) -> tuple[int, int] | None:
        """Before an import into ``volume``: remove the helpers whose ``cai`` is gone, then
        the staging directories no live helper owns; the volume's (size, free) bytes."""
        helpers = self._helpers()
        stale = [h.name for h in helpers if h.stale is not None]
        if stale:
            with contextlib.suppress(Failed):  # a failure: gc tries again
                self.engine.remove_stopped(stale)
        return self._sweep_volume(volume, helpers)

    def _require_volume(self, volume: str) -> None:
        if not self.volume_exists(volume):
            raise NotFound(
                f"data volume '{volume}' does not exist; see `docker volume ls` "
                "(or `cai config get data_volume`)"
            )

    # -------------------------------------------------------------- export
    def export(
        self, target: VolumeTarget, output: Path, *, progress: Progress | None = None
    ) -> ExportResult:
        """Write the volume's content to ``output`` (atomically, 0600)."""
        if target.container is not None:
            return self.streams.export_volume(
                target.container, DATA_MOUNT, output, progress=progress
            )
        self._require_volume(target.volume)
        helper = self._create_helper(target.volume, self.helper_image(), ["-c", ":"])
        try:
            return self.streams.export_volume(helper, DATA_MOUNT, output, progress=progress)
        finally:
            self._remove_helper(helper)

    # -------------------------------------------------------------- import
    def check(self, archive: Path, *, progress: Progress | None = None) -> list[Member]:
        """Read the whole archive and refuse it (``Failed``, member named) if any member is bad."""
        members = self.streams.read_members(archive, progress=progress)
        check_members(members, source=str(archive))
        return members

    def _ensure_volume(self, volume: str) -> None:
        if self.volume_exists(volume):
            return
        try:
            self.engine.create_volume(volume, {L.MANAGED: L.TRUE})
        except Failed:
            if not self.volume_exists(volume):
                raise

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
        self._ensure_volume(target.volume)
        space = self._prepare(target.volume)
        needed = expanded_bytes(members)
        problem = None if space is None else space_problem(needed, space[1], space[0])
        if problem is not None:
            raise Failed(
                f"refusing to import {archive} into volume '{target.volume}': {problem}; "
                "nothing was changed: free space on the engine's disk or import a smaller archive"
            )
        token = self.token()
        staging = f"{STAGING_PREFIX}{token}"
        marker = f"{staging}.done"
        old = f".containai-old-{token}"
        root = "" if owner is None else f"{owner[0]}:{owner[1]}"
        helper = self._create_helper(
            target.volume,
            self.helper_image(target.image),
            ["-c", SWAP_SCRIPT, "containai-import", staging, marker, old, root],
            auto_remove=True,
            staging=staging,
        )
        try:
            copy_error: BaseException | None = None
            try:
                self.streams.copy_archive_in(
                    helper,
                    DATA_MOUNT,
                    archive,
                    members,
                    staging=staging,
                    marker=marker,
                    progress=progress,
                )
            except BaseException as exc:  # also Ctrl-C: the helper still cleans up
                copy_error = exc
            # The helper swaps when the marker arrived; otherwise it deletes the staging
            # directory (and the copy's own error is the one to report).
            if copy_error is not None:
                with contextlib.suppress(Exception):
                    self.engine.start_attached(helper, timeout=3600)
                if isinstance(copy_error, CaiError) and "left as it was" not in copy_error.message:
                    copy_error.message += f"; volume '{target.volume}' was left as it was"
                raise copy_error
            proc = self.engine.start_attached(helper, timeout=3600)
            if proc.returncode != 0:
                text = (proc.stdout + proc.stderr).strip()
                detail = (
                    summarize(text.splitlines()[-1]) if text else f"exit code {proc.returncode}"
                )
                raise Failed(f"replacing the content of volume '{target.volume}' failed: {detail}")
        finally:
            self._release_helper(helper)

    # --------------------------------------------------------- host import
    def copy_items(
        self, target: VolumeTarget, items: Sequence[Any], *, uid: int, gid: int
    ) -> list[str]:
        """Merge ``items`` (paths relative to the volume root) into the volume, owned uid:gid.

        Through the workspace's container when it exists, else a helper. Returns warnings.
        """
        if target.container is not None:
            return self.streams.copy_items_in(target.container, DATA_MOUNT, items, uid=uid, gid=gid)
        self._ensure_volume(target.volume)
        helper = self._create_helper(target.volume, self.helper_image(target.image), ["-c", ":"])
        try:
            return self.streams.copy_items_in(helper, DATA_MOUNT, items, uid=uid, gid=gid)
        finally:
            self._remove_helper(helper)


def _df(output: str) -> tuple[int, int] | None:
    """(size, free) bytes from the last line of ``df -Pk`` output, if there is one."""
    lines = output.strip().splitlines()
    fields = lines[-1].split() if lines else []
    if len(fields) < 4 or not fields[1].isdigit() or not fields[3].isdigit():
        return None
    return int(fields[1]) * 1024, int(fields[3]) * 1024
