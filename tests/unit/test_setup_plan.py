"""`cai setup`'s plan as pure logic (which steps for which machine state), and its
convergence against an in-memory machine: a fresh machine is set up in one run, a
second run changes nothing, --dry-run changes nothing, an interrupted setup is finished."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from containai.domain.engine_facts import EngineInfo, OciRuntime
from containai.domain.errors import Failed
from containai.services.setup import (
    BRIDGE_CANDIDATES,
    STEPS,
    Facts,
    Firewall,
    Layout,
    Rule,
    RunscRecord,
    Setup,
    choose_bridge,
    context_target,
    daemon_action,
    daemon_config,
    effective_matches,
    firewall_for,
    parse_record,
    plan,
    render_config,
    runtimes_for,
    script_text,
    unit_text,
)

LAYOUT = Layout()
RUNSC = "/usr/bin/runsc"
VERSION = "runsc version 0.0~20221219.0"
HOST_ARGS = ("--network=host",)


def record(
    *, works: bool = True, args: tuple[str, ...] | None = HOST_ARGS, statx: str | None = "broken"
) -> RunscRecord:
    return RunscRecord(VERSION, works, args if works else None, statx, LAYOUT.runsc_record)


def done_facts(**kw: Any) -> Facts:
    """A machine where setup has run: every step in place."""
    rec = kw.pop("records", (record(),))
    base = Facts(records=rec)
    runtimes, default = runtimes_for(base, rec[0] if rec else None)
    config = daemon_config(LAYOUT, pool="10.214.0.0/16", runtimes=runtimes, default_runtime=default)
    facts = replace(
        base,
        bridge_addrs=("10.213.0.1/24",),
        bridge_up=True,
        firewall_ok=True,
        config=config,
        applied=config,
        daemon_pid=4242,
        daemon_cmdline=("dockerd", "--config-file", str(LAYOUT.config_file)),
        answers=True,
        effective=info_for(config),
        context_host=LAYOUT.host,
        docker_config=Path("/home/u/.docker"),
    )
    return replace(facts, **kw)


def info_for(config: dict[str, Any] | Any) -> EngineInfo:
    """What the dedicated engine says it registered, started from ``config``."""
    return engine_info(
        config.get("default-runtime", "runc"),
        {
            "runc": {"path": "runc"},
            "io.containerd.runc.v2": {"path": "runc"},
            **dict(config.get("runtimes") or {}),
        },
    )


def engine_info(default: str, runtimes: dict[str, dict[str, Any]]) -> EngineInfo:
    """``EngineInfo`` from daemon.json-like ``runtimes`` entries."""
    registered = [
        OciRuntime(name, e.get("path"), e.get("runtimeArgs") or ()) for name, e in runtimes.items()
    ]
    return EngineInfo(list(runtimes), default, registered=registered)


def changes(facts: Facts) -> list[str]:
    return [s.key for s in plan(facts, LAYOUT).changes]


# --------------------------------------------------------------------------- plan


def test_set_up_machine_needs_nothing() -> None:
    p = plan(done_facts(), LAYOUT)
    assert p.changes == []
    assert [s.key for s in p.steps] == [k for k in STEPS if k != "unit"]
    assert all(s.summary for s in p.steps)


def test_fresh_machine_needs_every_step() -> None:
    facts = Facts(runsc=None, runsc_version=None, docker_config=Path("/root/.docker"))
    p = plan(facts, LAYOUT)
    assert [s.key for s in p.changes] == [k for k in STEPS if k != "unit"]
    pkgs = p.step("packages")
    assert pkgs.data["packages"] == ("runsc",)
    assert "apt-get install -y --no-install-recommends runsc" in pkgs.summary
    assert p.step("bridge").summary.startswith("create bridge cai0 with 10.213.0.1/24")
    assert p.step("daemon").action == "start"
    assert p.step("context").action == "create"
    assert "docker context create containai-docker" in p.step("context").summary


def test_missing_dockerd_installs_docker_io() -> None:
    p = plan(replace(done_facts(), dockerd=None), LAYOUT)
    assert p.step("packages").data["packages"] == ("docker.io",)


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        ((), BRIDGE_CANDIDATES[0]),
        (("10.213.0.0/16",), BRIDGE_CANDIDATES[1]),
        (("10.0.0.0/8",), BRIDGE_CANDIDATES[2]),
        (("10.0.0.0/8", "172.16.0.0/12"), BRIDGE_CANDIDATES[3]),
    ],
)
def test_bridge_subnet_avoids_routed_ones(routes: tuple[str, ...], expected: str) -> None:
    assert choose_bridge(None, routes) == expected


def test_existing_bridge_address_is_kept_and_all_taken_fails() -> None:
    assert choose_bridge(("192.168.77.1/24",), ("10.0.0.0/8",)) == "192.168.77.1/24"
    with pytest.raises(Failed, match="cai0"):
        choose_bridge(None, ("0.0.0.0/1", "128.0.0.0/1"))


def test_bridge_down_or_without_address_is_configured() -> None:
    p = plan(done_facts(bridge_up=False), LAYOUT)
    assert [s.key for s in p.changes] == ["bridge"]
    assert "ip link set cai0 up" in p.step("bridge").summary
    p = plan(done_facts(bridge_addrs=()), LAYOUT)
    assert "ip addr add 10.213.0.1/24 dev cai0" in p.step("bridge").summary


def test_firewall_unknown_or_missing_is_a_change() -> None:
    assert changes(done_facts(firewall_ok=None)) == ["firewall"]
    assert changes(done_facts(firewall_ok=False)) == ["firewall"]


def test_firewall_rules_are_cai_own_and_masquerade_the_subnet() -> None:
    fw = firewall_for(LAYOUT, "10.213.0.0/24")
    assert fw.chains == (("filter", "CONTAINAI-FORWARD"), ("nat", "CONTAINAI-POSTROUTING"))
    argvs = [" ".join(r.argv("add")) for r in fw.rules]
    assert "iptables -w -I FORWARD 1 -j CONTAINAI-FORWARD" in argvs
    assert "iptables -w -t nat -A POSTROUTING -j CONTAINAI-POSTROUTING" in argvs
    assert (
        "iptables -w -t nat -A CONTAINAI-POSTROUTING -s 10.213.0.0/24 ! -o cai0 -j MASQUERADE"
        in argvs
    )
    # Nothing in the default engine's chains.
    assert not any("DOCKER" in r.chain for r in fw.rules)
    assert fw.rules[2].argv("check")[:4] == ["iptables", "-w", "-C", "FORWARD"]


def test_runsc_record_decides_runtimes_and_default() -> None:
    facts = Facts()
    runtimes, default = runtimes_for(facts, record(statx="ok"))
    assert runtimes == {"runsc": {"path": RUNSC, "runtimeArgs": ["--network=host"]}}
    assert default == "runsc"
    # bookworm's runsc: statx broken -> builds need runc as the default; runsc registered.
    runtimes, default = runtimes_for(facts, record(statx="broken"))
    assert "runsc" in runtimes and default == "runc"
    runtimes, default = runtimes_for(facts, record(args=()))
    assert runtimes == {"runsc": {"path": RUNSC}}
    assert runtimes_for(facts, record(works=False)) == ({}, "runc")
    assert runtimes_for(facts, None) == ({}, "runc")
    runtimes, default = runtimes_for(replace(facts, sysbox="/usr/bin/sysbox-runc"), None)
    assert default == "sysbox-runc" and runtimes == {
        "sysbox-runc": {"path": "/usr/bin/sysbox-runc"}
    }
    # Both sandboxes: sysbox-runc is the stronger rung, whatever runsc's statx says.
    both = replace(facts, sysbox="/usr/bin/sysbox-runc")
    runtimes, default = runtimes_for(both, record(statx="ok"))
    assert default == "sysbox-runc" and set(runtimes) == {"sysbox-runc", "runsc"}


def test_probe_needed_without_a_record_for_this_version() -> None:
    other = RunscRecord("runsc version 0.0~2021", True, (), "ok", LAYOUT.runsc_record)
    p = plan(done_facts(records=(other,)), LAYOUT)
    assert p.step("runsc").change and p.step("runsc").action == "probe"
    assert p.desired.probe_needed
    assert '[], ["--network=host"]' in p.step("runsc").summary
    kvm = plan(done_facts(records=(), kvm=True), LAYOUT)
    assert "--platform=kvm" in kvm.step("runsc").summary


def test_ours_before_ensure_engines_record() -> None:
    legacy = RunscRecord(VERSION, True, (), "ok", LAYOUT.legacy_runsc_record)
    p = plan(done_facts(records=(record(), legacy)), LAYOUT)
    assert p.desired.record == record()


def test_parse_record() -> None:
    data = {"runsc": VERSION, "works": True, "runtimeArgs": ["--network=host"], "statx": "broken"}
    rec = parse_record(data, Path("/x"))
    assert rec is not None and rec.args == HOST_ARGS and rec.statx == "broken"
    assert parse_record({"runsc": VERSION, "works": False, "runtimeArgs": None}, Path("/x"))
    assert parse_record({"runsc": VERSION, "works": True, "runtimeArgs": "x"}, Path("/x")) is None
    assert parse_record(None, Path("/x")) is None
    assert parse_record(rec.to_json(), Path("/x")) == replace(rec, source=Path("/x"))


def test_daemon_config_shares_nothing_with_the_default_engine() -> None:
    config = daemon_config(LAYOUT, pool="10.214.0.0/16", runtimes={}, default_runtime="runc")
    assert config["hosts"] == ["unix:///run/containai-docker.sock"]
    assert config["data-root"] == "/var/lib/containai-docker"
    assert config["exec-root"] == "/run/containai-docker"
    assert config["pidfile"] == "/run/containai-docker.pid"
    assert config["containerd-namespace"] == "containai"
    assert config["bridge"] == "cai0"
    assert config["iptables"] is False  # a second dockerd would flush the default's chains
    assert "bip" not in config
    assert config["default-address-pools"] == [{"base": "10.214.0.0/16", "size": 24}]
    # without live-restore, a restart of this engine deletes the default engine's docker0
    assert config["live-restore"] is True
    assert json.loads(render_config(config)) == config


def test_config_change_is_planned_with_the_right_daemon_action() -> None:
    facts = done_facts(records=(record(statx="ok"),))
    # The file and the running daemon still have the old default (runc).
    old = dict(facts.config or {}, **{"default-runtime": "runc"})
    stale = replace(facts, config=old, applied=old, effective=info_for(old))
    p = plan(stale, LAYOUT)
    assert [s.key for s in p.changes] == ["config", "daemon"]
    assert p.step("daemon").action == "reload"


@pytest.mark.parametrize(
    ("change", "action"),
    [
        ({"answers": False, "daemon_pid": None}, "start"),
        ({"answers": False}, "restart"),
        ({}, "ok"),
        ({"applied": None}, "ok"),
        ({"applied": None, "daemon_cmdline": ("dockerd",)}, "restart"),
        ({"applied": None, "effective": engine_info("runsc", {})}, "restart"),
        ({"effective": engine_info("runc", {"runc": {}})}, "reload"),
    ],
)
def test_daemon_action(change: dict[str, Any], action: str) -> None:
    facts = replace(done_facts(), **change)
    assert facts.config is not None
    assert daemon_action(facts, facts.config, LAYOUT) == action


def test_daemon_action_diffs_the_applied_config() -> None:
    facts = done_facts()
    assert facts.config is not None
    new = dict(facts.config, **{"default-runtime": "runsc"})
    assert daemon_action(facts, new, LAYOUT) == "reload"
    new = dict(facts.config, bridge="cai1")
    assert daemon_action(facts, new, LAYOUT) == "restart"


def test_effective_matches_ignores_builtin_and_flags_leftover_runtimes() -> None:
    config = daemon_config(
        LAYOUT,
        pool="10.214.0.0/16",
        runtimes={"runsc": {"path": RUNSC, "runtimeArgs": ["--network=host"]}},
        default_runtime="runc",
    )
    assert effective_matches(info_for(config), config)
    probe = {"containai-probe-0": {"path": RUNSC}}
    leftover = dict(config, runtimes={**config["runtimes"], **probe})
    assert not effective_matches(info_for(leftover), config)
    other_args = dict(config, runtimes={"runsc": {"path": RUNSC}})
    assert not effective_matches(info_for(other_args), config)
    other_path = dict(config, runtimes={"runsc": {"path": "/opt/runsc", "runtimeArgs": []}})
    assert not effective_matches(info_for(other_path), config)
    assert not effective_matches(info_for(dict(config, **{"default-runtime": "runsc"})), config)
    assert not effective_matches(None, config)


def test_context_missing_or_elsewhere() -> None:
    assert changes(done_facts(context_host=None)) == ["context"]
    p = plan(done_facts(context_host="unix:///var/run/docker.sock"), LAYOUT)
    assert p.step("context").action == "update"


def test_systemd_adds_the_unit_step() -> None:
    facts = done_facts(systemd=True)
    p = plan(facts, LAYOUT)
    assert [s.key for s in p.changes] == ["unit"]
    assert "systemctl enable containai-docker.service" in p.step("unit").summary
    ok = replace(
        facts,
        unit_text=p.desired.unit_text,
        script_text=p.desired.script_text,
        unit_enabled=True,
    )
    assert changes(ok) == []
    stopped = replace(ok, answers=False, daemon_pid=None)
    assert (
        plan(stopped, LAYOUT)
        .step("daemon")
        .summary.startswith("systemctl start containai-docker.service")
    )


def test_unit_and_network_script() -> None:
    unit = unit_text(LAYOUT, "/usr/sbin/dockerd")
    assert "ExecStart=/usr/sbin/dockerd --config-file /etc/containai/docker/daemon.json" in unit
    assert "ExecStartPre=/bin/sh /etc/containai/docker/network-up" in unit
    assert "Type=notify" in unit and "WantedBy=multi-user.target" in unit
    script = script_text(LAYOUT, "10.213.0.1/24", firewall_for(LAYOUT, "10.213.0.0/24"))
    assert script.startswith("#!/bin/sh\n")
    assert "ip link show cai0 >/dev/null 2>&1 || ip link add cai0 type bridge" in script
    assert (
        "iptables -w -C FORWARD -j CONTAINAI-FORWARD 2>/dev/null || "
        "iptables -w -I FORWARD 1 -j CONTAINAI-FORWARD"
    ) in script
    assert "iptables -w -t nat -F CONTAINAI-POSTROUTING" in script


def test_context_target() -> None:
    def home_of(user: str) -> tuple[Path, int, int] | None:
        return (Path("/home/alice"), 1000, 1000) if user == "alice" else None

    env = {"DOCKER_CONFIG": "/tmp/dc", "HOME": "/root", "SUDO_USER": "alice"}
    assert context_target(env, "/root", home_of) == (Path("/tmp/dc"), None)
    assert context_target({"HOME": "/home/bob"}, "/root", home_of) == (
        Path("/home/bob/.docker"),
        None,
    )
    # sudo resets HOME to root's: the invoking user's own ~/.docker, owned by them.
    assert context_target({"HOME": "/root", "SUDO_USER": "alice"}, "/root", home_of) == (
        Path("/home/alice/.docker"),
        (1000, 1000),
    )
    # sudo -E (HOME kept) or an unknown user: HOME as given.
    assert (
        context_target({"HOME": "/home/alice", "SUDO_USER": "alice"}, "/root", home_of)[1] is None
    )
    assert context_target({"HOME": "/root", "SUDO_USER": "ghost"}, "/root", home_of) == (
        Path("/root/.docker"),
        None,
    )


# ------------------------------------------------------------------ convergence


@dataclass
class FakeMachine:
    """An in-memory Linux box for ``Setup`` (implements ``SetupHost``)."""

    root: bool = True
    systemd: bool = False
    programs: dict[str, str] = field(
        default_factory=lambda: {
            "dockerd": "/usr/sbin/dockerd",
            "docker": "/usr/bin/docker",
            "apt-get": "/usr/bin/apt-get",
        }
    )
    files: dict[Path, str] = field(default_factory=dict)
    links: dict[str, tuple[tuple[str, ...], bool]] = field(default_factory=dict)
    route_list: tuple[str, ...] = ("192.0.2.0/24", "172.17.0.0/16")
    rules: set[tuple[str, str, tuple[str, ...]]] = field(default_factory=set)
    pid: int | None = None
    effective: EngineInfo | None = None
    started_with: tuple[str, ...] = ()
    contexts: dict[tuple[Path, str], str] = field(default_factory=dict)
    enabled: set[str] = field(default_factory=set)
    probe_ok: dict[tuple[str, ...], bool] = field(
        default_factory=lambda: {(): False, HOST_ARGS: True}
    )
    statx_ok: bool = False
    actions: list[str] = field(default_factory=list)
    next_pid: int = 1000

    # facts
    def platform_linux(self) -> bool:
        return True

    def is_root(self) -> bool:
        return self.root

    def systemd_running(self) -> bool:
        return self.systemd

    def which(self, name: str) -> str | None:
        return self.programs.get(name)

    def runsc_version(self, runsc: str) -> str | None:
        return VERSION

    def kvm_usable(self) -> bool:
        return False

    def read_json(self, path: Path) -> Any:
        return json.loads(self.files[path]) if path in self.files else None

    def read_text(self, path: Path) -> str | None:
        return self.files.get(path)

    def link_addrs(self, name: str) -> tuple[tuple[str, ...], bool] | None:
        return self.links.get(name)

    def routes(self, exclude_dev: str) -> tuple[str, ...]:
        return self.route_list

    def rule_present(self, rule: Rule) -> bool | None:
        if not self.root:
            return None
        return (rule.table, rule.chain, rule.spec) in self.rules

    def daemon_pid(self, pidfile: Path) -> int | None:
        return self.pid

    def cmdline(self, pid: int) -> tuple[str, ...] | None:
        return self.started_with

    def answers(self, host: str) -> bool:
        return self.pid is not None

    def engine_info(self, host: str) -> EngineInfo | None:
        return self.effective if self.pid is not None else None

    def context_host(self, docker_config: Path, name: str) -> str | None:
        return self.contexts.get((docker_config, name))

    def unit_enabled(self, unit: str) -> bool:
        return unit in self.enabled

    def root_home(self) -> str | None:
        return "/root"

    def home_of(self, user: str) -> tuple[Path, int, int] | None:
        return None

    def has_image(self, host: str, ref: str) -> bool:
        return False

    # actions
    @contextlib.contextmanager
    def lock(self, path: Path) -> Iterator[None]:
        yield

    def apt_install(self, packages: Sequence[str]) -> None:
        self.actions.append("apt-get install " + " ".join(packages))
        for pkg in packages:
            if pkg == "runsc":
                self.programs["runsc"] = RUNSC
            if pkg == "docker.io":
                self.programs.update(dockerd="/usr/sbin/dockerd", docker="/usr/bin/docker")

    def ensure_bridge(self, name: str, cidr: str) -> None:
        self.actions.append(f"bridge {name} {cidr}")
        self.links[name] = ((cidr,), True)

    def ensure_firewall(self, firewall: Firewall) -> None:
        self.actions.append("firewall")
        self.rules |= {(r.table, r.chain, r.spec) for r in firewall.rules}

    def write_file(self, path: Path, text: str, mode: int = 0o644) -> None:
        self.actions.append(f"write {path}")
        self.files[path] = text

    def systemctl(self, *args: str) -> None:
        self.actions.append("systemctl " + " ".join(args))
        if args[0] == "enable":
            self.enabled.add(args[1])
        elif args[0] in ("start", "restart"):
            self._boot()
        elif args[0] == "reload":
            self.effective = info_for(self.read_json(LAYOUT.config_file))

    def _boot(self) -> None:
        self.pid = self.next_pid
        self.next_pid += 1
        self.started_with = ("dockerd", "--config-file", str(LAYOUT.config_file))
        self.effective = info_for(self.read_json(LAYOUT.config_file))

    def start_daemon(self, dockerd: str, config_file: Path, log: Path) -> int:
        self.actions.append("start dockerd")
        assert LAYOUT.bridge in self.links, "the bridge must exist before dockerd starts"
        self._boot()
        assert self.pid is not None
        return self.pid

    def stop_daemon(self, pid: int, timeout: float = 60.0) -> None:
        self.actions.append("stop dockerd")
        self.pid = None

    def reload_daemon(self, pid: int) -> None:
        self.actions.append("reload dockerd")
        self.effective = info_for(self.read_json(LAYOUT.config_file))

    def wait_answers(self, host: str, timeout: float, pid: int | None, log: Path) -> None:
        assert self.pid is not None

    def probe(self, host: str, runtimes: Sequence[str], layout: Layout) -> dict[str, bool]:
        self.actions.append("probe " + " ".join(runtimes))
        assert self.effective is not None
        out: dict[str, bool] = {}
        for name in runtimes:
            registered = self.effective.runtime(name)
            assert registered is not None, name
            args = registered.args
            out[name] = self.probe_ok.get(args, False)
            if out[name]:
                break
        return out

    def probe_statx(self, host: str, runtime: str, layout: Layout) -> bool:
        return self.statx_ok

    def create_context(
        self,
        docker_config: Path,
        name: str,
        host: str,
        *,
        update: bool,
        owner: tuple[int, int] | None,
    ) -> None:
        self.actions.append(f"context {'update' if update else 'create'} {name}")
        self.contexts[(docker_config, name)] = host


ENV = {"HOME": "/home/u", "DOCKER_CONFIG": "/home/u/.docker"}


def test_fresh_machine_converges_in_one_run_and_the_second_changes_nothing() -> None:
    m = FakeMachine()
    m.programs.pop("dockerd")
    progress: list[str] = []
    result = Setup(m, ENV, progress=progress.append).run()
    assert result.changed and not result.dry_run
    assert [s.key for s in result.steps if s.changed] == [k for k in STEPS if k != "unit"]
    assert m.actions[0] == "apt-get install docker.io runsc"
    assert m.actions.index("bridge cai0 10.213.0.1/24") < m.actions.index("start dockerd")
    assert "probe containai-probe-0 containai-probe-1" in m.actions
    assert m.actions[-1] == "context create containai-docker"
    assert len(progress) == 7  # one line per step done
    # The dedicated engine ends with the probe's result; statx broken -> default runc.
    assert m.effective is not None and m.effective.default_runtime == "runc"
    runsc = m.effective.runtime("runsc")
    assert runsc is not None and runsc.args == ("--network=host",)
    assert not any(n.startswith("containai-probe") for n in m.effective.runtimes)
    rec = json.loads(m.files[LAYOUT.runsc_record])
    assert rec == {
        "runsc": VERSION,
        "works": True,
        "runtimeArgs": ["--network=host"],
        "statx": "broken",
    }
    assert m.contexts[(Path("/home/u/.docker"), "containai-docker")] == LAYOUT.host
    assert any("agent containers run under runsc" in n for n in result.notes)
    assert any("cai image build" in n for n in result.notes)

    before = list(m.actions)
    again = Setup(m, ENV).run()
    assert not again.changed and again.notes == ()
    assert m.actions == before
    assert {s.key for s in again.steps} == {k for k in STEPS if k != "unit"}


def test_statx_working_runsc_becomes_the_default() -> None:
    m = FakeMachine(statx_ok=True)
    m.programs["runsc"] = RUNSC
    Setup(m, ENV).run()
    assert m.effective is not None and m.effective.default_runtime == "runsc"


def test_no_working_runsc_leaves_runc() -> None:
    m = FakeMachine(probe_ok={})
    m.programs["runsc"] = RUNSC
    result = Setup(m, ENV).run()
    assert m.effective == info_for({"default-runtime": "runc"})
    assert json.loads(m.files[LAYOUT.runsc_record])["works"] is False
    assert any("runc" in n for n in result.notes)


def test_dry_run_changes_nothing_and_lists_every_step() -> None:
    m = FakeMachine()
    result = Setup(m, ENV).run(dry_run=True)
    assert result.dry_run
    assert [s.key for s in result.steps] == [k for k in STEPS if k != "unit"]
    assert all(s.changed for s in result.steps)
    assert m.actions == [] and m.files == {} and m.contexts == {}


def test_dry_run_works_without_root_but_setup_needs_it() -> None:
    m = FakeMachine(root=False)
    result = Setup(m, ENV).run(dry_run=True)
    assert {s.key: s.changed for s in result.steps}["firewall"] is True
    with pytest.raises(Failed, match="sudo cai setup"):
        Setup(m, ENV).run()
    assert m.actions == []


def test_interrupted_setup_is_finished_by_the_next_run() -> None:
    m = FakeMachine()
    m.programs["runsc"] = RUNSC

    class Crash(Exception):
        pass

    real = m.create_context

    def crash(*a: Any, **kw: Any) -> None:
        raise Crash

    m.create_context = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        Setup(m, ENV).run()
    m.create_context = real  # type: ignore[method-assign]
    m.actions.clear()
    result = Setup(m, ENV).run()
    assert [s.key for s in result.steps if s.changed] == ["context"]
    assert m.actions == ["context create containai-docker"]


def test_known_record_means_no_probe_and_a_restart_of_a_foreign_daemon() -> None:
    m = FakeMachine()
    m.programs["runsc"] = RUNSC
    m.files[LAYOUT.legacy_runsc_record] = json.dumps(
        {"runsc": VERSION, "works": True, "runtimeArgs": ["--network=host"], "statx": "broken"}
    )
    # A dockerd already on our pid file, started by hand from another file.
    m.pid, m.started_with, m.effective = 7, ("dockerd", "--config-file", "/tmp/x.json"), None
    m.links["cai0"] = (("10.213.0.1/24",), True)
    Setup(m, ENV).run()
    assert not any(a.startswith("probe") for a in m.actions)
    assert m.actions.count("stop dockerd") == 1 and m.actions.count("start dockerd") == 1
    assert "bridge cai0 10.213.0.1/24" not in m.actions


def test_systemd_machine_uses_the_unit() -> None:
    m = FakeMachine(systemd=True)
    m.programs["runsc"] = RUNSC
    m.files[LAYOUT.runsc_record] = json.dumps(record().to_json())
    Setup(m, ENV).run()
    assert "systemctl daemon-reload" in m.actions
    assert "systemctl enable containai-docker.service" in m.actions
    assert "systemctl start containai-docker.service" in m.actions
    assert "start dockerd" not in m.actions
    assert m.files[LAYOUT.unit].startswith("# Written by `cai setup`")
    before = list(m.actions)
    assert not Setup(m, ENV).run().changed
    assert m.actions == before


def test_config_change_under_a_daemon_without_record_still_lands() -> None:
    """After a reboot under systemd there is no applied record; a new config still lands."""
    m = FakeMachine()
    m.programs["runsc"] = RUNSC
    m.files[LAYOUT.runsc_record] = json.dumps(record().to_json())
    Setup(m, ENV).run()
    del m.files[LAYOUT.applied]
    # A newer gVisor fixed statx: the default runtime should become runsc.
    m.files[LAYOUT.runsc_record] = json.dumps(record(statx="ok").to_json())
    m.actions.clear()
    Setup(m, ENV).run()
    assert "reload dockerd" in m.actions
    assert m.effective is not None and m.effective.default_runtime == "runsc"
