"""Workspace root and branch, read from the files git keeps (no fork on the hot path).

Falls back to the ``git`` command only for what files cannot answer exactly
(GIT_DIR/GIT_WORK_TREE in the environment, an unreadable HEAD).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from containai.lazy import lazy_module

if TYPE_CHECKING:
    import subprocess
else:
    subprocess = lazy_module("subprocess")


_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")

NOGIT = "nogit"
DETACHED = "detached"


def find_git_root(start: Path) -> tuple[Path, Path] | None:
    """The work tree top containing ``start`` and its git dir, or ``None`` outside git."""
    current = start
    while True:
        dotgit = current / ".git"
        if dotgit.is_dir():
            return current, dotgit
        if dotgit.is_file():
            gitdir = _read_gitdir_file(dotgit)
            if gitdir is not None:
                return current, gitdir
        if current.parent == current:
            return None
        current = current.parent


def _read_gitdir_file(dotgit: Path) -> Path | None:
    try:
        text = dotgit.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    target = Path(text.removeprefix("gitdir:").strip())
    if not target.is_absolute():
        target = dotgit.parent / target
    return target


def branch_from_head(gitdir: Path) -> str | None:
    """``HEAD`` read directly: the branch, ``detached``, or ``None`` when not exact."""
    try:
        head = (gitdir / "HEAD").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if head.startswith("ref:"):
        ref = head.removeprefix("ref:").strip()
        if ref.startswith("refs/heads/"):
            return ref.removeprefix("refs/heads/")
        return None
    if _SHA.match(head):
        return DETACHED
    return None


def _git(args: list[str], cwd: Path, env: Mapping[str, str]) -> str | None:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            env=dict(env),
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def resolve_workspace(start: Path, env: Mapping[str, str] | None = None) -> tuple[Path, str]:
    """``(workspace, branch)`` for a directory: git top level (or ``start``) and branch.

    ``start`` must already be absolute with symlinks resolved.
    """
    env = os.environ if env is None else env
    if env.get("GIT_DIR") or env.get("GIT_WORK_TREE"):
        top_text = _git(["rev-parse", "--show-toplevel"], start, env)
        if top_text is None:
            return start, NOGIT
        out = _git(["rev-parse", "--abbrev-ref", "HEAD"], start, env)
        return Path(top_text).resolve(), (DETACHED if out in (None, "HEAD") else out) or NOGIT
    found = find_git_root(start)
    if found is None:
        return start, NOGIT
    top, gitdir = found
    branch = branch_from_head(gitdir)
    if branch is None:
        out = _git(["rev-parse", "--abbrev-ref", "HEAD"], top, env)
        branch = DETACHED if out in (None, "HEAD") else out
    return top, branch or DETACHED


def branch_of(workspace: Path, env: Mapping[str, str] | None = None) -> str:
    """Branch for an explicit ``--workspace``: that of the work tree containing it, if any."""
    return resolve_workspace(workspace, env)[1]
