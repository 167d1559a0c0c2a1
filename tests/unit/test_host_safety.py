"""The pure rules of domain/host_safety.py and the git guard's paths (adapters/git.py,
file reads only): who the agent is, where its state lives, what is mounted read-only."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from containai.adapters.git import guard_paths
from containai.domain.host_safety import UNPRIVILEGED, GitGuard, agent_ids, state_dir

ids = st.integers(min_value=0, max_value=70000)


@given(ids, ids, st.none() | st.tuples(ids, ids), st.tuples(st.none() | ids, st.none() | ids))
def test_the_agent_is_never_uid_or_gid_0(
    uid: int, gid: int, owner: tuple[int, int] | None, sudo: tuple[int | None, int | None]
) -> None:
    got = agent_ids((uid, gid), owner, sudo)
    assert 0 not in got
    if uid != 0:
        assert got[0] == uid  # a normal caller's files stay theirs


def test_root_caller_prefers_owner_then_sudo_then_unprivileged() -> None:
    assert agent_ids((0, 0), (1000, 1000), (1001, 1001)) == (1000, 1000)
    assert agent_ids((0, 0), (0, 0), (1001, 1002)) == (1001, 1002)
    assert agent_ids((0, 0), (0, 0), (1001, None)) == (1001, 1001)
    assert agent_ids((0, 0), (0, 0), (0, 0)) == (UNPRIVILEGED, UNPRIVILEGED)
    assert agent_ids((0, 0), None) == (UNPRIVILEGED, UNPRIVILEGED)
    assert agent_ids((0, 0), (1000, 0)) == (1000, 1000)  # never group 0
    assert agent_ids((1000, 0), None) == (1000, 1000)


def test_state_dir_never_takes_another_uids_home() -> None:
    assert state_dir(1000, None) == "home"
    assert state_dir(1000, 1000) == "home"
    assert state_dir(1000, 0) == "home"  # root's (an import by root) is adopted
    assert state_dir(1000, 1001) == "home-1000"


def test_config_guard_can_be_lifted_alone() -> None:
    guard = GitGuard(shared=("/r/.git",), readonly=("/r/.git/hooks",), config=("/r/.git/config",))
    assert guard.mounts() == [
        ("/r/.git", False),
        ("/r/.git/config", True),
        ("/r/.git/hooks", True),
    ]
    assert guard.mounts(config_writable=True) == [("/r/.git", False), ("/r/.git/hooks", True)]


def _git(*args: str, cwd: Path) -> None:
    env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(cwd),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x",
    }
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    ws = tmp_path / "main"
    ws.mkdir()
    _git("init", "-q", "-b", "main", cwd=ws)
    (ws / "f").write_text("f")
    _git("add", "f", cwd=ws)
    _git("commit", "-qm", "f", cwd=ws)
    return ws


def test_plain_repository(repo: Path) -> None:
    hooks = repo / ".git" / "hooks"
    for sample in hooks.iterdir():
        sample.unlink()
    hooks.rmdir()
    guard = guard_paths(repo)
    git = repo / ".git"
    assert (git / "hooks").is_dir()  # created so that it cannot be created inside
    assert guard.shared == ()
    assert guard.readonly == (str(git / "hooks"),)
    assert guard.config == (str(git / "config"),)


def test_not_a_repository(tmp_path: Path) -> None:
    assert guard_paths(tmp_path) == GitGuard()


def test_worktree_outside_mounts_the_common_dir_and_guards_its_pointers(
    repo: Path, tmp_path: Path
) -> None:
    wt = tmp_path / "wt"
    _git("worktree", "add", "-q", str(wt), "-b", "feat", cwd=repo)
    _git("config", "extensions.worktreeConfig", "true", cwd=repo)
    guard = guard_paths(wt)
    common = repo / ".git"
    assert guard.shared == (str(common),)
    assert str(wt / ".git") in guard.readonly
    assert str(common / "hooks") in guard.readonly
    assert str(common / "worktrees" / "wt" / "commondir") in guard.readonly
    assert str(common / "config") in guard.config
    # worktreeConfig on: the per-worktree config files exist and are guarded
    assert str(common / "worktrees" / "wt" / "config.worktree") in guard.config
    assert (common / "config.worktree").is_file()


def test_submodule_git_dirs_are_guarded(repo: Path, tmp_path: Path) -> None:
    sub = tmp_path / "subsrc"
    sub.mkdir()
    _git("init", "-q", "-b", "main", cwd=sub)
    (sub / "s").write_text("s")
    _git("add", "s", cwd=sub)
    _git("commit", "-qm", "s", cwd=sub)
    _git("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub), "lib/s", cwd=repo)
    guard = guard_paths(repo)
    module = repo / ".git" / "modules" / "lib" / "s"
    assert str(module / "hooks") in guard.readonly
    assert str(module / "config") in guard.config
    assert str(repo / "lib" / "s" / ".git") in guard.readonly
