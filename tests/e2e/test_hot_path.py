"""Regression guard for the hot path (issue 7.3, issue 19, DESIGN decision 2), not a
timed test: `cai exec` on a running container with a live control master is answered by
`cli/hot.py` before the rest of cai is imported (no argv parser, no `re`, `typing`,
`pathlib` or `shlex`, let alone rich, tomlkit, subprocess or the engine adapter: it asks
the engine nothing), and ends as the `ssh` process itself (exec, not a child).

The launcher measured is the repository's `bin/cai` (what an install puts on PATH), run
by this Python."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, Sandbox

LAUNCHER = str(REPO / "bin" / "cai")

pytestmark = pytest.mark.usefixtures("engine")

# All of cai that a warm `cai exec` may import (cli/hot.py and what it reads with).
HOT_MODULES = {
    "containai",
    "containai.cli",
    "containai.cli.hot",
    "containai.adapters",
    "containai.adapters.hotcache",
    "containai.paths",
    "containai.record",
    "containai.domain",
    "containai.domain.workspace_rules",
    "containai.lazy",  # sha256 of a control path too long for a socket (this test's)
}
# Nor may it import these (each costs milliseconds; the hot path needs none of them).
HOT_STDLIB_FORBIDDEN = ("re", "typing", "enum", "pathlib", "shlex", "argparse", "socket")

FORBIDDEN = (
    "rich",
    "tomlkit",
    "containai.adapters.locks",
    "dataclasses",
    "subprocess",
    "containai.adapters.engine",
    "containai.services.lifecycle",
    "containai.services.creation",
    "containai.services.images",
)


def imported_modules(sandbox: Sandbox, ws: object, *argv: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", LAUNCHER, *argv],
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
    assert "containai.cli.hot" in names  # it did take the hot path
    leaked = sorted(n for n in names if n.split(".")[0] in FORBIDDEN or n in FORBIDDEN)
    assert leaked == []
    ours = sorted(n for n in names if n.split(".")[0] == "containai")
    assert set(ours) <= HOT_MODULES, ours
    assert sorted(n for n in names if n in HOT_STDLIB_FORBIDDEN) == []
    # without `--`, and from a subdirectory: the same way
    (ws / "sub").mkdir()
    names = imported_modules(sandbox, ws / "sub", "exec", "true")
    assert "containai.cli.main" not in names
    assert "containai.cli.hot" in names


def test_warm_exec_becomes_ssh(sandbox: Sandbox) -> None:
    """The `cai exec` process is ssh itself (signals, the TTY and the exit code are its)."""
    ws = sandbox.workspace("becomes", "main")
    assert sandbox.cai("run", "--detached", cwd=ws).returncode == 0
    assert sandbox.cai("exec", "--", "true", cwd=ws).returncode == 0  # master is warm
    proc = subprocess.Popen(
        [sys.executable, LAUNCHER, "exec", "--", "sh", "-c", "sleep 3; exit 7"],
        cwd=ws,
        env=sandbox.env,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        exe = ""
        while time.monotonic() < deadline and proc.poll() is None:
            exe = os.path.basename(os.readlink(f"/proc/{proc.pid}/exe"))
            if exe == "ssh":
                break
            time.sleep(0.02)
        assert exe == "ssh"
        assert proc.wait(timeout=30) == 7  # the remote command's code is cai's
    finally:
        proc.kill()
        proc.wait()


def test_hot_and_full_path_run_the_same_command(sandbox: Sandbox) -> None:
    """Quoting, the working directory and the exit code agree whichever way cai goes
    (CONTAINAI_VERBOSE=1 sends `cai exec` down the full path)."""
    ws = sandbox.workspace("sameway", "main")
    (ws / "dir with 'quote'").mkdir()
    assert sandbox.cai("run", "--detached", cwd=ws).returncode == 0
    argv = ["exec", "--", "sh", "-c", 'printf "%s|" "$PWD" "$1" "$#"; exit 3', "x", "a 'b' $c"]
    outs = []
    for verbose in ("", "1"):
        proc = subprocess.run(
            [sys.executable, LAUNCHER, *argv],
            cwd=ws / "dir with 'quote'",
            env={**sandbox.env, "CONTAINAI_VERBOSE": verbose},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 3, proc.stderr
        outs.append(proc.stdout)
    assert outs[0] == outs[1] == f"{ws}|a 'b' $c|1|"
    # the sessions' locale comes from the locale archive (one file, not ~25 lookups per
    # program under gVisor), readable by the agent
    listed = sandbox.cai("exec", "--", "localedef", "--list-archive", cwd=ws)
    assert listed.returncode == 0, listed.stderr
    assert "C.utf8" in listed.stdout.split()


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
    assert "containai.cli.main" in names  # the hot path stood aside


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
