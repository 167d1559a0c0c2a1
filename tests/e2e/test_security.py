"""The security floor (SPEC section 9, issue 8.4), whatever the runtime: SSH only on
loopback with keys only, no forwarding by default, no privileged mode, no engine
socket, no secret in any image layer, the host CA given read-only."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Result, Sandbox, docker

pytestmark = pytest.mark.usefixtures("engine")


def test_container_security_floor(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("floor", "main")
    res = sandbox.cai("run", "--detached", cwd=ws)
    assert res.returncode == 0, res.stderr
    info = json.loads(docker("container", "inspect", "floor-main").stdout)[0]
    host = info["HostConfig"]
    assert host["Privileged"] is False
    assert not host.get("CapAdd")
    assert not host.get("PortBindings")  # on an internal network; the gateway publishes
    gateway = json.loads(docker("container", "inspect", "floor-main-gateway").stdout)[0]
    bindings = gateway["HostConfig"]["PortBindings"]["2222/tcp"]
    assert bindings and all(b["HostIp"] == "127.0.0.1" for b in bindings)
    assert gateway["HostConfig"]["Privileged"] is False
    sources = [m.get("Source", "") for m in info["Mounts"]]
    assert not any(s.endswith(("docker.sock", "containerd.sock")) for s in sources)
    ca = next(m for m in info["Mounts"] if m["Destination"] == "/etc/containai/host-ca.crt")
    assert ca["RW"] is False

    # sshd's effective configuration: keys only, no agent/X11 forwarding
    sshd = sandbox.cai(
        "exec", "--root", "--", "/usr/sbin/sshd", "-T", "-f", "/etc/containai/sshd_config", cwd=ws
    )
    assert sshd.returncode == 0, sshd.stderr
    effective = dict(line.split(" ", 1) for line in sshd.stdout.splitlines() if " " in line)
    assert effective["passwordauthentication"] == "no"
    assert effective["kbdinteractiveauthentication"] == "no"
    assert effective["permitrootlogin"] == "no"  # not even with the user's key
    assert effective["allowagentforwarding"] == "no"
    assert effective["x11forwarding"] == "no"

    # the client side: password and agent forwarding off in the generated entry
    entry = sandbox.home / ".ssh" / "containai.d" / "floor-main.conf"
    resolved = subprocess.run(
        ["ssh", "-G", "-F", str(entry), "cai-floor-main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.lower()
    assert "forwardagent no" in resolved and "forwardx11 no" in resolved
    assert "stricthostkeychecking true" in resolved or "stricthostkeychecking yes" in resolved

    # a password-only login is refused
    proc = subprocess.run(
        [
            "ssh",
            "-F",
            str(entry),
            "-o",
            "ControlMaster=no",
            "-o",
            "ControlPath=none",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "BatchMode=yes",
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
            "cai-floor-main",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 255 and "permission denied" in proc.stderr.lower()


def test_no_secret_in_any_image_layer(engine: None) -> None:
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", "containai:default")
    assert history.returncode == 0, history.stderr
    text = history.stdout
    assert "PRIVATE KEY" not in text and "authorized_keys" not in text.replace(
        "AuthorizedKeysFile", ""
    )
    # Containers inherit image labels: the image must not make other tools' containers
    # look managed by cai.
    labels = json.loads(
        docker("image", "inspect", "-f", "{{json .Config.Labels}}", "containai:default").stdout
    )
    assert "containai.managed" not in (labels or {})
    assert (labels or {}).get("ai.containai.template") == "default"

    # The image's file system (searched inside a throw-away container: faster than
    # exporting 1.6 GB) holds no host key, authorized key, user key or agent credential.
    found = docker(
        "run",
        "--rm",
        "--entrypoint",
        "find",
        "containai:default",
        "/",
        "-xdev",
        "(",
        "-name",
        "ssh_host_*_key",
        "-o",
        "-name",
        "authorized_keys",
        "-o",
        "-name",
        "id_ed25519",
        "-o",
        "-name",
        "id_rsa",
        "-o",
        "-name",
        ".credentials.json",
        "-o",
        "-name",
        "auth.json",
        ")",
        "-print",
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == []


def test_agent_forwarding_only_when_configured(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("fwd", "main")
    assert sandbox.cai("config", "set", "ssh.forward_agent", "true", cwd=ws).returncode == 0
    res = sandbox.cai("run", "--detached", cwd=ws)
    assert res.returncode == 0, res.stderr
    entry = sandbox.home / ".ssh" / "containai.d" / "fwd-main.conf"
    resolved = subprocess.run(
        ["ssh", "-G", "-F", str(entry), "cai-fwd-main"], capture_output=True, text=True, check=True
    ).stdout.lower()
    assert "forwardagent yes" in resolved
    sshd = sandbox.cai(
        "exec", "--root", "--", "/usr/sbin/sshd", "-T", "-f", "/etc/containai/sshd_config", cwd=ws
    )
    assert "allowagentforwarding yes" in sshd.stdout.lower(), sshd.stderr


def plant_and_restart(sandbox: Sandbox, repo: str, plant: str) -> tuple[Path, Result]:
    """A container for workspace ``repo``, ``plant`` run in it as the agent (it prints
    "planted"), then a stop and the next start's ``cai run --detached``."""
    ws = sandbox.workspace(repo, "main")
    assert sandbox.cai("run", "--detached", cwd=ws).returncode == 0
    res = sandbox.cai("exec", "--", "sh", "-c", plant, cwd=ws)
    assert res.returncode == 0 and "planted" in res.stdout, res.stderr
    assert sandbox.cai("stop", "--force", cwd=ws).returncode == 0
    return ws, sandbox.cai("run", "--detached", cwd=ws)


