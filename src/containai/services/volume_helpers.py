"""Helper containers on a data volume, and what a killed ``cai`` left behind.

Export (of a volume with no container), import and host import reach a volume through
a helper container: created from a LOCAL image (nothing is pulled), with the volume at
``DATA_MOUNT``, labelled ``containai.helper=true`` (and with the ``cai`` that made it,
the volume and an import's staging directory), removed by the ``cai`` that made it.
A ``cai`` killed mid-way leaves its helper (never started) and staging directory
behind: the next import into that volume, and ``cai gc``, remove helpers whose ``cai``
is gone and staging directories no live helper owns (``sweep``), and ``cai gc`` the
temp files of killed exports (``leftovers``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from containai.domain import labels as L
from containai.domain.engine_objects import ContainerInfo, ContainerSpec, Mount
from containai.domain.errors import Failed, NotFound
from containai.domain.gc_policy import helper_stale
from containai.services.ports import Engine

DATA_MOUNT = L.DATA_MOUNT
FALLBACK_IMAGE = "containai-base:bookworm"

# Run by a helper as root before an import: removes the staging directories (and
# their completion markers) that no live helper owns ($@: the ones to keep), then
# prints the volume's file system as `df -Pk` does (size and free KiB).
SWEEP_SCRIPT = r"""
cd @DATA_MOUNT@ || exit 1
for f in .containai-import-*; do
    [ -e "$f" ] || [ -L "$f" ] || continue
    for k in "$@"; do
        case $f in "$k" | "$k.done") continue 2 ;; esac
    done
    rm -rf "$f" && echo "swept $f"
