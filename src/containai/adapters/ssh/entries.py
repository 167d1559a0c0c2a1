"""SSH config entries: one ``Host cai-<name>`` file per container under
``~/.ssh/containai.d/``, and the ``Include`` line that makes ``~/.ssh/config``
read them (SPEC section 10).

An entry is self-sufficient: the same file serves ``ssh cai-<name>`` (through the
Include line) and cai's own ``ssh -F <file>`` calls, so it names every file it
needs. Writes are atomic (temp file + ``os.replace``); ``~/.ssh/config`` edits are
serialized with a ``flock`` lock and keep every byte but the Include line.
"""

from __future__ import annotations

import errno
import os
import re
import shlex
import stat
from pathlib import Path
from typing import Final

from containai.adapters.files import atomic_write
from containai.adapters.ssh.layout import (
    NAME_RE,
    alias,
    check_name,
    conf_quote,
    control_path,
    entry_path,
    locked,
    mkdirs,
    split_lines,
    unlink,
)
from containai.adapters.ssh.sessions import ensure_control_dir
from containai.paths import Paths

INCLUDE_PATTERN: Final = "~/.ssh/containai.d/*.conf"
INCLUDE_LINE: Final = f"Include {INCLUDE_PATTERN}"
# The Docker context of a container on a remote engine (SPEC section 16); an entry
# without it is a container of this machine's engine.
CONTEXT_HEADER: Final = "# Context: "

_USER_RE: Final = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.$-]*")
_HOSTNAME_RE: Final = re.compile(r"[A-Za-z0-9_.:\[\]-]+")
_JUMP_HOP_RE: Final = re.compile(r"(?:ssh://)?(?:[^\s@/,'\"\\]+@)?[A-Za-z0-9_.:\[\]-]+")
_INCLUDE_RE: Final = re.compile(r"include(?:\s*=\s*|\s+)(?P<arg>\S.*?)", re.IGNORECASE)

_KEX_ALGORITHMS: Final = "curve25519-sha256,curve25519-sha256@libssh.org"  # OpenSSH >= 7.4


def _comment_safe(text: str) -> str:
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def proxy_command(proxy_jump: str) -> str:
    """``ProxyJump`` syntax (``[user@]host[:port]``, comma-separated hops) as a ProxyCommand.

    Not ``ProxyJump`` itself: ssh runs a jump with ``-F <our entry>``, which would
    hide the user's own ``~/.ssh/config`` settings for the jump host (the host
    behind a ``ssh://`` Docker context). A plain ``ssh -W`` reads them as usual.
    """
    hops = [hop.strip() for hop in proxy_jump.split(",")]
    if not hops or any(_JUMP_HOP_RE.fullmatch(hop) is None or "%" in hop for hop in hops):
        raise ValueError(f"invalid proxy jump {proxy_jump!r} (expected [user@]host[:port],...)")
    last = hops[-1]
    destination = last if last.startswith("ssh://") else "ssh://" + last
    argv = ["ssh", "-W", "[%h]:%p"]
    if len(hops) > 1:
        argv += ["-J", ",".join(hops[:-1])]
    argv += ["--", destination]
    return shlex.join(argv)


