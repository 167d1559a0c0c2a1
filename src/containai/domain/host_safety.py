"""What an agent may never do to the host (SPEC section 14), as pure rules.

* ``agent_ids``: the uid/gid the agent runs as. Never 0: a file the agent writes in
  the bind-mounted workspace belongs to that uid on the host, so a root agent could
  leave a setuid-root program there (runc and gVisor alike keep the owner and mode).
* ``GitGuard``: the git metadata that makes the host's git run code (hooks, config,
  the files that say where a repository's git directory is), mounted read-only
  over the read-write workspace.
* ``state_dir``: the directory of the data volume that holds one uid's agent state.
"""

from __future__ import annotations

from dataclasses import dataclass

from containai.domain.labels import DATA_MOUNT

# The agent's uid/gid when nothing better is known (cai runs as root on a root-owned
# workspace, not under sudo): the "nonroot" id of distroless images, unused on Debian.
UNPRIVILEGED = 65532


def agent_ids(
    caller: tuple[int, int],
    workspace_owner: tuple[int, int] | None,
    sudo: tuple[int | None, int | None] = (None, None),
) -> tuple[int, int]:
    """``(uid, gid)`` of the agent: never 0.

    A caller who is not root: the caller's own ids, so files stay theirs. cai running
    as root: the workspace directory's owner when that is not root (files stay the
    owner's, no grant is needed), else the user behind ``sudo`` (``SUDO_UID``), else
    ``UNPRIVILEGED``. ``workspace_owner`` is ``(owner uid, that user's primary gid)``
    (the adapter looks the gid up, the uid when the user is unknown), never the
    directory's group: a directory owned by ``alice:docker`` must not make the agent a
    member of ``docker``. A gid of 0 is replaced by the uid (or ``UNPRIVILEGED``): a
    member of group 0 could make a setgid-root file.
    """
    uid, gid = caller
    if uid == 0:
        uid, gid = UNPRIVILEGED, UNPRIVILEGED
        sudo_uid, sudo_gid = sudo
        if workspace_owner is not None and workspace_owner[0] != 0:
            uid, gid = workspace_owner
        elif sudo_uid:
            uid, gid = sudo_uid, sudo_gid if sudo_gid else sudo_uid
    if gid == 0:
        gid = uid if uid != 0 else UNPRIVILEGED
    return uid, gid


def state_dir(uid: int, home_owner: int | None) -> str:
    """The volume's directory for ``uid``'s agent state, given who owns ``home``
    (``None``: there is none yet). ``home`` belongs to the first uid that used it; a
    root-owned one (an import by root, an agent of an older cai) is adopted. Any other
    uid keeps its state in ``home-<uid>``, so no container ever chowns another uid's."""
    if home_owner is None or home_owner in (0, uid):
        return "home"
    return f"home-{uid}"


# The same rule, for a shell in the container or a helper: prints the directory name.
# $1 = uid. (find, not stat: coreutils' statx fails under older gVisor releases.)
STATE_DIR_SCRIPT = r"""
o=$(find @DATA_MOUNT@/home -maxdepth 0 -printf '%U' 2>/dev/null) || o=
case $o in '' | 0 | "$1") echo home ;; *) echo "home-$1" ;; esac
""".replace("@DATA_MOUNT@", DATA_MOUNT)


@dataclass(frozen=True)
class GitGuard:
    """Host paths (mounted at the same path in the container).

    ``shared``: git directories outside the workspace, mounted read-write (a
    worktree's common directory, only once validated: it names this workspace back).
    ``pinned``: git directories inside the workspace mounted read-write onto
    themselves, so they cannot be renamed or removed (a mount point gives EBUSY) and
    replaced by the agent's own (the ``.git`` directory, ``worktrees/*``,
    ``modules/*``). ``readonly``: always read-only (hooks directories, ``.git``
    files, ``commondir`` files). ``config``: read-only unless ``git.config_writable``
    (config, config.worktree). ``warnings``: what the guard refused to trust (a
    ``.git`` that points outside the workspace without naming it back), for the
    caller to print.
    """

    shared: tuple[str, ...] = ()
    readonly: tuple[str, ...] = ()
    config: tuple[str, ...] = ()
    pinned: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def mounts(self, *, config_writable: bool = False) -> list[tuple[str, bool]]:
        """``(path, read_only)`` pairs, parents before children."""
        out = [(p, False) for p in (*self.shared, *self.pinned)]
        out += [(p, True) for p in self.readonly]
        if not config_writable:
            out += [(p, True) for p in self.config]
        return sorted(dict(out).items(), key=lambda pr: (pr[0].count("/"), pr[0]))
