"""Port forwards over SSH (SPEC section 17, ``cai forward``).

* Foreground: one ``ssh -N -L`` of its own (``ControlPath=none``), living as long as
  the command; Ctrl-C ends both.
* Background: a *forwards master* per container, a control master of its own on
  ``<sockets>/<name>+fwd`` started with ``ControlPersist=yes``, to which forwards are
  added and removed with ``ssh -O forward`` / ``ssh -O cancel``. Not cai's session
  master: that one has ``ControlPersist 10m`` (the entry file, shared with VS Code
  and every ``cai exec``) and a master whose persist time runs out exits with its
  listening forwards (measured: a forward added with ``-O forward`` to a master with
  ``ControlPersist=3s`` was gone 6 s later). The forwards master ends when the
  container stops (its connection closes) or when cai stops it.

Every forward listens on 127.0.0.1 only and connects to ``localhost:PORT`` inside
the container (so a server bound to 127.0.0.1, ::1 or every address is reached).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from typing import IO, TYPE_CHECKING

from containai.adapters.ssh.layout import alias, conf_quote, entry_path, forward_control_path
from containai.adapters.ssh.sessions import ensure_socket_dir
from containai.domain.errors import Failed, summarize

if TYPE_CHECKING:
    from collections.abc import Sequence

    from containai.paths import Paths

BIND = "127.0.0.1"
TARGET = "localhost"
# ssh's own words for a forward it could not set up (its exit status may still be 0).
_FORWARD_FAILED = ("forwarding request failed", "port not forwarded", "cannot listen")


def local_spec(port: int, host_port: int) -> str:
    """``-L`` argument: 127.0.0.1:HOSTPORT on the host -> localhost:PORT inside."""
    return f"{BIND}:{host_port}:{TARGET}:{port}"


def _last_line(text: str, fallback: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return summarize(lines[-1]) if lines else fallback


class SshTunnel:
    """One foreground ``ssh -N -L ...`` (``services.ports.Tunnel``)."""

    def __init__(self, proc: subprocess.Popen[bytes], errors: IO[bytes]) -> None:
        self.proc = proc
        self._errors = errors

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float | None = None) -> int | None:
        """ssh's exit status, or ``None`` when it still runs after ``timeout``."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def error(self) -> str:
        """ssh's last error line."""
        self._errors.seek(0)
        text = self._errors.read().decode("utf-8", "replace")
        return _last_line(text, f"ssh exited with status {self.proc.returncode}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._errors.close()


class SshForwards:
    """Foreground tunnels and the per-container forwards master (``services.ports.Forwarder``)."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    def _base(self, name: str) -> list[str]:
        return ["ssh", "-F", str(entry_path(self.paths, name))]

    def _control(self, name: str) -> list[str]:
        path = forward_control_path(self.paths, name)
        return ["-o", f"ControlPath={conf_quote(str(path), percent=True)}"]

    # -- foreground ----------------------------------------------------------------
    def open(self, name: str, forwards: Sequence[tuple[int, int]]) -> SshTunnel:
        """Start ``ssh -N`` holding ``forwards`` (``(port, host_port)`` pairs)."""
        argv = [
            *self._base(name),
            "-o",
            "ControlPath=none",
            "-o",
            "ControlMaster=no",
            "-o",
            "ExitOnForwardFailure=yes",
            "-o",
            "BatchMode=yes",
            "-N",
            "-T",
        ]
        for port, host_port in forwards:
            argv += ["-L", local_spec(port, host_port)]
        argv.append(alias(name))
        errors = tempfile.TemporaryFile()  # noqa: SIM115 (the tunnel closes it)
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors
            )
        except FileNotFoundError:
            errors.close()
            raise Failed("ssh not found: install the OpenSSH client") from None
        return SshTunnel(proc, errors)

    # -- background: the forwards master --------------------------------------------
    def alive(self, name: str) -> bool:
        """Whether the container's forwards master answers (one ``connect()``)."""
        import socket

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            try:
                sock.connect(os.fsencode(forward_control_path(self.paths, name)))
            except OSError:
                return False
        return True

    def _run(self, argv: list[str], timeout: float) -> tuple[int, str]:
        # stderr to a file, not a pipe: a master that goes to the background keeps it open
        with tempfile.TemporaryFile() as errfile:
            try:
                done = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errfile,
                    timeout=timeout,
                    check=False,
                )
            except FileNotFoundError:
                raise Failed("ssh not found: install the OpenSSH client") from None
            except subprocess.TimeoutExpired:
                return 124, f"ssh did not answer within {timeout:.0f} s"
            errfile.seek(0)
            return done.returncode, errfile.read().decode("utf-8", "replace")

    def _ensure_master(self, name: str) -> None:
        if self.alive(name):
            return
        ensure_socket_dir(self.paths, forward_control_path(self.paths, name))
        argv = [
            *self._base(name),
            *self._control(name),
            "-o",
            "ControlMaster=yes",
            "-o",
            "ControlPersist=yes",
            "-o",
            "BatchMode=yes",
            "-N",
            "-f",
            "-T",
            alias(name),
        ]
        code, err = self._run(argv, 60)
        if code != 0 or not self.alive(name):
            raise Failed(
                f"could not connect to container '{name}' for port forwarding "
                f"({alias(name)}): {_last_line(err, f'ssh exited with status {code}')}"
            )

    def add(self, name: str, port: int, host_port: int) -> None:
        """Add one forward to the forwards master (started when needed)."""
        self._ensure_master(name)
        argv = [*self._base(name), *self._control(name), "-O", "forward"]
        code, err = self._run([*argv, "-L", local_spec(port, host_port), alias(name)], 30)
        if code != 0 or any(marker in err for marker in _FORWARD_FAILED):
            raise Failed(
                f"could not forward 127.0.0.1:{host_port} to port {port} of container "
                f"'{name}': {_last_line(err, f'ssh exited with status {code}')}"
            )

    def cancel(self, name: str, port: int, host_port: int) -> None:
        """Remove one forward from the forwards master (nothing when it is not there)."""
        if not self.alive(name):
            return
        argv = [*self._base(name), *self._control(name), "-O", "cancel"]
        self._run([*argv, "-L", local_spec(port, host_port), alias(name)], 30)

    def close(self, name: str) -> None:
        """Stop the forwards master (every background forward of ``name`` ends)."""
        path = forward_control_path(self.paths, name)
        if self.alive(name):
            self._run(
                ["ssh", "-F", "/dev/null", *self._control(name), "-O", "exit", alias(name)], 10
            )
            deadline = time.monotonic() + 2.0
            while self.alive(name) and time.monotonic() < deadline:
                time.sleep(0.05)
        if os.path.lexists(path) and not self.alive(name):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
