"""`cai setup` through the installed console script, for real (SPEC section 9).

The dedicated engine is machine-wide (root's second dockerd on
unix:///run/containai-docker.sock); the Docker context is per user, so every run
here uses a sandboxed HOME and DOCKER_CONFIG: the machine's own ~/.docker never
gets the 'containai-docker' context (which would switch every other test's cai to
the dedicated engine). The dedicated engine is left RUNNING afterwards, on purpose:
setup is idempotent, and later tests and CI may use it.

Checked: the context answers; runsc is registered on the dedicated engine (its
default runtime when runsc's statx works, see docs/isolation.md); the default
engine's runtimes, default runtime and daemon.json are unchanged; a second setup
changes and prints nothing; --dry-run prints one line per step and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Sandbox, docker

pytestmark = [pytest.mark.usefixtures("engine"), pytest.mark.timeout(1800)]

SOCKET = "unix:///run/containai-docker.sock"
CONFIG_DIR = Path("/etc/containai/docker")
STEPS = ("packages", "bridge", "firewall", "runsc", "config", "daemon", "context")
DRY_LINE = re.compile(r"^(change|ok) +(?P<step>[a-z]+) +\S.*$")


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("cai setup changes the machine and needs root")


def docker_config(sandbox: Sandbox) -> Path:
    path = sandbox.root / "docker-config"
    path.mkdir(exist_ok=True)
    return path


def default_engine() -> dict[str, object]:
    """What setup must leave alone: the default engine's runtimes and its daemon.json."""
    proc = docker("info", "--format", "{{json .}}")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    daemon_json = Path("/etc/docker/daemon.json")
    return {
        "runtimes": info.get("Runtimes"),
        "default": info.get("DefaultRuntime"),
        "root": info.get("DockerRootDir"),
        "daemon.json": daemon_json.read_bytes() if daemon_json.exists() else None,
    }


