"""Import of an archive into a data volume (``cai import --from ARCHIVE``, SPEC section 11).

Every member is checked first (``domain/archive_rules``); only then is anything
touched. Before anything is copied, the archive's expanded size must fit on the
engine's disk (the volume's free space, read by a helper, less a margin). The archive
goes into a hidden staging directory of the volume, followed by a completion marker; a
helper container then swaps it in with renames (old content moved aside, new content
moved up, old content deleted) or, without the marker, deletes the staging directory.
So a failed or interrupted copy leaves the volume as it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path

from containai.domain.archive_rules import (
    STAGING_PREFIX,
    Member,
    check_members,
    expanded_bytes,
    space_problem,
)
from containai.domain.errors import CaiError, Failed, summarize
from containai.services.ports import Engine, Progress, Streams
from containai.services.volume_helpers import DATA_MOUNT, VolumeHelpers

# Run by the import helper as root, with the volume at DATA_MOUNT:
# $1 = staging directory, $2 = completion marker, $3 = directory for the old content,
# $4 = uid:gid that owns the volume root afterwards (cai's, whatever the archive says;
# empty: left as it is).
SWAP_SCRIPT = r"""
set -u
trap '' INT TERM HUP  # `docker start --attach` forwards Ctrl-C: finish the swap regardless
cd @DATA_MOUNT@ || exit 1
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
""".replace("@DATA_MOUNT@", DATA_MOUNT)


class VolumeImport:
    def __init__(
        self,
        engine: Engine,
        streams: Streams,
        helpers: VolumeHelpers,
        *,
        token: Callable[[], str],
    ) -> None:
        self.engine = engine
        self.streams = streams
        self.helpers = helpers
        self.token = token

    def check(self, archive: Path, *, progress: Progress | None = None) -> list[Member]:
        """Read the whole archive and refuse it (``Failed``, member named) if any member is bad."""
        members = self.streams.read_members(archive, progress=progress)
        check_members(members, source=str(archive))
        return members

    def restore(
        self,
        volume: str,
        archive: Path,
        members: Sequence[Member],
        *,
        image: str | None = None,
        progress: Progress | None = None,
        owner: tuple[int, int] | None = None,
    ) -> None:
        """Replace ``volume``'s content with the (checked) ``members`` of ``archive``
        (helpers prefer ``image``); the volume root is then owned by ``owner`` (uid,
        gid), mode 0755."""
        self.helpers.ensure_volume(volume)
        space = self.helpers.prepare(volume)
        needed = expanded_bytes(members)
        problem = None if space is None else space_problem(needed, space[1], space[0])
        if problem is not None:
            raise Failed(
                f"refusing to import {archive} into volume '{volume}': {problem}; "
                "nothing was changed: free space on the engine's disk or import a smaller archive"
            )
        token = self.token()
        staging = f"{STAGING_PREFIX}{token}"
        marker = f"{staging}.done"
        old = f".containai-old-{token}"
        root = "" if owner is None else f"{owner[0]}:{owner[1]}"
        helper = self.helpers.create(
            volume,
            self.helpers.image(image),
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
                    copy_error.message += f"; volume '{volume}' was left as it was"
                raise copy_error
            proc = self.engine.start_attached(helper, timeout=3600)
            if proc.returncode != 0:
                text = (proc.stdout + proc.stderr).strip()
                detail = (
                    summarize(text.splitlines()[-1]) if text else f"exit code {proc.returncode}"
                )
                raise Failed(f"replacing the content of volume '{volume}' failed: {detail}")
        finally:
            self.helpers.release(helper)
