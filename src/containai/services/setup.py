"""``cai setup [--dry-run]`` (SPEC section 9): a dedicated engine for agent work.

Linux, root. Leaves the user's own Docker engine and its configuration alone:
a second ``dockerd`` with its own configuration file, socket, data root, exec
root, pid file, containerd namespace and bridge, whose default runtime is the
strongest that works here (gVisor's ``runsc`` from the distribution), and the
Docker context ``containai-docker`` pointing at it, which engine selection
(SPEC section 5 step 1) then prefers.

Steps, in order, each idempotent (observe, then do only what is missing):

``packages``  apt-get install ``runsc`` (and ``docker.io`` when dockerd is missing)
``bridge``    the bridge ``cai0`` with its own private /24 (the default engine keeps docker0)
``firewall``  NAT and forwarding for that /24 in cai's own iptables chains
``runsc``     which ``runtimeArgs`` this runsc needs (a recorded probe, or a probe now)
``config``    ``/etc/containai/docker/daemon.json``
``unit``      ``containai-docker.service`` (only when systemd runs)
``daemon``    start it (systemd, else a managed background daemon), reload or
              restart it when its configuration changed, and wait until it answers
``context``   ``docker context create containai-docker`` for the invoking user

Why ``"iptables": false`` and cai's own chains: a dockerd with iptables enabled
flushes the ``DOCKER`` chains when it starts (libnetwork's ``removeIPChains``),
i.e. the default engine's published-port rules. The dedicated engine therefore
manages no iptables rules itself; ``cai setup`` adds one MASQUERADE rule for
its subnet and two FORWARD accepts, in ``CONTAINAI-POSTROUTING`` and
``CONTAINAI-FORWARD``, which the default engine never touches. Published ports
(``-p 127.0.0.1:PORT:2222``) go through docker-proxy, which needs no rule.

``apply`` converges: it observes the machine, plans, does the first step that
is not done, and observes again, so an interrupted setup is finished by the
next one and a second run changes nothing. ``plan`` is pure (unit-tested).
"""

from __future__ import annotations

import ipaddress
import json
import shlex
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Protocol

from containai.domain.errors import Failed
from containai.domain.isolation import tier
from containai.services.engine_select import DEDICATED_CONTEXT

STEPS: Final = (
    "packages",
    "bridge",
    "firewall",
    "runsc",
    "config",
    "unit",
    "daemon",
    "context",
)

BRIDGE_CANDIDATES: Final = (
    "10.213.0.1/24",
    "10.199.213.1/24",
    "172.30.213.1/24",
    "192.168.213.1/24",
)
"""Gateway/prefix of the dedicated bridge: the first that overlaps no route here."""

POOL_CANDIDATES: Final = ("10.214.0.0/16", "10.198.0.0/16", "172.29.0.0/16")
"""``default-address-pools`` base for networks created on the dedicated engine."""

PROBE_CANDIDATES: Final[tuple[tuple[str, ...], ...]] = ((), ("--network=host",))
KVM_CANDIDATE: Final = ("--network=host", "--platform=kvm")

RELOADABLE: Final = frozenset({"runtimes", "default-runtime", "debug", "labels", "log-level"})
"""daemon.json keys dockerd 20.10 takes on SIGHUP; any other change needs a restart."""

PROBE_PREFIX: Final = "containai-probe-"
_BUILTIN_RUNTIMES: Final = frozenset({"runc"})


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


# --------------------------------------------------------------------------- #
# facts
# --------------------------------------------------------------------------- #


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
class Rule:
    """One iptables rule: ``iptables -t TABLE -A|-I CHAIN SPEC``."""

    table: str
    chain: str
    spec: tuple[str, ...]
    insert: bool = False  # a jump into a built-in chain goes first (-I CHAIN 1)

    def argv(self, op: str) -> list[str]:
        head = ["iptables", "-w"]
        if self.table != "filter":
            head += ["-t", self.table]
        if op == "add":
            return (
                [*head, "-I", self.chain, "1", *self.spec]
                if self.insert
                else [
                    *head,
                    "-A",
                    self.chain,
                    *self.spec,
                ]
            )
        return [*head, "-C", self.chain, *self.spec]


