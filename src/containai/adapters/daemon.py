"""The dedicated engine's daemon on this machine: what ``cai setup`` reads and does
(``services.setup.SetupHost``).

Packages, the second ``dockerd`` (systemd unit, or a managed background daemon:
own session, pid file, log), waiting for its socket, and ``docker context
create``. Its bridge and iptables chains are ``adapters/host_network.py``'s, the
runsc probe ``adapters/runsc_probe.py``'s; ``cai doctor``'s machine facts are
``adapters/machine.py``'s.

Every external program is called with an argv list, never a shell. Never
touches the default engine: every docker call here names ``-H <socket>``
of the dedicated engine, or only the client-side context store.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from containai.adapters import programs
from containai.adapters.engine.client import stored_context_host
from containai.adapters.engine.shapes import info_of
from containai.adapters.files import atomic_write
from containai.adapters.host_network import HostNetwork
from containai.adapters.machine import MachineProbe  # re-exported; its home is adapters.machine
from containai.adapters.runsc_probe import PROBE_IMAGE, RunscProbe
from containai.domain.engine_facts import EngineInfo
from containai.domain.errors import Failed

__all__ = ["PROBE_IMAGE", "DedicatedEngineHost", "MachineProbe"]

_SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PASS_ENV = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "LANG",
    "LC_ALL",
    "TZ",
)


def _tail(path: Path, lines: int = 8) -> str:
    try:
        data = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(data[-lines:])


def is_zombie(stat: str) -> bool:
    """``/proc/PID/stat``: the process exited and was not reaped (state ``Z``)."""
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not reaped) is not a running daemon.
    try:
        return not is_zombie(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, IndexError):
        return True


# --------------------------------------------------------------------------- #
# setup
# --------------------------------------------------------------------------- #


class DedicatedEngineHost:
    """What ``cai setup`` reads from and does to this machine (``services.setup.SetupHost``)."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        docker: str = "docker",
        run: programs.Runner = programs.run,
    ) -> None:
        self.env = dict(os.environ if env is None else env)
        self.docker = docker
        self._run = run
        self._net = HostNetwork(run)

    # ------------------------------------------------------------------ facts
    def platform_linux(self) -> bool:
        return sys.platform.startswith("linux")

    def is_root(self) -> bool:
        return os.geteuid() == 0

    def systemd_running(self) -> bool:
        return Path("/run/systemd/system").is_dir()

    def which(self, name: str) -> str | None:
        return programs.which(name)

    def runsc_version(self, runsc: str) -> str | None:
        proc = self._run([runsc, "--version"], timeout=15)
        if proc.returncode != 0:
            return None
        first = proc.stdout.decode("utf-8", "replace").strip().splitlines()
        return first[0].strip() if first else None

    def kvm_usable(self) -> bool:
        if not os.access("/dev/kvm", os.R_OK | os.W_OK):
            return False
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
        return " vmx" in cpuinfo or " svm" in cpuinfo

    def read_json(self, path: Path) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def read_text(self, path: Path) -> str | None:
        try:
            return path.read_text(encoding="utf-8")
        except OSError:
            return None

    def link_addrs(self, name: str) -> tuple[tuple[str, ...], bool] | None:
        return self._net.link_addrs(name)

    def routes(self, exclude_dev: str) -> tuple[str, ...]:
        return self._net.routes(exclude_dev)

    def rule_present(self, rule: Any) -> bool | None:
        return self._net.rule_present(rule)

    def daemon_pid(self, pidfile: Path) -> int | None:
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        if not _pid_alive(pid):
            return None
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return pid
        return pid if comm == "dockerd" else None

    def cmdline(self, pid: int) -> tuple[str, ...] | None:
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return tuple(part.decode("utf-8", "replace") for part in raw.split(b"\0") if part)

    def _docker_env(self) -> dict[str, str]:
        env = {k: v for k, v in self.env.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
        env.setdefault("PATH", _SBIN_PATH)
        return env

    def _docker(
        self, host: str, *args: str, timeout: float = 30.0, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        return self._run(
            [self.docker, "-H", host, *args], env=self._docker_env(), timeout=timeout, input=input
        )

    def answers(self, host: str) -> bool:
        sock = host.removeprefix("unix://")
        if host.startswith("unix://") and not Path(sock).exists():
            return False
        proc = self._docker(host, "version", "--format", "{{.Server.Version}}", timeout=15)
        return proc.returncode == 0 and bool(proc.stdout.strip())

    def engine_info(self, host: str) -> EngineInfo | None:
        proc = self._docker(host, "info", "--format", "{{json .}}", timeout=20)
        if proc.returncode != 0:
            return None
        try:
            data = json.loads(proc.stdout)
        except ValueError:
            return None
        return info_of(data) if isinstance(data, dict) and data else None

    def has_image(self, host: str, ref: str) -> bool:
        return self._docker(host, "image", "inspect", ref, timeout=20).returncode == 0

    def context_host(self, docker_config: Path, name: str) -> str | None:
        return stored_context_host(docker_config, name)

    def unit_enabled(self, unit: str) -> bool:
        return self._run(["systemctl", "is-enabled", "--quiet", unit], timeout=15).returncode == 0

    def root_home(self) -> str | None:
        try:
            import pwd

            return pwd.getpwuid(0).pw_dir.rstrip("/") or "/"
        except (KeyError, ImportError):
            return None

    def home_of(self, user: str) -> tuple[Path, int, int] | None:
        try:
            import pwd

            entry = pwd.getpwnam(user)
        except (KeyError, ImportError):
            return None
        return Path(entry.pw_dir), entry.pw_uid, entry.pw_gid

    # ---------------------------------------------------------------- actions
    @contextlib.contextmanager
    def lock(self, path: Path) -> Iterator[None]:
        """One ``cai setup`` at a time on this machine (flock)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                deadline = time.monotonic() + 600
                while True:
                    time.sleep(0.5)
                    try:
                        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise Failed(
                                f"another `cai setup` holds {path} for more than 10 minutes"
                            ) from None
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def apt_install(self, packages: Sequence[str]) -> None:
        if not packages:
            return
        if programs.which("apt-get") is None:
            raise Failed(
                f"{' and '.join(packages)} missing and there is no apt-get here: install "
                "them with your distribution's package manager and run `cai setup` again"
            )
        env = {**self.env, "DEBIAN_FRONTEND": "noninteractive", "PATH": _SBIN_PATH}
        need_update = False
        for pkg in packages:
            policy = self._run(["apt-cache", "policy", pkg], env=env, timeout=60)
            text = policy.stdout.decode("utf-8", "replace")
            if "Candidate:" not in text or "Candidate: (none)" in text:
                need_update = True
        if need_update:
            programs.check(
                self._run(["apt-get", "update", "-qq"], env=env, timeout=600), "apt-get update"
            )
        # Packages must not start services (docker.io would start the default engine).
        policy_rc = Path("/usr/sbin/policy-rc.d")
        created = False
        if not policy_rc.exists():
            policy_rc.write_text("#!/bin/sh\nexit 101\n")
            policy_rc.chmod(0o755)
            created = True
        try:
            proc = self._run(
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
                env=env,
                timeout=1800,
            )
        finally:
            if created:
                with contextlib.suppress(OSError):
                    policy_rc.unlink()
        programs.check(proc, f"apt-get install {' '.join(packages)}")

    def ensure_bridge(self, name: str, cidr: str) -> None:
        self._net.ensure_bridge(name, cidr)

    def ensure_firewall(self, firewall: Any) -> None:
        self._net.ensure_firewall(firewall)

    def write_file(self, path: Path, text: str, mode: int = 0o644) -> None:
        """Atomic write (temp file in the same directory, then rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text, mode=mode)

    def systemctl(self, *args: str) -> None:
        programs.check(self._run(["systemctl", *args], timeout=180), f"systemctl {' '.join(args)}")

    def start_daemon(self, dockerd: str, config_file: Path, log: Path) -> int:
        """``dockerd --config-file CONFIG`` in its own session; output appended to ``log``."""
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {"PATH": _SBIN_PATH, **{k: v for k, v in self.env.items() if k in _PASS_ENV}}
        with open(log, "ab") as out:
            out.write(f"--- cai setup: starting {dockerd} at {time.ctime()}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                [dockerd, "--config-file", str(config_file)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd="/",
                start_new_session=True,
                close_fds=True,
            )
        return proc.pid

    def stop_daemon(self, pid: int, timeout: float = 60.0) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                time.sleep(1)
                break
            time.sleep(0.2)
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)

    def reload_daemon(self, pid: int) -> None:
        os.kill(pid, signal.SIGHUP)

    def wait_answers(self, host: str, timeout: float, pid: int | None, log: Path) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answers(host):
                return
            if pid is not None:
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(pid, os.WNOHANG)
                if not _pid_alive(pid):
                    raise Failed(
                        f"the dedicated dockerd exited; last lines of {log}:\n{_tail(log)}"
                    )
            time.sleep(0.3)
        raise Failed(
            f"the dedicated engine did not answer at {host} within {timeout:.0f} s; "
            f"last lines of {log}:\n{_tail(log)}"
        )

    # ------------------------------------------------------------------ probe
    def probe(self, host: str, runtimes: Sequence[str], layout: Any) -> dict[str, bool]:
        return RunscProbe(self._docker, self._run).probe(host, runtimes, layout)

    def probe_statx(self, host: str, runtime: str, layout: Any) -> bool:
        return RunscProbe(self._docker, self._run).probe_statx(host, runtime, layout)

    # ---------------------------------------------------------------- context
    def create_context(
        self,
        docker_config: Path,
        name: str,
        host: str,
        *,
        update: bool,
        owner: tuple[int, int] | None,
    ) -> None:
        env = {
            k: v
            for k, v in self.env.items()
            if k not in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG")
        }
        env["DOCKER_CONFIG"] = str(docker_config)
        existed = docker_config.exists()
        verb = "update" if update else "create"
        argv = [self.docker, "context", verb, name]
        if not update:
            argv += ["--description", "cai's dedicated engine (cai setup)"]
        argv += ["--docker", f"host={host}"]
        programs.check(self._run(argv, env=env, timeout=30), f"docker context {verb} {name}")
        if owner is not None:
            _chown_tree(docker_config if not existed else docker_config / "contexts", owner)


def _chown_tree(root: Path, owner: tuple[int, int]) -> None:
    """Give what root just created in the user's docker config back to the user."""
    uid, gid = owner
    if not root.exists():
        return
    paths = [root, *root.rglob("*")]
    for path in paths:
        with contextlib.suppress(OSError):
            if path.lstat().st_uid == 0:
                os.lchown(path, uid, gid)
