"""Facts about this machine for ``cai doctor`` (``services.doctor.DoctorHost``):
``ssh -V``, programs on PATH, files, free ports, disk space, and the offline
bootstrap's prerequisites. Reads only; changes nothing."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Mapping
from pathlib import Path

from containai.adapters import programs
from containai.domain.errors import Failed


def ssh_version(output: bytes) -> str | None:
    """The version in ``ssh -V``'s output: ``OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL
    3.0.15 ...`` -> ``OpenSSH_9.2p1 Debian-2+deb12u3``; ``None`` for no output."""
    text = output.decode("utf-8", "replace").strip()
    if not text:
        return None
    return text.splitlines()[0].split(",")[0].strip()


class MachineProbe:
    """Facts about this machine for ``cai doctor`` (``services.doctor.DoctorHost``)."""

    def __init__(
        self, env: Mapping[str, str] | None = None, run: programs.Runner = programs.run
    ) -> None:
        self.env = dict(os.environ if env is None else env)
        self._run = run

    def ssh_client_version(self) -> str | None:
        ssh = shutil.which("ssh", path=self.env.get("PATH"))
        if ssh is None:
            return None
        proc = self._run([ssh, "-V"], env=self.env, timeout=10)
        version = ssh_version(proc.stderr or proc.stdout)
        if proc.returncode != 0 or version is None:
            raise Failed(f"`ssh -V` failed: {programs.last_error(proc)}")
        return version

    def has_program(self, name: str) -> bool:
        return shutil.which(name, path=self.env.get("PATH")) is not None

    def exists(self, path: Path) -> bool:
        return path.exists()

    def read_bytes(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def port_is_free(self, port: int) -> bool:
        from containai.adapters.host import Host

        return Host().port_is_free(port)

    def disk_free(self, path: str) -> int | None:
        try:
            st = os.statvfs(path)
        except FileNotFoundError:
            return None
        return st.f_bavail * st.f_frsize

    def hostname(self) -> str:
        return socket.gethostname()

    def offline_bootstrap(self) -> tuple[bool, str]:
        from containai.adapters import rootfs

        if os.geteuid() != 0:
            return False, "it needs root"
        if not rootfs.debootstrap_available():
            return False, "debootstrap is not installed (apt-get install debootstrap)"
        mirror = rootfs.apt_mirror()
        if mirror is None:
            return False, "no Debian mirror in /etc/apt/sources.list(.d)"
        return True, mirror
