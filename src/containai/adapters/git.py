"""Workspace root and branch, read from the files git keeps (no fork on the hot path).

Falls back to the ``git`` command only for what files cannot answer exactly
(GIT_DIR/GIT_WORK_TREE in the environment, an unreadable HEAD).
"""

from __future__ import annotations

import os
import re
import stat
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


def _ensure_like_parent(path: Path, *, directory: bool, content: bytes = b"") -> bool:
    """Create ``path`` (a directory, or a file holding ``content``) owned like its parent
    directory (cai may run as root in a user's repository); ``False`` when that fails.
    ``True`` also when something is there already (the caller checks what)."""
    try:
        if directory:
            path.mkdir(mode=0o755)
        else:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(path, flags, 0o644)
            with os.fdopen(fd, "wb") as out:
                out.write(content)
    except FileExistsError:
        return True
    except OSError:
        return False
    try:
        st = path.parent.stat()
        if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (0, 0):
            os.lchown(path, st.st_uid, st.st_gid)
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


def _kind(path: Path) -> str:
    """``dir``, ``file``, ``link``, ``other`` or ``""`` (absent), symlinks not followed."""
    try:
        mode = path.lstat().st_mode
    except OSError:
        return ""
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISDIR(mode):
        return "dir"
    return "file" if stat.S_ISREG(mode) else "other"


def _looks_like_git_dir(path: Path) -> bool:
    return (
        _kind(path / "HEAD") == "file"
        and _kind(path / "objects") == "dir"
        and _kind(path / "refs") == "dir"
    )


def _worktree_of(dotgit: Path, top: Path) -> tuple[Path, Path] | None:
    """``(private git dir, common git dir)`` of the worktree whose ``.git`` file is
    ``dotgit``, only when git's own files agree: the file names
    ``<common>/worktrees/<name>``, whose ``gitdir`` names ``dotgit`` back and whose
    ``commondir`` leads to ``<common>``, and ``<common>`` is a git directory. Anything
    else may have been written by the agent (the workspace is writable): ``None``."""
    found = _read_gitdir_file(dotgit)
    if found is None:
        return None
    private = _real(found)
    common = private.parent.parent
    if private.parent.name != "worktrees" or _kind(private) != "dir":
        return None
    back = _read(private / "gitdir").strip()
    if not back or _real(private / back) != top / ".git":  # a relative one is from private
        return None
    named = _read(private / "commondir").strip()
    if not named or _real(private / named) != common or not _looks_like_git_dir(common):
        return None
    return private, common


_WORKTREE_LINE = re.compile(r"^\s*worktree\s*=\s*(.+?)\s*$", re.MULTILINE | re.IGNORECASE)


