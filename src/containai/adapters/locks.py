"""Inter-process locks: ``flock(2)`` on files under ``$XDG_STATE_HOME/containai/locks``.

One advisory lock per file, held by an open file description: the kernel releases it
when the holder exits, however it exits (SIGKILL included), so a crashed ``cai`` never
leaves a lock behind. A lock that stays busy past its timeout raises ``TimeoutError``.

Why not the ``filelock`` package: its import (4.x) pulls in asyncio and logging
(~35 ms here, on every command that locks, i.e. every create, restart, stop and gc);
what cai needs of it is these thirty lines of ``fcntl``. See docs/decisions.md.
"""

from __future__ import annotations

import fcntl
import os
import time
from types import TracebackType

from containai.domain.errors import Failed
from containai.lazy import sha256_hex

_POLL_FIRST = 0.005  # seconds; doubles up to _POLL_MAX while the lock is busy
_POLL_MAX = 0.1


def unusable(path: str, exc: OSError, what: str | None = None, *, kind: str = "file") -> Failed:
    """One line about a lock path cai cannot use, and what to do about it."""
    reason = what or (exc.strerror or str(exc)).lower()
    return Failed(
        f"cannot use {path} (cai's lock {kind}): {reason}; remove it (`rm -r '{path}'`, "
        "cai makes it again) or fix its permissions, then run the command again"
    )


class FileLock:
    """An exclusive lock on ``path`` (created ``mode`` if missing); re-entrant per object."""

    def __init__(self, path: os.PathLike[str] | str, timeout: float = 300.0, mode: int = 0o600):
        self.path = os.fspath(path)
        self.timeout = timeout
        self.mode = mode
        self._fd: int | None = None
        self._depth = 0

    @property
    def is_locked(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            self._depth += 1
            return
        fd = self._open()
        deadline = time.monotonic() + self.timeout
        pause = _POLL_FIRST
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(f"lock {self.path} is busy") from None
                    time.sleep(min(pause, left))
                    pause = min(pause * 2, _POLL_MAX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._depth = 1

    def _open(self) -> int:
        """The lock file's descriptor; an unusable path is a one-line ``Failed`` naming it.

        An empty directory where the file belongs is removed (nothing is lost) and the
        file made; anything else is the user's to look at."""
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
        try:
            return os.open(self.path, flags, self.mode)
        except IsADirectoryError:
            try:
                os.rmdir(self.path)
                return os.open(self.path, flags, self.mode)
            except OSError as exc:
                raise unusable(self.path, exc, "a directory, not a file") from None
        except OSError as exc:
            raise unusable(self.path, exc) from None

    def release(self) -> None:
        if self._fd is None:
            return
        self._depth -= 1
        if self._depth > 0:
            return
        fd, self._fd = self._fd, None
        os.close(fd)  # closing the only descriptor drops the flock

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class FileLocks:
    """The named locks cai takes, all in one directory (created 0700 on first use)."""

    def __init__(self, locks_dir: os.PathLike[str] | str, timeout: float = 300.0) -> None:
        self.dir = os.fspath(locks_dir)
        self.timeout = timeout

    def _lock(self, name: str) -> FileLock:
        try:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise unusable(self.dir, exc, kind="directory") from None
        return FileLock(os.path.join(self.dir, name), timeout=self.timeout)

    def workspace(self, workspace: str) -> FileLock:
        return self._lock("ws-" + sha256_hex(workspace)[:20] + ".lock")

    def ports(self) -> FileLock:
        return self._lock("ports.lock")

    def named(self, name: str) -> FileLock:
        """Any other lock by name (e.g. one image build at a time)."""
        return self._lock(f"{name}.lock")
