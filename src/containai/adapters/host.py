"""Facts about the host machine: free ports, memory, CPUs, the caller's uid/gid."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Mapping
from typing import Any


class Host:
    def port_is_free(self, port: int) -> bool:
        """Whether 127.0.0.1:``port`` can be bound (SO_REUSEADDR: TIME_WAIT is not "taken")."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    def memory_bytes(self) -> int:
        try:
            return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (ValueError, OSError):
            return 4 * 1024**3

    def cpu_count(self) -> int:
        try:
            return len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            return os.cpu_count() or 1

    def uid_gid(self) -> tuple[int, int]:
        return os.getuid(), os.getgid()


class FileLocks:
    """Inter-process locks under ``$XDG_STATE_HOME/containai/locks``."""

    def __init__(self, locks_dir: os.PathLike[str] | str, timeout: float = 300.0) -> None:
        self.dir = os.fspath(locks_dir)
        self.timeout = timeout

    def _lock(self, name: str) -> object:
        from filelock import FileLock

        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        return FileLock(os.path.join(self.dir, name), timeout=self.timeout)

    def workspace(self, workspace: str) -> object:
        import hashlib

        return self._lock("ws-" + hashlib.sha256(workspace.encode()).hexdigest()[:20] + ".lock")

    def ports(self) -> object:
        return self._lock("ports.lock")

    def named(self, name: str) -> Any:
        """Any other lock by name (e.g. one image build at a time)."""
        return self._lock(f"{name}.lock")


def npm_registry(env: Mapping[str, str]) -> str | None:
    """The npm registry the host's npm is configured with (for agent installs in builds)."""
    try:
        proc = subprocess.run(
            ["npm", "config", "get", "registry"],
            capture_output=True,
            text=True,
            env=dict(env),
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = proc.stdout.strip()
    return value if proc.returncode == 0 and value.startswith(("http://", "https://")) else None
