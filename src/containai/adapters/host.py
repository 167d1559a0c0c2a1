"""Facts about the host machine: free ports, memory, CPUs, the caller's uid/gid."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Mapping


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
