"""What ``cai setup`` observes: where the dedicated engine lives (``Layout``), what a
runsc probe found (``RunscRecord``), and the machine's state (``Facts``), which is
all the plan decides from."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from containai.domain.engine_facts import EngineInfo
from containai.services.engine_select import DEDICATED_CONTEXT


@dataclass(frozen=True)
class Layout:
    """Where the dedicated engine lives (machine-wide: it is root's daemon)."""

    config_dir: Path = Path("/etc/containai/docker")
    data_root: Path = Path("/var/lib/containai-docker")
    exec_root: Path = Path("/run/containai-docker")
    socket: Path = Path("/run/containai-docker.sock")
    pidfile: Path = Path("/run/containai-docker.pid")
    applied: Path = Path("/run/containai-docker.applied.json")
    lock: Path = Path("/run/containai-docker.setup.lock")
    log: Path = Path("/var/log/containai-docker.log")
    unit: Path = Path("/etc/systemd/system/containai-docker.service")
    legacy_runsc_record: Path = Path("/etc/docker/containai-runsc.json")
    bridge: str = "cai0"
    namespace: str = "containai"
    filter_chain: str = "CONTAINAI-FORWARD"
    nat_chain: str = "CONTAINAI-POSTROUTING"
    context: str = DEDICATED_CONTEXT

    @property
    def config_file(self) -> Path:
        return self.config_dir / "daemon.json"

    @property
    def runsc_record(self) -> Path:
        return self.config_dir / "runsc.json"

    @property
    def network_script(self) -> Path:
        return self.config_dir / "network-up"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def unit_name(self) -> str:
        return self.unit.name


DEFAULT_LAYOUT: Final = Layout()
"""The machine-wide layout every real ``cai setup`` uses (tests pass their own)."""


@dataclass(frozen=True)
class RunscRecord:
    """What a probe found for one runsc version (ours, or ``scripts/ensure-engine``'s)."""

    version: str
    works: bool
    args: tuple[str, ...] | None
    statx: str | None
    source: Path

    def to_json(self) -> dict[str, Any]:
        return {
            "runsc": self.version,
            "works": self.works,
            "runtimeArgs": list(self.args) if self.args is not None else None,
            "statx": self.statx,
        }


def parse_record(data: Any, source: Path) -> RunscRecord | None:
    if not isinstance(data, dict) or not isinstance(data.get("runsc"), str):
        return None
    args = data.get("runtimeArgs")
    works = bool(data.get("works"))
    if works and not (isinstance(args, list) and all(isinstance(a, str) for a in args)):
        return None
    statx = data.get("statx")
    return RunscRecord(
        version=data["runsc"],
        works=works,
        args=tuple(args) if works and isinstance(args, list) else None,
        statx=statx if isinstance(statx, str) else None,
        source=source,
    )


@dataclass(frozen=True)
class Facts:
    """What ``observe`` found on the machine; all ``plan`` decides from."""

    linux: bool = True
    root: bool = True
    systemd: bool = False
    apt_get: bool = True
    dockerd: str | None = "/usr/sbin/dockerd"
    docker_cli: str | None = "/usr/bin/docker"
    runsc: str | None = "/usr/bin/runsc"
    runsc_version: str | None = "runsc version 0.0~20221219.0"
    sysbox: str | None = None
    kvm: bool = False
    records: tuple[RunscRecord, ...] = ()
    bridge_addrs: tuple[str, ...] | None = None  # None: no such interface
    bridge_up: bool = False
    routes: tuple[str, ...] = ()  # IPv4 routes not on the bridge itself
    firewall_ok: bool | None = None  # every rule present; None: cannot tell (not root)
    config: Mapping[str, Any] | None = None  # current daemon.json
    applied: Mapping[str, Any] | None = None  # what the running daemon was started with
    unit_text: str | None = None
    script_text: str | None = None
    unit_enabled: bool = False
    daemon_pid: int | None = None
    daemon_cmdline: tuple[str, ...] | None = None
    answers: bool = False
    effective: EngineInfo | None = None  # what the running dedicated engine registered
    context_host: str | None = None
    docker_config: Path = Path("~/.docker")
    context_owner: tuple[int, int] | None = None


def context_target(
    env: Mapping[str, str],
    root_home: str | None,
    home_of: Callable[[str], tuple[Path, int, int] | None],
) -> tuple[Path, tuple[int, int] | None]:
    """The Docker config dir of the invoking user, and the owner to give created files.

    ``DOCKER_CONFIG`` wins, then ``HOME/.docker``, except under ``sudo`` with
    HOME reset to root's: then the ``SUDO_USER``'s own ``~/.docker``.
    """
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"]), None
    home = env.get("HOME") or root_home or "/root"
    sudo_user = env.get("SUDO_USER")
    if sudo_user and sudo_user != "root" and root_home and home.rstrip("/") == root_home:
        found = home_of(sudo_user)
        if found is not None:
            path, uid, gid = found
            return path / ".docker", (uid, gid)
    return Path(home) / ".docker", None
