"""Regression guard for the hot path (issue 7.3, DESIGN decision 2), not a timed test:
`cai exec` on a running container with a live control master must not import rich,
tomlkit, the lock adapter, dataclasses, subprocess or the engine adapter (it asks the engine
nothing), and must end as the `ssh` process itself (exec, not a child)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import CAI, Sandbox

pytestmark = pytest.mark.usefixtures("engine")

FORBIDDEN = (
    "rich",
    "tomlkit",
    "containai.adapters.locks",
    "dataclasses",
    "subprocess",
    "containai.adapters.engine",
    "containai.services.lifecycle",
    "containai.services.images",
)


def imported_modules(sandbox: Sandbox, ws: object, *argv: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", CAI, *argv],
        cwd=ws,
        env=sandbox.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def test_warm_exec_imports_nothing_heavy(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("hot", "main")
    assert sandbox.cai("run", "--detached", cwd=ws).returncode == 0
    assert sandbox.cai("exec", "--", "true", cwd=ws).returncode == 0  # master is warm
    names = imported_modules(sandbox, ws, "exec", "--", "true")
    assert "containai.adapters.ssh" in names  # it did take the fast path
    leaked = sorted(n for n in names if n.split(".")[0] in FORBIDDEN or n in FORBIDDEN)
    assert leaked == []


def test_cold_path_still_works_when_master_is_gone(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("cold", "main")
    assert sandbox.cai("run", "--detached", cwd=ws).returncode == 0
    subprocess.run(
        [
            "ssh",
            "-F",
            str(sandbox.home / ".ssh" / "containai.d" / "cold-main.conf"),
            "-O",
            "exit",
            "cai-cold-main",
        ],
        capture_output=True,
        check=False,
    )
    names = imported_modules(sandbox, ws, "exec", "--", "true")
    assert "containai.adapters.engine" in names  # no master: it asked the engine


LIST_FORBIDDEN = (
    "typing",  # with `re` and `enum`: ~10 ms of the ~25 ms cai list may add to docker ps
    "re",
    "enum",
    "json",  # containai.jsonfast uses the C accelerator directly
    "functools",
    "collections",
    "pathlib",
    "argparse",
    "subprocess",
    "tomllib",
    "tomlkit",
    "rich",
    "containai.adapters.locks",
    "dataclasses",
    "threading",
    "containai.adapters.config",
    "containai.services.status",
)


def test_list_json_imports_only_what_it_uses(sandbox: Sandbox) -> None:
    """`cai list --json` (issue 7: <= 3x one `docker ps`) skips argparse, typing, re,
    json, pathlib, the config parser (engine selection is cached) and subprocess
    (adapters/spawn.py)."""
    ws = sandbox.workspace("listed", "main")
    assert sandbox.cai("list", "--json", cwd=ws).returncode == 0  # selection now cached
    names = imported_modules(sandbox, ws, "list", "--json")
    assert "containai.services.inventory" in names  # it did list
    leaked = sorted(n for n in names if n.split(".")[0] in LIST_FORBIDDEN or n in LIST_FORBIDDEN)
    assert leaked == []
