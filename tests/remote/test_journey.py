"""cai on a remote engine, end to end (issue 18, SPEC section 16): the installed ``cai``
in a sandboxed HOME against the fixture's engine, which is reachable only over an
``ssh://`` context and cannot see this machine's files or loopback.

One journey, in order (each step needs the previous one): create with ``--context
remote``; the repository at the same path inside (tracked and untracked files and the
history, not the ignored ones; no bind mount); warm ``cai exec`` through the control
master; the agent's commit comes home with ``git fetch cai-<name>`` and changes
nothing local; ``cai sync push``; ``cai list --all-contexts``; export to the local
disk; stop and gc naming the context; and the local engine never touched.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.conftest import Result, Sandbox, docker
from tests.remote.fixture import RemoteEngine

pytestmark = [pytest.mark.engine, pytest.mark.timeout(1500)]

NAME = "app-main"


def git(ws: Path, env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(ws), *args], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def inside(sandbox: Sandbox, ws: Path, *command: str) -> Result:
    """``cai --context remote exec -- COMMAND`` in ``ws``, which must succeed."""
    return ok(sandbox.cai("--context", "remote", "exec", "--", *command, cwd=ws))


def ok(res: Result) -> Result:
    assert res.returncode == 0, f"exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def test_a_workspace_on_a_remote_engine(
    sandbox: Sandbox, remote_engine: RemoteEngine, remote_base: str
) -> None:
    env = remote_engine.env_for(sandbox.env)
    sandbox.env = env
    _time_each_call(sandbox)
    ws = sandbox.workspace("app")
    (ws / "tracked.txt").write_text("from the host\n")
    (ws / ".gitignore").write_text("*.log\n")
    git(ws, env, "add", "-A")
    git(ws, env, "commit", "-qm", "host commit")
    (ws / "notes.txt").write_text("untracked, not ignored\n")
    (ws / "debug.log").write_text("ignored\n")
    local_head = git(ws, env, "rev-parse", "HEAD")

    # --- create on the remote: the image and the workspace travel, nothing is mounted
    started = time.monotonic()
    created = ok(sandbox.cai("--context", "remote", "run", "--detached", cwd=ws, timeout=1200))
    print(f"remote create (image save|load included): {time.monotonic() - started:.0f} s")
    assert "sent image containai:" in created.stderr  # the remote had no image
    assert "copied workspace" in created.stderr
    inspect = remote_engine.docker("inspect", NAME)
    assert inspect.returncode == 0, inspect.stderr
    info = json.loads(inspect.stdout)[0]
    assert all(m["Type"] != "bind" for m in info["Mounts"]), info["Mounts"]
    assert {"Type": "volume", "Name": f"{NAME}-ws", "Destination": str(ws)}.items() <= next(
        m for m in info["Mounts"] if m["Destination"] == str(ws)
    ).items()
    # the local engine has no trace of it
    assert docker("inspect", NAME).returncode != 0 or _not_this_workspace(NAME, ws)
    assert docker("volume", "inspect", f"{NAME}-ws").returncode != 0

    # --- the SSH entry: the remote's loopback through the context's SSH host
    entry = (sandbox.home / ".ssh" / "containai.d" / f"{NAME}.conf").read_text()
    assert "HostName 127.0.0.1" in entry
    assert f"ProxyCommand ssh -W '[%h]:%p' -- ssh://{remote_engine.ssh_alias}" in entry
    assert "# Context: remote" in entry

    # --- the repository at the same path, as the agent sees it
    seen = inside(
        sandbox,
        ws,
        "sh",
        "-c",
        "pwd; cat tracked.txt notes.txt; test ! -e debug.log && echo no-log; "
        "git log --format=%H; stat -c %U tracked.txt",
    )
    lines = seen.stdout.splitlines()
    assert lines[:5] == [str(ws), "from the host", "untracked, not ignored", "no-log", local_head]
    assert lines[5] == "agent"  # the agent owns its copy

    # --- warm exec: through the live control master, no engine call
    warm = ok(sandbox.cai("--context", "remote", "--verbose", "exec", "--", "true", cwd=ws))
    assert "through its live SSH control master" in warm.stderr
    assert "engine:" not in warm.stderr

    # --- cai forward through the same jump: the forwards master listens here
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        host_port = probe.getsockname()[1]
    forward = ["--context", "remote", "forward"]
    made = ok(sandbox.cai(*forward, "--background", f"8000:{host_port}", cwd=ws))
    assert f"forwarding 127.0.0.1:{host_port} -> port 8000 of {NAME}" in made.stderr
    with socket.create_connection(("127.0.0.1", host_port), timeout=10):
        pass  # bound on this machine's loopback by ssh
    ok(sandbox.cai(*forward, "--stop", cwd=ws))

    # --- the agent commits; the work comes home by git, and only by git
    inside(
        sandbox,
        ws,
        "sh",
        "-c",
        "echo 'by the agent' > tracked.txt && "
        "git -c user.name=agent -c user.email=agent@example.invalid commit -qam 'agent commit'",
    )
    assert (ws / "tracked.txt").read_text() == "from the host\n"  # nothing synced back
    assert git(ws, env, "remote", "get-url", f"cai-{NAME}") == f"cai-{NAME}:{ws}"
    # OpenSSH reads ~/.ssh/config from the account's passwd home, not $HOME: in this
    # sandbox the user's config (with cai's Include line) is named explicitly.
    fetch_env = {**env, "GIT_SSH_COMMAND": f"ssh -F {sandbox.home / '.ssh' / 'config'}"}
    git(ws, fetch_env, "fetch", "-q", f"cai-{NAME}")
    assert git(ws, env, "log", "-1", "--format=%s", f"cai-{NAME}/main") == "agent commit"
    assert git(ws, env, "rev-parse", "main") == local_head  # the local branch untouched
    assert (ws / "tracked.txt").read_text() == "from the host\n"

    # --- sync push: a new local commit reaches the container
    (ws / "second.txt").write_text("second\n")
    git(ws, env, "add", "second.txt")
    git(ws, env, "commit", "-qm", "second host commit")
    ok(sandbox.cai("--context", "remote", "sync", "push", cwd=ws))
    after = inside(sandbox, ws, "git", "log", "-1", "--format=%s")
    assert after.stdout.strip() == "second host commit"
    # and a push that would lose the agent's unfetched commit is refused
    inside(
        sandbox,
        ws,
        "git",
        "-c",
        "user.name=agent",
        "-c",
        "user.email=agent@example.invalid",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "not home yet",
    )
    refused = sandbox.cai("--context", "remote", "sync", "push", cwd=ws)
    assert refused.returncode == 1, refused.stderr  # failed, not refused: exit 5 is ownership
    assert f"git fetch cai-{NAME}" in refused.stderr

    # --- a local container for another workspace of the same name: both engines listed
    other = sandbox.workspace("elsewhere/app")
    local = ok(sandbox.cai("run", "--detached", cwd=other, timeout=1200))
    listing = ok(sandbox.cai("list", "--all-contexts", "--json", cwd=ws)).json
    rows = {(c["context"], c["workspace"]): c for c in listing["containers"]}
    assert rows[("remote", str(ws))]["name"] == NAME
    local_row = rows[("default", str(other))]
    # the same generated name is taken by the remote one's SSH alias: the next one
    assert local_row["name"] == f"{NAME}-2", local.stderr
    text = ok(sandbox.cai("list", "--all-contexts", cwd=ws)).stdout.splitlines()
    assert text[0].split()[:2] == ["CONTEXT", "NAME"]
    assert any(line.split()[:2] == ["remote", NAME] for line in text)
    ok(sandbox.cai("stop", "--remove", "--force", cwd=other))
    # cleanup against the local engine leaves the remote container's SSH files alone
    cleanup = ok(sandbox.cai("ssh", "cleanup", "--dry-run", cwd=ws))
    assert NAME not in cleanup.stdout.split()

    # --- status names the context; export streams to the local disk
    status = ok(sandbox.cai("--context", "remote", "status", "--json", cwd=ws)).json
    assert (status["context"], status["container"]) == ("remote", NAME)
    archive = sandbox.root / "export.tgz"
    exported = ok(sandbox.cai("--context", "remote", "export", "--output", str(archive), cwd=ws))
    assert "of context 'remote'" in exported.stderr
    assert stat.S_IMODE(os.stat(archive).st_mode) == 0o600
    with tarfile.open(archive) as tar:
        assert tar.getmembers()  # the data volume's files, from the remote
    restored = ok(
        sandbox.cai("--context", "remote", "import", "--from", str(archive), "--force", cwd=ws)
    )
    assert "of context 'remote'" in restored.stderr

    # --- stop, then gc on the remote names the context and removes it
    ok(sandbox.cai("--context", "remote", "stop", "--force", cwd=ws))
    time.sleep(1.5)
    gc = ok(sandbox.cai("--context", "remote", "gc", "--age", "1s", "--force", "--json", cwd=ws))
    assert gc.json["context"] == "remote"
    assert remote_engine.docker("inspect", NAME).returncode != 0
    assert not (sandbox.home / ".ssh" / "containai.d" / f"{NAME}.conf").exists()
    # volumes are never removed, on the remote either: the agent's copy stays
    assert remote_engine.docker("volume", "inspect", f"{NAME}-ws").returncode == 0

    # --- the local engine was never asked to hold this workspace
    mine = docker(
        "ps", "-a", "--filter", f"label=containai.workspace={ws}", "--format", "{{.Names}}"
    )
    assert mine.stdout.strip() == ""


def _not_this_workspace(name: str, ws: Path) -> bool:
    """A local container of that name (another test's) that is not this workspace's."""
    proc = docker("inspect", "--format", '{{index .Config.Labels "containai.workspace"}}', name)
    return proc.stdout.strip() != str(ws)


def _time_each_call(sandbox: Sandbox) -> None:
    """Print how long each ``cai`` call took (``pytest -s``): the journey's costs."""
    plain = sandbox.cai

    def timed(*args: str, **kwargs: object) -> Result:
        started = time.monotonic()
        res = plain(*args, **kwargs)  # type: ignore[arg-type]
        print(f"{time.monotonic() - started:6.1f} s  cai {' '.join(args)[:70]}")
        return res

    sandbox.cai = timed  # type: ignore[method-assign]
