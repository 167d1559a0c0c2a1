"""Facts about the host machine: free ports, memory, CPUs, the caller's uid/gid, the
agent's uid/gid; and the one change cai makes to a workspace's permissions (``grant``)."""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import stat
import struct
from collections.abc import Mapping, Sequence

# POSIX ACL xattr (linux/posix_acl_xattr.h): version, then (tag, perm, id) entries.
_ACL_VERSION = 2
_ACL_USER_OBJ, _ACL_GROUP_OBJ, _ACL_OTHER = 0x01, 0x04, 0x20
_ACL_UNDEFINED_ID = 0xFFFFFFFF


def _default_acl(other: int) -> bytes:
    """A default ACL of owner rwx, owning group rwx, other ``other``: files created
    later in the directory (by the host's git, say) stay writable by its group."""
    entries = ((_ACL_USER_OBJ, 7), (_ACL_GROUP_OBJ, 7), (_ACL_OTHER, other & 7))
    return struct.pack("<I", _ACL_VERSION) + b"".join(
        struct.pack("<HHI", tag, perm, _ACL_UNDEFINED_ID) for tag, perm in entries
    )


class Host:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env: Mapping[str, str] = os.environ if env is None else env

    def port_is_free(self, port: int) -> bool:
        """Whether 127.0.0.1:``port`` can be bound (SO_REUSEADDR: TIME_WAIT is not "taken")
        and no host service has [::1]:``port`` (a forward next to it would take the
        host's IPv4 clients of ``localhost:port`` to the container)."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
        try:
            six = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        except OSError:
            return True  # no IPv6 here
        with six:
            six.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            six.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                six.bind(("::1", port))
            except OSError as exc:
                import errno

                return exc.errno != errno.EADDRINUSE  # no ::1 (EADDRNOTAVAIL): free
        return True

    def memory_bytes(self) -> int:
        try:
            return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (ValueError, OSError):
            return 4 * 1024**3

    def cpu_count(self) -> int:
        try:
            return len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            return os.cpu_count() or 1

    def uid_gid(self) -> tuple[int, int]:
        return os.getuid(), os.getgid()

    def agent_ids(self, workspace: str) -> tuple[int, int]:
        """The agent's uid/gid for ``workspace`` (never 0; ``host_safety.agent_ids``)."""
        from containai.domain.host_safety import agent_ids

        try:
            owner_uid = os.stat(workspace).st_uid
        except OSError:
            owner: tuple[int, int] | None = None
        else:
            # The owner's primary group, never the directory's group (alice:docker
            # must not make the agent a member of docker); the uid when unknown.
            try:
                owner = (owner_uid, pwd.getpwuid(owner_uid).pw_gid)
            except KeyError:
                owner = (owner_uid, owner_uid)
        sudo = (_number(self.env.get("SUDO_UID")), _number(self.env.get("SUDO_GID")))
        return agent_ids(self.uid_gid(), owner, sudo)

    def grant(self, paths: Sequence[str], uid: int, gid: int) -> int:
        """Let agent ``uid:gid`` write the trees ``paths`` that it does not own: when cai
        runs as root on a root-owned workspace. Returns the number of entries changed.

        gVisor checks permissions on the owner, group and mode it reads from the host
        and ignores POSIX ACLs, so the grant is by group, which both runtimes honour:
        each directory and file not owned by ``uid`` gets group ``gid`` and group
        rw (x where the owner has x), directories also setgid (new entries keep the
        group) and a default ACL that keeps files created later group-writable (runc
        and the host's own tools honour it). Owners and other bits are left alone, so
        the host's git still sees its own repository (``safe.directory``)."""
        if os.geteuid() != 0:
            return 0
        changed = 0
        for top in paths:
            try:
                if os.lstat(top).st_uid == uid:
                    continue
            except OSError:
                continue
            changed += _grant_tree(top, uid, gid)
        return changed

    def git_identity(self) -> tuple[str | None, str | None]:
        """``user.name`` and ``user.email`` of the host's global git config (``None``
        each when unset or unreadable), read the way git does for this user, from an
        empty directory: no repository (a hostile one's config, an ``includeIf`` on its
        remotes or branch) can choose what is read."""
        return host_git_identity(self.env)


_GIT_ENV_DROPPED = ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_CEILING_DIRECTORIES")


