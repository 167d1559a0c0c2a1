"""The text of every file the remote-engine fixture writes: the remote dockerd's
``daemon.json``, the remote sshd's config and the account's ``authorized_keys``
line, and on the client side the ssh config and the ``ssh`` wrapper. Pure but
for reading which runtimes the local engine registers."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

from tests.remote import machine as m


def _runtimes() -> dict[str, Any]:
    """runsc registered as the local engine registers it (/etc/docker/daemon.json)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        runtimes = json.loads(Path("/etc/docker/daemon.json").read_text()).get("runtimes")
        if isinstance(runtimes, dict) and runtimes:
            return runtimes
    runsc = shutil.which("runsc")
    return {"runsc": {"path": runsc}} if runsc else {}


def daemon_config(addrs: m.Addresses, dockerd_major: int) -> dict[str, Any]:
    """``cai setup``'s recipe (services/setup/render.py) with the fixture's own names."""
    config: dict[str, Any] = {
        "hosts": [f"unix://{m.SOCKET}"],
        "group": m.ACCOUNT,  # the socket is root:cai-remote-test 0660
        "data-root": str(m.DATA_ROOT),
        "exec-root": str(m.RUN_DIR / "exec"),
        "pidfile": str(m.RUN_DIR / "docker.pid"),
        "containerd-namespace": m.NAME,
        "containerd-plugins-namespace": f"{m.NAME}-plugins",
        "cgroup-parent": m.CGROUP_PARENT,
        "bridge": m.BRIDGE,
        # Inside its own network namespace the engine's rules could not touch the
        # default engine's, but cai setup's engine manages none either: keep it alike.
        "iptables": False,
        "ip-masq": False,
        "default-address-pools": [{"base": addrs.pool, "size": 24}],
        "live-restore": True,
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m", "max-file": "3"},
        "labels": [f"{m.LABEL}=1"],
        "default-runtime": "runc",
    }
    if runtimes := _runtimes():
        config["runtimes"] = runtimes
    if dockerd_major and dockerd_major < 23:
        # Before 23 the engine ID comes from this key (default /etc/docker/key.json,
        # shared by every dockerd here); 23+ keeps it in the data root and rejects the key.
        config["deprecated-key-path"] = str(m.ROOT / "key.json")
    return config


def sshd_config(addrs: m.Addresses) -> str:
    return "\n".join(
        [
            f"Port {m.SSH_PORT}",
            f"ListenAddress {addrs.remote_ip}",
            "ListenAddress 127.0.0.1",  # the remote's own loopback, for ProxyJump tests
            f"HostKey {m.SSHD_DIR / 'host_ed25519'}",
            f"PidFile {m.SSHD_DIR / 'sshd.pid'}",
            f"AllowUsers {m.ACCOUNT}",
            "AuthorizedKeysFile .ssh/authorized_keys",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin no",
            "UsePAM no",
            "StrictModes yes",
            "AllowTcpForwarding local",  # -L/-W yes (permitopen narrows), -R no
            "AllowStreamLocalForwarding no",
            "AllowAgentForwarding no",
            "X11Forwarding no",
            "PermitTunnel no",
            "PermitUserEnvironment no",
            "PrintMotd no",
            "LogLevel VERBOSE",
            "",
        ]
    )


def authorized_key(public_key: str) -> str:
    docker = shutil.which("docker") or "docker"
    command = f"{docker} -H unix://{m.SOCKET} system dial-stdio"
    # A forced command governs session channels only; direct-tcpip (-W, ProxyJump, -L)
    # is governed by port-forwarding + permitopen: the remote's loopback, any port.
    return f'restrict,port-forwarding,permitopen="127.0.0.1:*",command="{command}" {public_key}'


def ssh_config(
    *,
    alias: str,
    addrs: m.Addresses,
    identity: Path,
    known_hosts: Path,
    control_dir: Path | None = None,
) -> str:
    """``Host <alias>`` as a user would write it for the box; with ``control_dir``, an
    OpenSSH control master that docker's connection helper then reuses."""
    lines = [
        f"Host {alias}",
        f"  HostName {addrs.remote_ip}",
        f"  Port {m.SSH_PORT}",
        f"  User {m.ACCOUNT}",
        f"  IdentityFile {identity}",
        "  IdentitiesOnly yes",
        f"  UserKnownHostsFile {known_hosts}",
        "  GlobalKnownHostsFile /dev/null",
        "  StrictHostKeyChecking yes",
        "  BatchMode yes",
        "  LogLevel ERROR",
    ]
    if control_dir is not None:
        # OpenSSH appends ".<16 chars>" to a 40-char %C; a unix socket path has 107 bytes.
        if len(str(control_dir)) + len("/cm-") + 40 + 17 > 107:
            raise ValueError(f"{control_dir} is too long for a control master socket")
        lines += [
            "  ControlMaster auto",
            f"  ControlPath {control_dir / 'cm-%C'}",
            "  ControlPersist 60",
        ]
    return "\n".join(lines) + "\n"


def ssh_wrapper(ssh: str, config: Path) -> str:
    """``bin/ssh``, first on the fixture's PATH. OpenSSH reads ``~/.ssh/config`` of the
    passwd home, never ``$HOME``, and docker's ssh helper runs plain ``ssh``: so name
    the fixture's config. OpenSSH keeps the last ``-F``: a caller's own file wins."""
    return (
        "#!/bin/sh\n"
        "# The remote-engine fixture's ssh (tests/remote/): its client config first;\n"
        "# a later -F (cai names its own file) wins.\n"
        f"exec {ssh} -F '{config}' \"$@\"\n"
    )
