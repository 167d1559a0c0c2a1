"""SPEC section 15 end to end: egress only through the workspace's gateway, by its
allowlist. Test hosts are containers on networks these tests create (never any
address off this machine): `web.cai.test` is allowlisted, `other.cai.test` is not."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from ipaddress import ip_network
from pathlib import Path

import pytest

from tests.conftest import Sandbox, docker
from tests.e2e.scoped_docker import scoped_env

pytestmark = pytest.mark.usefixtures("engine")

IMAGE = "containai:default"  # has python3 for a tiny HTTP server
TEST_LABEL = "containai.test-host=true"


class Hosts:
    def __init__(self, network: str, subnet: str, web: str, other: str) -> None:
        self.network, self.subnet, self.web_ip, self.other_ip = network, subnet, web, other


def _serve(name: str, network: str, alias: str) -> str:
    made = docker(
        "run", "-d", "--name", name, "--label", TEST_LABEL, "--network", network,
        "--network-alias", alias, "--entrypoint", "python3", IMAGE,
        "-m", "http.server", "8000", "--bind", "0.0.0.0",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    info = json.loads(docker("inspect", name).stdout)[0]
    return str(info["NetworkSettings"]["Networks"][network]["IPAddress"])


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    tag = uuid.uuid4().hex[:8]
    network = f"cai-test-hosts-{tag}"
    assert docker("network", "create", "--label", TEST_LABEL, network).returncode == 0
    names = [f"cai-test-web-{tag}", f"cai-test-other-{tag}"]
    try:
        web = _serve(names[0], network, "web.cai.test")
        other = _serve(names[1], network, "other.cai.test")
        info = json.loads(docker("network", "inspect", network).stdout)[0]
        subnet = info["IPAM"]["Config"][0]["Subnet"]
        for _ in range(50):  # the servers are up
            get = "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/')"
            probe = docker("exec", names[0], "python3", "-c", get)
            if probe.returncode == 0:
                break
            time.sleep(0.1)
        yield Hosts(network, subnet, web, other)
    finally:
        docker("rm", "-f", *names)
        info = json.loads(docker("network", "inspect", network).stdout or "[{}]")[0]
        for attached in (info.get("Containers") or {}).values():  # the gateways
            docker("network", "disconnect", "-f", network, attached["Name"])
        docker("network", "rm", network)


def _configure(sandbox: Sandbox, hosts: Hosts) -> None:
    cfg = sandbox.home / ".config" / "containai" / "config.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(
        "[network]\n"
        'presets = ["git-hosts"]\n'
        'allow = ["web.cai.test:8000"]\n'
        f'allow_cidrs = ["{hosts.subnet}"]\n'
    )


def _up(sandbox: Sandbox, hosts: Hosts, name: str) -> Path:
    ws = sandbox.workspace(name, "main")
    res = sandbox.cai("run", "--detached", cwd=ws)
    assert res.returncode == 0, res.stderr
    # the test hosts' network stands for "the internet" here: the gateway reaches it
    assert docker("network", "connect", hosts.network, f"{name}-main-gateway").returncode == 0
    return ws


def _curl(sandbox: Sandbox, ws: Path, *args: str, root: bool = False) -> tuple[int, str]:
    argv = ["exec", *(["--root"] if root else []), "--", "curl", "-sS", "-m", "8", "-o",
            "/dev/null", "-w", "%{http_code}", *args]  # fmt: skip
    res = sandbox.cai(*argv, cwd=ws)
    return res.returncode, res.stdout + res.stderr


def test_allowlisted_host_only(sandbox: Sandbox, hosts: Hosts) -> None:
    _configure(sandbox, hosts)
    ws = _up(sandbox, hosts, "egress")
    code, out = _curl(sandbox, ws, "http://web.cai.test:8000/")
    assert code == 0 and out.startswith("200"), out
    started = time.monotonic()
    code, out = _curl(sandbox, ws, "http://other.cai.test:8000/")
    assert code != 0 or not out.startswith("200"), out
    assert "403" in out, out  # a clear refusal from the gateway ...
    assert time.monotonic() - started < 5  # ... at once, not a time-out
    # the allowlisted host on another port is refused too
    code, out = _curl(sandbox, ws, "https://web.cai.test:8443/")
    assert "200" not in out
    # the denial is logged and counted
    log = sandbox.cai("network", "log", cwd=ws)
    assert log.returncode == 0 and "denied" in log.stdout and "other.cai.test" in log.stdout
    status = sandbox.cai("status", "--json", cwd=ws)
    assert status.json["network"]["policy"] == "allowlist"
    assert status.json["network"]["denials"] >= 1


def test_allow_applies_live(sandbox: Sandbox, hosts: Hosts) -> None:
    _configure(sandbox, hosts)
    ws = _up(sandbox, hosts, "live")
    assert "403" in _curl(sandbox, ws, "http://other.cai.test:8000/")[1]
    started = time.monotonic()
    res = sandbox.cai("network", "allow", "other.cai.test:8000", cwd=ws)
    assert res.returncode == 0, res.stderr
    assert time.monotonic() - started < 5
    code, out = _curl(sandbox, ws, "http://other.cai.test:8000/")
    assert code == 0 and out.startswith("200"), out
    res = sandbox.cai("network", "deny", "other.cai.test", cwd=ws)
    assert res.returncode == 0, res.stderr
    assert "403" in _curl(sandbox, ws, "http://other.cai.test:8000/")[1]


def test_root_inside_cannot_go_around_the_gateway(sandbox: Sandbox, hosts: Hosts) -> None:
    _configure(sandbox, hosts)
    ws = _up(sandbox, hosts, "escape")
    _up(sandbox, hosts, "victim")
    victim = json.loads(docker("inspect", "victim-main").stdout)[0]
    victim_ip = next(iter(victim["NetworkSettings"]["Networks"].values()))["IPAddress"]
    # a service on the host, listening on every address (as many do)
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        bridge = json.loads(docker("network", "inspect", "bridge").stdout)[0]
        config = bridge["IPAM"]["Config"][0]
        host_ip = config.get("Gateway") or str(next(ip_network(config["Subnet"]).hosts()))
        # the attack is real: a container on Docker's default network reaches it
        plain = docker("run", "--rm", "--entrypoint", "bash", IMAGE, "-c",
                       f"exec 3<>/dev/tcp/{host_ip}/{port}")  # fmt: skip
        assert plain.returncode == 0, plain.stderr
        attempts = [
            # no proxy variables, the allowlisted host's own address
            ["env", "-u", "http_proxy", "-u", "HTTP_PROXY", "curl", "-sS", "-m", "5",
             f"http://{hosts.web_ip}:8000/"],
            # its own resolver: names do not resolve directly
            ["getent", "hosts", "web.cai.test"],
            # another workspace's container (its sshd)
            ["bash", "-c", f"exec 3<>/dev/tcp/{victim_ip}/2222 && head -c 20 <&3"],
            # the host's service on the bridge address
            ["bash", "-c", f"exec 3<>/dev/tcp/{host_ip}/{port}"],
            # through the gateway: the host, and a private address not in allow_cidrs
            ["curl", "-fsS", "-m", "5", f"http://{host_ip}:{port}/"],
            ["curl", "-fsS", "-m", "5", f"http://{victim_ip}:2222/"],
        ]  # fmt: skip
        for argv in attempts:
            res = sandbox.cai("exec", "--root", "--", "timeout", "10", *argv, cwd=ws)
            assert res.returncode != 0, (argv, res.stdout)
            assert "SSH-2.0" not in res.stdout and "Directory listing" not in res.stdout
    # (169.254.169.254 and the other never-ranges: tests/unit/test_egress.py checks the
    # rendered policy; no test aims a connection there)


def test_gateway_down_means_no_egress_and_run_restarts_it(sandbox: Sandbox, hosts: Hosts) -> None:
    _configure(sandbox, hosts)
    ws = _up(sandbox, hosts, "down")
    assert docker("stop", "-t", "1", "down-main-gateway").returncode == 0
    # straight through the engine (SSH goes through the gateway too): no way out
    res = docker("exec", "down-main", "curl", "-sS", "-m", "5", "http://web.cai.test:8000/")
    assert res.returncode != 0
    res = sandbox.cai("run", "--detached", cwd=ws)
    assert res.returncode == 0, res.stderr
    state = json.loads(docker("inspect", "down-main-gateway").stdout)[0]["State"]["Status"]
    assert state == "running"  # and still on the test hosts' network
    code, out = _curl(sandbox, ws, "http://web.cai.test:8000/")
    assert code == 0 and out.startswith("200"), out


def test_package_registry_through_the_gateway(sandbox: Sandbox) -> None:
    """The machine's own npm registry (read from its configuration) is reachable with the
    default presets, as the agents need it."""
    ws = sandbox.workspace("reg", "main")
    assert sandbox.cai("run", "--detached", cwd=ws).returncode == 0
    show = sandbox.cai("network", "show", "--json", cwd=ws)
    hosts = [r["host"] for r in show.json["allow"] if r["source"] == "preset:package-registries"]
    assert hosts, show.stdout
    code, out = _curl(sandbox, ws, f"https://{hosts[-1]}/")
    assert code == 0 and not out.startswith("000"), out


def test_stop_and_remove_take_the_gateway_along(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("gone", "main")
    assert sandbox.cai("run", "--detached", cwd=ws).returncode == 0
    assert sandbox.cai("stop", cwd=ws).returncode == 0
    gw = json.loads(docker("inspect", "gone-main-gateway").stdout)[0]["State"]["Status"]
    assert gw == "exited"
    assert sandbox.cai("run", "--detached", cwd=ws).returncode == 0  # restart through it
    assert sandbox.cai("stop", "--remove", cwd=ws).returncode == 0
    assert docker("inspect", "gone-main-gateway").returncode != 0
    assert docker("network", "inspect", "cai-net-gone-main").returncode != 0


def test_ssh_from_inside_goes_through_the_gateway(sandbox: Sandbox, hosts: Hosts) -> None:
    """git over SSH: ssh inside reaches an allowed host:port through the gateway's CONNECT
    (the test host speaks HTTP, so the SSH handshake itself fails after connecting)."""
    _configure(sandbox, hosts)
    ws = _up(sandbox, hosts, "gitssh")
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "ConnectTimeout=5", "-p", "8000", "web.cai.test", "true"]  # fmt: skip
    res = sandbox.cai("exec", "--", *argv, cwd=ws)
    assert res.returncode != 0  # not an SSH server
    log = sandbox.cai("network", "log", "--json", cwd=ws)
    assert '"host": "web.cai.test"' in log.stdout and '"decision": "allowed"' in log.stdout
    # and a host that is not allowed is refused by the gateway
    res = sandbox.cai("exec", "--", *argv[:-4], "-p", "8000", "other.cai.test", "true", cwd=ws)
    assert res.returncode != 0
    log = sandbox.cai("network", "log", cwd=ws)
    assert any("denied" in x and "other.cai.test" in x for x in log.stdout.splitlines())


def scoped_gc(sandbox: Sandbox, gateway: str) -> dict[str, str]:
    """`cai gc` on the shared engine sees, and may remove, only this test's workspace
    container and gateway (found by the workspace label on ``gateway``)."""
    info = json.loads(docker("inspect", gateway).stdout)[0]
    ws = info["Config"]["Labels"]["containai.gateway-workspace"]
    pairs = [("containai.workspace", ws), ("containai.gateway-workspace", ws)]
    return scoped_env(
        sandbox.root,
        sandbox.env["PATH"],
        ps_filter=[f"label={label}={value}" for label, value in pairs],
        image_filter="reference=cai-test-no-image-*",
        allowed=pairs,
    )


def test_gc_removes_the_gateway_of_a_container_removed_by_hand(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("orphan", "main")
    assert sandbox.cai("run", "--detached", cwd=ws).returncode == 0
    scoped = scoped_gc(sandbox, "orphan-main-gateway")
    assert docker("rm", "-f", "orphan-main").returncode == 0
    dry = sandbox.cai("gc", "--dry-run", "--json", env=scoped)
    assert dry.returncode == 0, dry.stderr
    assert "orphan-main-gateway" in [left["name"] for left in dry.json["leftovers"]]
    assert docker("inspect", "orphan-main-gateway").returncode == 0  # dry run: still there
    res = sandbox.cai("gc", "--force", env=scoped)
    assert res.returncode == 0, res.stderr
    assert docker("inspect", "orphan-main-gateway").returncode != 0
    assert docker("network", "inspect", "cai-net-orphan-main").returncode != 0


def test_gc_leaves_a_gateway_without_its_spec_label_alone(sandbox: Sandbox) -> None:
    """Named and labelled as the gateway of a container that is gone, but without the
    `containai.gateway-spec` cai puts on every gateway it makes: not cai's, so `cai gc`
    neither offers nor removes it, and says it keeps it."""
    container = f"lookalike-{uuid.uuid4().hex[:8]}-main"
    gateway = f"{container}-gateway"
    ws = str(sandbox.root / "lookalike")  # under the sandbox: its sweep removes it
    made = docker(
        "create", "--name", gateway, "--label", f"containai.gateway-of={container}",
        "--label", f"containai.gateway-workspace={ws}", IMAGE, "true",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    pair = ("containai.gateway-workspace", ws)
    scoped = scoped_env(
        sandbox.root,
        sandbox.env["PATH"],
        ps_filter=f"label={pair[0]}={pair[1]}",
        image_filter="reference=cai-test-no-image-*",
        allowed=[pair],  # gc could remove it: only its own rules keep it
    )
    dry = sandbox.cai("gc", "--dry-run", "--json", env=scoped)
    assert dry.returncode == 0, dry.stderr
    assert gateway not in [left["name"] for left in dry.json["leftovers"]]
    res = sandbox.cai("gc", "--force", "--json", env=scoped)
    assert res.returncode == 0, res.stderr
    assert res.json["leftovers"] == []
    spared = {s["name"]: s["reason"] for s in res.json["spared"]}
    assert "containai.gateway-spec" in spared[gateway]
    assert docker("inspect", gateway).returncode == 0


def test_gc_of_a_stopped_container_removes_its_gateway_and_network(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("aged", "main")
    assert sandbox.cai("run", "--detached", cwd=ws).returncode == 0
    assert sandbox.cai("stop", "--force", cwd=ws).returncode == 0
    res = sandbox.cai("gc", "--force", "--age", "0s", env=scoped_gc(sandbox, "aged-main-gateway"))
    assert res.returncode == 0, res.stderr
    assert "removed aged-main" in res.stderr
    assert docker("inspect", "aged-main").returncode != 0
    assert docker("inspect", "aged-main-gateway").returncode != 0
    assert docker("network", "inspect", "cai-net-aged-main").returncode != 0


def test_gateway_runs_unprivileged_under_runc(sandbox: Sandbox) -> None:
    """The gateway runs cai's image under runc as `proxy` with no capability at all,
    whatever the workspace's runtime (docs/decisions.md); the workspace keeps its own.
    Its policy was handed in at creation and live changes still reach it."""
    ws = sandbox.workspace("unpriv", "main")
    assert sandbox.cai("run", "--detached", cwd=ws).returncode == 0
    runtimes = json.loads(docker("info", "--format", "{{json .Runtimes}}").stdout)
    workspace = json.loads(docker("inspect", "unpriv-main").stdout)[0]["HostConfig"]
    assert workspace["Runtime"] == ("runsc" if "runsc" in runtimes else "runc")
    info = json.loads(docker("inspect", "unpriv-main-gateway").stdout)[0]
    host = info["HostConfig"]
    assert host["Runtime"] == "runc" and info["Config"]["User"] == "proxy"
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert "no-new-privileges" in host["SecurityOpt"] and not host["Privileged"]
    # every process in it: uid 13 (proxy), empty effective and bounding capability sets
    status = docker("exec", "unpriv-main-gateway", "sh", "-c",
                    "cat /proc/[0-9]*/status")  # fmt: skip
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    uids = [u for x in lines if x.startswith("Uid:") for u in x.split()[1:]]  # real .. fs
    caps = [x.split()[1] for x in lines if x.startswith(("CapEff:", "CapBnd:", "CapPrm:"))]
    assert uids and set(uids) == {"13"}, uids
    assert set(caps) == {"0000000000000000"}, caps
    # its resolver answers REFUSED at once on port 53 (bound without a capability)
    started = time.monotonic()
    res = sandbox.cai("exec", "--", "getent", "hosts", "web.cai.test", cwd=ws)
    assert res.returncode != 0 and time.monotonic() - started < 5
    # the policy went in with the creation; a change reaches the running gateway
    conf = docker("exec", "unpriv-main-gateway", "cat", "/etc/containai/squid.conf").stdout
    assert "http_access deny all" in conf and "unpriv.cai.test" not in conf
    assert sandbox.cai("network", "allow", "unpriv.cai.test", cwd=ws).returncode == 0
    conf = docker("exec", "unpriv-main-gateway", "cat", "/etc/containai/squid.conf").stdout
    assert "unpriv.cai.test" in conf


def _subnet_and_dns(name: str) -> tuple[str, str, str]:
    """The workspace network's subnet, its gateway's address on it, the container's DNS."""
    net = json.loads(docker("network", "inspect", f"cai-net-{name}").stdout)[0]
    gateway = json.loads(docker("inspect", f"{name}-gateway").stdout)[0]
    container = json.loads(docker("inspect", name).stdout)[0]
    address = gateway["NetworkSettings"]["Networks"][f"cai-net-{name}"]["IPAddress"]
    (dns,) = container["HostConfig"]["Dns"]
    return net["IPAM"]["Config"][0]["Subnet"], address, dns


