"""Shared fixtures: a sandboxed HOME, the installed console script, the real engine.

Tests that need the engine fail (never skip) when ``CI=true`` and none answers.
Everything a test creates through cai lives under pytest's tmp root and is swept
by label (``containai.workspace`` under that root) and by volume name prefix.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
CAI = str(VENV_BIN / "cai") if (VENV_BIN / "cai").exists() else (shutil.which("cai") or "cai")
TEST_VOLUME_PREFIX = "cai-test-"


def engine_answers() -> bool:
    try:
        proc = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and bool(proc.stdout.strip())


_ENGINE: bool | None = None


def require_engine() -> None:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = engine_answers()
    if not _ENGINE:
        msg = "no Docker engine answers (run scripts/ensure-engine)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg + " -- engine tests never skip in CI")
        pytest.skip(msg)


@pytest.fixture
def engine() -> None:
    require_engine()


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict:  # type: ignore[type-arg]
        return json.loads(self.stdout)


@dataclass
class Sandbox:
    """A sandboxed HOME for one test, with a helper to run the installed ``cai``."""

    root: Path
    home: Path
    env: dict[str, str] = field(default_factory=dict)

    def workspace(self, name: str = "app", branch: str | None = "main") -> Path:
        ws = self.root / "ws" / name
        ws.mkdir(parents=True, exist_ok=True)
        if branch is not None:
            subprocess.run(
                ["git", "init", "-q", "-b", branch, str(ws)],
                check=True,
                env={**os.environ, **self.env},
            )
        return ws

    def cai(
        self,
        *args: str,
        cwd: Path | None = None,
        input: str | None = None,
        timeout: float = 600,
        env: Mapping[str, str] | None = None,
    ) -> Result:
        proc = subprocess.run(
            [CAI, *args],
            cwd=cwd or self.root,
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**self.env, **(env or {})},
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def ssh_config(self) -> Path:
        return self.home / ".ssh" / "config"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "CONTAINAI_", "CAI_"))}
    env.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.invalid",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.invalid",
    )
    # Docker's client config follows HOME too: in the sandbox only the `default` context
    # exists, so cai and the tests' own `docker` calls reach the same engine, whatever
    # contexts (e.g. `containai-docker` from `cai setup`) the machine's user has.
    env.pop("DOCKER_CONFIG", None)
    env.pop("DOCKER_CONTEXT", None)
    # A volume of the test's own instead of the shared default 'containai-data'.
    env["CONTAINAI_DATA_VOLUME"] = new_volume_name()
    box = Sandbox(tmp_path, home, env)
    yield box
    sweep(tmp_path, extra_volumes=[env["CONTAINAI_DATA_VOLUME"]])


def docker(
    *args: str, check: bool = False, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, input=input, timeout=300
    )


def sweep(root: Path, extra_volumes: list[str] | None = None) -> None:
    """Remove every container and volume whose workspace label lies under ``root``."""
    if not shutil.which("docker") or not (_ENGINE or engine_answers()):
        return
    rows = docker(
        "ps",
        "-a",
        "--filter",
        "label=containai.managed",
        "--format",
        '{{.Names}}\t{{.Label "containai.workspace"}}\t{{.Label "containai.data-volume"}}',
    )
    names: list[str] = []
    volumes: set[str] = set(extra_volumes or [])
    for line in rows.stdout.splitlines():
        name, _, rest = line.partition("\t")
        ws, _, vol = rest.partition("\t")
        if ws.startswith(str(root)):
            names.append(name)
            if vol.startswith(TEST_VOLUME_PREFIX):
                volumes.add(vol)
    gateways = docker(
        "ps",
        "-a",
        "--filter",
        "label=containai.gateway-of",
        "--format",
        '{{.Names}}\t{{.Label "containai.gateway-workspace"}}',
    )
    for line in gateways.stdout.splitlines():
        name, _, ws = line.partition("\t")
        if ws.startswith(str(root)):
            names.append(name)
    if names:
        docker("rm", "-f", *names)
    nets = docker(
        "network",
        "ls",
        "--filter",
        "label=containai.network-of",
        "--format",
        '{{.Name}}\t{{.Label "containai.workspace"}}',
    )
    for line in nets.stdout.splitlines():
        name, _, ws = line.partition("\t")
        if ws.startswith(str(root)):
            docker("network", "rm", name)
    vols = docker(
        "volume",
        "ls",
        "--filter",
        "label=containai.workspace",
        "--format",
        '{{.Name}}\t{{.Label "containai.workspace"}}',
    )
    for line in vols.stdout.splitlines():
        name, _, ws = line.partition("\t")
        if ws.startswith(str(root)):
            volumes.add(name)
    if volumes:
        docker("volume", "rm", "-f", *sorted(volumes))


def new_volume_name() -> str:
    return TEST_VOLUME_PREFIX + uuid.uuid4().hex[:10]
