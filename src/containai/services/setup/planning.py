"""The plan (pure, unit-tested): from the ``Facts`` of a machine, which of the steps
are done and which change something, with one line each, and the desired state
(``Desired``) the apply side writes."""

from __future__ import annotations

import ipaddress
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from containai.domain.engine_facts import EngineInfo, OciRuntime
from containai.domain.isolation import PLAIN
from containai.services.setup.facts import DEFAULT_LAYOUT, Facts, Layout, RunscRecord
from containai.services.setup.network import Firewall, choose_bridge, choose_pool, firewall_for
from containai.services.setup.render import daemon_config, script_text, unit_text
from containai.services.setup.runtimes import known_record, probe_runtimes_args, runtimes_for

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

RELOADABLE: Final = frozenset({"runtimes", "default-runtime", "debug", "labels", "log-level"})
"""daemon.json keys dockerd 20.10 takes on SIGHUP; any other change needs a restart."""

_BUILTIN_RUNTIMES: Final = frozenset({PLAIN})
"""Runtimes dockerd has without a ``runtimes`` entry."""


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


def effective_matches(effective: EngineInfo | None, config: Mapping[str, Any]) -> bool:
    """Whether what a running engine registered is ``config``'s runtimes and default."""
    if effective is None:
        return False
    if effective.default_runtime != config.get("default-runtime"):
        return False
    have = {r.name: r for r in effective.registered}
    extra = {n for n in have if n not in _BUILTIN_RUNTIMES and not n.startswith("io.containerd.")}
    wanted = dict(config.get("runtimes") or {})
    if extra != set(wanted):
        return False
    for name, entry in wanted.items():
        got = have.get(name) or OciRuntime(name)
        if got.path != entry.get("path"):
            return False
        if list(got.args) != list(entry.get("runtimeArgs") or []):
            return False
    return True


def daemon_action(facts: Facts, config: Mapping[str, Any], layout: Layout = DEFAULT_LAYOUT) -> str:
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


def plan(facts: Facts, layout: Layout = DEFAULT_LAYOUT) -> Plan:
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
