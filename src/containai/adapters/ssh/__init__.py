"""OpenSSH from the host (SPEC section 10, DESIGN decision 3): ``OpenSsh``, the
adapter behind ``services.ports.Ssh``, composed from one part per job:

* ``keys.py``     the user key, each container's host key, their pins in ``known_hosts``
* ``entries.py``  the ``Host cai-<name>`` entry files and the ``Include`` line in
  ``~/.ssh/config``
* ``sessions.py`` the ``ssh`` argv, the remote command line, control master sockets,
  waiting until a new container accepts SSH
* ``forwards.py`` ``cai forward``: foreground tunnels, the per-container forwards master
* ``layout.py``   names and places of those files, and the file helpers they share

Everything is plain files plus the host's ``ssh`` and ``ssh-keygen``; no paramiko.
Writes are atomic (temp file in the same directory + ``os.replace``), directories
cai creates are 0700 and secrets 0600. Edits of shared files (``known_hosts``,
``~/.ssh/config``) and key generation are serialized with ``flock`` locks
(adapters/locks.py) under ``paths.locks_dir``, so concurrent ``cai`` processes converge.

The hot path (``cai exec`` through a live control master: ``master_alive``,
``ssh_argv``, ``remote_command``) loads this module, ``sessions`` and ``layout``
only; ``keys`` and ``entries`` are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from containai.adapters.ssh.layout import (
    ALIAS_PREFIX,
    CONTROL_PATH_MAX,
    alias,
    check_name,
    control_path,
    entry_path,
    host_key_path,
)
from containai.adapters.ssh.sessions import (
    Sessions,
    ensure_control_dir,
    quote_remote,
    remote_command,
)
from containai.lazy import once
from containai.paths import Paths

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence
    from pathlib import Path

    from containai.adapters.ssh.entries import Entries
    from containai.adapters.ssh.forwards import SshForwards
    from containai.adapters.ssh.keys import Keys

__all__ = [
    "ALIAS_PREFIX",
    "CONTROL_PATH_MAX",
    "OpenSsh",
    "SshFiles",
    "alias",
    "quote_remote",
    "remote_command",
]


class OpenSsh:
    """Keys, pins, config entries and control sockets of cai's containers (the ``Ssh`` port).

    Each call goes to the part that does that job (``keys``, ``entries``,
    ``sessions``); ``remove``, ``entries`` and ``stale`` span all of them.
    """

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.sessions = Sessions(paths)

    @once
    def keys(self) -> Keys:
        from containai.adapters.ssh.keys import Keys

        return Keys(self.paths)

    @once
    def config(self) -> Entries:
        from containai.adapters.ssh.entries import Entries

        return Entries(self.paths)

    @once
    def forwards(self) -> SshForwards:
        from containai.adapters.ssh.forwards import SshForwards

        return SshForwards(self.paths)

    # -- places (no I/O) --------------------------------------------------------------

    def entry_path(self, name: str) -> Path:
        return entry_path(self.paths, name)

    def control_path(self, name: str) -> Path:
        return control_path(self.paths, name)

    def host_key_path(self, name: str) -> Path:
        return host_key_path(self.paths, name)

    # -- keys and pins ------------------------------------------------------------------

    def ensure_user_key(self) -> Path:
        return self.keys.ensure_user_key()

    def public_key(self) -> str:
        return self.keys.public_key()

    def ensure_host_key(self, name: str) -> tuple[bytes, str]:
        return self.keys.ensure_host_key(name)

    def pin_host_key(self, name: str, public_line: str) -> None:
        self.keys.pin_host_key(name, public_line)

    def pinned_names(self) -> list[str]:
        return self.keys.pinned_names()

    # -- entries and the Include line ---------------------------------------------------

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
        return self.config.write_entry(
            name,
            port=port,
            user=user,
            hostname=hostname,
            forward_agent=forward_agent,
            proxy_jump=proxy_jump,
            workspace=workspace,
            context=context,
        )

    def entry_context(self, name: str) -> str | None:
        return self.config.entry_context(name)

    def include_is_first(self, data: bytes) -> bool:
        return self.config.include_is_first(data)

    def include_line(self) -> str:
        return self.config.include_line()

    def ensure_include(self) -> str | None:
        return self.config.ensure_include()

    # -- sessions -----------------------------------------------------------------------

    def ssh_argv(
        self,
        name: str,
        remote: Sequence[str] | str | None,
        *,
        tty: bool,
        extra: Sequence[str] = (),
    ) -> list[str]:
        return self.sessions.ssh_argv(name, remote, tty=tty, extra=extra)

    def remote_command(self, workspace: str, argv: Sequence[str], env: Mapping[str, str]) -> str:
        """The remote shell line that runs ``argv`` (empty: a login shell) in ``workspace``."""
        return remote_command(workspace, argv, env)

    def ensure_control_dir(self, name: str) -> Path:
        return ensure_control_dir(self.paths, name)

    def master_alive(self, name: str) -> bool:
        return self.sessions.master_alive(name)

    def release_master(self, name: str, wait: float = 1.0) -> None:
        """Release cai's own connections before sessions are counted: the session master
        takes no new sessions, and the forwards master (``cai forward --background``,
        restored by the next ``cai run``) ends, so neither is taken for a user."""
        self.sessions.release_master(name, wait)
        self._close_forwards(name)

    def exit_master(self, name: str) -> None:
        """Stop the session master and the forwards master (the container goes away or
        stops)."""
        self.sessions.exit_master(name)
        self._close_forwards(name)

    def _close_forwards(self, name: str) -> None:
        import os

        from containai.adapters.ssh.layout import forward_control_path

        if os.path.lexists(forward_control_path(self.paths, name)):
            self.forwards.close(name)

    def wait_ready(self, name: str, *, timeout: float = 30.0, port: int | None = None) -> None:
        self.sessions.wait_ready(name, timeout=timeout, port=port)

    # -- cleanup ------------------------------------------------------------------------

    def remove(self, name: str) -> list[Path]:
        """Exit the master and remove the entry, the pin, the host key pair and the socket."""
        return self.remove_many([name])

    def remove_many(self, names: Sequence[str]) -> list[Path]:
        """``remove`` for each of ``names``, with ``known_hosts`` rewritten once for all
        (``cai gc`` of many containers)."""
        for name in names:
            check_name(name)
        removed: list[Path] = []
        for name in names:
            self._close_forwards(name)
            socket_path = self.sessions.remove_socket(name)
            if socket_path is not None:
                removed.append(socket_path)
            entry = self.config.remove_entry(name)
            if entry is not None:
                removed.append(entry)
        if names and self.keys.unpin(*names):
            removed.append(self.paths.known_hosts)
        for name in names:
            removed += self.keys.remove_host_key(name)
        return removed

    def entries(self) -> list[str]:
        """Names that have an entry file, a pinned host key or a host key pair."""
        names = set(self.keys.pinned_names())
        names |= self.config.entry_names()
        names |= self.keys.host_key_names()
        return sorted(names)

    def stale(self, existing: Collection[str]) -> list[str]:
        """Names with SSH leftovers whose container is not in ``existing``."""
        keep = set(existing)
        return [name for name in self.entries() if name not in keep]


# The earlier name, still used by the composition root (cli/app.py).
SshFiles = OpenSsh