def host_git_identity(env: Mapping[str, str]) -> tuple[str | None, str | None]:
    import subprocess
    import tempfile

    clean = {k: v for k, v in env.items() if k not in _GIT_ENV_DROPPED}
    with tempfile.TemporaryDirectory(prefix="cai-git-") as empty:
        clean["GIT_CEILING_DIRECTORIES"] = os.path.dirname(empty)
        try:
            proc = subprocess.run(
                ["git", "config", "--global", "-z", "--get-regexp", r"^user\.(name|email)$"],
                cwd=empty,
                env=clean,
                capture_output=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None, None
    if proc.returncode != 0:
        return None, None
    found: dict[str, str] = {}
    for entry in proc.stdout.split(b"\0"):
        key, _, value = entry.partition(b"\n")
        # the last one wins, as for `git config --get`
        found[key.decode("ascii", "replace")] = value.decode("utf-8", "replace")
    return found.get("user.name"), found.get("user.email")


def _number(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


# Every entry is opened without following a symlink and changed through its descriptor,
# and every directory is read through its descriptor: a container that writes the tree
# meanwhile can swap an entry, or a directory on the way, for a symlink to /etc/shadow
# or /usr/bin/x, and a change by path would follow it (root on the host).
_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def _grant_tree(top: str, uid: int, gid: int) -> int:
    """``_grant_fd`` on ``top`` and everything below it, depth first, one descriptor
    per level."""
    try:
        fd = os.open(top, _OPEN | os.O_DIRECTORY)
    except OSError:
        return 0
    changed = 0
    stack: list[tuple[int, list[str]]] = []
    try:
        while True:
            try:
                st = os.fstat(fd)
                # A shared directory (sticky bit, like /tmp) holds other people's files:
                # neither it nor anything below it is granted.
                if st.st_mode & stat.S_ISVTX:
                    names = []
                else:
                    changed += _grant_fd(fd, st, uid, gid)
                    names = os.listdir(fd)
            except OSError:
                names = []
            stack.append((fd, names))
            fd = -1
            while stack and fd < 0:
                parent, names = stack[-1]
                if not names:
                    stack.pop()
                    os.close(parent)
                    continue
                child = _open_entry(parent, names.pop())
                if child is None:
                    continue
                if stat.S_ISDIR(child[1].st_mode):
                    fd = child[0]
                else:
                    try:
                        changed += _grant_fd(*child, uid, gid)
                    finally:
                        os.close(child[0])
            if fd < 0:
                return changed
    finally:
        for parent, _names in stack:
            os.close(parent)


def _open_entry(dir_fd: int, name: str) -> tuple[int, os.stat_result] | None:
    """``name`` in ``dir_fd`` opened, when it is a directory or a regular file and is
    still the entry that ``lstat`` saw (same device, inode and type); else ``None``."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            return None
        flags = _OPEN | (os.O_DIRECTORY if stat.S_ISDIR(st.st_mode) else 0)
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        now = os.fstat(fd)
    except OSError:
        now = None
    if now is None or (now.st_dev, now.st_ino, stat.S_IFMT(now.st_mode)) != (
        st.st_dev,
        st.st_ino,
        stat.S_IFMT(st.st_mode),
    ):
        os.close(fd)
        return None
    return fd, now


def _grant_fd(fd: int, st: os.stat_result, uid: int, gid: int) -> int:
    """Group ``gid`` and group rw(x) on the open entry ``fd`` (``st``: its ``fstat``)
    unless ``uid`` owns it; 1 when something changed."""
    if st.st_uid == uid or not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        return 0
    try:
        changed = 0
        if st.st_gid != gid:
            os.fchown(fd, -1, gid)
            st = os.fstat(fd)  # a group change clears setuid/setgid bits
            changed = 1
        mode = stat.S_IMODE(st.st_mode)
        want = mode | 0o060 | (0o010 if mode & 0o100 else 0)
        if stat.S_ISDIR(st.st_mode):
            want |= 0o2070
        if want != mode:
            os.fchmod(fd, want)
            changed = 1
        if stat.S_ISDIR(st.st_mode) and changed:
            # No ACLs on this file system: only files created later differ.
            with contextlib.suppress(OSError):
                os.setxattr(fd, "system.posix_acl_default", _default_acl(mode))
        return changed
    except OSError:
        return 0
