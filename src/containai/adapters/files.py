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
) -> None:
    """Call ``write`` on a temp file (``mode`` from the start) and rename it to ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
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