def test_agent_programs_never_run_as_root_at_a_start(sandbox: Sandbox) -> None:
    """The agent's ~/.local/bin (on the volume, its own) is first on its sessions' PATH,
    never on the PATH of the entrypoint, which runs as root at every start: a `mv`, `env`,
    `chown`... the agent (or a devcontainer postCreateCommand) leaves there must not run
    as root at the next start."""
    plant = (
        "mkdir -p ~/.local/bin && for p in mv env chown chmod mkdir rm date cut getent; do "
        "real=$(command -v $p); "
        'printf "#!/bin/sh\\nid -u >> /var/tmp/cai-pwned-$p\\nexec %s \\"\\$@\\"\\n" "$real" '
        "> ~/.local/bin/$p; chmod +x ~/.local/bin/$p; done; echo planted"
    )
    ws, again = plant_and_restart(sandbox, "pathroot", plant)
    assert again.returncode == 0, again.stderr
    ran = docker("exec", "pathroot-main", "sh", "-c", "cat /var/tmp/cai-pwned-* 2>/dev/null")
    assert "0" not in ran.stdout.split(), "the agent's program ran as root"
    # the sessions still find the agent's programs first
    which = sandbox.cai("exec", "--", "sh", "-c", "command -v env", cwd=ws)
    assert which.stdout.strip().endswith("/.local/bin/env"), which.stdout
    # and root's login shells (`cai exec --root -- bash -l`) do not
    root = sandbox.cai("exec", "--root", "--", "bash", "-lc", "command -v env", cwd=ws)
    assert root.returncode == 0 and "/.local/" not in root.stdout, root.stdout