@dataclass(frozen=True)
class Firewall:
    chains: tuple[tuple[str, str], ...]  # (table, chain) cai owns: created and flushed
    rules: tuple[Rule, ...]

    def commands(self) -> list[list[str]]:
        """The full bring-up, for the systemd network script (and for humans)."""
        out: list[list[str]] = []
        for table, chain in self.chains:
            t = [] if table == "filter" else ["-t", table]
            out.append(["iptables", "-w", *t, "-N", chain])
            out.append(["iptables", "-w", *t, "-F", chain])
        for rule in self.rules:
            out.append(rule.argv("add"))
        return out


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
    effective: Mapping[str, Any] | None = None  # `docker info` of the dedicated engine
    context_host: str | None = None
    docker_config: Path = Path("~/.docker")
    context_owner: tuple[int, int] | None = None


# --------------------------------------------------------------------------- #
# the plan (pure)
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Step:
    key: str
    change: bool
    summary: str
    action: str = ""  # what the executor does: install, create, start, reload, ...
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Desired:
    bridge_cidr: str
    subnet: str
    pool: str
    firewall: Firewall
    record: RunscRecord | None  # None: runsc absent or not probed yet
    probe_needed: bool
    runtimes: Mapping[str, Any]
    default_runtime: str
    config: Mapping[str, Any]
    unit_text: str
    script_text: str


@dataclass(frozen=True)
class Plan:
    desired: Desired
    steps: tuple[Step, ...]

    @property
    def changes(self) -> list[Step]:
        return [s for s in self.steps if s.change]

    def step(self, key: str) -> Step:
        for s in self.steps:
            if s.key == key:
                return s
        raise KeyError(key)


def _overlaps(net: ipaddress.IPv4Network | ipaddress.IPv6Network, routes: Sequence[str]) -> bool:
    for route in routes:
        try:
            other = ipaddress.ip_network(route, strict=False)
        except ValueError:
            continue
        if (
            isinstance(other, ipaddress.IPv4Network)
            and isinstance(net, ipaddress.IPv4Network)
            and other.prefixlen > 0
            and net.overlaps(other)
        ):
            return True
    return False


def choose_bridge(existing: Sequence[str] | None, routes: Sequence[str]) -> str:
    """The bridge's ``gateway/prefix``: the one it has, else the first free candidate."""
    for addr in existing or ():
        try:
            iface = ipaddress.ip_interface(addr)
        except ValueError:
            continue
        if isinstance(iface, ipaddress.IPv4Interface):
            return str(iface)
    for cand in BRIDGE_CANDIDATES:
        if not _overlaps(ipaddress.ip_interface(cand).network, routes):
            return cand
    raise Failed(
        "every private subnet cai setup tries for its bridge ("
        + ", ".join(BRIDGE_CANDIDATES)
        + ") is routed here already; free one, or create the bridge cai0 with an "
        "address of your choice and run `cai setup` again"
    )


def choose_pool(current: Mapping[str, Any] | None, subnet: str, routes: Sequence[str]) -> str:
    pools = (current or {}).get("default-address-pools")
    if isinstance(pools, list) and pools and isinstance(pools[0], dict):
        base = pools[0].get("base")
        if isinstance(base, str):
            return base
    taken = [*routes, subnet]
    for cand in POOL_CANDIDATES:
        if not _overlaps(ipaddress.ip_network(cand), taken):
            return cand
    return POOL_CANDIDATES[0]


