"""SSH sessions: the ``ssh`` argv that attaches to a container, the remote command
line, the control master socket (alive? stop, exit) and waiting until a new
container accepts SSH (SPEC section 10, DESIGN decisions 2 and 3).

This is the hot path: ``cai exec`` on a running container builds ``ssh_argv`` and
``remote_command`` (no I/O) after ``master_alive`` (one ``connect()`` on a Unix
socket), then execs into ``ssh``. Nothing heavier is imported at module level.
"""

from __future__ import annotations

import _socket  # the C module: `socket` costs the hot path ~3 ms more
import contextlib
import os
import shlex
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

from containai.adapters.ssh.layout import (
    alias,
    conf_quote,
    control_path,
    entry_path,
    mkdirs,
    unlink,
)
from containai.domain.errors import Failed
from containai.lazy import lazy_module
from containai.paths import Paths

if TYPE_CHECKING:
    import subprocess
    import tempfile
    from collections.abc import Mapping, Sequence
else:
    subprocess = lazy_module("subprocess")
    tempfile = lazy_module("tempfile")

_HOST_KEY_MISMATCH: Final = (
    "REMOTE HOST IDENTIFICATION HAS CHANGED",
    "Host key verification failed",
)
_CONFIG_ERRORS: Final = (
    "Bad configuration option",
    "bad configuration options",
    "Can't open user config",
)

_READY_POLL_SECONDS: Final = 0.05


def quote_remote(argv: Sequence[str]) -> str:
    """One shell command line that runs ``argv`` exactly (for ssh's remote command)."""
    return shlex.join(argv)


def remote_command(workspace: str, argv: Sequence[str], env: Mapping[str, str]) -> str:
    """The remote shell line: ``cd <ws> && exec [env 'K=V' ...] cmd args``.

    Every piece is ``shlex.quote``-d, so spaces, quotes and ``$`` reach the
    command unchanged. ``env --`` is not portable, so when the command itself
    contains ``=`` (which ``env`` would take for an assignment) it is run via
    ``sh -c 'exec "$@"'``. An empty ``argv`` starts the user's login shell.
    """
    for key in env:
        if not key or "=" in key or "\0" in key:
            raise ValueError(f"invalid environment variable name {key!r}")
    parts = ["cd", shlex.quote(workspace), "&&", "exec"]
    if env:
        parts.append("env")
        parts.extend(shlex.quote(f"{key}={value}") for key, value in env.items())
    if not argv:
        parts.extend(['"${SHELL:-/bin/bash}"', "-l"])
    else:
        if env and "=" in argv[0]:
            parts.extend(["sh", "-c", shlex.quote('exec "$@"'), "sh"])
        parts.append(quote_remote(argv))
    return " ".join(parts)


def ensure_control_dir(paths: Paths, name: str) -> Path:
    """Create the control socket's directory (0700, owned by us) and return the socket path."""
    return ensure_socket_dir(paths, control_path(paths, name))


def ensure_socket_dir(paths: Paths, path: Path) -> Path:
    """Create the directory of socket ``path`` (0700, owned by us); ``path``."""
    directory = path.parent
    if directory == paths.ssh_sockets_dir:
        mkdirs(directory)
        return path
    # the /tmp fallback: another user must not be able to own or share it
    with contextlib.suppress(FileExistsError):
        os.mkdir(directory, 0o700)
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise Failed(f"{directory} is not a directory owned by you: remove it and retry")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(directory, 0o700)
    return path


def _dialer_proxy(seconds: float) -> list[str]:
    """ssh options for cai's own first login (the one that starts the control master):
    the connection comes from ``dialer.py``, which waits up to ``seconds`` for sshd's
    banner and hands ssh the connection that saw it, TCP_NODELAY set. The entry files
    stay plain OpenSSH, for every other client."""
    import sys

    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dialer.py")
    # ssh takes the rest of the option as the command (no unquoting) and expands its
    # ``%`` tokens: a literal ``%`` in a path is written ``%%``.
    python, dialer = (shlex.quote(path).replace("%", "%%") for path in (sys.executable, script))
    command = f"{python} -I -S {dialer} %h %p {max(seconds, 0.0):.3f}"
    return ["-o", "ProxyUseFdpass=yes", "-o", f"ProxyCommand={command}"]


