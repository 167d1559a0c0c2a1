"""A Docker engine on this machine that cai can reach only as a remote one, over an
``ssh://`` Docker context (SPEC section 16, issue 18).

This machine refuses privileged containers, so there is no docker-in-docker;
instead ``start()`` makes a second ``dockerd`` and an ``sshd`` and hides them
behind what a separate box would look like:

* a network namespace ``cai-test-remote`` joined to the host by a veth /30: the
  remote's ``127.0.0.1`` is not ours, so a port it publishes on its loopback is
  reachable from here only through SSH (``-W``/``ProxyJump``/``-L``);
* the dockerd (own socket, data root, exec root, pid file, containerd
  namespace, bridge ``cai-tr0``, ``cgroup-parent``, engine ID, hostname) runs in
  its own mount namespace where /tmp, /root, /home, /work, HOME and TMPDIR are
  empty tmpfs: a bind mount of a local path fails there, as on another machine;
* the sshd listens on the link address and the remote's loopback, port 2022,
  for one account ``cai-remote-test`` (home under /var/lib) whose only key is
  ``restrict,port-forwarding,permitopen="127.0.0.1:*",command="docker -H
  unix:///run/cai-test-remote/docker.sock system dial-stdio"``: docker's ssh
  connection helper works, ``-W 127.0.0.1:PORT`` works, a shell does not;
* the client side (under the caller's temp dir): a key, a known_hosts pinning
  the sshd's host key, an ssh config with ``Host cai-remote-test``, a
  ``DOCKER_CONFIG`` holding the context ``remote`` (``host=ssh://cai-remote-test``)
  and ``bin/ssh``, first on ``env['PATH']``, which runs the real ssh with
  ``-F <that config>``: OpenSSH reads ``~/.ssh/config`` from the passwd home,
  never ``$HOME``, and docker's connection helper runs plain ``ssh`` from PATH.
  A later ``-F`` from the caller (cai names its own file) wins over ours.

The remote engine has no registry and no images: ``load_image`` sends one with
``docker save | docker --context remote load``. ``python -m tests.remote.fixture``
builds it, prints the timings that docs/remote.md quotes, and removes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from tests.remote import files
from tests.remote import machine as m
from tests.remote.engine import BASE_IMAGES, CONTEXT, LABEL, SSH_ALIAS, RemoteEngine, check
from tests.remote.machine import Unavailable

__all__ = ["BASE_IMAGES", "CONTEXT", "LABEL", "SSH_ALIAS", "RemoteEngine", "Unavailable", "start"]

REPO = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------- #
# building it
# --------------------------------------------------------------------------- #


def _require() -> None:
    if not sys.platform.startswith("linux"):
        raise Unavailable("the remote-engine fixture needs Linux")
    if os.geteuid() != 0:
        raise Unavailable("the remote-engine fixture needs root (a second dockerd, useradd)")
    for name in (
        "dockerd",
        "docker",
        "sshd",
        "ssh",
        "ssh-keygen",
        "ip",
        "nsenter",
        "unshare",
        "useradd",
        "userdel",
        "umount",
    ):
        m.program(name)


def _acquire_lock(wait: float = 1200) -> IO[str]:
    """One fixture per machine: its names are fixed."""
    fh = open(m.LOCK, "a+")  # noqa: SIM115 - held until stop()
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fh
        except BlockingIOError:
            if time.monotonic() > deadline:
                fh.close()
                raise RuntimeError(f"another remote-engine fixture holds {m.LOCK}") from None
            time.sleep(0.5)


def _dockerd_major(dockerd: str) -> int:
    out = check([dockerd, "--version"])  # "Docker version 20.10.24+dfsg1, build ..."
    try:
        return int(out.split()[2].split(".")[0])
    except (IndexError, ValueError):
        return 0


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd="/",
            env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
            start_new_session=True,
            close_fds=True,
        )


def _keygen(path: Path, comment: str) -> str:
    check(
        [m.program("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)]
    )
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def _ping(sock: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(str(sock))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            head = s.recv(64)
            return head.startswith(b"HTTP/1.") and b" 200 " in head
    except OSError:
        return False


def _banner(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            return s.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def _wait(what: str, ready: Any, proc: subprocess.Popen[bytes], log: Path, secs: float) -> None:
    deadline = time.monotonic() + secs
    while not ready():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}):\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready within {secs:.0f} s:\n{_tail(log)}")
        time.sleep(0.05)


def _tail(path: Path, n: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    return ""


def start(client_dir: Path, *, multiplex: bool = False) -> RemoteEngine:
    """Build the remote engine (sweeping a crashed run's leftovers first)."""
    _require()
    t0 = time.monotonic()
    lock = _acquire_lock()
    daemons: list[subprocess.Popen[bytes]] = []
    try:
        t = time.monotonic()
        m.sweep()
        timings = {"lock": t - t0, "sweep": time.monotonic() - t}
        engine = _build(client_dir, daemons, timings, multiplex)
    except BaseException:
        with contextlib.suppress(Exception):
            m.sweep([p.pid for p in daemons])
        lock.close()
        raise
    engine._lock = lock
    engine.timings["start"] = time.monotonic() - t0
    return engine


def _build(
    client_dir: Path,
    daemons: list[subprocess.Popen[bytes]],
    timings: dict[str, float],
    multiplex: bool,
) -> RemoteEngine:
    t = time.monotonic()
    addrs = m.choose_addresses(m.host_routes())
    m.make_network(addrs)
    uid, gid = m.make_account()
    for path, mode in ((m.ROOT, 0o755), (m.RUN_DIR, 0o755), (m.SSHD_DIR, 0o700)):
        path.mkdir(mode=mode, parents=True, exist_ok=True)
        path.chmod(mode)
    dockerd = m.program("dockerd")
    config = m.ROOT / "daemon.json"
    config.write_text(json.dumps(files.daemon_config(addrs, _dockerd_major(dockerd)), indent=2))
    logs = client_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    hide = m.hidden_paths([os.environ.get("HOME", ""), tempfile.gettempdir(), str(REPO)])
    daemons.append(_spawn(m.dockerd_argv(dockerd, config, hide), logs / "dockerd.log"))
    timings["dockerd_spawned_at"] = time.monotonic() - t

    # While dockerd starts: keys, the account's home, sshd, the client side.
    host_key = _keygen(m.SSHD_DIR / "host_ed25519", f"{m.NAME}-host")
    client_dir.mkdir(parents=True, exist_ok=True)
    engine = RemoteEngine(client_dir=client_dir, env={}, addresses=addrs, host_key=host_key)
    engine.timings.update(timings)
    public = _keygen(engine.identity, m.ACCOUNT)
    ssh_dir = m.HOME / ".ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(files.authorized_key(public) + "\n")
    for path, mode in ((m.HOME, 0o755), (ssh_dir, 0o700), (ssh_dir / "authorized_keys", 0o600)):
        os.chown(path, uid, gid)
        path.chmod(mode)
    sshd_config = m.SSHD_DIR / "sshd_config"
    sshd_config.write_text(files.sshd_config(addrs))
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    daemons.append(
        _spawn(m.in_netns(m.program("sshd"), "-D", "-e", "-f", str(sshd_config)), logs / "sshd.log")
    )

    engine.known_hosts.write_text(f"[{addrs.remote_ip}]:{m.SSH_PORT} {host_key}\n")
    engine.ssh_config.write_text(engine._ssh_config_text(multiplex=multiplex))
    wrapper = client_dir / "bin" / "ssh"
    wrapper.parent.mkdir(exist_ok=True)
    wrapper.write_text(files.ssh_wrapper(m.program("ssh"), engine.ssh_config))
    wrapper.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
    env["PATH"] = f"{wrapper.parent}{os.pathsep}{env.get('PATH', os.defpath)}"
    env["DOCKER_CONFIG"] = str(engine.docker_config)
    engine.env = env
    engine.install_context(engine.docker_config)
    engine.timings["client_ready_at"] = time.monotonic() - t

    _wait(
        "the remote sshd",
        lambda: _banner(addrs.remote_ip, m.SSH_PORT),
        daemons[1],
        logs / "sshd.log",
        20,
    )
    _wait("the remote dockerd", lambda: _ping(m.SOCKET), daemons[0], logs / "dockerd.log", 60)
    engine.timings["daemons_ready_at"] = time.monotonic() - t
    engine._daemons = daemons
    engine.timings["first_round_trip"] = engine.round_trips(1)[0]
    return engine


# --------------------------------------------------------------------------- #
# python -m tests.remote.fixture: build, measure, remove
# --------------------------------------------------------------------------- #


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="cai-remote-") as tmp:
        engine = start(Path(tmp))
        try:
            timed = {k: round(v, 3) for k, v in engine.timings.items()}
            print("start:", json.dumps(timed))
            print("warm round trip (s):", [round(x, 3) for x in engine.round_trips(5)])
            engine.set_multiplex(True)
            print(
                "warm round trip, ControlMaster (s):", [round(x, 3) for x in engine.round_trips(5)]
            )
            engine.set_multiplex(False)
            for ref in sys.argv[1:] or [engine.base_image()]:
                print(f"save|load {ref}: {engine.load_image(ref):.2f} s")
        finally:
            engine.stop()
            print(f"stop: {engine.timings['stop']:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
