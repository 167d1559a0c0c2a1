"""`cai doctor` through the installed console script on this machine (SPEC section 13):
every check present, exit 0 on a working machine, the JSON shape; an engine that does
not answer is a FAIL with exit 1 and the other checks still run; a dedicated context
whose engine is down points at `cai setup`. Doctor changes nothing in the sandbox."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Sandbox

pytestmark = [pytest.mark.usefixtures("engine"), pytest.mark.timeout(120)]

TITLES = {
    "engine": "Engine",
    "context": "Context",
    "isolation": "Isolation",
    "base-image": "Base image",
    "ssh-client": "OpenSSH client",
    "user-key": "User key",
    "ssh-include": "SSH Include",
    "ports": "SSH ports",
    "disk": "Disk space",
    "network": "Network",
}
STATUS_LINE = re.compile(
    r"^(?P<title>\S.*?)  +(?P<detail>.*?)  +\[(?P<status>OK|WARN|FAIL|SKIP)\]$"
)


def parse(stdout: str) -> dict[str, tuple[str, str, str | None]]:
    """title -> (status, detail, fix) from the text output."""
    checks: dict[str, tuple[str, str, str | None]] = {}
    last: str | None = None
    for line in stdout.splitlines():
        if line.lstrip().startswith("fix: ") and line.startswith(" "):
            assert last is not None, line
            status, detail, _ = checks[last]
            checks[last] = (status, detail, line.strip().removeprefix("fix: "))
            continue
        match = STATUS_LINE.match(line)
        assert match, f"not a check line: {line!r}"
        title = next(t for t in TITLES.values() if match["title"].startswith(t))
        checks[title] = (match["status"], match["detail"], None)
        last = title
    return checks


def empty_docker_config(sandbox: Sandbox) -> Path:
    path = sandbox.root / "docker-config"
    path.mkdir(exist_ok=True)
    return path


def fake_context(config: Path, name: str, host: str) -> None:
    subprocess.run(
        ["docker", "context", "create", name, "--docker", f"host={host}"],
        env={"DOCKER_CONFIG": str(config), "PATH": "/usr/local/bin:/usr/bin:/bin"},
        check=True,
        capture_output=True,
    )


def test_doctor_on_this_machine(sandbox: Sandbox) -> None:
    res = sandbox.cai("doctor")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stderr == ""
    checks = parse(res.stdout)
    assert set(checks) == set(TITLES.values())
    assert list(checks) == list(TITLES.values())  # in SPEC order
    assert checks["Engine"][0] == "OK" and re.search(r"Docker \d+\.\d+", checks["Engine"][1])
    assert checks["Isolation"][0] in ("OK", "WARN")
    assert re.match(r"OpenSSH_\d", checks["OpenSSH client"][1])
    # A fresh HOME: no key yet, no ~/.ssh/config; doctor says so and creates neither.
    assert checks["User key"][0] == "WARN"
    assert checks["User key"][2] is not None and "created on first use" in checks["User key"][2]
    assert checks["SSH Include"][0] == "WARN"
    assert not (sandbox.home / ".config" / "containai" / "keys").exists()
    assert not (sandbox.home / ".ssh").exists()
    assert re.match(r"\d+ of 200 free in 2300-2499", checks["SSH ports"][1])
    # Every non-OK line that has a fix shows it indented under it.
    for status, _detail, fix in checks.values():
        if status == "OK":
            assert fix is None


def test_doctor_json(sandbox: Sandbox) -> None:
    res = sandbox.cai("doctor", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["schema"] == 1 and doc["ok"] is True
    assert [c["check"] for c in doc["checks"]] == list(TITLES)
    for c in doc["checks"]:
        assert set(c) == {"check", "status", "detail", "fix"}
        assert c["status"] in ("OK", "WARN", "FAIL", "SKIP")
        assert isinstance(c["detail"], str) and c["detail"]
    text = parse(sandbox.cai("doctor").stdout)
    for c in doc["checks"]:
        assert text[TITLES[c["check"]]][0] == c["status"]


def test_doctor_engine_down_fails_and_still_checks_the_rest(sandbox: Sandbox) -> None:
    env = {
        "DOCKER_HOST": "unix:///nonexistent.sock",
        "DOCKER_CONFIG": str(empty_docker_config(sandbox)),
    }
    res = sandbox.cai("doctor", env=env)
    assert res.returncode == 1, res.stdout + res.stderr
    checks = parse(res.stdout)
    assert set(checks) == set(TITLES.values())
    status, detail, fix = checks["Engine"]
    assert status == "FAIL" and "unix:///nonexistent.sock" in detail
    assert fix is not None and "scripts/ensure-engine" in fix and "cai setup" in fix
    assert checks["Isolation"][0] == checks["Base image"][0] == checks["Disk space"][0] == "SKIP"
    assert checks["OpenSSH client"][0] == "OK"
    assert checks["SSH ports"][0] == "OK"

    doc = json.loads(sandbox.cai("doctor", "--json", env=env).stdout)
    assert doc["ok"] is False
    assert doc["checks"][0] == {
        "check": "engine",
        "status": "FAIL",
        "detail": detail,
        "fix": fix,
    }


def test_doctor_dedicated_context_down(sandbox: Sandbox) -> None:
    """A 'containai-docker' context whose engine does not answer (a socket that is not
    there, in a sandboxed docker config): selected -> FAIL naming `cai setup`; not
    selected -> WARN on the context line, and exit 0."""
    config = empty_docker_config(sandbox)
    fake_context(config, "containai-docker", f"unix://{sandbox.root}/no-such.sock")
    env = {"DOCKER_CONFIG": str(config)}
    res = sandbox.cai("doctor", env=env)
    assert res.returncode == 1
    checks = parse(res.stdout)
    assert checks["Engine"][0] == "FAIL" and "containai-docker" in checks["Engine"][1]
    assert "sudo cai setup" in (checks["Engine"][2] or "")
    assert checks["Context"][1].startswith("containai-docker (the dedicated engine")

    res = sandbox.cai("doctor", "--context", "default", env=env)
    assert res.returncode == 0, res.stdout
    checks = parse(res.stdout)
    assert checks["Engine"][0] == "OK"
    status, detail, fix = checks["Context"]
    assert status == "WARN" and "does not answer" in detail
    assert fix is not None and "cai setup" in fix


def test_doctor_unknown_context(sandbox: Sandbox) -> None:
    res = sandbox.cai("doctor", "--context", "no-such-context-here")
    assert res.returncode == 1
    checks = parse(res.stdout)
    assert checks["Context"][0] == "FAIL" and "no-such-context-here" in checks["Context"][1]
    assert checks["Engine"][0] == "SKIP"


def test_doctor_changes_nothing(sandbox: Sandbox) -> None:
    def snapshot() -> dict[str, str]:
        return {
            str(p.relative_to(sandbox.root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(sandbox.root.rglob("*"))
            if p.is_file()
        }

    before = snapshot()
    assert sandbox.cai("doctor").returncode == 0
    assert sandbox.cai("doctor", "--json").returncode == 0
    assert snapshot() == before
