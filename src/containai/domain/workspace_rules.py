"""Which directories may be a workspace (SPEC section 3, section 14).

A workspace is mounted read-write into the container, and cai running as root grants
a root-owned one to the agent's group. A directory that holds more than a project -
the root, a top-level system directory (``/tmp``, ``/etc``, ``/home``), a shared
sticky directory (``/var/tmp``), a home directory or one of its ancestors - would hand
the agent the host's secrets (``~/.ssh``) or change the ownership of files that are not
the user's project. Pure: the caller says whether the directory has the sticky bit.
"""

from __future__ import annotations

import posixpath


def refusal(path: str, homes: tuple[str, ...], *, sticky: bool) -> str | None:
    """Why ``path`` (absolute, symlinks resolved) may not be a workspace; ``None`` if it may.
    ``homes``: the caller's home directories (``HOME``; under sudo also the invoking
    user's)."""
    path = posixpath.normpath(path)
    parts = [p for p in path.split("/") if p]
    for home in homes:
        home = posixpath.normpath(home)
        if path == home:
            return f"{path} is your home directory (it holds ~/.ssh and other secrets)"
        if home.startswith(path + "/"):
            return f"{path} contains your home directory"
    if len(parts) <= 1:
        what = "the root directory" if not parts else "a top-level system directory"
        return f"{path} is {what}"
    if sticky:
        return f"{path} is a shared directory (sticky bit, like /tmp)"
    return None


def message(reason: str) -> str:
    return (
        f"workspace {reason}; run cai in a project directory (a git repository or a "
        "directory of its own) or pass --workspace DIR"
    )
