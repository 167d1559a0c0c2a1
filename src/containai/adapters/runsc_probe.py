"""The runsc probe of ``cai setup``: which registration of runsc starts a container on
the dedicated engine, and whether ``stat`` (``statx(2)``) works in its sandbox.

It imports a throw-away image made of host binaries (``true``, ``stat`` and their
libraries: no registry, no pull), runs one container per candidate runtime name
until one works, and removes what a failed start leaves behind (the container, the
runsc sandbox, the containerd task). Every docker call names the dedicated engine.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from containai.adapters import programs

PROBE_IMAGE = "containai-probe:setup"


class DockerAt(Protocol):
    """``docker -H HOST ARGS...`` against the dedicated engine (``DedicatedEngineHost``)."""

    def __call__(
        self, host: str, *args: str, timeout: float = 30.0, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]: ...


class RunscProbe:
    def __init__(self, docker: DockerAt, run: programs.Runner = programs.run) -> None:
        self._docker = docker
        self._run = run

    def probe(self, host: str, runtimes: Sequence[str], layout: Any) -> dict[str, bool]:
        """Start a throw-away container per runtime name, in order, until one runs."""
        self._import_image(host)
        results: dict[str, bool] = {}
        for name in runtimes:
            results[name] = self._try(host, name, ["/bin/true"], layout)
            if results[name]:
                break
        return results

    def probe_statx(self, host: str, runtime: str, layout: Any) -> bool:
        """Whether ``stat /`` works under ``runtime``; removes the probe image after."""
        try:
            return self._try(host, runtime, ["/usr/bin/stat", "/"], layout)
        finally:
            self._docker(host, "rmi", "-f", PROBE_IMAGE, timeout=60)

    def _import_image(self, host: str) -> None:
        """A throw-away image of host binaries (``true``, ``stat`` and their libraries)."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            added: set[str] = set()
            for binary in ("/bin/true", "/usr/bin/stat"):
                files = [binary]
                ldd = self._run(["ldd", binary], timeout=15)
                for token in ldd.stdout.decode("utf-8", "replace").split():
                    if token.startswith("/"):
                        files.append(token)
                for f in files:
                    real = os.path.realpath(f)
                    arc = f.lstrip("/")
                    if arc in added or not os.path.isfile(real):
                        continue
                    added.add(arc)
                    info = tar.gettarinfo(real, arcname=arc)
                    with open(real, "rb") as fh:
                        tar.addfile(info, fh)
        proc = self._docker(host, "import", "-", PROBE_IMAGE, input=buf.getvalue(), timeout=120)
        programs.check(proc, "importing the runsc probe image")

    def _cleanup(self, host: str, cid: str, layout: Any) -> None:
        self._docker(host, "rm", "-f", cid, timeout=60)
        # A failed runsc start can leave its sandbox and containerd task behind.
        root = Path(layout.exec_root) / "runtime-runc" / layout.namespace
        runsc = programs.which("runsc")
        if runsc:
            self._run([runsc, "--root", str(root), "delete", "-force", cid], timeout=30)
        ctr = programs.which("ctr")
        sock = Path(layout.exec_root) / "containerd" / "containerd.sock"
        if ctr and sock.exists():
            for args in (["tasks", "delete", "-f", cid], ["containers", "delete", cid]):
                self._run([ctr, "-a", str(sock), "-n", layout.namespace, *args], timeout=30)

    def _try(self, host: str, runtime: str, command: Sequence[str], layout: Any) -> bool:
        made = self._docker(
            host, "create", "--runtime", runtime, "--network", "bridge", PROBE_IMAGE, *command
        )
        if made.returncode != 0:
            return False
        cid = made.stdout.decode().strip()
        started = self._docker(host, "start", "-a", cid, timeout=60)
        ok = started.returncode == 0
        if ok:
            self._docker(host, "rm", "-f", cid, timeout=60)
        else:
            self._cleanup(host, cid, layout)
        return ok
