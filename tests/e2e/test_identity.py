"""Workspace identity through the installed `cai run --dry-run --json` (SPEC section 3).

Engine-independent fields (container, workspace, branch, data_volume) must be right
whether or not an engine answers, so these run without requiring one.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import Sandbox, docker

PLAN_FIELDS = {  # SPEC's fields, plus agent and command (docs/decisions.md)
    "schema",
    "action",
    "container",
    "workspace",
    "branch",
    "data_volume",
    "image",
    "template",
    "runtime",
    "context",
    "ssh_port",
    "ssh_alias",
    "agent",
    "command",
}


def git(ws: Path, *args: str, env: dict[str, str]) -> None:
    subprocess.run(["git", "-C", str(ws), *args], check=True, capture_output=True, env=env)


def plan(box: Sandbox, cwd: Path, *extra: str) -> dict:  # type: ignore[type-arg]
    res = box.cai("run", "--dry-run", "--json", *extra, cwd=cwd)
    assert res.returncode == 0, res.stderr
    doc = res.json
    assert set(doc) == PLAN_FIELDS
    assert doc["schema"] == 1
    return doc


@pytest.mark.parametrize(
    ("repo", "branch", "expected"),
    [
        ("myapp", "main", "myapp-main"),
        ("my_app", "feature/oauth", "myapp-oauth"),
        ("Café", "main", "caf-main"),
        ("a.b.c", "release/1.2", "abc-12"),
        ("---", "___", "repo-branch"),
        ("x" * 40, "y" * 40, "xxxxxxxxxxx-yyyyyyyyyyyy"),
        ("averyveryverylongrepositoryname", "fix", "averyveryverylongrep-fix"),
        ("app", "user/" + "z" * 30, "app-zzzzzzzzzzzzzzzzzzzz"),
        ("with space", "feature/a-b--c", "withspace-a-b-c"),
    ],
)
def test_names(sandbox: Sandbox, repo: str, branch: str, expected: str) -> None:
    ws = sandbox.workspace(repo, branch)
    doc = plan(sandbox, ws)
    assert doc["container"] == expected
    assert len(doc["container"]) <= 24
    assert doc["workspace"] == str(ws.resolve())
    assert doc["branch"] == branch
    assert doc["ssh_alias"] == f"cai-{expected}"


def test_subdirectory_reaches_the_same_container(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("proj", "dev")
    sub = ws / "a" / "b"
    sub.mkdir(parents=True)
    assert plan(sandbox, sub)["container"] == plan(sandbox, ws)["container"] == "proj-dev"
    assert plan(sandbox, sub)["workspace"] == str(ws)


def test_outside_git_is_nogit(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("plain", branch=None)
    doc = plan(sandbox, ws)
    assert (doc["container"], doc["branch"]) == ("plain-nogit", "nogit")


def test_detached_head(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("det", "main")
    git(ws, "commit", "-q", "--allow-empty", "-m", "one", env=sandbox.env)
    git(ws, "checkout", "-q", "--detach", env=sandbox.env)
    doc = plan(sandbox, ws)
    assert (doc["container"], doc["branch"]) == ("det-detached", "detached")


def test_worktree_is_its_own_workspace(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("main-repo", "main")
    git(ws, "commit", "-q", "--allow-empty", "-m", "one", env=sandbox.env)
    wt = sandbox.root / "ws" / "wt-dir"
    git(ws, "worktree", "add", "-q", "-b", "topic/x", str(wt), env=sandbox.env)
    doc = plan(sandbox, wt)
    assert doc["workspace"] == str(wt)
    assert doc["branch"] == "topic/x"
    assert doc["container"] == "wt-dir-x"


def test_symlinked_path_resolves(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("real", "main")
    link = sandbox.root / "link"
    link.symlink_to(ws)
    assert plan(sandbox, link)["workspace"] == str(ws)
    assert plan(sandbox, sandbox.root, "-w", str(link))["workspace"] == str(ws)


def test_quotes_in_path(sandbox: Sandbox) -> None:
    ws = sandbox.workspace('it\'s "q"', "main")
    doc = plan(sandbox, ws)
    assert doc["workspace"] == str(ws) and doc["container"] == "itsq-main"


def test_data_volume_resolution(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("vol", "main")
    env_volume = sandbox.env["CONTAINAI_DATA_VOLUME"]
    assert plan(sandbox, ws)["data_volume"] == env_volume
    assert plan(sandbox, ws, "--data-volume", "explicit")["data_volume"] == "explicit"
    assert plan(sandbox, ws, "--reset")["data_volume"] is None


def test_plan_without_engine(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("noeng", "main")
    res = sandbox.cai(
        "run", "--dry-run", "--json", cwd=ws, env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    )
    assert res.returncode == 0, res.stderr
    doc = res.json
    assert doc["container"] == "noeng-main"
    assert doc["workspace"] == str(ws)
    assert doc["data_volume"] == sandbox.env["CONTAINAI_DATA_VOLUME"]
    assert doc["action"] is None and doc["ssh_port"] is None


def test_plan_text_is_key_value_lines(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("txt", "main")
    res = sandbox.cai("--dry-run", cwd=ws)
    assert res.returncode == 0, res.stderr
    lines = dict(line.split("=", 1) for line in res.stdout.splitlines())
    assert lines["CONTAINER"] == "txt-main"
    assert lines["WORKSPACE"] == str(ws)
    assert set(lines) == {k.upper() for k in PLAN_FIELDS - {"schema"}}


def test_missing_workspace_is_exit_4(sandbox: Sandbox) -> None:
    res = sandbox.cai("run", "--dry-run", "-w", str(sandbox.root / "nope"))
    assert res.returncode == 4 and "nope" in res.stderr and "Traceback" not in res.stderr


def test_plan_shows_the_agent_command(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("agentplan", "main")
    doc = plan(sandbox, ws, "claude", "--", "--print", "hi")
    assert doc["agent"] == "claude"
    assert doc["command"] == ["claude", "--dangerously-skip-permissions", "--print", "hi"]
    res = sandbox.cai("exec", "--dry-run", "--json", "--", "make", "test", cwd=ws)
    assert res.json["command"] == ["make", "test"] and res.json["agent"] is None
    res = sandbox.cai("run", "--dry-run", "--json", "nosuchagent", cwd=ws)
    assert res.returncode == 4 and "nosuchagent" in res.stderr


def test_no_container_is_made_for_a_directory_holding_home(sandbox: Sandbox) -> None:
    """The sandbox root holds HOME: cai refuses it as a workspace (it would mount ~/.ssh),
    with or without --container, and makes nothing; commands that only read settings
    still work there."""
    name = f"holdshome-{sandbox.root.name[-6:]}".lower().replace("_", "-")
    for extra in ([], ["--container", name]):
        res = sandbox.cai("run", "--detached", *extra, cwd=sandbox.root)
        assert res.returncode == 2, res.stderr
        assert "contains your home directory" in res.stderr
    assert docker("inspect", name).returncode != 0
    assert sandbox.cai("config", "list", cwd=sandbox.root).returncode == 0


@pytest.mark.usefixtures("engine")
def test_status_shows_the_branch_at_creation_next_to_the_current_one(sandbox: Sandbox) -> None:
    """One container per workspace directory (SPEC 3): after `git switch -c`, cai keeps
    the container and status says which branch it was made on and which is current."""
    ws = sandbox.workspace("brsw", "main")
    git(ws, "commit", "-q", "--allow-empty", "-m", "one", env=sandbox.env)
    made = sandbox.cai("run", "--detached", cwd=ws)
    assert made.returncode == 0, made.stderr
    doc = sandbox.cai("status", "--json", cwd=ws).json
    assert (doc["branch"], doc["current_branch"]) == ("main", "main")
    git(ws, "switch", "-q", "-c", "fix/typo", env=sandbox.env)
    doc = sandbox.cai("status", "--json", cwd=ws).json
    assert (doc["branch"], doc["current_branch"]) == ("main", "fix/typo")
    text = sandbox.cai("status", cwd=ws).stdout
    assert "Branch: main (when created), now fix/typo" in text