def test_links_the_agent_plants_never_redirect_root_at_a_start(sandbox: Sandbox) -> None:
    """The agent's home and its state on the volume are its own, and it may leave links
    there between starts: ~/.local -> / (so that ~/.local/bin is /bin), a directory on
    the volume -> /etc, a dangling link where a file is made. The entrypoint runs as root
    at every start; it must never follow them to replace, create or chown anything (it
    did: /bin and /lib became links to the volume, /etc/nvim the agent's). The container
    still starts, with warnings, so that the agent can repair its own home."""
    steps = [
        "set -e",
        ". /etc/containai/agent.env",
        "rm -rf ~/.local && ln -s / ~/.local",  # in the home
        'cd "$CAI_STATE" && mv .config .config.moved && ln -s /etc .config',  # the volume
        "rm -f .claude.json && ln -s /etc/cai-planted.json .claude.json",  # dangling
        "echo planted",
    ]
    ws, again = plant_and_restart(sandbox, "linkroot", "; ".join(steps))
    assert again.returncode == 0, again.stderr
    env = docker("exec", "linkroot-main", "sh", "-c", ". /etc/containai/agent.env; echo $CAI_UID")
    uid = env.stdout.strip()
    check = (
        "readlink /bin /lib; ls -d /etc/nvim /etc/gh /etc/cai-planted.json 2>/dev/null; "
        f"find /etc /usr /root -xdev -user {uid} -print"
    )
    seen = docker("exec", "linkroot-main", "sh", "-c", check)
    assert seen.stdout.split() == ["usr/bin", "usr/lib"], seen.stdout
    logs = docker("logs", "linkroot-main")
    text = logs.stdout + logs.stderr
    assert "some of the agent's state is not linked into its home" in text, text
    assert sandbox.cai("exec", "--", "true", cwd=ws).returncode == 0  # it can repair it


def entrypoint_probe(tag: str, env: dict[str, str], probe: str) -> subprocess.CompletedProcess[str]:
    """``probe`` run by bash as root in the image (runc, removed after), with ``env`` and
    the variables cai gives a container (agent uid/gid 4242, workspace /w): probes run
    the image's own entrypoint as the engine would."""
    env = {**env, "CAI_UID": "4242", "CAI_GID": "4242", "CAI_WORKSPACE": "/w"}
    options = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    return docker(
        "run", "--rm", "--runtime", "runc", "--label", f"cai-test={tag}", *options,
        "--entrypoint", "bash", "containai:default", "-c", probe,
    )  # fmt: skip


def test_bash_compat_in_the_environment_cannot_break_the_entrypoints_quoting() -> None:
    """BASH_COMPAT=42 makes bash keep the quotes of a ${v//\\'/...} replacement: the
    entrypoint's shq then wrote remoteEnv's PATH into /etc/profile.d (read by root's login
    shells) with its quoting broken, and `';fi;CMD #` in PATH ran CMD as root. cai refuses
    BASH_* in containerEnv; the entrypoint unsets it too (the second line, tested here
    with the image's own entrypoint run as the engine runs it, under runc)."""
    probe = (
        "printf '%s\\n' \"PATH=/usr/bin:/bin';fi;echo INJECTED #\" > /etc/containai/remote-env; "
        "/usr/local/lib/containai/entrypoint.sh true >/dev/null 2>&1; "
        "setpriv --reuid=4242 --regid=4242 --clear-groups "
        "sh -c '. /etc/profile.d/containai.sh; echo \"PATH=$PATH\"' 2>&1"
    )
    res = entrypoint_probe("bash-compat", {"BASH_COMPAT": "42"}, probe)
    assert res.returncode == 0, res.stderr
    assert "INJECTED" not in res.stdout.replace("echo INJECTED", "")
    assert "PATH=/usr/bin:/bin';fi;echo INJECTED #" in res.stdout


def test_perl_variables_in_the_environment_do_not_reach_roots_perl() -> None:
    """A container's first start runs one perl as root before it becomes the agent (the
    home's links). PERL5OPT/PERL5LIB in the container's environment (an image's ENV; cai
    refuses them in containerEnv) would make it load a module as root: the entrypoint
    unsets PERL* for itself (tested with the image's own entrypoint, under runc)."""
    probe = (
        'mkdir -p /w && printf \'open(my $f, ">", "/etc/cai-perl-pwned"); 1;\\n\' '
        "> /w/cai_evil.pm && /usr/local/lib/containai/entrypoint.sh true >/dev/null 2>&1; "
        "ls /etc/cai-perl-pwned 2>&1; readlink /home/agent/workspace"
    )
    res = entrypoint_probe("perl-env", {"PERL5OPT": "-Mcai_evil", "PERL5LIB": "/w"}, probe)
    assert res.returncode == 0, res.stderr
    assert "No such file or directory" in res.stdout  # nothing written as root
    assert res.stdout.strip().endswith("/w")  # and the perl did run: the workspace link