def firewall_for(layout: Layout, subnet: str) -> Firewall:
    br, fwd, nat = layout.bridge, layout.filter_chain, layout.nat_chain
    return Firewall(
        chains=(("filter", fwd), ("nat", nat)),
        rules=(
            Rule(
                "filter",
                fwd,
                ("-o", br, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"),
            ),
            Rule("filter", fwd, ("-i", br, "-j", "ACCEPT")),
            Rule("filter", "FORWARD", ("-j", fwd), insert=True),
            Rule("nat", nat, ("-s", subnet, "!", "-o", br, "-j", "MASQUERADE")),
            Rule("nat", "POSTROUTING", ("-j", nat)),
        ),
    )


def known_record(facts: Facts) -> RunscRecord | None:
    """The first record for the installed runsc version (ours before ensure-engine's)."""
    if facts.runsc is None or facts.runsc_version is None:
        return None
    for record in facts.records:
        if record.version == facts.runsc_version:
            return record
    return None


def runtimes_for(facts: Facts, record: RunscRecord | None) -> tuple[dict[str, Any], str]:
    """``runtimes`` of daemon.json and the default: sysbox-runc > runsc > runc.

    runsc is registered when it starts a container here. It becomes the default
    runtime only when ``statx(2)`` works in its sandbox too: the default runtime
    is also the one ``docker build`` runs ``RUN`` steps with, and bookworm's
    runsc (statx EINVAL) breaks dpkg post-install scripts (openssh-server's
    calls ``stat``). cai itself always names the runtime of an agent container
    (``--runtime``, picked by ``choose_runtime``), so agents run under runsc
    either way.
    """
    runtimes: dict[str, Any] = {}
    default = "runc"
    if facts.runsc and record is not None and record.works:
        entry: dict[str, Any] = {"path": facts.runsc}
        if record.args:
            entry["runtimeArgs"] = list(record.args)
        runtimes["runsc"] = entry
        if record.statx != "broken":
            default = "runsc"
    if facts.sysbox:
        runtimes["sysbox-runc"] = {"path": facts.sysbox}
        default = "sysbox-runc"
    return runtimes, default


def probe_runtimes(facts: Facts) -> dict[str, Any]:
    """Candidate registrations of runsc for the probe, one runtime name each."""
    cands = list(PROBE_CANDIDATES) + ([KVM_CANDIDATE] if facts.kvm else [])
    out: dict[str, Any] = {}
    for i, args in enumerate(cands):
        entry: dict[str, Any] = {"path": facts.runsc}
        if args:
            entry["runtimeArgs"] = list(args)
        out[f"{PROBE_PREFIX}{i}"] = entry
    return out


def daemon_config(
    layout: Layout, *, pool: str, runtimes: Mapping[str, Any], default_runtime: str
) -> dict[str, Any]:
    """The dedicated engine's daemon.json: nothing shared with the default engine."""
    config: dict[str, Any] = {
        "hosts": [layout.host],
        "data-root": str(layout.data_root),
        "exec-root": str(layout.exec_root),
        "pidfile": str(layout.pidfile),
        "containerd-namespace": layout.namespace,
        "containerd-plugins-namespace": f"{layout.namespace}-plugins",
        "bridge": layout.bridge,
        "iptables": False,
        "ip-masq": False,
        "default-address-pools": [{"base": pool, "size": 24}],
        # Required, not a nicety: a dockerd that restarts with a stale "bridge" network and
        # address pools deletes the interface `docker0` (moby's
        # removeDefaultBridgeInterface) unless live-restore is on, and `docker0` belongs to
        # the user's own engine in the same network namespace. It also keeps agent
        # containers running across restarts of this engine.
        "live-restore": True,
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m", "max-file": "3"},
        "default-runtime": default_runtime,
    }
    if runtimes:
        config["runtimes"] = dict(runtimes)
    return config


def render_config(config: Mapping[str, Any]) -> str:
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def script_text(layout: Layout, bridge_cidr: str, firewall: Firewall) -> str:
    """``network-up``: the bridge and firewall, for systemd's ExecStartPre (idempotent)."""
    br = shlex.quote(layout.bridge)
    cidr = shlex.quote(bridge_cidr)
    lines = [
        "#!/bin/sh",
        "# Written by `cai setup`: the bridge and firewall rules of cai's dedicated engine.",
        "set -e",
        f"ip link show {br} >/dev/null 2>&1 || ip link add {br} type bridge",
        f"ip -4 addr show dev {br} | grep -qF 'inet {bridge_cidr} ' || ip addr add {cidr} dev {br}",
        f"ip link set {br} up",
    ]
    for table, chain in firewall.chains:
        t = "" if table == "filter" else f"-t {table} "
        lines.append(f"iptables -w {t}-N {chain} 2>/dev/null || true")
        lines.append(f"iptables -w {t}-F {chain}")
    for rule in firewall.rules:
        add = shlex.join(rule.argv("add"))
        if rule.chain in {c for _, c in firewall.chains}:
            lines.append(add)
        else:
            lines.append(f"{shlex.join(rule.argv('check'))} 2>/dev/null || {add}")
    return "\n".join(lines) + "\n"


def unit_text(layout: Layout, dockerd: str) -> str:
    return "\n".join(
        [
            "# Written by `cai setup` (ContainAI): the dedicated Docker engine for agents.",
            "[Unit]",
            "Description=ContainAI dedicated Docker engine",
            "After=network-online.target",
            "Wants=network-online.target",
            "",
            "[Service]",
            "Type=notify",
            f"ExecStartPre=/bin/sh {layout.network_script}",
            f"ExecStart={dockerd} --config-file {layout.config_file}",
            "ExecReload=/bin/kill -s HUP $MAINPID",
            "TimeoutStartSec=0",
            "Restart=always",
            "RestartSec=2",
            "LimitNOFILE=infinity",
            "LimitNPROC=infinity",
            "TasksMax=infinity",
            "Delegate=yes",
            "KillMode=process",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ]
    )


def effective_matches(effective: Mapping[str, Any] | None, config: Mapping[str, Any]) -> bool:
    """Whether a running engine's ``docker info`` shows ``config``'s runtimes and default."""
    if not effective:
        return False
    if effective.get("DefaultRuntime") != config.get("default-runtime"):
        return False
    have = effective.get("Runtimes") or {}
    if not isinstance(have, dict):
        return False
    extra = {n for n in have if n not in _BUILTIN_RUNTIMES and not n.startswith("io.containerd.")}
    wanted = dict(config.get("runtimes") or {})
    if extra != set(wanted):
        return False
    for name, entry in wanted.items():
        got = have.get(name) or {}
        if got.get("path") != entry.get("path"):
            return False
        if list(got.get("runtimeArgs") or []) != list(entry.get("runtimeArgs") or []):
            return False
    return True


def daemon_action(facts: Facts, config: Mapping[str, Any], layout: Layout = Layout()) -> str:
    """``ok``, ``start``, ``restart`` or ``reload`` for the dedicated engine.

    What the running daemon was started with is recorded in ``layout.applied``
    (under /run, so gone after a reboot). Without that record, a daemon started
    from our configuration file (its command line names it, e.g. by systemd at
    boot) whose file and runtimes are what we want is left alone; anything else
    is restarted.
    """
    if not facts.answers:
        return "restart" if facts.daemon_pid is not None else "start"
    if facts.applied is None:
        ours = str(layout.config_file) in (facts.daemon_cmdline or ())
        same = facts.config is not None and dict(facts.config) == dict(config)
        return "ok" if ours and same and effective_matches(facts.effective, config) else "restart"
    if dict(facts.applied) != dict(config):
        changed = {
            k for k in set(facts.applied) | set(config) if facts.applied.get(k) != config.get(k)
        }
        return "reload" if changed <= RELOADABLE else "restart"
    return "ok" if effective_matches(facts.effective, config) else "reload"


def _join(argvs: Sequence[Sequence[str]]) -> str:
    return "; ".join(shlex.join(a) for a in argvs)


def plan(facts: Facts, layout: Layout = Layout()) -> Plan:
    """Which steps this machine needs (``change``) and which are done, with one line each."""
    steps: list[Step] = []

    # packages
    missing: list[str] = []
    if facts.dockerd is None or facts.docker_cli is None:
        missing.append("docker.io")
    if facts.runsc is None:
        missing.append("runsc")
    if missing:
        cmd = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
        steps.append(
            Step(
                "packages",
                True,
                f"install {' and '.join(missing)} from the distribution ({shlex.join(cmd)}; "
                "services the packages bring are not started)",
                "install",
                {"packages": tuple(missing)},
            )
        )
    else:
        steps.append(Step("packages", False, f"dockerd and runsc are installed ({facts.runsc})"))

    # bridge
    cidr = choose_bridge(facts.bridge_addrs, facts.routes)
    subnet = str(ipaddress.ip_interface(cidr).network)
    br = layout.bridge
    if facts.bridge_addrs is None:
        cmds = [
            ["ip", "link", "add", br, "type", "bridge"],
            ["ip", "addr", "add", cidr, "dev", br],
            ["ip", "link", "set", br, "up"],
        ]
        steps.append(
            Step("bridge", True, f"create bridge {br} with {cidr} ({_join(cmds)})", "create")
        )
    elif cidr not in facts.bridge_addrs or not facts.bridge_up:
        cmds = []
        if cidr not in facts.bridge_addrs:
            cmds.append(["ip", "addr", "add", cidr, "dev", br])
        cmds.append(["ip", "link", "set", br, "up"])
        steps.append(Step("bridge", True, f"configure bridge {br} ({_join(cmds)})", "configure"))
    else:
        steps.append(Step("bridge", False, f"bridge {br} has {cidr} and is up"))

    # firewall
    firewall = firewall_for(layout, subnet)
    if facts.firewall_ok:
        steps.append(
            Step(
                "firewall",
                False,
                f"NAT and forwarding for {subnet} are in place "
                f"({layout.filter_chain}, {layout.nat_chain})",
            )
        )
    else:
        steps.append(
            Step(
                "firewall",
                True,
                f"add NAT and forwarding for {subnet} in cai's own chains "
                f"({_join(firewall.commands())})",
                "ensure",
            )
        )

    # runsc
    record = known_record(facts)
    probe_needed = facts.runsc is not None and record is None
    if facts.runsc is None:
        steps.append(
            Step(
                "runsc",
                True,
                "probe which runtimeArgs runsc needs here, once installed "
                f"(result in {layout.runsc_record})",
                "probe",
            )
        )
    elif record is not None:
        what = (
            f"runtimeArgs {json.dumps(list(record.args or ()))}"
            if record.works
            else "does not start containers here (runc only)"
        )
        if record.works and record.statx == "broken":
            what += (
                "; statx fails in its sandbox, so image builds use runc (default runtime) "
                "and agent containers runsc"
            )
        steps.append(
            Step("runsc", False, f"{facts.runsc_version}: {what} (probed, {record.source})")
        )
    else:
        cands = ", ".join(json.dumps(list(c)) for c in probe_runtimes_args(facts))
        steps.append(
            Step(
                "runsc",
                True,
                f"probe which runtimeArgs {facts.runsc_version or 'runsc'} needs here "
                f"(tries {cands} on the dedicated engine; result in {layout.runsc_record})",
                "probe",
            )
        )

    # config
    runtimes, default = runtimes_for(facts, record)
    pool = choose_pool(facts.config, subnet, facts.routes)
    config = daemon_config(layout, pool=pool, runtimes=runtimes, default_runtime=default)
    if probe_needed:
        steps.append(
            Step(
                "config",
                True,
                f"write {layout.config_file} (socket {layout.host}, data-root "
                f"{layout.data_root}, bridge {br}, default runtime decided by the probe)",
                "write",
            )
        )
    elif facts.config is None or dict(facts.config) != config:
        verb = "write" if facts.config is None else "update"
        steps.append(
            Step(
                "config",
                True,
                f"{verb} {layout.config_file} (socket {layout.host}, data-root "
                f"{layout.data_root}, bridge {br}, default runtime {default})",
                "write",
            )
        )
    else:
        steps.append(Step("config", False, f"{layout.config_file} is up to date"))

    # unit (systemd only)
    dockerd = facts.dockerd or "/usr/sbin/dockerd"
    unit = unit_text(layout, dockerd)
    script = script_text(layout, cidr, firewall)
    if facts.systemd:
        if facts.unit_text != unit or facts.script_text != script or not facts.unit_enabled:
            steps.append(
                Step(
                    "unit",
                    True,
                    f"write {layout.unit} and {layout.network_script}; systemctl daemon-reload; "
                    f"systemctl enable {layout.unit_name}",
                    "write",
                )
            )
        else:
            steps.append(Step("unit", False, f"{layout.unit_name} is installed and enabled"))

    # daemon
    action = "start" if probe_needed and not facts.answers else daemon_action(facts, config, layout)
    how = (
        f"systemctl {action} {layout.unit_name}"
        if facts.systemd
        else {
            "start": f"start dockerd --config-file {layout.config_file} in the background "
            f"(pid {layout.pidfile}, log {layout.log})",
            "restart": f"restart the dedicated dockerd (its containers stop; log {layout.log})",
            "reload": "reload the dedicated dockerd's runtimes (SIGHUP)",
        }.get(action, "")
    )
    if action == "ok":
        steps.append(
            Step("daemon", False, f"the dedicated engine answers at {layout.host} ({default})")
        )
    else:
        steps.append(Step("daemon", True, f"{how}; wait until {layout.host} answers", action))

    # context
    if facts.context_host == layout.host:
        steps.append(
            Step(
                "context",
                False,
                f"Docker context '{layout.context}' points at {layout.host} "
                f"(in {facts.docker_config})",
            )
        )
    else:
        verb = "create" if facts.context_host is None else "update"
        steps.append(
            Step(
                "context",
                True,
                f"docker context {verb} {layout.context} --docker host={layout.host} "
                f"(in {facts.docker_config})",
                verb,
            )
        )

    desired = Desired(
        bridge_cidr=cidr,
        subnet=subnet,
        pool=pool,
        firewall=firewall,
        record=record,
        probe_needed=probe_needed,
        runtimes=runtimes,
        default_runtime=default,
        config=config,
        unit_text=unit,
        script_text=script,
    )
    return Plan(desired, tuple(steps))


def probe_runtimes_args(facts: Facts) -> list[tuple[str, ...]]:
    return list(PROBE_CANDIDATES) + ([KVM_CANDIDATE] if facts.kvm else [])


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


# --------------------------------------------------------------------------- #
# what setup reads and does (Protocol; adapters.daemon.DedicatedEngineHost)
# --------------------------------------------------------------------------- #


class SetupHost(Protocol):
    # --- facts
    def platform_linux(self) -> bool: ...

    def is_root(self) -> bool: ...

    def systemd_running(self) -> bool: ...

    def which(self, name: str) -> str | None: ...

    def runsc_version(self, runsc: str) -> str | None: ...

    def kvm_usable(self) -> bool: ...

    def read_json(self, path: Path) -> Any: ...

    def read_text(self, path: Path) -> str | None: ...

    def link_addrs(self, name: str) -> tuple[tuple[str, ...], bool] | None:
        """IPv4 ``addr/prefix`` of interface ``name`` and whether it is up; None: absent."""
        ...

    def routes(self, exclude_dev: str) -> tuple[str, ...]: ...

    def rule_present(self, rule: Rule) -> bool | None: ...

    def daemon_pid(self, pidfile: Path) -> int | None: ...

    def cmdline(self, pid: int) -> tuple[str, ...] | None: ...

    def answers(self, host: str) -> bool: ...

    def engine_info(self, host: str) -> dict[str, Any] | None: ...

    def context_host(self, docker_config: Path, name: str) -> str | None: ...

    def unit_enabled(self, unit: str) -> bool: ...

    def root_home(self) -> str | None: ...

    def home_of(self, user: str) -> tuple[Path, int, int] | None: ...

    def has_image(self, host: str, ref: str) -> bool: ...

    # --- actions
    def lock(self, path: Path) -> AbstractContextManager[None]: ...

    def apt_install(self, packages: Sequence[str]) -> None: ...

    def ensure_bridge(self, name: str, cidr: str) -> None: ...

    def ensure_firewall(self, firewall: Firewall) -> None: ...

    def write_file(self, path: Path, text: str, mode: int = 0o644) -> None: ...

    def systemctl(self, *args: str) -> None: ...

    def start_daemon(self, dockerd: str, config_file: Path, log: Path) -> int: ...

    def stop_daemon(self, pid: int, timeout: float = 60.0) -> None: ...

    def reload_daemon(self, pid: int) -> None: ...

    def wait_answers(self, host: str, timeout: float, pid: int | None, log: Path) -> None: ...

    def probe(self, host: str, runtimes: Sequence[str], layout: Layout) -> dict[str, bool]:
        """Start a throw-away container per runtime name: which ones run one."""
        ...

    def probe_statx(self, host: str, runtime: str, layout: Layout) -> bool: ...

    def create_context(
        self,
        docker_config: Path,
        name: str,
        host: str,
        *,
        update: bool,
        owner: tuple[int, int] | None,
    ) -> None: ...


# --------------------------------------------------------------------------- #
# the use case
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class StepResult:
    key: str
    summary: str
    changed: bool


@dataclass(frozen=True)
class SetupResult:
    dry_run: bool
    steps: tuple[StepResult, ...]
    notes: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return any(s.changed for s in self.steps)


class Setup:
    def __init__(
        self,
        host: SetupHost,
        env: Mapping[str, str],
        *,
        layout: Layout = Layout(),
        template: str = "default",
        progress: Callable[[str], None] = lambda _m: None,
        wait_seconds: float = 90.0,
    ) -> None:
        self.host = host
        self.env = env
        self.layout = layout
        self.template = template
        self.progress = progress
        self.wait_seconds = wait_seconds

    # ------------------------------------------------------------------ observe
    def observe(self) -> Facts:
        h, lay = self.host, self.layout
        which = h.which
        runsc = which("runsc")
        records: list[RunscRecord] = []
        for path in (lay.runsc_record, lay.legacy_runsc_record):
            rec = parse_record(h.read_json(path), path)
            if rec is not None:
                records.append(rec)
        link = h.link_addrs(lay.bridge)
        routes = h.routes(lay.bridge)
        config = h.read_json(lay.config_file)
        applied = h.read_json(lay.applied)
        systemd = h.systemd_running()
        answers = h.answers(lay.host)
        pid = h.daemon_pid(lay.pidfile)
        docker_config, owner = context_target(self.env, h.root_home(), h.home_of)
        facts = Facts(
            linux=h.platform_linux(),
            root=h.is_root(),
            systemd=systemd,
            apt_get=which("apt-get") is not None,
            dockerd=which("dockerd"),
            docker_cli=which("docker"),
            runsc=runsc,
            runsc_version=h.runsc_version(runsc) if runsc else None,
            sysbox=which("sysbox-runc"),
            kvm=h.kvm_usable(),
            records=tuple(records),
            bridge_addrs=link[0] if link is not None else None,
            bridge_up=link[1] if link is not None else False,
            routes=routes,
            config=config if isinstance(config, dict) else None,
            applied=applied if isinstance(applied, dict) else None,
            unit_text=h.read_text(lay.unit) if systemd else None,
            script_text=h.read_text(lay.network_script) if systemd else None,
            unit_enabled=h.unit_enabled(lay.unit_name) if systemd else False,
            daemon_pid=pid,
            daemon_cmdline=h.cmdline(pid) if pid is not None else None,
            answers=answers,
            effective=h.engine_info(lay.host) if answers else None,
            context_host=h.context_host(docker_config, lay.context),
            docker_config=docker_config,
            context_owner=owner,
        )
        # The firewall rules depend on the subnet, which depends on what was found.
        cidr = choose_bridge(facts.bridge_addrs, facts.routes)
        subnet = str(ipaddress.ip_interface(cidr).network)
        present = [h.rule_present(r) for r in firewall_for(lay, subnet).rules]
        firewall_ok = None if any(p is None for p in present) else all(present)
        return replace(facts, firewall_ok=firewall_ok)

    def plan(self) -> Plan:
        facts = self.observe()
        if not facts.linux:
            raise Failed("cai setup prepares a Linux engine; on this system use Docker's own setup")
        return plan(facts, self.layout)

    # -------------------------------------------------------------------- apply
    def run(self, *, dry_run: bool = False) -> SetupResult:
        if dry_run:
            p = self.plan()
            return SetupResult(True, tuple(StepResult(s.key, s.summary, s.change) for s in p.steps))
        facts = self.observe()
        if not facts.linux:
            raise Failed("cai setup prepares a Linux engine; on this system use Docker's own setup")
        if not facts.root:
            raise Failed(
                "cai setup installs packages and starts an engine, which needs root: run "
                "`sudo cai setup` (see what it would do with `cai setup --dry-run`)"
            )
        with self.host.lock(self.layout.lock):
            return self._converge()

    def _converge(self) -> SetupResult:
        done: dict[str, StepResult] = {}
        runs: dict[str, int] = {}
        last: Plan | None = None
        facts: Facts | None = None
        for _ in range(len(STEPS) * 2 + 2):
            facts = self.observe()
            last = plan(facts, self.layout)
            pending = last.changes
            if not pending:
                break
            step = pending[0]
            allowed = 2 if step.key == "daemon" and "runsc" in done else 1
            if runs.get(step.key, 0) >= allowed:
                raise Failed(
                    f"cai setup: step '{step.key}' did not take effect ({step.summary}); "
                    f"see {self.layout.log}"
                )
            runs[step.key] = runs.get(step.key, 0) + 1
            self.progress(step.summary)
            self._execute(step, facts, last.desired)
            done[step.key] = StepResult(step.key, step.summary, True)
        else:  # pragma: no cover - each step runs at most twice
            raise Failed("cai setup did not converge; run it again with --verbose")
        assert last is not None and facts is not None
        results = [done.get(s.key, StepResult(s.key, s.summary, False)) for s in last.steps]
        notes: list[str] = []
        if done:
            d = last.desired
            agents = tier_of(d.runtimes)
            builds = "" if d.default_runtime == agents else f", image builds {d.default_runtime}"
            notes.append(
                f"the dedicated engine answers at {self.layout.host} (agent containers run "
                f"under {agents}{builds}); cai now uses its Docker context "
                f"'{self.layout.context}' (in {facts.docker_config})"
            )
            image = f"containai:{self.template}"
            if not self.host.has_image(self.layout.host, image):
                notes.append(
                    "its image store is separate from your default engine's: the first "
                    f"`cai run` builds {image} there (a few minutes; offline if it must), "
                    "or build it now with `cai image build`"
                )
        return SetupResult(False, tuple(results), tuple(notes))

    def _execute(self, step: Step, facts: Facts, desired: Desired) -> None:
        h, lay = self.host, self.layout
        if step.key == "packages":
            h.apt_install(tuple(step.data.get("packages", ())))
        elif step.key == "bridge":
            h.ensure_bridge(lay.bridge, desired.bridge_cidr)
        elif step.key == "firewall":
            h.ensure_firewall(desired.firewall)
        elif step.key == "runsc":
            self._probe(facts, desired)
        elif step.key == "config":
            self._keep_applied(facts)
            h.write_file(lay.config_file, render_config(desired.config))
        elif step.key == "unit":
            h.write_file(lay.network_script, desired.script_text, mode=0o755)
            h.write_file(lay.unit, desired.unit_text)
            h.systemctl("daemon-reload")
            h.systemctl("enable", lay.unit_name)
        elif step.key == "daemon":
            self._daemon(step.action, facts, desired.config)
        elif step.key == "context":
            h.create_context(
                facts.docker_config,
                lay.context,
                lay.host,
                update=step.action == "update",
                owner=facts.context_owner,
            )
        else:  # pragma: no cover - STEPS is closed
            raise Failed(f"unknown setup step {step.key}")

    def _keep_applied(self, facts: Facts) -> None:
        """Before the configuration file changes under a running daemon that has no record
        of what it was started with: record the file it was started from."""
        if (
            facts.answers
            and facts.applied is None
            and facts.config is not None
            and str(self.layout.config_file) in (facts.daemon_cmdline or ())
        ):
            self.host.write_file(self.layout.applied, render_config(facts.config))

    def _after_write(self, facts: Facts, config: Mapping[str, Any]) -> Facts:
        applied = self.host.read_json(self.layout.applied)
        return replace(facts, config=config, applied=applied if isinstance(applied, dict) else None)

    def _daemon(self, action: str, facts: Facts, config: Mapping[str, Any]) -> None:
        h, lay = self.host, self.layout
        if facts.systemd:
            h.systemctl(action if action != "ok" else "start", lay.unit_name)
            h.wait_answers(lay.host, self.wait_seconds, None, lay.log)
        else:
            pid = facts.daemon_pid
            if action == "reload" and pid is not None:
                h.reload_daemon(pid)
            else:
                if pid is not None:
                    h.stop_daemon(pid)
                dockerd = facts.dockerd or "dockerd"
                pid = h.start_daemon(dockerd, lay.config_file, lay.log)
            h.wait_answers(lay.host, self.wait_seconds, pid, lay.log)
        h.write_file(lay.applied, render_config(config))
        if action == "reload":
            # SIGHUP is asynchronous: give the engine a moment to take the new runtimes.
            for _ in range(50):
                if effective_matches(h.engine_info(lay.host), config):
                    break
                _sleep(0.1)

    def _probe(self, facts: Facts, desired: Desired) -> None:
        """Start the engine with every candidate registration of runsc, and see which runs."""
        h, lay = self.host, self.layout
        assert facts.runsc is not None
        candidates = probe_runtimes(facts)
        config = daemon_config(lay, pool=desired.pool, runtimes=candidates, default_runtime="runc")
        h.write_file(lay.config_file, render_config(config))
        self._keep_applied(facts)
        action = daemon_action(self._after_write(facts, config), config, lay)
        if action != "ok":
            self._daemon(action, facts, config)
        works = h.probe(lay.host, list(candidates), lay)
        found: tuple[str, ...] | None = None
        winner = None
        for name, entry in candidates.items():
            if works.get(name):
                found = tuple(entry.get("runtimeArgs") or ())
                winner = name
                break
        statx = None
        if winner is not None:
            statx = "ok" if h.probe_statx(lay.host, winner, lay) else "broken"
        record = RunscRecord(
            version=facts.runsc_version or "unknown",
            works=found is not None,
            args=found,
            statx=statx,
            source=lay.runsc_record,
        )
        h.write_file(lay.runsc_record, json.dumps(record.to_json(), indent=2) + "\n")


def tier_of(runtimes: Mapping[str, Any]) -> str:
    """The runtime ``--runtime auto`` picks on an engine with these extra runtimes."""
    return tier([*runtimes, "runc"])


def _sleep(seconds: float) -> None:
    import time

    time.sleep(seconds)
