"""Agents and isolation (issue 8): a new workspace runs under gVisor when the engine has
it, and the agent CLI in the default image answers."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Sandbox, docker

pytestmark = pytest.mark.usefixtures("engine")


def engine_runtimes() -> set[str]:
    return set(json.loads(docker("info", "--format", "{{json .Runtimes}}").stdout or "{}"))


def test_gvisor_by_default_and_claude_answers(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("agents", "main")
    res = sandbox.cai("run", "--detached", cwd=ws)
    assert res.returncode == 0, res.stderr
    runtime = docker(
        "inspect", "-f", '{{index .Config.Labels "containai.runtime"}}', "agents-main"
    ).stdout.strip()
    expected = "runsc" if "runsc" in engine_runtimes() else "runc"
    assert runtime == expected
    if runtime == "runsc":
        kernel = sandbox.cai("exec", "--", "dmesg", cwd=ws)
        assert "gVisor" in kernel.stdout, kernel.stdout + kernel.stderr
        # coreutils work under bookworm's runsc thanks to the statx shim
        assert sandbox.cai("exec", "--", "ls", "-l", "/", cwd=ws).returncode == 0
    version = sandbox.cai("exec", "--", "claude", "--version", cwd=ws)
    assert version.returncode == 0, version.stderr
    assert "Claude Code" in version.stdout


def test_missing_agent_is_a_clear_error(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("noagent", "main")
    assert sandbox.cai("run", "--detached", cwd=ws).returncode == 0
    res = sandbox.cai("run", "copilot", "--", "--version", cwd=ws)
    assert res.returncode == 127
    assert "copilot" in res.stderr and "cai config set agents" in res.stderr
    assert "template 'default'" in res.stderr


def test_explicit_runtime_is_honoured_or_refused(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("rt", "main")
    res = sandbox.cai("run", "--detached", "--runtime", "runc", cwd=ws)
    assert res.returncode == 0, res.stderr
    assert docker("inspect", "-f", "{{.HostConfig.Runtime}}", "rt-main").stdout.strip() == "runc"
    ws2 = sandbox.workspace("rt2", "main")
    res = sandbox.cai("run", "--detached", "--runtime", "sysbox-runc", cwd=ws2)
    if "sysbox-runc" not in engine_runtimes():
        assert res.returncode == 1 and "sysbox-runc" in res.stderr