def guard_paths(workspace: Path) -> GitGuard:
    """The git metadata of ``workspace``'s repository that the container must not be able
    to change (SPEC section 14), from git's own files (no fork).

    For the repository's common git directory and each git directory below it
    (worktrees' private ones, submodules' under ``modules/``): ``hooks`` (created when
    missing, so it cannot be created inside), ``config`` and ``config.worktree``; the
    ``commondir`` files (one holding ``.`` is created in the common directory, so the
    agent cannot create one that points the host's git elsewhere) and the ``.git``
    files that point at a git directory (a redirected one would bring its own config).
    The git directories themselves are mounted onto themselves (``pinned``), so they
    cannot be renamed away and replaced.

    Nothing outside the workspace is trusted on the word of a file in it: a ``.git``
    directory (or link) is the common directory itself (its ``commondir`` is never
    followed), and a ``.git`` file counts only as a worktree that its common
    directory names back (``_worktree_of``); that common directory is then mounted
    read-write at its own path (``shared``), so git works. Any other ``.git`` that
    leads outside the workspace gets no mount at all, and a warning."""
    from containai.domain.host_safety import GitGuard

    top = _real(workspace)
    dotgit = workspace / ".git"
    readonly: list[Path] = []
    config: list[Path] = []
    pinned: list[Path] = []
    warnings: list[str] = []
    kind = _kind(dotgit)
    if kind == "link":
        if _kind(_real(dotgit)) != "dir":
            return GitGuard(
                warnings=(f"{dotgit} is a symbolic link to a file: the git guard ignores it",)
            )
        kind = "dir"
    if kind == "dir":  # a symlink to one too: its target is what git uses
        common = _real(dotgit)
        if not _inside(common, top):
            return GitGuard(
                warnings=(
                    f"{dotgit} leads outside the workspace, to {common}: "
                    "it is not mounted in the container",
                )
            )
    elif kind == "file":
        worktree = _worktree_of(dotgit, top)
        if worktree is not None:
            common = worktree[1]
        else:
            found = _read_gitdir_file(dotgit)
            target = _real(found) if found is not None else None
            if (
                target is None
                or not _inside(target, top)
                or not _looks_like_git_dir(target)
                or _kind(target / "commondir") != ""
            ):
                return GitGuard(
                    warnings=(
                        f"{dotgit} names {target or 'no git directory'}, which is not a "
                        "worktree that names this workspace back: it is not mounted in the "
                        "container",
                    )
                )
            common = target  # a separate git directory inside the workspace
        readonly.append(dotgit)
    else:
        return GitGuard()
    shared = [] if _inside(common, top) else [common]
    if not shared:
        pinned.append(common)
    worktree_config = "worktreeconfig" in _read(common / "config").lower()

    def plain(path: Path, want: str) -> bool:
        """``path`` is a ``want`` itself, not a symlink (never mount what a link names)."""
        got = _kind(path)
        if got not in ("", want):
            warnings.append(f"{path} is not a plain {want}: the git guard leaves it alone")
        return got == want

    def pin(git_dir: Path) -> None:
        """``git_dir`` and the directories between it and the common directory."""
        for path in (git_dir, *git_dir.parents):
            if path == common or not _inside(path, common):
                break
            pinned.append(path)

    def repository(git_dir: Path) -> None:
        hooks = git_dir / "hooks"
        if _kind(hooks) == "":
            _ensure_like_parent(hooks, directory=True)
        if plain(hooks, "dir"):
            readonly.append(hooks)
        if plain(git_dir / "config", "file"):
            config.append(git_dir / "config")
        per_worktree(git_dir)

    def per_worktree(git_dir: Path) -> None:
        cw = git_dir / "config.worktree"
        if _kind(cw) == "" and worktree_config:
            _ensure_like_parent(cw, directory=False)
        if plain(cw, "file"):
            config.append(cw)

    def submodules(git_dir: Path, depth: int = 0) -> None:
        modules = git_dir / "modules"
        if depth > 8 or _kind(modules) != "dir":
            return
        stack = [modules]
        while stack:
            for child in sorted(stack.pop().iterdir()):
                if _kind(child) != "dir":
                    continue
                if (child / "HEAD").is_file():
                    pin(child)
                    repository(child)
                    match = _WORKTREE_LINE.search(_read(child / "config"))
                    if match:
                        checkout = _real(child / match.group(1).strip('"'))
                        if _inside(checkout, top) and _kind(checkout / ".git") == "file":
                            readonly.append(checkout / ".git")
                    submodules(child, depth + 1)
                elif len(child.relative_to(modules).parts) < 8:
                    stack.append(child)  # a submodule name with '/' nests directories

    # The common directory is a main git directory: git follows a ``commondir`` file
    # in it too, so one holding "." (what git assumes without it) is made read-only.
    placeholder = common / "commondir"
    if _kind(placeholder) == "":
        _ensure_like_parent(placeholder, directory=False, content=b".\n")
    if plain(placeholder, "file"):
        readonly.append(placeholder)
        if _read(placeholder).strip() != ".":
            warnings.append(
                f"{placeholder} points the host's git at another git directory "
                f"({_read(placeholder).strip()!r}); remove it unless you wrote it"
            )
    repository(common)
    worktrees = common / "worktrees"
    if _kind(worktrees) == "dir":
        pin(worktrees)
        for private in sorted(worktrees.iterdir()):
            if _kind(private) != "dir":
                continue
            pin(private)
            if plain(private / "commondir", "file"):
                readonly.append(private / "commondir")
            per_worktree(private)
            # The worktree's own .git file, when it lies in this workspace.
            back = Path(_read(private / "gitdir").strip() or ".")
            if back.is_absolute() and _kind(back) == "file" and _inside(_real(back), top):
                readonly.append(_real(back))
    submodules(common)
    return GitGuard(
        shared=tuple(str(p) for p in shared),
        readonly=tuple(dict.fromkeys(str(p) for p in readonly)),
        config=tuple(dict.fromkeys(str(p) for p in config)),
        pinned=tuple(dict.fromkeys(str(p) for p in pinned)),
        warnings=tuple(dict.fromkeys(warnings)),
    )