class Entries:
    """The per-container entry files and the Include line in ``~/.ssh/config``."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    # -- entry files ------------------------------------------------------------

    def write_entry(
        self,
        name: str,
        *,
        port: int,
        user: str,
        hostname: str = "127.0.0.1",
        forward_agent: bool = False,
        proxy_jump: str | None = None,
        workspace: str | None = None,
        context: str | None = None,
    ) -> Path:
        """Write ``~/.ssh/containai.d/<name>.conf``: a self-sufficient ``Host cai-<name>`` block.

        The same file serves ``ssh cai-<name>`` (through the Include line) and
        cai's own ``ssh -F <file>`` calls, so it names every file it needs.
        """
        check_name(name)
        if not 0 < port < 65536:
            raise ValueError(f"invalid port {port}")
        if _USER_RE.fullmatch(user) is None:
            raise ValueError(f"invalid ssh user {user!r}")
        if _HOSTNAME_RE.fullmatch(hostname) is None:
            raise ValueError(f"invalid ssh hostname {hostname!r}")
        proxy = proxy_command(proxy_jump) if proxy_jump else None
        host = alias(name)
        header = [
            f"# Managed by cai (ContainAI): SSH access to container '{name}'.",
            f"# Workspace: {_comment_safe(workspace) if workspace else '(unknown)'}",
            *([f"{CONTEXT_HEADER}{_comment_safe(context)}"] if context else []),
            "# Rewritten by cai; removed by `cai stop --remove`, `cai gc`, `cai ssh cleanup`.",
        ]
        options: list[tuple[str, str]] = [
            ("HostName", hostname),
            ("Port", str(port)),
            ("User", user),
            ("IdentityFile", conf_quote(str(self.paths.user_key), percent=True)),
            ("IdentitiesOnly", "yes"),
            ("PubkeyAuthentication", "yes"),
            ("PasswordAuthentication", "no"),
            ("KbdInteractiveAuthentication", "no"),
            ("UserKnownHostsFile", conf_quote(str(self.paths.known_hosts), percent=True)),
            ("GlobalKnownHostsFile", "/dev/null"),
            ("HostKeyAlias", host),
            ("StrictHostKeyChecking", "yes"),
            ("CheckHostIP", "no"),
            ("UpdateHostKeys", "no"),
            ("ForwardAgent", "yes" if forward_agent else "no"),
            ("ForwardX11", "no"),
            ("ControlMaster", "auto"),
            ("ControlPath", conf_quote(str(control_path(self.paths, name)), percent=True)),
            ("ControlPersist", "10m"),
            ("ServerAliveInterval", "15"),
            ("ServerAliveCountMax", "4"),
            ("ConnectTimeout", "5"),
            # The hop never leaves the host (127.0.0.1 -> the container): the classic
            # curve first saves ~50 ms of CPU per login over the post-quantum hybrid.
            ("KexAlgorithms", _KEX_ALGORITHMS),
            ("LogLevel", "ERROR"),
        ]
        if proxy is not None:
            options.append(("ProxyCommand", proxy))
        text = "\n".join([*header, f"Host {host}", *(f"  {k} {v}" for k, v in options)]) + "\n"
        path = entry_path(self.paths, name)
        mkdirs(path.parent)
        atomic_write(path, text.encode())
        ensure_control_dir(self.paths, name)
        return path

    def remove_entry(self, name: str) -> Path | None:
        """Remove the container's entry file; its path when it was there."""
        path = entry_path(self.paths, name)
        return path if unlink(path) else None

    def entry_context(self, name: str) -> str | None:
        """The context recorded in the container's entry: ``""`` for a container of this
        machine's engine (no record), ``None`` when there is no entry."""
        try:
            with open(entry_path(self.paths, name), encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if line.startswith(CONTEXT_HEADER):
                        return line[len(CONTEXT_HEADER) :].strip()
                    if not line.startswith("#"):
                        break
        except OSError:
            return None
        return ""

    def entry_names(self) -> set[str]:
        """Names that have an entry file."""
        names: set[str] = set()
        try:
            files = os.listdir(self.paths.ssh_include_dir)
        except (FileNotFoundError, NotADirectoryError):
            return names
        for file in files:
            if file.endswith(".conf") and NAME_RE.fullmatch(file[: -len(".conf")]):
                names.add(file[: -len(".conf")])
        return names

    # -- the Include line in ~/.ssh/config ------------------------------------------

    def _is_our_include(self, line: bytes) -> bool:
        text = line.decode("utf-8", errors="surrogateescape").strip()
        match = _INCLUDE_RE.fullmatch(text)
        if match is None:
            return False
        arg = match.group("arg").strip()
        if len(arg) >= 2 and arg[0] == arg[-1] == '"':
            arg = arg[1:-1]
        return arg in {
            INCLUDE_PATTERN,
            "containai.d/*.conf",  # relative Includes are relative to ~/.ssh
            str(self.paths.ssh_include_dir / "*.conf"),
        }

    def include_is_first(self, data: bytes) -> bool:
        """Whether ``data`` (a ``~/.ssh/config``) starts with an Include of cai's entries."""
        lines = split_lines(data)
        return bool(lines) and self._is_our_include(lines[0])

    def include_line(self) -> str:
        """``Include ~/.ssh/containai.d/*.conf``, or the absolute form when ``HOME`` is not
        the account's home: OpenSSH expands ``~`` from /etc/passwd, not ``$HOME``, so in
        a sandboxed HOME only the absolute path reaches the entries cai wrote."""
        try:
            import pwd

            passwd_home = pwd.getpwuid(os.getuid()).pw_dir
        except (KeyError, ImportError):
            passwd_home = ""
        if passwd_home and os.path.realpath(passwd_home) == os.path.realpath(self.paths.home):
            return INCLUDE_LINE
        return "Include " + conf_quote(str(self.paths.ssh_include_dir / "*.conf"))

    def ensure_include(self) -> str | None:
        """Keep ``Include ~/.ssh/containai.d/*.conf`` as the first line of ``~/.ssh/config``.

        An ``Include`` after a ``Host`` block would apply only inside that block,
        hence first. Creates ``~/.ssh`` (0700) and the file (0600) if missing,
        moves an existing copy of the line to the top, otherwise inserts it,
        and keeps every other byte. A symlinked config is edited at its target.
        Returns None, or a one-line warning when the file cannot be written
        (read-only file or file system): cai's own ssh calls do not need it.
        """
        config = self.paths.ssh_config
        try:
            with locked(self.paths, "ssh-config"):
                target = Path(os.path.realpath(config))
                try:
                    info: os.stat_result | None = os.stat(target)
                    data = target.read_bytes()
                except FileNotFoundError:
                    info, data = None, b""
                lines = split_lines(data)
                if lines and self._is_our_include(lines[0]):
                    return None
                if info is not None and (
                    not info.st_mode & stat.S_IWUSR or not os.access(target, os.W_OK)
                ):
                    raise PermissionError(errno.EACCES, "file is read-only")
                rest = b"".join(line for line in lines if not self._is_our_include(line))
                new = self.include_line().encode() + b"\n" + rest
                if info is None:
                    if target.parent == self.paths.ssh_dir:
                        mkdirs(target.parent)
                    atomic_write(target, new, mode=0o600)
                else:
                    atomic_write(
                        target,
                        new,
                        mode=stat.S_IMODE(info.st_mode),
                        owner=(info.st_uid, info.st_gid),
                    )
        except OSError as err:
            reason = err.strerror or str(err)
            return (
                f"cannot update {config} ({reason}); add the line '{self.include_line()}' "
                "at its top yourself so `ssh cai-<name>` works outside cai"
            )
        return None