done
df -Pk @DATA_MOUNT@ | tail -n 1
""".replace("@DATA_MOUNT@", DATA_MOUNT)


class LeftoverFiles(Protocol):
    """Temp files of killed exports (the archive adapter keeps their journal)."""

    def stale_exports(self) -> list[Path]: ...

    def remove_files(self, paths: Sequence[Path]) -> list[Path]: ...


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
class Helper:
    """A helper container as listed, judged."""

    name: str
    state: str
    volume: str | None
    staging: str | None
    stale: str | None  # why it is garbage, else None


class VolumeHelpers:
    def __init__(
        self,
        engine: Engine,
        files: LeftoverFiles,
        *,
        token: Callable[[], str],
        owner: str = "",
        owner_alive: Callable[[str], bool | None] = lambda _owner: None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``owner``: this process's token (``adapters/procs.owner_token``), put on each
        helper; ``owner_alive`` says whether a token's process still runs (``None``:
        cannot tell)."""
        self.engine = engine
        self.files = files
        self.token = token
        self.owner = owner
        self.owner_alive = owner_alive
        self.clock = clock

    # -------------------------------------------------------------- volumes
    def volume_exists(self, volume: str) -> bool:
        return self.engine.volume(volume) is not None

    def require_volume(self, volume: str) -> None:
        if not self.volume_exists(volume):
            raise NotFound(
                f"data volume '{volume}' does not exist; see `docker volume ls` "
                "(or `cai config get data_volume`)"
            )

    def ensure_volume(self, volume: str) -> None:
        if self.volume_exists(volume):
            return
        try:
            self.engine.create_volume(volume, {L.MANAGED: L.TRUE})
        except Failed:
            if not self.volume_exists(volume):
                raise

    # -------------------------------------------------------------- helpers
    def image(self, preferred: str | None = None) -> str:
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

    def create(
        self,
        volume: str,
        image: str,
        command: Sequence[str],
        *,
        auto_remove: bool = False,
        staging: str | None = None,
    ) -> str:
        """A stopped helper container with ``volume`` at ``DATA_MOUNT`` (never copied up).

        ``auto_remove``: one that is started removes itself when it ends, so an
        interrupted cai never has to kill it mid-way.
        """
        name = f"containai-helper-{self.token()}"
        labels = {L.HELPER: L.TRUE, L.HELPER_VOLUME: volume}
        if self.owner:
            labels[L.HELPER_OWNER] = self.owner
        if staging:
            labels[L.HELPER_STAGING] = staging
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

    def remove(self, name: str) -> None:
        with contextlib.suppress(NotFound):
            self.engine.remove(name, force=True)

    def release(self, name: str) -> None:
        """Remove an auto-removing helper unless it is still running (it then removes itself)."""
        info = self.engine.find(name)
        if info is None or info.state == "running":
            return
        with contextlib.suppress(NotFound, Failed):  # Failed: removal already in progress
            self.engine.remove(name, force=True)

    # ------------------------------------------------------------ leftovers
    def helpers(self, listing: Sequence[ContainerInfo] | None = None) -> list[Helper]:
        """Every helper container of the engine (one listing, or the helpers in
        ``listing``: every container, with those labels and mounts), each judged stale
        or not."""
        if listing is None:
            found = self.engine.list_containers(
                {L.HELPER: L.TRUE},
                keys=(L.HELPER_OWNER, L.HELPER_VOLUME, L.HELPER_STAGING),
                mounts=True,
            )
        else:
            found = [row for row in listing if row.labels.get(L.HELPER) == L.TRUE]
        now = self.clock() if self.clock is not None else datetime.now(UTC)
        helpers: list[Helper] = []
        for row in found:
            owner = row.labels.get(L.HELPER_OWNER, "")
            volume = row.labels.get(L.HELPER_VOLUME, "")
            if not volume:  # made by an older cai: its only volume mount
                volume = row.mounts[0].source if len(row.mounts) == 1 else ""
            age = None if row.created is None else now - row.created
            alive = self.owner_alive(owner) if owner else None
            helpers.append(
                Helper(
                    row.name,
                    row.state,
                    volume or None,
                    row.labels.get(L.HELPER_STAGING) or None,
                    helper_stale(row.state, owner or None, alive, age),
                )
            )
        return helpers

    def leftovers(self, listing: Sequence[ContainerInfo] | None = None) -> list[Leftover]:
        """Helper containers and export temp files whose ``cai`` is gone (``cai gc`` lists
        and removes them); the helpers from ``listing`` when given (see ``helpers``)."""
        found = [
            Leftover("helper", h.name, f"import/export helper; {h.stale}", h.volume)
            for h in self.helpers(listing)
            if h.stale is not None
        ]
        found += [
            Leftover("file", str(path), "temp file of a killed cai export")
            for path in self.files.stale_exports()
        ]
        return found

    def remove_leftovers(self, found: Sequence[Leftover]) -> list[Leftover]:
        """Remove the stale files and helpers in ``found`` (never by force: a
        helper started since is spared), then sweep the helpers' volumes' staging
        directories; return what was removed."""
        files = {f.name: f for f in found if f.kind == "file"}
        removed = [files[str(p)] for p in self.files.remove_files([Path(n) for n in files])]
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
            live = self.helpers()
            for volume in volumes:
                if self.volume_exists(volume):
                    self.sweep(volume, live)
        return removed

    def sweep(self, volume: str, helpers: Sequence[Helper]) -> tuple[int, int] | None:
        """Remove ``volume``'s staging directories that no live helper owns; return the
        size and free bytes of its file system (``None`` when the helper cannot tell)."""
        keep = sorted(
            {h.staging for h in helpers if h.volume == volume and h.staging and not h.stale}
        )
        helper = self.create(
            volume,
            self.image(),
            ["-c", SWEEP_SCRIPT, "containai-sweep", *keep],
            auto_remove=True,
        )
        try:
            proc = self.engine.start_attached(helper, timeout=300)
        finally:
            self.release(helper)
        return _df(proc.stdout) if proc.returncode == 0 else None

    def prepare(self, volume: str) -> tuple[int, int] | None:
        """Before an import into ``volume``: remove the helpers whose ``cai`` is gone, then
        the staging directories no live helper owns; the volume's (size, free) bytes."""
        helpers = self.helpers()
        stale = [h.name for h in helpers if h.stale is not None]
        if stale:
            with contextlib.suppress(Failed):  # a failure: gc tries again
                self.engine.remove_stopped(stale)
        return self.sweep(volume, helpers)


def _df(output: str) -> tuple[int, int] | None:
    """(size, free) bytes from the last line of ``df -Pk`` output, if there is one."""
    lines = output.strip().splitlines()
    fields = lines[-1].split() if lines else []
    if len(fields) < 4 or not fields[1].isdigit() or not fields[3].isdigit():
        return None
    return int(fields[1]) * 1024, int(fields[3]) * 1024
