"""adapters/daemon.py and adapters/host_network.py, what `cai setup` reads and does on
the machine: the parsing of what `ip`, `iptables`, /proc and the context store say,
and the argv each action runs, with a fake program runner (no root, no engine).

The real thing (a dedicated dockerd, its bridge, the probe) is tests/e2e/test_setup.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from containai.adapters.daemon import DedicatedEngineHost, is_zombie
from containai.adapters.engine import context_meta
from containai.adapters.engine.client import context_endpoint
from containai.adapters.host_network import HostNetwork, parse_link, parse_routes, rule_state
from containai.domain.engine_facts import EngineInfo, OciRuntime
from containai.domain.errors import Failed
from containai.services.setup import Layout, firewall_for

Proc = subprocess.CompletedProcess[bytes]


@dataclass
class FakeRunner:
    """Records every argv (and env); answers from ``replies`` (first matching prefix)."""

    replies: list[tuple[tuple[str, ...], Proc]] = field(default_factory=list)
    calls: list[list[str]] = field(default_factory=list)
    envs: list[Mapping[str, str] | None] = field(default_factory=list)

    def on(self, *prefix: str, rc: int = 0, out: bytes = b"", err: bytes = b"") -> FakeRunner:
        self.replies.append((prefix, subprocess.CompletedProcess(list(prefix), rc, out, err)))
        return self

    def __call__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
        input: bytes | None = None,
    ) -> Proc:
        self.calls.append(list(argv))
        self.envs.append(env)
        for prefix, proc in self.replies:
            if tuple(argv[: len(prefix)]) == prefix:
                return subprocess.CompletedProcess(
                    list(argv), proc.returncode, proc.stdout, proc.stderr
                )
        return subprocess.CompletedProcess(list(argv), 0, b"", b"")


# --------------------------------------------------------------------------- #
# what ip and iptables say
# --------------------------------------------------------------------------- #

IP_ADDR = json.dumps(
    [
        {
            "ifname": "cai0",
            "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
            "addr_info": [
                {"family": "inet", "local": "10.213.0.1", "prefixlen": 24},
                {"family": "inet6", "local": "fe80::1", "prefixlen": 64},
            ],
        }
    ]
).encode()

IP_ROUTES = json.dumps(
    [
        {"dst": "default", "gateway": "192.168.1.1", "dev": "eth0"},
        {"dst": "192.168.1.0/24", "dev": "eth0"},
        {"dst": "172.17.0.0/16", "dev": "docker0"},
        {"dst": "10.213.0.0/24", "dev": "cai0"},
        {"type": "local", "dst": "127.0.0.1", "dev": "lo"},
        {"type": "broadcast", "dst": "192.168.1.255", "dev": "eth0"},
    ]
).encode()


def test_parse_link_takes_ipv4_addresses_and_the_up_flag() -> None:
    assert parse_link(IP_ADDR) == (("10.213.0.1/24",), True)
    down = json.dumps([{"flags": ["BROADCAST"], "addr_info": []}]).encode()
    assert parse_link(down) == ((), False)


@pytest.mark.parametrize("output", [b"[]", b"", b"not json"])
def test_parse_link_no_interface(output: bytes) -> None:
    assert parse_link(output) is None


def test_parse_routes_leaves_out_the_bridge_default_and_local_routes() -> None:
    assert parse_routes(IP_ROUTES, "cai0") == ("192.168.1.0/24", "172.17.0.0/16")
    assert parse_routes(b"garbage", "cai0") == ()


@pytest.mark.parametrize(
    ("rc", "err", "state"),
    [
        (0, b"", True),
        (1, b"iptables: Bad rule (does a matching rule exist in that chain?).\n", False),
        (127, b"iptables: not found", None),
        (
            4,
            b"iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: "
            b"Permission denied (you must be root)\n",
            None,
        ),
    ],
)
def test_rule_state(rc: int, err: bytes, state: bool | None) -> None:
    assert rule_state(subprocess.CompletedProcess(["iptables"], rc, b"", err)) is state


def test_link_addrs_and_routes_run_ip_in_json() -> None:
    run = FakeRunner().on("ip", "-j", "addr", out=IP_ADDR).on("ip", "-j", "-4", out=IP_ROUTES)
    net = HostNetwork(run)
    assert net.link_addrs("cai0") == (("10.213.0.1/24",), True)
    assert net.routes("cai0") == ("192.168.1.0/24", "172.17.0.0/16")
    assert run.calls == [
        ["ip", "-j", "addr", "show", "dev", "cai0"],
        ["ip", "-j", "-4", "route", "show", "table", "all"],
    ]
    missing = FakeRunner().on("ip", rc=1, err=b'Device "cai0" does not exist.')
    assert HostNetwork(missing).link_addrs("cai0") is None
    assert HostNetwork(missing).routes("cai0") == ()


def test_ensure_bridge_creates_addresses_and_raises_a_missing_bridge() -> None:
    run = FakeRunner().on("ip", "-j", "addr", rc=1)
    HostNetwork(run).ensure_bridge("cai0", "10.213.0.1/24")
    assert run.calls[1:] == [
        ["ip", "link", "add", "cai0", "type", "bridge"],
        ["ip", "addr", "add", "10.213.0.1/24", "dev", "cai0"],
        ["ip", "link", "set", "cai0", "up"],
    ]


def test_ensure_bridge_that_has_its_address_only_brings_it_up() -> None:
    run = FakeRunner().on("ip", "-j", "addr", out=IP_ADDR)
    HostNetwork(run).ensure_bridge("cai0", "10.213.0.1/24")
    assert run.calls[1:] == [["ip", "link", "set", "cai0", "up"]]


def test_ensure_bridge_failure_names_the_step_and_the_error() -> None:
    run = (
        FakeRunner()
        .on("ip", "-j", "addr", rc=1)
        .on("ip", "link", "add", rc=2, err=b"RTNETLINK answers: Operation not permitted\n")
    )
    with pytest.raises(Failed, match="creating bridge cai0 failed: RTNETLINK answers"):
        HostNetwork(run).ensure_bridge("cai0", "10.213.0.1/24")


def test_ensure_firewall_flushes_cais_chains_and_adds_missing_jumps_once() -> None:
    fw = firewall_for(Layout(), "10.213.0.0/24")
    # The FORWARD jump is there already; the POSTROUTING one is not.
    run = (
        FakeRunner()
        .on("iptables", "-w", "-C", "FORWARD", rc=0)
        .on("iptables", "-w", "-t", "nat", "-C", "POSTROUTING", rc=1)
    )
    HostNetwork(run).ensure_firewall(fw)
    calls = [" ".join(c) for c in run.calls]
    assert calls[:4] == [
        "iptables -w -N CONTAINAI-FORWARD",
        "iptables -w -F CONTAINAI-FORWARD",
        "iptables -w -t nat -N CONTAINAI-POSTROUTING",
        "iptables -w -t nat -F CONTAINAI-POSTROUTING",
    ]
    assert "iptables -w -I FORWARD 1 -j CONTAINAI-FORWARD" not in calls
    assert "iptables -w -t nat -A POSTROUTING -j CONTAINAI-POSTROUTING" in calls
    assert "iptables -w -A CONTAINAI-FORWARD -i cai0 -j ACCEPT" in calls
    assert (
        "iptables -w -t nat -A CONTAINAI-POSTROUTING -s 10.213.0.0/24 ! -o cai0 -j MASQUERADE"
        in calls
    )


# --------------------------------------------------------------------------- #
# the daemon, its docker calls, the context
# --------------------------------------------------------------------------- #


def test_context_endpoint() -> None:
    meta = {"Name": "containai-docker", "Endpoints": {"docker": {"Host": "unix:///run/x.sock"}}}
    assert context_endpoint(meta) == "unix:///run/x.sock"
    assert context_endpoint({"Endpoints": {}}) == ""
    assert context_endpoint({}) == ""


def test_is_zombie_reads_the_state_after_the_command_name() -> None:
    assert not is_zombie("4242 (dockerd) S 1 4242 4242 0 -1 4194560")
    assert is_zombie("4242 (a) Z (b)) Z 1 4242")
    assert not is_zombie("4242 (name with ) Z inside) R 1")


def test_runsc_version_is_the_first_line() -> None:
    run = FakeRunner().on("/usr/bin/runsc", out=b"runsc version 0.0~20221219.0\nspec: 1.1.0\n")
    assert DedicatedEngineHost({}, run=run).runsc_version("/usr/bin/runsc") == (
        "runsc version 0.0~20221219.0"
    )
    assert DedicatedEngineHost({}, run=FakeRunner().on("/x", rc=1)).runsc_version("/x") is None


def test_docker_calls_name_the_dedicated_engine_and_drop_the_users_choice() -> None:
    env = {"DOCKER_HOST": "tcp://elsewhere:2375", "DOCKER_CONTEXT": "prod", "HOME": "/root"}
    info = {"DefaultRuntime": "runc", "Runtimes": {"runc": {}}}
    run = (
        FakeRunner()
        .on("docker", "-H", "tcp://127.0.0.1:1", "version", out=b"20.10.24\n")
        .on("docker", "-H", "tcp://127.0.0.1:1", "info", out=json.dumps(info).encode())
        .on("docker", "-H", "tcp://127.0.0.1:1", "image", rc=1)
    )
    host = DedicatedEngineHost(env, run=run)
    assert host.answers("tcp://127.0.0.1:1")
    assert host.engine_info("tcp://127.0.0.1:1") == EngineInfo(
        ["runc"], "runc", registered=[OciRuntime("runc")]
    )
    assert not host.has_image("tcp://127.0.0.1:1", "containai:default")
    for argv, call_env in zip(run.calls, run.envs, strict=True):
        assert argv[:3] == ["docker", "-H", "tcp://127.0.0.1:1"]
        assert call_env is not None
        assert "DOCKER_HOST" not in call_env and "DOCKER_CONTEXT" not in call_env
        assert call_env["HOME"] == "/root" and call_env["PATH"]


def test_answers_without_its_socket_asks_nothing(tmp_path: Path) -> None:
    run = FakeRunner()
    assert not DedicatedEngineHost({}, run=run).answers(f"unix://{tmp_path}/none.sock")
    assert run.calls == []


def test_engine_info_that_is_not_an_object_is_none() -> None:
    run = FakeRunner().on("docker", out=b"[1, 2]")
    assert DedicatedEngineHost({}, run=run).engine_info("tcp://h:1") is None
    run = FakeRunner().on("docker", out=b"no json")
    assert DedicatedEngineHost({}, run=run).engine_info("tcp://h:1") is None


def test_context_host_reads_the_client_side_store(tmp_path: Path) -> None:
    host = DedicatedEngineHost({}, run=FakeRunner())
    assert host.context_host(tmp_path, "containai-docker") is None
    meta = context_meta(tmp_path, "containai-docker")
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"Endpoints": {"docker": {"Host": "unix:///run/c.sock"}}}))
    assert host.context_host(tmp_path, "containai-docker") == "unix:///run/c.sock"
    meta.write_text("[1]")  # not an object: absent, not a traceback
    assert host.context_host(tmp_path, "containai-docker") is None


@pytest.mark.parametrize("update", [False, True])
def test_create_context_writes_into_the_users_docker_config(tmp_path: Path, update: bool) -> None:
    run = FakeRunner()
    env = {"DOCKER_HOST": "tcp://x:1", "DOCKER_CONFIG": "/root/.docker", "HOME": "/root"}
    DedicatedEngineHost(env, run=run).create_context(
        tmp_path / ".docker", "containai-docker", "unix:///run/c.sock", update=update, owner=None
    )
    [argv] = run.calls
    verb = "update" if update else "create"
    assert argv[:4] == ["docker", "context", verb, "containai-docker"]
    assert argv[-2:] == ["--docker", "host=unix:///run/c.sock"]
    assert ("--description" in argv) is not update
    [call_env] = run.envs
    assert call_env is not None
    assert call_env["DOCKER_CONFIG"] == str(tmp_path / ".docker")
    assert "DOCKER_HOST" not in call_env


def test_create_context_failure_is_reported() -> None:
    run = FakeRunner().on("docker", rc=1, err=b"context already exists\n")
    with pytest.raises(Failed, match="docker context create c failed: context already exists"):
        DedicatedEngineHost({}, run=run).create_context(
            Path("/nonexistent"), "c", "unix:///x", update=False, owner=None
        )


def test_systemctl_and_unit_enabled() -> None:
    run = (
        FakeRunner()
        .on("systemctl", "is-enabled", rc=1)
        .on("systemctl", "start", rc=1, err=b"Job for x.service failed.\n")
    )
    host = DedicatedEngineHost({}, run=run)
    assert not host.unit_enabled("containai-docker.service")
    with pytest.raises(Failed, match=r"systemctl start x\.service failed: Job for"):
        host.systemctl("start", "x.service")


def test_apt_install_of_nothing_runs_nothing() -> None:
    run = FakeRunner()
    DedicatedEngineHost({}, run=run).apt_install(())
    assert run.calls == []


def test_daemon_pid_is_a_live_dockerd_only(tmp_path: Path) -> None:
    host = DedicatedEngineHost({}, run=FakeRunner())
    pidfile = tmp_path / "d.pid"
    assert host.daemon_pid(pidfile) is None  # no file
    pidfile.write_text("not a pid\n")
    assert host.daemon_pid(pidfile) is None
    pidfile.write_text(f"{os.getpid()}\n")  # alive, but python, not dockerd
    assert host.daemon_pid(pidfile) is None
    assert host.cmdline(os.getpid())  # this test's own command line
    assert host.cmdline(2**22 + 1) is None


def test_read_json_and_text_are_none_when_absent_or_broken(tmp_path: Path) -> None:
    host = DedicatedEngineHost({}, run=FakeRunner())
    assert host.read_json(tmp_path / "none.json") is None
    assert host.read_text(tmp_path / "none") is None
    (tmp_path / "bad.json").write_text("{")
    assert host.read_json(tmp_path / "bad.json") is None
    (tmp_path / "ok.json").write_text('{"a": 1}')
    assert host.read_json(tmp_path / "ok.json") == {"a": 1}


def test_write_file_creates_parents_with_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "containai" / "network-up"
    DedicatedEngineHost({}, run=FakeRunner()).write_file(path, "#!/bin/sh\n", mode=0o755)
    assert path.read_text() == "#!/bin/sh\n"
    assert path.stat().st_mode & 0o777 == 0o755


def test_lock_can_be_taken_again_once_released(tmp_path: Path) -> None:
    host = DedicatedEngineHost({}, run=FakeRunner())
    for _ in range(2):
        with host.lock(tmp_path / "run" / "setup.lock"):
            pass
