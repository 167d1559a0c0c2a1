"""The "remote machine" of the remote-engine fixture, on this host: its network
namespace, unix account, daemons' files, and the sweep that removes all of it.

Everything here has a fixed, test-prefixed name (one fixture per machine at a
time, serialised by ``LOCK``), so a run that crashed is swept by the next one
before it starts. The sweep ends only processes that live in the fixture's
network namespace or cgroups (found by id, never by name), and removes only
paths, links and accounts the fixture creates. See docs/remote.md.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

NAME = "cai-test-remote"
LABEL = NAME  # engine label and the tests' container label: cai-test-remote=1
ACCOUNT = "cai-remote-test"
ACCOUNT_MARK = "cai remote-engine test fixture (tests/remote)"
"""GECOS of the account: the sweep deletes an account of that name only with this mark."""
NETNS = NAME
NETNS_PATH = Path("/run/netns") / NETNS
RUN_DIR = Path("/run") / NAME  # the socket, exec root and pid file (tmpfs)
SOCKET = RUN_DIR / "docker.sock"
ROOT = Path("/var/lib") / NAME  # the remote's disk: data root, account home, sshd files
DATA_ROOT = ROOT / "docker"
HOME = ROOT / "home"
SSHD_DIR = ROOT / "sshd"
LOCK = Path("/run") / f"{NAME}.lock"
BRIDGE = "cai-tr0"  # docker's default bridge, inside the namespace
VETH_HOST, VETH_REMOTE = "cai-trh", "cai-trr"
CGROUP_PARENT = NAME
SSH_PORT = 2022

HIDDEN = ("/tmp", "/var/tmp", "/root", "/home", "/work", "/srv", "/mnt", "/media")
"""Covered by an empty tmpfs in the remote dockerd's mount namespace (with the
caller's HOME, TMPDIR and the repository), so a bind mount of a local path
fails there as it would on another machine."""

_KEEP_VISIBLE = ("/usr", "/etc", "/proc", "/sys", "/dev", "/run", "/var/lib", "/bin", "/sbin")


@dataclass(frozen=True)
class Addresses:
    """The link host <-> remote (a /30), the remote's docker bridge and its pool."""

    link: str
    bridge: str
    pool: str

    @property
    def host_ip(self) -> str:
        return str(next(ipaddress.ip_network(self.link).hosts()))

    @property
    def remote_ip(self) -> str:
        return str(list(ipaddress.ip_network(self.link).hosts())[1])

    def networks(self) -> list[ipaddress.IPv4Network]:
        nets = (self.link, self.bridge, self.pool)
        return [ipaddress.IPv4Network(n, strict=False) for n in nets]


CANDIDATES = (
    Addresses("10.233.0.0/30", "10.231.0.1/24", "10.232.0.0/16"),
    Addresses("10.243.0.0/30", "10.241.0.1/24", "10.242.0.0/16"),
    Addresses("10.253.0.0/30", "10.251.0.1/24", "10.252.0.0/16"),
)
"""Private ranges used by neither docker's default pools (172.17-31/16,
192.168/16) nor ``cai setup``'s candidates (10.213/24, 10.199.213/24,
10.214/16, 10.198/16, 172.29-30, 192.168.213); the first that overlaps no route
here is taken."""


class Unavailable(Exception):
    """This machine cannot host the fixture (not root, a program missing, ...)."""


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 60) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} -> {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def program(name: str) -> str:
    for path in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}", f"/sbin/{name}"):
        if path and os.access(path, os.X_OK):
            return path
    raise Unavailable(f"{name} is not installed (scripts/test installs openssh-server)")


# --------------------------------------------------------------------------- #
# network
# --------------------------------------------------------------------------- #


def host_routes() -> list[str]:
    data = json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]) or "[]")
    return [str(r["dst"]) for r in data if r.get("dst") not in (None, "default")]


def choose_addresses(routes: Iterable[str]) -> Addresses:
    taken = []
    for route in routes:
        with contextlib.suppress(ValueError):
            net = ipaddress.ip_network(route, strict=False)
            if isinstance(net, ipaddress.IPv4Network) and net.prefixlen > 0:
                taken.append(net)
    for cand in CANDIDATES:
        if not any(a.overlaps(b) for a in cand.networks() for b in taken):
            return cand
    raise Unavailable("every private range the remote fixture tries is routed here already")