class Sessions:
    """``ssh`` argv and control master sockets of cai's containers."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    def ssh_argv(
        self,
        name: str,
        remote: Sequence[str] | str | None,
        *,
        tty: bool,
        extra: Sequence[str] = (),
    ) -> list[str]:
        """``ssh -F <entry> -tt|-T [extra] cai-<name> [remote]``; a str ``remote`` is one arg."""
        argv = [
            "ssh",
            "-F",
            str(entry_path(self.paths, name)),
            "-tt" if tty else "-T",
            *extra,
            alias(name),
        ]
        if isinstance(remote, str):
            argv.append(remote)
        elif remote is not None:
            argv.extend(remote)
        return argv

    # -- control master ------------------------------------------------------------

    def master_alive(self, name: str) -> bool:
        """True when a control master answers on the socket (one ``connect()``, no fork)."""
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.settimeout(1.0)
            sock.connect(os.fsencode(control_path(self.paths, name)))
        except OSError:
            return False
        finally:
            sock.close()
        return True

    def _control(self, name: str, operation: str) -> None:
        """``ssh -O OPERATION`` to the master; ``-F /dev/null`` works without the entry."""
        path = control_path(self.paths, name)
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(
                [
                    "ssh",
                    "-F",
                    "/dev/null",
                    "-o",
                    f"ControlPath={conf_quote(str(path), percent=True)}",
                    "-O",
                    operation,
                    alias(name),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=10,
                check=False,
            )

    def _wait_gone(self, name: str, seconds: float) -> bool:
        """Wait until no master answers; ``False`` if one still does after ``seconds``."""
        deadline = time.monotonic() + seconds
        while self.master_alive(name):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def release_master(self, name: str, wait: float = 1.0) -> None:
        """Ask the control master to take no new sessions (``-O stop``): an idle master
        exits at once, one that carries live sessions stays until they end. Used before
        counting sessions, so cai's own idle master is not mistaken for a user."""
        if self.master_alive(name):
            self._control(name, "stop")
            self._wait_gone(name, wait)

    def exit_master(self, name: str) -> None:
        """Stop the control master quietly, then remove a stale socket file."""
        path = control_path(self.paths, name)
        if not os.path.lexists(path):
            return
        if self.master_alive(name):
            self._control(name, "exit")
            if not self._wait_gone(name, 2.0):
                return  # still answering: leave a live socket alone
        if os.path.lexists(path) and not self.master_alive(name):
            unlink(path)

    def remove_socket(self, name: str) -> Path | None:
        """Exit the master and remove its socket; the socket's path when it is gone now."""
        path = control_path(self.paths, name)
        if not os.path.lexists(path):
            return None
        self.exit_master(name)
        if os.path.lexists(path):
            unlink(path)
        return None if os.path.lexists(path) else path

    # -- readiness -----------------------------------------------------------------------

    def wait_ready(self, name: str, *, timeout: float = 30.0, port: int | None = None) -> None:
        """Retry an SSH login until it succeeds, which starts the control master: ``ssh
        -N`` (no remote command) when no master answers, else ``true`` through it.

        With ``port`` (the container's on 127.0.0.1), ssh is started at once with
        ``dialer.py`` as its proxy: the dialer polls every 10 ms for sshd's banner and
        hands ssh the connection that saw it, so a container still booting costs no ssh
        retry and sshd forks for one connection, not two. Once the dialer has given up
        (the deadline), one plain ssh says what is wrong: ssh drops a ControlPersist
        proxy's stderr, and its own errors say more.

        Raises ``Failed`` at once on a host key mismatch or a broken entry file,
        else after ``timeout`` seconds with ssh's last error line.
        """
        ensure_control_dir(self.paths, name)
        entry = entry_path(self.paths, name)
        options = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=2"]
        if self.master_alive(name):
            # A master of an earlier start: ssh -N through it would return at once and
            # prove nothing; a command runs over its connection (or fails with it).
            argv = self.ssh_argv(name, "true", tty=False, extra=options)
        else:
            # The login itself (the pinned host key, the user's key accepted), with no
            # remote command: ControlPersist sends ssh to the background as the master
            # once authenticated, and sshd forks no session and starts no shell for it
            # (~60 ms under gVisor). The sessions that follow report their own errors.
            argv = self.ssh_argv(name, None, tty=False, extra=[*options, "-N"])
        deadline = time.monotonic() + timeout
        last = "no attempt made"
        while True:
            remaining = deadline - time.monotonic()
            dialed = port is not None and remaining > 0
            attempt = [argv[0], *_dialer_proxy(remaining), *argv[1:]] if dialed else argv
            # stderr to a file, not a pipe: the backgrounded master must not hold it open
            with tempfile.TemporaryFile() as errfile:
                try:
                    done = subprocess.run(
                        attempt,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=errfile,
                        timeout=max(remaining, 0.0) + 5.0,
                        check=False,
                    )
                    code: int | None = done.returncode
                except subprocess.TimeoutExpired:
                    code = None
                except FileNotFoundError:
                    raise Failed("ssh not found: install the OpenSSH client") from None
                errfile.seek(0)
                stderr = errfile.read().decode(errors="replace")
            if code == 0:
                return
            lines = [line.strip() for line in stderr.splitlines() if line.strip()]
            if lines:
                last = lines[-1]
            elif code is None:
                last = "ssh did not finish"
            else:
                last = f"ssh exited with status {code}"
            if any(marker in stderr for marker in _HOST_KEY_MISMATCH):
                problem = (
                    "presented an SSH host key that does not match the one pinned"
                    if "IDENTIFICATION HAS CHANGED" in stderr
                    else "has no usable SSH host key pinned"
                )
                raise Failed(
                    f"container '{name}' {problem} in {self.paths.known_hosts} "
                    f"({alias(name)}): recreate it with `cai --fresh`"
                )
            if any(marker in stderr for marker in _CONFIG_ERRORS):
                raise Failed(f"ssh rejected {entry} for container '{name}': {last}")
            if dialed and time.monotonic() >= deadline:
                continue  # the dialer saw no banner: plain ssh once more, for its error
            if time.monotonic() + _READY_POLL_SECONDS >= deadline:
                raise Failed(
                    f"container '{name}' did not accept SSH ({alias(name)}) "
                    f"within {timeout:g}s: {last}"
                )
            time.sleep(_READY_POLL_SECONDS)