def machine_state() -> dict[str, object]:
    """The dedicated engine's files, daemon and network, to prove a run changed nothing."""
    files = {}
    for path in [
        *sorted(CONFIG_DIR.glob("*")),
        Path("/run/containai-docker.applied.json"),
        Path("/etc/systemd/system/containai-docker.service"),
    ]:
        if path.is_file():
            st = path.stat()
            files[str(path)] = (hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns)
    pidfile = Path("/run/containai-docker.pid")
    iptables = subprocess.run(
        ["iptables", "-w", "-S"], capture_output=True, text=True, check=False
    ).stdout
    return {
        "files": files,
        "pid": pidfile.read_text().strip() if pidfile.exists() else None,
        "bridge": subprocess.run(
            ["ip", "-4", "-o", "addr", "show", "dev", "cai0"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout,
        "chains": [ln for ln in iptables.splitlines() if "CONTAINAI" in ln],
    }


def dedicated(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
    env["DOCKER_CONFIG"] = str(config)
    return subprocess.run(
        ["docker", "--context", "containai-docker", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def expected_default_runtime() -> str:
    for path in (CONFIG_DIR / "runsc.json", Path("/etc/docker/containai-runsc.json")):
        if path.exists():
            record = json.loads(path.read_text())
            if not record.get("works"):
                return "runc"
            return "runc" if record.get("statx") == "broken" else "runsc"
    return "runsc"


def test_dry_run_prints_every_step_and_changes_nothing(sandbox: Sandbox) -> None:
    config = docker_config(sandbox)
    before = machine_state()
    res = sandbox.cai("setup", "--dry-run", env={"DOCKER_CONFIG": str(config)})
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    lines = res.stdout.splitlines()
    steps = []
    for line in lines:
        match = DRY_LINE.match(line)
        assert match, f"not a step line: {line!r}"
        steps.append(match["step"])
    assert [s for s in steps if s != "unit"] == list(STEPS)
    # The context would be created in the sandboxed docker config; nothing else is touched.
    context_line = next(ln for ln in lines if " context " in ln)
    assert context_line.startswith("change") and str(config) in context_line
    assert list(config.iterdir()) == []
    assert machine_state() == before


def test_setup_for_real(sandbox: Sandbox) -> None:
    needs_root()
    config = docker_config(sandbox)
    env = {"DOCKER_CONFIG": str(config)}
    before = default_engine()

    res = sandbox.cai("setup", env=env, timeout=1700)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout == ""
    assert all(line.startswith("cai: ") for line in res.stderr.splitlines()), res.stderr
    assert "containai-docker" in res.stderr  # the closing note names the context

    # The context exists in the sandboxed docker config only, and its engine answers.
    assert any((config / "contexts" / "meta").iterdir())
    info_proc = dedicated(config, "info", "--format", "{{json .}}")
    assert info_proc.returncode == 0, info_proc.stderr
    info = json.loads(info_proc.stdout)
    assert info["DockerRootDir"] == "/var/lib/containai-docker"
    runsc = info["Runtimes"].get("runsc")
    assert runsc is not None, info["Runtimes"]
    assert info["DefaultRuntime"] == expected_default_runtime()
    ctx = subprocess.run(
        ["docker", "context", "inspect", "containai-docker", "--format", "{{json .Endpoints}}"],
        env={**os.environ, "DOCKER_CONFIG": str(config)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(ctx.stdout)["docker"]["Host"] == SOCKET

    # The user's own engine and its configuration are unchanged.
    assert default_engine() == before

    # cai now selects the dedicated engine, and doctor says so.
    doc = json.loads(sandbox.cai("doctor", "--json", env=env).stdout)
    checks = {c["check"]: c for c in doc["checks"]}
    assert checks["engine"]["status"] == "OK"
    assert "containai-docker" in checks["context"]["detail"]
    assert checks["isolation"]["status"] == "OK"
    assert checks["isolation"]["detail"].startswith("runsc (gVisor)")

    # A second run changes nothing and says nothing (unless --verbose).
    state = machine_state()
    again = sandbox.cai("setup", env=env, timeout=600)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    verbose = sandbox.cai("setup", "--verbose", env=env, timeout=600)
    assert verbose.returncode == 0 and verbose.stdout == ""
    assert "nothing to change" in verbose.stderr
    assert all(": ok: " in ln or "nothing to change" in ln for ln in verbose.stderr.splitlines())
    assert machine_state() == state
    assert default_engine() == before

    # Left running for later tests and CI.
    assert dedicated(config, "version", "--format", "{{.Server.Version}}").returncode == 0


def test_setup_refuses_without_root(sandbox: Sandbox) -> None:
    if os.geteuid() != 0:
        res = sandbox.cai("setup", env={"DOCKER_CONFIG": str(docker_config(sandbox))})
        assert res.returncode == 1 and "sudo cai setup" in res.stderr
        return
    # As root: run as 'nobody' through setpriv when it is there.
    setpriv = Path("/usr/bin/setpriv")
    if not setpriv.exists():
        pytest.skip("setpriv is not installed")
    home = sandbox.root / "nobody-home"
    home.mkdir()
    os.chown(home, 65534, 65534)
    env = {**sandbox.env, "HOME": str(home), "DOCKER_CONFIG": str(home / ".docker")}
    from tests.conftest import CAI

    proc = subprocess.run(
        [
            str(setpriv),
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            CAI,
            "setup",
        ],
        env=env,
        cwd=str(home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "sudo cai setup" in proc.stderr
    assert not (home / ".docker").exists()


def test_restarting_the_dedicated_engine_leaves_the_default_engines_network(
    sandbox: Sandbox,
) -> None:
    """Regression: a second dockerd that restarts with address pools and a stale "bridge"
    network deletes `docker0` (the user's engine's bridge) unless live-restore is on."""
    needs_root()
    config = docker_config(sandbox)
    env = {"DOCKER_CONFIG": str(config)}
    assert sandbox.cai("setup", env=env, timeout=1700).returncode == 0
    pidfile = Path("/run/containai-docker.pid")
    pid = int(pidfile.read_text().strip())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    res = sandbox.cai("setup", env=env, timeout=1700)  # starts it again
    assert res.returncode == 0, res.stderr
    assert dedicated(config, "version", "--format", "{{.Server.Version}}").returncode == 0
    # The default engine can still network a container on its own bridge.
    run = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "true", "containai-base:bookworm"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