def make_network(addrs: Addresses) -> None:
    """The namespace, its loopback, the veth link to the host, and docker's bridge."""
    run(["ip", "netns", "add", NETNS])
    ns = ["ip", "-n", NETNS]
    run([*ns, "link", "set", "lo", "up"])
    run(["ip", "link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_REMOTE])
    run(["ip", "link", "set", VETH_REMOTE, "netns", NETNS])
    prefix = ipaddress.ip_network(addrs.link).prefixlen
    run(["ip", "addr", "add", f"{addrs.host_ip}/{prefix}", "dev", VETH_HOST])
    run(["ip", "link", "set", VETH_HOST, "up"])
    run([*ns, "addr", "add", f"{addrs.remote_ip}/{prefix}", "dev", VETH_REMOTE])
    run([*ns, "link", "set", VETH_REMOTE, "up"])
    run([*ns, "link", "add", BRIDGE, "type", "bridge"])
    run([*ns, "addr", "add", addrs.bridge, "dev", BRIDGE])
    run([*ns, "link", "set", BRIDGE, "up"])


def in_netns(*argv: str) -> list[str]:
    return [program("nsenter"), f"--net={NETNS_PATH}", *argv]


# --------------------------------------------------------------------------- #
# the account
# --------------------------------------------------------------------------- #


def account_mark(name: str = ACCOUNT) -> str | None:
    """The account's GECOS, ``None`` when it does not exist."""
    import pwd

    try:
        return pwd.getpwnam(name).pw_gecos
    except KeyError:
        return None


def make_account() -> tuple[int, int]:
    mark = account_mark()
    if mark is not None and mark != ACCOUNT_MARK:
        raise Unavailable(f"a user {ACCOUNT} exists that the fixture did not create")
    if mark is None:
        # '*': no password, yet not "locked" ('!'), which sshd without PAM refuses.
        run(
            [
                program("useradd"),
                "-M",
                "-U",
                "-d",
                str(HOME),
                "-s",
                "/bin/sh",
                "-p",
                "*",
                "-c",
                ACCOUNT_MARK,
                ACCOUNT,
            ]
        )
    import pwd

    entry = pwd.getpwnam(ACCOUNT)
    return entry.pw_uid, entry.pw_gid


def remove_account() -> None:
    if account_mark() == ACCOUNT_MARK:
        run([program("userdel"), ACCOUNT], check=False)
    import grp

    with contextlib.suppress(KeyError):
        grp.getgrnam(ACCOUNT)
        if account_mark() is None:
            run([program("groupdel"), ACCOUNT], check=False)


# --------------------------------------------------------------------------- #
# the daemons' start line
# --------------------------------------------------------------------------- #


def hidden_paths(extra: Iterable[str]) -> list[str]:
    """Directories to cover in the remote dockerd's mount namespace (outermost only)."""
    own = (str(ROOT), str(RUN_DIR))
    found: list[str] = []
    for raw in (*HIDDEN, *extra):
        if not raw:
            continue
        path = os.path.realpath(raw)
        if not os.path.isdir(path) or path == "/":
            continue
        if any(path == k or path.startswith(k + "/") for k in _KEEP_VISIBLE):
            continue
        if any(o == path or o.startswith(path + "/") for o in own):
            continue
        found.append(path)
    found.sort(key=len)
    outer: list[str] = []
    for path in found:
        if not any(path == o or path.startswith(o + "/") for o in outer):
            outer.append(path)
    return outer


def dockerd_argv(dockerd: str, config: Path, hide: Sequence[str]) -> list[str]:
    """nsenter (network) -> unshare (mount, hostname) -> sh (tmpfs over ``hide``)
    -> exec dockerd: one process id, the daemon's."""
    import shlex

    lines = ["set -e", f"hostname {shlex.quote(ACCOUNT)}"]
    lines += [f"mount -t tmpfs -o mode=1777,size=16m {NAME} {shlex.quote(p)}" for p in hide]
    lines.append(f"exec {shlex.quote(dockerd)} --config-file {shlex.quote(str(config))}")
    unshare = program("unshare")
    return in_netns(
        unshare,
        "--mount",
        "--uts",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
        "; ".join(lines),
    )


# --------------------------------------------------------------------------- #
# the sweep
# --------------------------------------------------------------------------- #


def _netns_inode() -> int | None:
    try:
        return os.stat(NETNS_PATH).st_ino
    except OSError:
        return None


def netns_pids() -> list[int]:
    """Every process whose network namespace is the fixture's."""
    ino = _netns_inode()
    if ino is None:
        return []
    out: list[int] = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry}/ns/net").st_ino == ino:
                    out.append(int(entry))
    return out


def _cgroup_dirs() -> list[Path]:
    base = Path("/sys/fs/cgroup")
    dirs = [base / CGROUP_PARENT, *base.glob(f"*/{CGROUP_PARENT}")]
    return [d for d in dirs if d.is_dir()]


def cgroup_pids() -> list[int]:
    """Processes of the remote engine's containers (its ``cgroup-parent``)."""
    out: set[int] = set()
    for top in _cgroup_dirs():
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                out.update(int(p) for p in procs.read_text().split())
    return sorted(out)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _signal(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def stop_processes(first: Sequence[int], grace: float = 15.0) -> None:
    """SIGTERM ``first`` (the daemons) and wait; then SIGKILL what is left in the
    namespace and the cgroups until nothing is."""
    _signal(first, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(_alive(p) for p in first) and time.monotonic() < deadline:
        time.sleep(0.05)
    deadline = time.monotonic() + 15
    while True:
        left = [p for p in {*netns_pids(), *cgroup_pids()} if _alive(p) and p != os.getpid()]
        if not left:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes of the remote fixture do not exit: {left}")
        _signal(left, signal.SIGKILL)
        time.sleep(0.05)


def mounts_under(*roots: Path) -> list[str]:
    out = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            point = line.split()[4].encode().decode("unicode_escape")
            if any(point == str(r) or point.startswith(f"{r}/") for r in roots):
                out.append(point)
    return sorted(out, key=len, reverse=True)


def sweep(daemons: Sequence[int] = ()) -> None:
    """Remove every trace of the fixture; idempotent (also run before start)."""
    pids = list(daemons)
    with contextlib.suppress(OSError, ValueError):
        pids.append(int((RUN_DIR / "docker.pid").read_text()))
    with contextlib.suppress(OSError, ValueError):
        pids.append(int((SSHD_DIR / "sshd.pid").read_text()))
    if SOCKET.exists():
        # Containers first, through their daemon (live-restore would keep them running
        # past its exit): their mounts and shims go cleanly.
        docker = [shutil.which("docker") or "docker", "-H", f"unix://{SOCKET}"]
        with contextlib.suppress(OSError, subprocess.TimeoutExpired, RuntimeError):
            ids = run([*docker, "ps", "-aq"], timeout=15).split()
            if ids:
                run([*docker, "rm", "-f", "-v", *ids], check=False, timeout=120)
    # A pid file may be stale and its number reused: only a process in the namespace counts.
    ours = set(netns_pids())
    stop_processes([p for p in pids if p in ours and _alive(p)])
    for top in _cgroup_dirs():
        for sub in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if sub.is_dir():
                with contextlib.suppress(OSError):
                    sub.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()
    if NETNS_PATH.exists():
        run(["ip", "netns", "del", NETNS], check=False)
    if Path(f"/sys/class/net/{VETH_HOST}").exists():
        run(["ip", "link", "del", VETH_HOST], check=False)
    for point in mounts_under(ROOT, RUN_DIR):
        run(["umount", "-l", point], check=False)
    if left := mounts_under(ROOT, RUN_DIR):
        raise RuntimeError(f"not removing {ROOT}: still mounted: {left}")
    for path in (ROOT, RUN_DIR):
        shutil.rmtree(path, ignore_errors=True)
    remove_account()
