"""The remote-engine fixture is what it claims (issue 18, deliverable 5): a second
engine reached only over ``ssh://``, which cai cannot tell from another machine."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import docker
from tests.remote.fixture import LABEL, RemoteEngine

pytestmark = [pytest.mark.engine, pytest.mark.timeout(300)]

TOKEN = "cai-remote-ok"
# A one-line TCP server: perl is Essential in Debian, so every BASE_IMAGES entry has it.
SERVER = (
    "use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalPort => 8000, Listen => 5,"
    f' ReuseAddr => 1) or die $!; while (my $c = $s->accept) {{ print $c "{TOKEN}\\n";'
    " close $c }"
)


def name() -> str:
    return f"{LABEL}-{uuid.uuid4().hex[:8]}"


def run_remote(engine: RemoteEngine, *args: str) -> str:
    proc = engine.docker("run", "-d", "--label", f"{LABEL}=1", *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def read_direct(port: int) -> str:
    """What this machine's own 127.0.0.1:PORT answers ('' when nothing does)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.recv(64).decode(errors="replace")
    except OSError:
        return ""


def test_context_is_ssh_and_answers_with_the_second_engine(remote_engine: RemoteEngine) -> None:
    ctx = subprocess.run(
        ["docker", "context", "inspect", remote_engine.context],
        env=remote_engine.env,
        capture_output=True,
        text=True,
        check=True,
    )
    host = json.loads(ctx.stdout)[0]["Endpoints"]["docker"]["Host"]
    assert host == f"ssh://{remote_engine.ssh_alias}"

    proc = remote_engine.docker("info", "--format", "{{json .}}")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["DockerRootDir"] == str(remote_engine.data_root)
    assert f"{LABEL}=1" in info["Labels"]
    assert info["Name"] == remote_engine.account  # its own hostname
    local = json.loads(docker("info", "--format", "{{json .}}", check=True).stdout)
    assert info["ID"] != local["ID"]
    assert info["DockerRootDir"] != local["DockerRootDir"]
    # runsc is registered as on the local engine.
    assert set(local["Runtimes"]) <= set(info["Runtimes"])


def test_a_remote_container_is_invisible_locally(
    remote_engine: RemoteEngine, remote_base: str
) -> None:
    cname = name()
    cid = run_remote(remote_engine, "--name", cname, remote_base, "sleep", "300")
    try:
        assert remote_engine.docker("inspect", cname).returncode == 0
        assert docker("inspect", cname).returncode != 0
        assert docker("inspect", cid).returncode != 0
        local = docker("ps", "-a", "--filter", f"label={LABEL}", "--format", "{{.ID}}")
        assert local.stdout.strip() == ""
    finally:
        remote_engine.docker("rm", "-f", cname)


def test_a_local_path_is_not_there_for_a_bind_mount(
    remote_engine: RemoteEngine, remote_base: str, tmp_path: Path
) -> None:
    """As on another machine: ``--mount`` refuses the missing source, ``-v`` makes an
    empty directory on the remote; the local file is never seen."""
    (tmp_path / "here").write_text("local\n")
    mount = remote_engine.docker(
        "run",
        "--rm",
        "--mount",
        f"type=bind,src={tmp_path},dst=/x",
        remote_base,
        "cat",
        "/x/here",
        timeout=120,
    )
    assert mount.returncode != 0
    assert "does not exist" in mount.stderr
    volume = remote_engine.docker(
        "run", "--rm", "-v", f"{tmp_path}:/x", remote_base, "ls", "-A", "/x", timeout=120
    )
    assert volume.returncode == 0, volume.stderr
    assert volume.stdout.strip() == ""


def test_remote_loopback_port_is_reached_only_through_ssh(
    remote_engine: RemoteEngine, remote_base: str
) -> None:
    cname = name()
    port = 2400 + uuid.uuid4().int % 100  # cai's SSH port range, on the remote's loopback
    # The same port taken on this machine's loopback does not matter to the remote.
    local = socket.socket()
    with contextlib.suppress(OSError):  # already bound here by someone else: as good
        local.bind(("127.0.0.1", port))
        local.listen(1)
    run_remote(
        remote_engine,
        "--name",
        cname,
        "-p",
        f"127.0.0.1:{port}:8000",
        remote_base,
        "perl",
        "-e",
        SERVER,
    )
    try:
        via_ssh = ""
        for _ in range(50):  # the server needs a moment to listen
            proc = remote_engine.ssh("-W", f"127.0.0.1:{port}", remote_engine.ssh_alias)
            via_ssh = proc.stdout
            if TOKEN in via_ssh:
                break
        assert TOKEN in via_ssh
        # Not this machine's loopback, not the remote's link address.
        assert TOKEN not in read_direct(port)
        assert TOKEN not in read_direct(8000)
        # permitopen: only the remote's loopback, even where something listens (its sshd).
        other = remote_engine.ssh(
            "-o",
            "LogLevel=INFO",
            "-W",
            f"{remote_engine.sshd_host}:{remote_engine.sshd_port}",
            remote_engine.ssh_alias,
        )
        assert other.returncode == 255
        assert "administratively prohibited" in other.stderr
    finally:
        local.close()
        remote_engine.docker("rm", "-f", cname)


