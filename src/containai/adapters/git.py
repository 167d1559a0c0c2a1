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

    from containai.domain.host_safety import GitGuard
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


# ------------------------------------------------------------------ git guard


def _ensure_like_parent(path: Path, *, directory: bool) -> bool:
    """Create ``path`` (a directory or an empty file) owned like its parent directory
    (cai may run as root in a user's repository); ``False`` when that fails."""
    try:
        if directory:
            path.mkdir(mode=0o755)
        else:
            path.touch(mode=0o644, exist_ok=False)
    except FileExistsError:
        return True
    except OSError:
        return False
    try:
        st = path.parent.stat()
        if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (0, 0):
            os.chown(path, st.st_uid, st.st_gid)
    except OSError:
        pass
    return True


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _inside(path: Path, top: Path) -> bool:
    return path == top or top in path.parents


_WORKTREE_LINE = re.compile(r"^\s*worktree\s*=\s*(.+?)\s*$", re.MULTILINE | re.IGNORECASE)


def guard_paths(workspace: Path) -> GitGuard:
    """The git metadata of ``workspace``'s repository that the container must not be able
    to change (SPEC section 14), from git's own files (no fork).

    For the repository's common git directory and each git directory below it
    (worktrees' private ones, submodules' under ``modules/``): ``hooks`` (created when
    missing, so it cannot be created inside), ``config`` and ``config.worktree``; the
    ``commondir`` files and the ``.git`` files that point at a git directory (a
    redirected one would bring its own config). A common directory outside the
    workspace (a worktree's) is mounted read-write at its own path, so git works."""
    from containai.domain.host_safety import GitGuard

    dotgit = workspace / ".git"
    if dotgit.is_dir():  # a symlink to one too: its target is what git uses
        gitdir, gitfile = _real(dotgit), None
    elif dotgit.is_file():
        found = _read_gitdir_file(dotgit)
        if found is None or not found.is_dir():
            return GitGuard()
        gitdir, gitfile = _real(found), dotgit
    else:
        return GitGuard()
    common = gitdir
    text = _read(gitdir / "commondir").strip()
    if text:
        candidate = Path(text) if Path(text).is_absolute() else gitdir / text
        if candidate.is_dir():
            common = _real(candidate)
    readonly: list[Path] = [gitfile] if gitfile is not None else []
    config: list[Path] = []
    shared = [] if _inside(common, workspace) else [common]
    worktree_config = "worktreeconfig" in _read(common / "config").lower()

    def repository(git_dir: Path) -> None:
        hooks = git_dir / "hooks"
        if hooks.is_dir() or _ensure_like_parent(hooks, directory=True):
            readonly.append(hooks)
        if (git_dir / "config").is_file():
            config.append(git_dir / "config")
        per_worktree(git_dir)

    def per_worktree(git_dir: Path) -> None:
        cw = git_dir / "config.worktree"
        if cw.is_file() or (worktree_config and _ensure_like_parent(cw, directory=False)):
            config.append(cw)

    def submodules(git_dir: Path, depth: int = 0) -> None:
        modules = git_dir / "modules"
        if depth > 8 or not modules.is_dir():
            return
        stack = [modules]
        while stack:
            for child in sorted(stack.pop().iterdir()):
                if not child.is_dir() or child.is_symlink():
                    continue
                if (child / "HEAD").is_file():
                    repository(child)
                    match = _WORKTREE_LINE.search(_read(child / "config"))
                    if match:
                        checkout = _real(child / match.group(1).strip('"'))
                        if (checkout / ".git").is_file():
                            readonly.append(checkout / ".git")
                    submodules(child, depth + 1)
                elif len(child.relative_to(modules).parts) < 8:
                    stack.append(child)  # a submodule name with '/' nests directories

    repository(common)
    worktrees = common / "worktrees"
    if worktrees.is_dir():
        for private in sorted(worktrees.iterdir()):
            if not private.is_dir() or private.is_symlink():
                continue
            if (private / "commondir").is_file():
                readonly.append(private / "commondir")
            per_worktree(private)
            # The worktree's own .git file, when it lies in this workspace.
            back = Path(_read(private / "gitdir").strip() or ".")
            if back.is_absolute() and back.is_file() and _inside(_real(back), workspace):
                readonly.append(_real(back))
    submodules(common)
    return GitGuard(
        shared=tuple(str(p) for p in shared),
        readonly=tuple(dict.fromkeys(str(p) for p in readonly)),
        config=tuple(dict.fromkeys(str(p) for p in config)),
    )
