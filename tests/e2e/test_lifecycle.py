"""The lifecycle journey on a real engine, in a sandboxed HOME (SPEC sections 4, 5, 6, 10):
create -> exec -> stop -> start -> fresh -> reset -> stop --remove."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from containai.domain.host_safety import agent_ids
from tests.conftest import Sandbox, docker

pytestmark = pytest.mark.usefixtures("engine")


def inspect(name: str) -> dict:  # type: ignore[type-arg]
    proc = docker("container", "inspect", name)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)[0]  # type: ignore[no-any-return]


def exists(name: str) -> bool:
    return docker("container", "inspect", name).returncode == 0


def volume_exists(name: str) -> bool:
    return docker("volume", "inspect", name).returncode == 0


def up(box: Sandbox, ws: Path, *extra: str) -> str:
    res = box.cai("run", "--detached", *extra, cwd=ws)
    assert res.returncode == 0, res.stderr
    doc = box.cai("run", "--dry-run", "--json", cwd=ws).json
    assert doc["action"] == "attach"
    return str(doc["container"])


def test_journey(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("journey", "feature/life")
    volume = sandbox.env["CONTAINAI_DATA_VOLUME"]
    name = up(sandbox, ws)
    assert name == "journey-life"

    info = inspect(name)
    labels = info["Config"]["Labels"]
    assert labels["containai.managed"] == "true"
    assert labels["containai.workspace"] == str(ws)
    assert labels["containai.data-volume"] == volume
    assert labels["ai.containai.template"] == "default"
    assert re.fullmatch(r"[0-9a-f]{16}", labels["ai.containai.template-hash"])
    assert labels["containai.runtime"] in ("runsc", "runc", "sysbox-runc")
    assert labels["containai.schema"] == "1"
    assert "containai.keep" not in labels
    port = int(labels["containai.ssh-port"])
    assert 2300 <= port <= 2499
    host = info["HostConfig"]
    assert host["Privileged"] is False
    assert host["Init"] is True
    assert host["Runtime"] == labels["containai.runtime"]
    assert host["Memory"] >= 2 * 1024**3 and host["NanoCpus"] >= 1_000_000_000
    # SSH is published on loopback by the workspace's egress gateway (SPEC section 15):
    # the container itself sits on an internal network and publishes nothing
    assert not host.get("PortBindings")
    assert labels["containai.network-policy"] == "allowlist"
    gateway = json.loads(docker("container", "inspect", f"{name}-gateway").stdout)[0]
    bindings = gateway["HostConfig"]["PortBindings"]["2222/tcp"]
    assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    # the only other mounts: the git guard (SPEC section 14), read-only, on .git
    # mounted onto itself (so it cannot be renamed away)
    guard = {str(ws / ".git" / p) for p in ("hooks", "config", "commondir")}
    pinned = str(ws / ".git")
    assert set(mounts) == {"/mnt/agent-data", str(ws), "/etc/containai/host-ca.crt", pinned} | guard
    assert all(mounts[path]["RW"] is False for path in guard)
    assert mounts[pinned]["RW"] is True
    assert mounts["/etc/containai/host-ca.crt"]["RW"] is False
    assert mounts["/mnt/agent-data"]["Type"] == "volume"
    assert mounts["/mnt/agent-data"]["Name"] == volume
    assert mounts[str(ws)]["Type"] == "bind" and mounts[str(ws)]["RW"] is True
    assert not any("docker.sock" in (m.get("Source") or "") for m in info["Mounts"])
    assert info["Config"]["WorkingDir"] == str(ws)
    assert info["Config"]["Hostname"] == name

    # exec: working directory, exit codes, stdin, -e, ownership of files in the workspace
    res = sandbox.cai("exec", "--", "pwd", cwd=ws / ".")
    assert (res.returncode, res.stdout) == (0, f"{ws}\n"), res.stderr
    assert sandbox.cai("exec", "--", "sh", "-c", "exit 7", cwd=ws).returncode == 7
    res = sandbox.cai("exec", "--", "cat", cwd=ws, input="through stdin\n")
    assert res.stdout == "through stdin\n"
    res = sandbox.cai("exec", "-e", "FOO=b a r", "--", "sh", "-c", 'echo "$FOO"', cwd=ws)
    assert res.stdout == "b a r\n"
    res = sandbox.cai("exec", "--", "sh", "-c", "echo out; echo err >&2", cwd=ws)
    assert (res.stdout, res.stderr) == ("out\n", "err\n")
    assert sandbox.cai("exec", "--", "touch", "owned", cwd=ws).returncode == 0
    st = (ws / "owned").stat()
    # the caller's ids; when cai runs as root, never root (SPEC sections 5 and 14)
    owner = os.stat(ws)
    want = agent_ids((os.getuid(), os.getgid()), (owner.st_uid, owner.st_gid))
    assert (st.st_uid, st.st_gid) == want and st.st_uid != 0
    res = sandbox.cai("exec", "--", "readlink", "-f", "workspace", cwd=ws)
    assert (
        sandbox.cai("exec", "--", "sh", "-c", "readlink -f ~/workspace", cwd=ws).stdout == f"{ws}\n"
    )

    # state in the volume and in the container's own file system
    assert (
        sandbox.cai(
            "exec",
            "--",
            "sh",
            "-c",
            "echo kept > ~/.claude/marker && echo c > /var/tmp/cfile",
            cwd=ws,
        ).returncode
        == 0
    )
    container_id = info["Id"]

    # stop: container and volume kept
    res = sandbox.cai("stop", cwd=ws)
    assert res.returncode == 0, res.stderr
    assert inspect(name)["State"]["Status"] == "exited"
    assert volume_exists(volume)
    assert sandbox.cai("run", "--dry-run", "--json", cwd=ws).json["action"] == "start"

    # start again: the same container, its files kept
    up(sandbox, ws)
    assert inspect(name)["Id"] == container_id
    assert sandbox.cai("exec", "--", "cat", "/var/tmp/cfile", cwd=ws).stdout == "c\n"

    # --fresh: a new container, same name, volume and port; container files gone
    res = sandbox.cai("run", "--fresh", "--force", "--detached", cwd=ws)
    assert res.returncode == 0, res.stderr
    fresh = inspect(name)
    assert fresh["Id"] != container_id
    assert fresh["Config"]["Labels"]["containai.data-volume"] == volume
    assert fresh["Config"]["Labels"]["containai.ssh-port"] == str(port)
    assert (
        sandbox.cai("exec", "--", "cat", "/mnt/agent-data/home/.claude/marker", cwd=ws).stdout
        == "kept\n"
    )
    assert sandbox.cai("exec", "--", "test", "-e", "/var/tmp/cfile", cwd=ws).returncode == 1

    # --reset: a new empty volume, old one kept, workspace state follows
    res = sandbox.cai("run", "--reset", "--force", "--detached", cwd=ws)
    assert res.returncode == 0, res.stderr
    new_volume = inspect(name)["Config"]["Labels"]["containai.data-volume"]
    assert re.fullmatch(r"journey-life-\d{14}-[0-9a-f]{6}", new_volume), new_volume
    assert volume_exists(volume)
    env_without = {k: v for k, v in sandbox.env.items() if k != "CONTAINAI_DATA_VOLUME"}
    got = subprocess.run(
        [sandbox_cai(), "config", "get", "data_volume"],
        cwd=ws,
        env=env_without,
        capture_output=True,
        text=True,
        check=False,
    )
    assert got.stdout == f"{new_volume}\n", got.stderr
    assert (
        sandbox.cai(
            "exec", "--", "test", "-e", "/mnt/agent-data/home/.claude/marker", cwd=ws
        ).returncode
        == 1
    )

    # stop --remove: container and SSH entry gone, volumes kept
    entry = sandbox.home / ".ssh" / "containai.d" / f"{name}.conf"
    assert entry.is_file()
    res = sandbox.cai("stop", "--remove", cwd=ws)
    assert res.returncode == 0, res.stderr
    assert not exists(name)
    assert not entry.exists()
    assert volume_exists(volume) and volume_exists(new_volume)
    docker("volume", "rm", new_volume)


def sandbox_cai() -> str:
    from tests.conftest import CAI

    return CAI


def test_ssh_alias_pinned_key_and_tamper(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("pin", "main")
    name = up(sandbox, ws)
    config = sandbox.ssh_config()
    # In a sandboxed HOME the Include names the sandbox's directory (ssh expands `~` from
    # /etc/passwd); for the account's own HOME it is the literal `~/.ssh/...` line.
    include_dir = sandbox.home / ".ssh" / "containai.d"
    assert config.read_text().splitlines()[0] == f"Include {include_dir}/*.conf"
    no_mux = ["-o", "ControlMaster=no", "-o", "ControlPath=none", "-o", "BatchMode=yes"]
    # OpenSSH reads the passwd account's ~/.ssh, so the sandboxed file is named with -F.
    proc = subprocess.run(
        ["ssh", "-F", str(config), *no_mux, f"cai-{name}", "echo", "ok"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (proc.returncode, proc.stdout) == (0, "ok\n"), proc.stderr
    known = sandbox.home / ".config" / "containai" / "known_hosts"
    line = next(x for x in known.read_text().splitlines() if x.startswith(f"cai-{name} "))
    other = sandbox.root / "otherkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    fake = f"cai-{name} " + " ".join((other.with_suffix(".pub")).read_text().split()[:2])
    known.write_text(known.read_text().replace(line, fake))
    proc = subprocess.run(
        ["ssh", "-F", str(config), *no_mux, f"cai-{name}", "true"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 255
    assert "host key" in proc.stderr.lower() or "identification" in proc.stderr.lower()


def test_two_workspaces_get_distinct_ports_on_loopback(sandbox: Sandbox) -> None:
    a = up(sandbox, sandbox.workspace("alpha", "main"))
    b = up(sandbox, sandbox.workspace("beta", "main"))
    pa = docker("port", f"{a}-gateway", "2222/tcp").stdout.split()
    pb = docker("port", f"{b}-gateway", "2222/tcp").stdout.split()
    assert pa and pb and pa != pb
    assert all(p.startswith("127.0.0.1:") for p in pa + pb)


def test_unmanaged_container_is_refused(sandbox: Sandbox) -> None:
    name = f"unmanaged-{os.getpid()}"
    created = docker(
        "create",
        "--name",
        name,
        "--label",
        f"containai.workspace={sandbox.root}/x",
        "containai-base:bookworm",
        "true",
    )
    assert created.returncode == 0, created.stderr
    try:
        for argv in (
            ["exec", "--container", name, "--", "true"],
            ["stop", "--container", name],
            ["stop", "--container", name, "--remove"],
            ["run", "--container", name, "--detached"],
        ):
            res = sandbox.cai(*argv)
            assert res.returncode == 5, (argv, res.stderr)
            assert name in res.stderr and "Traceback" not in res.stderr
        assert exists(name) and inspect(name)["State"]["Status"] == "created"
    finally:
        docker("rm", "-f", name)


def test_keep_label_is_fixed_at_creation(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("keeper", "main")
    name = up(sandbox, ws)
    res = sandbox.cai("run", "--keep", "--detached", cwd=ws)
    assert res.returncode == 2 and "--fresh --keep" in res.stderr
    res = sandbox.cai("run", "--fresh", "--keep", "--force", "--detached", cwd=ws)
    assert res.returncode == 0, res.stderr
    assert inspect(name)["Config"]["Labels"]["containai.keep"] == "true"


def test_missing_container_stop_is_exit_4(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("never", "main")
    res = sandbox.cai("stop", cwd=ws)
    assert res.returncode == 4 and "never-main" in res.stderr
