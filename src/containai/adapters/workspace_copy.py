"""The workspace as it travels to a remote engine (SPEC section 16), and the git remote
that brings the agent's work home.

``write_archive`` writes a tar of the workspace whose one top member is the
workspace directory's own name, so extracting it into the workspace's parent inside
the container (``docker cp -a``) also gives the volume's root the agent's owner:
tracked files and untracked files git does not ignore (``git ls-files -co
--exclude-standard``), plus the whole ``.git`` directory (full history, refs, the
index). Outside git: every regular file, directory and symlink. Symlinks travel as
symlinks; nothing outside the workspace is read (a tracked symlink is not followed).

``ensure_git_remote`` adds (or points again) ``cai-<name>`` in the local repository.
It never fetches: the user's own ``git fetch cai-<name>`` does, and touches only
``refs/remotes/cai-<name>/*``.
"""

from __future__ import annotations

import os
import stat
import subprocess
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

from containai.domain.errors import Failed


def _git(
    workspace: Path, env: Mapping[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    try:
        proc = subprocess.run(
            ["git", "-C", str(workspace), *args],
            env={**env, "GIT_TERMINAL_PROMPT": "0"},
            capture_output=True,
            timeout=120,
            check=False,
        )
    except FileNotFoundError:
        raise Failed("git is not installed: install it to use a remote engine") from None
    if check and proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise Failed(f"git {args[0]} failed in {workspace}: {err[-1] if err else proc.returncode}")
    return proc


def git_dir(workspace: Path) -> Path | None:
    """The workspace's own ``.git`` directory; ``None`` outside git. A worktree (whose
    ``.git`` is a file naming a directory elsewhere) is refused: its history lives in
    another checkout."""
    dotgit = workspace / ".git"
    if dotgit.is_symlink():
        raise Failed(f"{dotgit} is a symlink: cai copies only a real .git directory")
    if dotgit.is_dir():
        return dotgit
    if dotgit.exists():
        raise Failed(
            f"{workspace} is a git worktree: on a remote engine cai copies a repository "
            "with its own .git directory; use a clone instead of a worktree there"
        )
    return None


def _tracked(workspace: Path, env: Mapping[str, str]) -> list[str]:
    out = _git(
        workspace, env, "ls-files", "-z", "--cached", "--others", "--exclude-standard"
    ).stdout
    names = {n.decode("utf-8", "surrogateescape") for n in out.split(b"\0") if n}
    return sorted(names)


def _walk(top: Path) -> Iterator[str]:
    """Every path under ``top`` (relative), directories first, symlinks not followed."""
    for root, dirs, files in os.walk(top):
        dirs.sort()
        rel_root = os.path.relpath(root, top)
        for name in dirs + sorted(files):
            yield name if rel_root == "." else os.path.join(rel_root, name)


def members(workspace: Path, env: Mapping[str, str]) -> list[str]:
    """The relative paths that travel: git's view plus ``.git``, or every file."""
    if git_dir(workspace) is None:
        return list(_walk(workspace))
    paths = [p for p in _tracked(workspace, env) if p != ".git" and not p.startswith(".git/")]
    return [".git", *(f".git/{p}" for p in _walk(workspace / ".git")), *paths]


def write_archive(
    workspace: Path, out: IO[bytes], uid: int, gid: int, env: Mapping[str, str]
) -> int:
    """Write the workspace's tar to ``out``; the number of members written. Every member
    belongs to ``uid:gid``; a path that vanished meanwhile is skipped."""
    top = workspace.name
    count = 0
    seen_dirs: set[str] = set()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:

        def add(rel: str) -> None:
            nonlocal count
            path = workspace / rel if rel else workspace
            try:
                info = tar.gettarinfo(str(path), arcname=f"{top}/{rel}" if rel else top)
            except (FileNotFoundError, NotADirectoryError):
                return
            if not (info.isfile() or info.isdir() or info.issym()):
                return  # no devices, FIFOs or sockets
            info.uid, info.gid, info.uname, info.gname = uid, gid, "", ""
            info.mode &= 0o7777 & ~(stat.S_ISUID | stat.S_ISGID)
            if info.isfile():
                try:
                    with open(path, "rb") as fh:
                        tar.addfile(info, fh)
                except FileNotFoundError:
                    return
            else:
                tar.addfile(info)
            count += 1

        add("")
        for rel in members(workspace, env):
            parent = os.path.dirname(rel)
            # git lists files only: their directories come first, once
            chain: list[str] = []
            while parent and parent not in seen_dirs:
                chain.append(parent)
                parent = os.path.dirname(parent)
            for directory in reversed(chain):
                seen_dirs.add(directory)
                add(directory)
            if (workspace / rel).is_dir() and not (workspace / rel).is_symlink():
                if rel in seen_dirs:
                    continue
                seen_dirs.add(rel)
            add(rel)
    return count


def ensure_git_remote(workspace: Path, name: str, url: str, env: Mapping[str, str]) -> str:
    """Make ``name`` a remote of the repository at ``workspace`` pointing at ``url``;
    ``added``, ``updated`` or ``kept``. ``Failed`` when ``name`` exists with another
    URL that cai did not set (``remote.<name>.caiManaged`` not true)."""
    current = _git(workspace, env, "config", "--get", f"remote.{name}.url", check=False)
    if current.returncode == 0:
        if current.stdout.decode().strip() == url:
            return "kept"
        managed = _git(workspace, env, "config", "--get", f"remote.{name}.caiManaged", check=False)
        if managed.stdout.decode().strip() != "true":
            raise Failed(
                f"the repository {workspace} already has a git remote '{name}' that cai did "
                f"not add; rename it (`git remote rename {name} OTHER`) and run cai again"
            )
        _git(workspace, env, "remote", "set-url", name, url)
        return "updated"
    _git(workspace, env, "remote", "add", name, url)
    _git(workspace, env, "config", f"remote.{name}.caiManaged", "true")
    return "added"


def remove_git_remote(workspace: Path, name: str, env: Mapping[str, str]) -> bool:
    """Remove the remote ``name`` if cai added it; whether it did."""
    managed = _git(workspace, env, "config", "--get", f"remote.{name}.caiManaged", check=False)
    if managed.stdout.decode().strip() != "true":
        return False
    return _git(workspace, env, "remote", "remove", name, check=False).returncode == 0


def object_missing(workspace: Path, sha: str, env: Mapping[str, str]) -> bool:
    """Whether the local repository lacks the commit ``sha``."""
    proc = _git(workspace, env, "cat-file", "-e", f"{sha}^{{commit}}", check=False)
    return proc.returncode != 0


class WorkspaceCopier:
    """``services.remote.Copier``: the functions above, with the environment git runs in."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)

    def write_archive(self, workspace: str, dest: Path, uid: int, gid: int) -> int:
        with open(dest, "wb") as out:
            return write_archive(Path(workspace), out, uid, gid, self.env)

    def ensure_git_remote(self, workspace: str, name: str, url: str) -> str:
        return ensure_git_remote(Path(workspace), name, url, self.env)

    def has_git(self, workspace: str) -> bool:
        return git_dir(Path(workspace)) is not None

    def missing_commits(self, workspace: str, shas: list[str]) -> list[str]:
        return [sha for sha in shas if object_missing(Path(workspace), sha, self.env)]
