"""The dedicated engine's daemon and the machine facts ``cai setup`` and ``cai doctor`` read.

``DedicatedEngineHost`` (for ``services.setup``): packages, the bridge, cai's
iptables chains, the second ``dockerd`` (systemd unit, or a managed background
daemon: own session, pid file, log), waiting for its socket, the runsc probe,
and ``docker context create``. ``MachineProbe`` (for ``services.doctor``):
``ssh -V``, free ports, disk space, the offline bootstrap's prerequisites.

Every external program is called with an argv list, never a shell. Never
touches the default engine: every docker call here names ``-H <socket>``
of the dedicated engine, or only the client-side context store.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from containai.adapters.engine import context_meta
from containai.adapters.files import atomic_write
from containai.domain.errors import Failed

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
PROBE_IMAGE = "containai-probe:setup"


def _which(name: str) -> str | None:
    found = shutil.which(name)
    if found is None:
        # root's tools live in sbin, which a user's PATH may lack.
        found = shutil.which(name, path="/usr/local/sbin:/usr/sbin:/sbin")
    return found


def _run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    input: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            env=dict(env) if env is not None else None,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        return subprocess.CompletedProcess(list(argv), 127, b"", f"{argv[0]}: not found".encode())
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(
            list(argv), 124, b"", f"{argv[0]}: no answer within {timeout:.0f} s".encode()
        )


def _err(proc: subprocess.CompletedProcess[bytes]) -> str:
    text = (proc.stderr or proc.stdout or b"").decode("utf-8", "replace").strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit {proc.returncode}"


def _check(proc: subprocess.CompletedProcess[bytes], what: str) -> None:
    if proc.returncode != 0:
        raise Failed(f"{what} failed: {_err(proc)}")


def _tail(path: Path, lines: int = 8) -> str:
    try:
        data = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(data[-lines:])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not reaped) is not a running daemon.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


# --------------------------------------------------------------------------- #
# setup
# --------------------------------------------------------------------------- #


class DedicatedEngineHost:
    """What ``cai setup`` reads from and does to this machine (``services.setup.SetupHost``)."""

    def __init__(self, env: Mapping[str, str] | None = None, docker: str = "docker") -> None:
        self.env = dict(os.environ if env is None else env)
        self.docker = docker

    # ------------------------------------------------------------------ facts
    def platform_linux(self) -> bool:
        return sys.platform.startswith("linux")

    def is_root(self) -> bool:
        return os.geteuid() == 0

    def systemd_running(self) -> bool:
        return Path("/run/systemd/system").is_dir()

    def which(self, name: str) -> str | None:
        return _which(name)

    def runsc_version(self, runsc: str) -> str | None:
        proc = _run([runsc, "--version"], timeout=15)
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
        proc = _run(["ip", "-j", "addr", "show", "dev", name], timeout=10)
        if proc.returncode != 0:
            return None
        try:
            data = json.loads(proc.stdout or b"[]")
        except ValueError:
            return None
        if not data:
            return None
        link = data[0]
        addrs = tuple(
            f"{a['local']}/{a['prefixlen']}"
            for a in link.get("addr_info", [])
            if a.get("family") == "inet" and "local" in a
        )
        return addrs, "UP" in (link.get("flags") or [])

    def routes(self, exclude_dev: str) -> tuple[str, ...]:
        proc = _run(["ip", "-j", "-4", "route", "show", "table", "all"], timeout=10)
        if proc.returncode != 0:
            return ()
        try:
            data = json.loads(proc.stdout or b"[]")
        except ValueError:
            return ()
        out: list[str] = []
        for r in data:
            dst = str(r.get("dst") or "")
            if (
                r.get("dev") == exclude_dev
                or dst in ("", "default")
                or r.get("type")
                in (
                    "local",
                    "broadcast",
                )
            ):
                continue
            out.append(dst)
        return tuple(out)

    def rule_present(self, rule: Any) -> bool | None:
        proc = _run(rule.argv("check"), timeout=15)
        if proc.returncode == 0:
            return True
        text = _err(proc).lower()
        if proc.returncode == 127 or "permission denied" in text or "must be root" in text:
            return None
        return False

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
        return _run(
            [self.docker, "-H", host, *args], env=self._docker_env(), timeout=timeout, input=input
        )

    def answers(self, host: str) -> bool:
        sock = host.removeprefix("unix://")
        if host.startswith("unix://") and not Path(sock).exists():
            return False
        proc = self._docker(host, "version", "--format", "{{.Server.Version}}", timeout=15)
        return proc.returncode == 0 and bool(proc.stdout.strip())

    def engine_info(self, host: str) -> dict[str, Any] | None:
        proc = self._docker(host, "info", "--format", "{{json .}}", timeout=20)
        if proc.returncode != 0:
            return None
        try:
            data = json.loads(proc.stdout)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def has_image(self, host: str, ref: str) -> bool:
        return self._docker(host, "image", "inspect", ref, timeout=20).returncode == 0

    def context_host(self, docker_config: Path, name: str) -> str | None:
        try:
            meta = json.loads(context_meta(docker_config, name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        host = ((meta.get("Endpoints") or {}).get("docker") or {}).get("Host")
        return str(host) if host else ""

    def unit_enabled(self, unit: str) -> bool:
        return _run(["systemctl", "is-enabled", "--quiet", unit], timeout=15).returncode == 0

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
        if _which("apt-get") is None:
            raise Failed(
                f"{' and '.join(packages)} missing and there is no apt-get here: install "
                "them with your distribution's package manager and run `cai setup` again"
            )
        env = {**self.env, "DEBIAN_FRONTEND": "noninteractive", "PATH": _SBIN_PATH}
        need_update = False
        for pkg in packages:
            policy = _run(["apt-cache", "policy", pkg], env=env, timeout=60)
            text = policy.stdout.decode("utf-8", "replace")
            if "Candidate:" not in text or "Candidate: (none)" in text:
                need_update = True
        if need_update:
            _check(_run(["apt-get", "update", "-qq"], env=env, timeout=600), "apt-get update")
        # Packages must not start services (docker.io would start the default engine).
        policy_rc = Path("/usr/sbin/policy-rc.d")
        created = False
        if not policy_rc.exists():
            policy_rc.write_text("#!/bin/sh\nexit 101\n")
            policy_rc.chmod(0o755)
            created = True
        try:
            proc = _run(
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
                env=env,
                timeout=1800,
            )
        finally:
            if created:
                with contextlib.suppress(OSError):
                    policy_rc.unlink()
        _check(proc, f"apt-get install {' '.join(packages)}")

    def ensure_bridge(self, name: str, cidr: str) -> None:
        state = self.link_addrs(name)
        if state is None:
            _check(_run(["ip", "link", "add", name, "type", "bridge"]), f"creating bridge {name}")
            state = ((), False)
        if cidr not in state[0]:
            _check(_run(["ip", "addr", "add", cidr, "dev", name]), f"adding {cidr} to {name}")
        _check(_run(["ip", "link", "set", name, "up"]), f"bringing {name} up")

    def ensure_firewall(self, firewall: Any) -> None:
        """Create and flush cai's own chains, fill them, and jump to them (once)."""
        own = {chain for _, chain in firewall.chains}
        for table, chain in firewall.chains:
            t = [] if table == "filter" else ["-t", table]
            _run(["iptables", "-w", *t, "-N", chain])  # exists already: fine
            _check(_run(["iptables", "-w", *t, "-F", chain]), f"iptables -F {chain}")
        for rule in firewall.rules:
            if rule.chain not in own and _run(rule.argv("check")).returncode == 0:
                continue
            _check(_run(rule.argv("add")), " ".join(rule.argv("add")))

    def write_file(self, path: Path, text: str, mode: int = 0o644) -> None:
        """Atomic write (temp file in the same directory, then rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text, mode=mode)

    def systemctl(self, *args: str) -> None:
        _check(_run(["systemctl", *args], timeout=180), f"systemctl {' '.join(args)}")

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
    def _probe_image(self, host: str) -> None:
        """A throw-away image of host binaries (``true``, ``stat`` and their libraries)."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            added: set[str] = set()
            for binary in ("/bin/true", "/usr/bin/stat"):
                files = [binary]
                ldd = _run(["ldd", binary], timeout=15)
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
        _check(proc, "importing the runsc probe image")

    def _cleanup(self, host: str, cid: str, layout: Any) -> None:
        self._docker(host, "rm", "-f", cid, timeout=60)
        # A failed runsc start can leave its sandbox and containerd task behind.
        root = Path(layout.exec_root) / "runtime-runc" / layout.namespace
        runsc = _which("runsc")
        if runsc:
            _run([runsc, "--root", str(root), "delete", "-force", cid], timeout=30)
        ctr = _which("ctr")
        sock = Path(layout.exec_root) / "containerd" / "containerd.sock"
        if ctr and sock.exists():
            for args in (["tasks", "delete", "-f", cid], ["containers", "delete", cid]):
                _run([ctr, "-a", str(sock), "-n", layout.namespace, *args], timeout=30)

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

    def probe(self, host: str, runtimes: Sequence[str], layout: Any) -> dict[str, bool]:
        self._probe_image(host)
        results: dict[str, bool] = {}
        for name in runtimes:
            results[name] = self._try(host, name, ["/bin/true"], layout)
            if results[name]:
                break
        return results

    def probe_statx(self, host: str, runtime: str, layout: Any) -> bool:
        try:
            return self._try(host, runtime, ["/usr/bin/stat", "/"], layout)
        finally:
            self._docker(host, "rmi", "-f", PROBE_IMAGE, timeout=60)

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
        _check(_run(argv, env=env, timeout=30), f"docker context {verb} {name}")
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


# --------------------------------------------------------------------------- #
# doctor
# --------------------------------------------------------------------------- #


class MachineProbe:
    """Facts about this machine for ``cai doctor`` (``services.doctor.DoctorHost``)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(os.environ if env is None else env)

    def ssh_client_version(self) -> str | None:
        ssh = shutil.which("ssh", path=self.env.get("PATH"))
        if ssh is None:
            return None
        proc = _run([ssh, "-V"], env=self.env, timeout=10)
        text = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip()
        if proc.returncode != 0 or not text:
            raise Failed(f"`ssh -V` failed: {_err(proc)}")
        return text.splitlines()[0].split(",")[0].strip()

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
