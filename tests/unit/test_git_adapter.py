"""adapters/git.py: the workspace root and branch, read from the files git keeps, on
real repositories made by ``git`` under tmp_path (the git guard has its own tests in
test_host_safety.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from containai.adapters import git
from containai.adapters.git import DETACHED, NOGIT

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.org",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.org",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def clean_env(**more: str) -> dict[str, str]:
    """The environment without any GIT_DIR/GIT_WORK_TREE of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return {**env, **GIT_ENV, **more}


def run_git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=clean_env(), capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    top = (tmp_path / "repo").resolve()
    top.mkdir()
    run_git(top, "init", "-q", "-b", "main")
    (top / "src" / "deep").mkdir(parents=True)
    (top / "README").write_text("r\n")
    run_git(top, "add", "README")
    run_git(top, "commit", "-q", "-m", "first")
    return top


def resolve(start: Path, env: Mapping[str, str] | None = None) -> tuple[Path, str]:
    return git.resolve_workspace(start, clean_env() if env is None else env)


def test_top_level_and_branch_from_a_nested_directory(repo: Path) -> None:
    assert git.find_git_root(repo / "src" / "deep") == (repo, repo / ".git")
    assert resolve(repo / "src" / "deep") == (repo, "main")
    assert git.branch_of(repo / "src", clean_env()) == "main"


def test_outside_git_is_nogit(tmp_path: Path) -> None:
    plain = (tmp_path / "plain").resolve()
    plain.mkdir()
    assert git.find_git_root(plain) is None
    assert resolve(plain) == (plain, NOGIT)


def test_unborn_branch_is_read_from_head_exactly(tmp_path: Path) -> None:
    top = (tmp_path / "fresh").resolve()
    top.mkdir()
    run_git(top, "init", "-q", "-b", "feature/one")
    assert resolve(top) == (top, "feature/one")


def test_detached_head(repo: Path) -> None:
    run_git(repo, "checkout", "-q", "--detach")
    assert git.branch_from_head(repo / ".git") == DETACHED
    assert resolve(repo) == (repo, DETACHED)


def test_a_linked_worktree_is_its_own_workspace_with_its_own_branch(
    repo: Path, tmp_path: Path
) -> None:
    linked = (tmp_path / "linked").resolve()
    run_git(repo, "worktree", "add", "-q", "-b", "side", str(linked))
    assert git.find_git_root(linked) == (linked, repo / ".git" / "worktrees" / "linked")
    assert resolve(linked) == (linked, "side")
    assert resolve(repo) == (repo, "main")


def test_a_relative_gitdir_file_is_resolved_from_its_directory(repo: Path, tmp_path: Path) -> None:
    work = (tmp_path / "work").resolve()
    work.mkdir()
    (work / ".git").write_text(f"gitdir: {os.path.relpath(repo / '.git', work)}\n")
    assert git.find_git_root(work) == (work, work / os.path.relpath(repo / ".git", work))
    assert resolve(work)[1] == "main"


def test_a_git_file_that_is_no_gitdir_pointer_is_passed_over(repo: Path) -> None:
    inner = repo / "src"
    (inner / ".git").write_text("not a pointer\n")
    assert git.find_git_root(inner / "deep") == (repo, repo / ".git")


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        ("ref: refs/heads/main\n", "main"),
        ("ref: refs/heads/feature/x\n", "feature/x"),
        ("ref:refs/heads/tight\n", "tight"),
        ("0123456789abcdef0123456789abcdef01234567\n", DETACHED),
        ("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n", DETACHED),
        ("ref: refs/remotes/origin/main\n", None),  # not exact from files: git decides
        ("0123456789ABCDEF0123456789abcdef01234567\n", None),
        ("garbage\n", None),
    ],
)
def test_branch_from_head(tmp_path: Path, head: str, expected: str | None) -> None:
    (tmp_path / "HEAD").write_text(head)
    assert git.branch_from_head(tmp_path) == expected


def test_branch_from_head_without_a_readable_head(tmp_path: Path) -> None:
    assert git.branch_from_head(tmp_path) is None


def test_a_head_the_files_cannot_answer_is_asked_of_git(repo: Path) -> None:
    # A symbolic ref to something that is not a branch: files cannot say, git can.
    (repo / ".git" / "HEAD").write_text("ref: refs/tags/nothing\n")
    assert resolve(repo) == (repo, DETACHED)  # git fails on it: detached, never an error


def test_git_dir_in_the_environment_is_answered_by_git(repo: Path, tmp_path: Path) -> None:
    elsewhere = (tmp_path / "elsewhere").resolve()
    elsewhere.mkdir()
    env = clean_env(GIT_DIR=str(repo / ".git"), GIT_WORK_TREE=str(repo))
    assert resolve(elsewhere, env) == (repo, "main")
    broken = clean_env(GIT_DIR=str(tmp_path / "no-such-git-dir"))
    assert resolve(elsewhere, broken) == (elsewhere, NOGIT)
