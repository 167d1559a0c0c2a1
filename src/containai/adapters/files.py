"""Atomic file writes: a temp file in the same directory, fsynced, renamed into place.

The one implementation behind config, SSH files, archives and the dedicated
engine's configuration. On any exception (Ctrl-C included) the temp file is
removed and the target is left exactly as it was.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from containai.lazy import lazy_module

if TYPE_CHECKING:
    import tempfile
else:
    tempfile = lazy_module("tempfile")


def atomic_write_stream(
    path: Path,
    write: Callable[[BinaryIO], None],
    *,
    mode: int = 0o600,
    owner: tuple[int, int] | None = None,
    sync_dir: bool = False,
    lock: bool = False,
) -> None:
    """Call ``write`` on a temp file (``mode`` from the start) and rename it to ``path``.

    ``lock``: the temp file is ``flock``ed while it is written, so ``stale_temps`` can
    tell one whose writer was killed (SIGKILL leaves the file behind) from a live one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if lock:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        os.fchmod(fd, mode)
        if owner is not None and owner != (os.geteuid(), os.getegid()):
            with contextlib.suppress(OSError):
                os.fchown(fd, *owner)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync_dir:
        with contextlib.suppress(OSError):
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


def atomic_write(
    path: Path,
    data: bytes | str,
    *,
    mode: int = 0o600,
    owner: tuple[int, int] | None = None,
) -> None:
    """Write ``data`` (str is UTF-8) to ``path`` atomically with ``mode``."""
    payload = data.encode("utf-8") if isinstance(data, str) else data

    def write(handle: BinaryIO) -> None:
        handle.write(payload)

    atomic_write_stream(path, write, mode=mode, owner=owner)


TEMP_GRACE = 10.0
"""Seconds a temp file is left alone whatever its lock says (a writer that has just made
it, or one that does not lock: it writes continuously, so its file is never this old)."""
_TEMP_NAME = r"\..+\.[a-z0-9_]{8}\.tmp"  # `atomic_write_stream`'s: mkstemp's 8 characters


def stale_temps(
    directory: Path, *, target: str | None = None, magic: bytes = b"", now: float | None = None
) -> list[Path]:
    """Temp files of ``atomic_write_stream`` in ``directory`` whose writer is gone: ours
    (same uid), not locked, older than ``TEMP_GRACE``, empty or starting with ``magic``;
    with ``target``, only those made for that file name."""
    import fcntl
    import re
    import time

    pattern = re.compile(_TEMP_NAME)
    now = time.time() if now is None else now
    found: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        if target is not None and not entry.name.startswith(f".{target}."):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        import stat

        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            continue
        if now - info.st_mtime < TEMP_GRACE:
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            head = os.read(fd, len(magic)) if magic else b""
        except OSError:  # locked: its writer lives
            continue
        finally:
            os.close(fd)
        if head in (b"", magic):
            found.append(Path(entry.path))
    return sorted(found)