def test_a_network_already_on_the_chosen_subnet_moves_cai_to_the_next(
    sandbox: Sandbox,
) -> None:
    """cai chooses the workspace network's block (docs/network.md): another network on
    the block it would pick (anyone's; an engine whose address pool hands out that space
    makes the same) moves it to its next candidate, with the gateway at that block's
    fixed address, the container's resolver, and the workspace works through it."""
    from containai.domain import egress as E

    first, second = E.workspace_subnet("squat-main", 0), E.workspace_subnet("squat-main", 1)
    squatter = f"cai-test-squat-{uuid.uuid4().hex[:8]}"
    made = docker("network", "create", "--label", TEST_LABEL, "--subnet", first, squatter)
    assert made.returncode == 0, made.stderr
    try:
        ws = sandbox.workspace("squat", "main")
        res = sandbox.cai("run", "--detached", cwd=ws)
        assert res.returncode == 0, res.stderr
        subnet, address, dns = _subnet_and_dns("squat-main")
        assert (subnet, address, dns) == (second, E.gateway_address(second), address)
        assert sandbox.cai("exec", "--", "true", cwd=ws).returncode == 0
        # its resolver (the gateway's refuse-dns at the fixed address) answers at once
        started = time.monotonic()
        res = sandbox.cai("exec", "--", "getent", "hosts", "example.com", cwd=ws)
        assert res.returncode != 0 and time.monotonic() - started < 5
        # the block is CGNAT space: squid refuses it as a destination (the gateway itself)
        _code, out = _curl(sandbox, ws, f"http://{address}:{E.PROXY_PORT}/")
        assert out.startswith("403"), out
        # removal takes the network (and so the block) along
        assert sandbox.cai("stop", "--remove", "--force", cwd=ws).returncode == 0
        assert docker("network", "inspect", "cai-net-squat-main").returncode != 0
    finally:
        docker("network", "rm", squatter)


def test_parallel_creates_of_two_workspaces_get_their_own_blocks(sandbox: Sandbox) -> None:
    """Two workspaces created at once: each network on its own block, each gateway at its
    block's fixed address, each container's resolver its own gateway."""
    from concurrent.futures import ThreadPoolExecutor

    from containai.domain import egress as E

    spaces = [sandbox.workspace(n, "main") for n in ("para", "parb")]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda ws: sandbox.cai("run", "--detached", cwd=ws), spaces))
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    seen = [_subnet_and_dns(n) for n in ("para-main", "parb-main")]
    assert seen[0][0] != seen[1][0]
    for subnet, address, dns in seen:
        assert address == dns == E.gateway_address(subnet)
    for ws in spaces:
        assert sandbox.cai("exec", "--", "true", cwd=ws).returncode == 0