@pytest.mark.parametrize("hop", ["ProxyJump", "ProxyCommand"])
def test_a_jump_through_the_account_reaches_the_remote_loopback(
    remote_engine: RemoteEngine, tmp_path: Path, hop: str
) -> None:
    """The hop an SSH entry for a remote container makes, to a server on the remote's
    loopback (here the remote's own sshd, whose forced command then carries a docker
    API request, ``/_ping``), from a config file of its own, as cai's entries are:
    ``ProxyJump`` (which ssh runs with ``-F <that file>``, so the jump host must be
    defined there) and ``ProxyCommand ssh -W [%h]:%p -- ssh://<context host>`` (a
    plain ssh that reads the user's config: the fixture's, through the wrapper)."""
    alias = remote_engine.ssh_alias
    known = tmp_path / "known_hosts"
    known.write_text(f"remote-loopback {remote_engine.host_key}\n")
    jump = (
        f"ProxyJump {alias}"
        if hop == "ProxyJump"
        else f"ProxyCommand ssh -W [%h]:%p -- ssh://{alias}"
    )
    entry = tmp_path / "entry.conf"
    entry.write_text(
        "Host remote-loopback\n"
        "  HostName 127.0.0.1\n"
        f"  Port {remote_engine.sshd_port}\n"
        f"  User {remote_engine.account}\n"
        f"  IdentityFile {remote_engine.identity}\n"
        "  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {known}\n"
        "  HostKeyAlias remote-loopback\n"
        "  StrictHostKeyChecking yes\n"
        "  BatchMode yes\n"
        f"  {jump}\n" + (remote_engine.ssh_config.read_text() if hop == "ProxyJump" else "")
    )
    proc = remote_engine.ssh(
        "-F", str(entry), "remote-loopback", input="GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("HTTP/1.0 200 OK"), proc.stdout
    assert proc.stdout.endswith("OK")


def test_the_forced_command_refuses_a_shell(remote_engine: RemoteEngine) -> None:
    for argv in (["id"], ["-tt", "id"], ["sh", "-c", "'echo shell-ran'"]):
        proc = remote_engine.ssh(remote_engine.ssh_alias, *argv)
        assert "uid=" not in proc.stdout
        assert "shell-ran" not in proc.stdout
    # The one key is the account's only way in; no password, no root.
    denied = remote_engine.ssh(
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-p",
        str(remote_engine.sshd_port),
        f"{remote_engine.account}@{remote_engine.sshd_host}",
        "id",
    )
    assert denied.returncode == 255
    root = remote_engine.ssh("-l", "root", remote_engine.ssh_alias)
    assert root.returncode == 255


def test_the_local_engine_and_host_are_untouched(remote_engine: RemoteEngine) -> None:
    assert docker("version", "--format", "{{.Server.Version}}").returncode == 0
    # Nothing of the remote engine on this host's network: its bridge and ranges live
    # in its namespace; the default engine's bridge is still there.
    links = json.loads(
        subprocess.run(["ip", "-j", "link"], capture_output=True, check=True, text=True).stdout
    )
    names = {link["ifname"] for link in links}
    assert "cai-tr0" not in names
    info = json.loads(docker("network", "inspect", "bridge", check=True).stdout)[0]
    bridge = info["Options"].get("com.docker.network.bridge.name", "docker0")
    assert bridge in names
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False)
    for net in (remote_engine.addresses.bridge, remote_engine.addresses.pool):
        assert net.rsplit(".", 2)[0] not in rules.stdout


def test_the_fixture_starts_quickly(remote_engine: RemoteEngine) -> None:
    # Measured ~1.4 s on a 2-core machine (docs/remote.md); a loose bound for CI.
    assert remote_engine.timings["start"] < 30, remote_engine.timings


def test_cai_probes_the_remote_loopback_through_the_context_host(
    remote_engine: RemoteEngine,
) -> None:
    """``RemoteHost.port_is_free`` (SPEC 16): the remote's sshd listens on its own
    127.0.0.1:2022, which is taken there whatever this machine has; port 1 is free."""
    from containai.adapters.ssh.jump import remote_port_free

    assert not remote_port_free(remote_engine.ssh_alias, remote_engine.sshd_port, remote_engine.env)
    assert remote_port_free(remote_engine.ssh_alias, 1, remote_engine.env)
