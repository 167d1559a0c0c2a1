"""OpenSSH from the host: keys, pinned host keys, per-container config entries,
the ``Include`` line in ``~/.ssh/config``, control master sockets (SPEC section 10,
DESIGN decision 3).

Everything here is plain files plus the host's ``ssh`` and ``ssh-keygen``; no
paramiko. Writes are atomic (temp file in the same directory + ``os.replace``),
directories cai creates are 0700 and secrets 0600. Edits of shared files
(``known_hosts``, ``~/.ssh/config``) and key generation are serialized with
``flock`` locks (adapters/locks.py) under ``paths.locks_dir``, so concurrent ``cai``
processes converge.

The hot path (``ssh_argv``, ``control_path``, ``entry_path``, ``alias``,
``remote_command``) does no I/O; ``master_alive`` is one ``connect()`` on a
Unix socket.
"""

from __future__ import annotations

import _socket  # the C module: `socket` costs the hot path ~3 ms more
import contextlib
import errno
import os
import re
import shlex
import stat
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from containai.adapters.files import atomic_write
from containai.domain.errors import Failed
from containai.lazy import lazy_module, sha256_hex
from containai.paths import Paths

if TYPE_CHECKING:
    import base64
    import shutil
    import subprocess
    import tempfile
else:
    base64 = lazy_module("base64")
    shutil = lazy_module("shutil")
    subprocess = lazy_module("subprocess")
    tempfile = lazy_module("tempfile")


ALIAS_PREFIX: Final = "cai-"
INCLUDE_PATTERN: Final = "~/.ssh/containai.d/*.conf"
INCLUDE_LINE: Final = f"Include {INCLUDE_PATTERN}"

# OpenSSH creates the control master socket at "<ControlPath>.<16 random chars>"
# (mux.c: rbuf[16+1]) and then link()s it into place; sun_path holds 108 bytes
# including the NUL. So the ControlPath itself must stay within 107 - 17 = 90 bytes.
_SUN_PATH_MAX: Final = 107
_MUX_TEMP_SUFFIX: Final = 17
CONTROL_PATH_MAX: Final = _SUN_PATH_MAX - _MUX_TEMP_SUFFIX

_NAME_RE: Final = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}")
_USER_RE: Final = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.$-]*")
_HOSTNAME_RE: Final = re.compile(r"[A-Za-z0-9_.:\[\]-]+")
_JUMP_HOP_RE: Final = re.compile(r"(?:ssh://)?(?:[^\s@/,'\"\\]+@)?[A-Za-z0-9_.:\[\]-]+")
_KEYTYPE_RE: Final = re.compile(r"[A-Za-z0-9@._+-]+")
_BASE64_RE: Final = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_INCLUDE_RE: Final = re.compile(r"include(?:\s*=\s*|\s+)(?P<arg>\S.*?)", re.IGNORECASE)

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
_BANNER_POLL_SECONDS: Final = 0.01
_KEX_ALGORITHMS: Final = "curve25519-sha256,curve25519-sha256@libssh.org"  # OpenSSH >= 7.4


def alias(name: str) -> str:
    """The SSH host alias of a container: ``cai-<name>``."""
    return ALIAS_PREFIX + name


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


def _check_name(name: str) -> str:
    if _NAME_RE.fullmatch(name) is None:
        raise ValueError(f"invalid container name {name!r}")
    return name


def _conf_quote(value: str, *, percent: bool = False) -> str:
    """Quote one ssh_config argument (OpenSSH ``argv_split`` rules).

    ``percent``: the option expands ``%`` tokens (IdentityFile, ControlPath,
    UserKnownHostsFile), so a literal ``%`` is written ``%%``.
    """
    if any(ch in value for ch in "\n\r\0"):
        raise ValueError(f"cannot write {value!r} into an ssh config file")
    if percent:
        value = value.replace("%", "%%")
    if value and not any(ch.isspace() or ch in "\"'\\#=" for ch in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment_safe(text: str) -> str:
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def _mkdirs(path: Path) -> None:
    """Create ``path`` and any missing parents with mode 0700 (XDG rule); existing ones are left."""
    missing: list[Path] = []
    current = path
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue
        os.chmod(directory, 0o700)


# Connects like ssh would, turns Nagle off (OpenSSH does that only for interactive
# sessions, so a login's handshake waits on delayed ACKs: ~30 ms measured) and hands
# the socket to ssh (ProxyUseFdpass). No '%' (ssh expands those) and no quote.
_NODELAY_PROXY_CODE = (
    "import _socket as S,sys;"
    "c=S.socket(S.AF_INET,S.SOCK_STREAM);"
    "c.connect((sys.argv[1],int(sys.argv[2])));"
    "c.setsockopt(S.IPPROTO_TCP,S.TCP_NODELAY,1);"
    "S.socket(fileno=1).sendmsg([bytes(1)],"
    "[(S.SOL_SOCKET,S.SCM_RIGHTS,c.fileno().to_bytes(4,sys.byteorder))])"
)


def _nodelay_proxy() -> list[str]:
    """ssh options for cai's own first login (the one that starts the control master):
    the connection comes from a ~10 ms Python helper with TCP_NODELAY set. The entry
    files stay plain OpenSSH, for every other client."""
    import shlex
    import sys

    command = f"{shlex.quote(sys.executable)} -I -S -c {shlex.quote(_NODELAY_PROXY_CODE)} %h %p"
    return ["-o", "ProxyUseFdpass=yes", "-o", f"ProxyCommand={command}"]


def _has_banner(port: int, timeout: float) -> bool:
    """Whether sshd greets on 127.0.0.1:``port`` (``SSH-``). Docker's proxy accepts
    and then closes the connection while nothing listens inside: no banner."""
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def _await_banner(port: int, deadline: float) -> bool:
    """Poll for sshd's banner every ``_BANNER_POLL_SECONDS``; ``False`` at ``deadline``."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if _has_banner(port, min(1.0, left)):
            return True
        time.sleep(min(_BANNER_POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def _unlink(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def _split_lines(data: bytes) -> list[bytes]:
    """Split on ``\\n`` only (as OpenSSH reads config lines), keeping the terminators."""
    parts = data.split(b"\n")
    lines = [part + b"\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _parse_public_line(public_line: str) -> tuple[str, str]:
    """``(keytype, base64)`` of an OpenSSH public key line; the blob must name the same type."""
    fields = public_line.split()
    if len(fields) >= 2 and _KEYTYPE_RE.fullmatch(fields[0]) and _BASE64_RE.fullmatch(fields[1]):
        try:
            blob = base64.b64decode(fields[1], validate=True)
        except ValueError:
            blob = b""
        kind = fields[0].encode()
        if blob[:4] == len(kind).to_bytes(4, "big") and blob[4 : 4 + len(kind)] == kind:
            return fields[0], fields[1]
    raise ValueError(f"not an OpenSSH public key line: {public_line[:60]!r}")


def _proxy_command(proxy_jump: str) -> str:
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


class SshFiles:
    """Keys, pins, config entries and control sockets of cai's containers."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    # -- paths (no I/O) -------------------------------------------------------

    def entry_path(self, name: str) -> Path:
        return self.paths.ssh_include_dir / f"{name}.conf"

    def control_path(self, name: str) -> Path:
        """The control master socket; ``/tmp/cai-<uid>/<hash>`` when the natural path is too long.

        Deterministic and I/O-free; ``ensure_control_dir`` creates its directory.
        """
        path = self.paths.ssh_sockets_dir / name
        if len(os.fsencode(path)) <= CONTROL_PATH_MAX:
            return path
        digest = sha256_hex(os.fsencode(path))[:16]
        return Path(f"/tmp/cai-{os.getuid()}") / digest

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
            str(self.entry_path(name)),
            "-tt" if tty else "-T",
            *extra,
            alias(name),
        ]
        if isinstance(remote, str):
            argv.append(remote)
        elif remote is not None:
            argv.extend(remote)
        return argv

    # -- keys -------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self, what: str) -> Iterator[None]:
        from containai.adapters.locks import FileLock

        _mkdirs(self.paths.locks_dir)
        # No time limit (a key generation or a file rewrite is short): as before.
        with FileLock(self.paths.locks_dir / f"{what}.lock", timeout=float("inf"), mode=0o600):
            yield

    def _generate_key(self, private: Path, comment: str) -> None:
        """Generate an ed25519 pair at ``private`` (+ .pub); caller holds the keys lock.

        Generated in a private temp dir; the public half is moved into place
        first, so "private key exists" always implies "public key exists".
        """
        _mkdirs(private.parent)
        workdir = Path(tempfile.mkdtemp(dir=private.parent, prefix=".keygen-"))
        try:
            tmp_key = workdir / "key"
            self._keygen(["-t", "ed25519", "-N", "", "-C", comment, "-q", "-f", str(tmp_key)])
            os.chmod(tmp_key, 0o600)
            os.replace(workdir / "key.pub", private.with_name(private.name + ".pub"))
            os.replace(tmp_key, private)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    @staticmethod
    def _keygen(args: Sequence[str]) -> str:
        try:
            done = subprocess.run(
                ["ssh-keygen", *args],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                check=False,
            )
        except FileNotFoundError:
            raise Failed("ssh-keygen not found: install the OpenSSH client") from None
        if done.returncode != 0:
            detail = done.stderr.strip().splitlines()
            raise Failed(f"ssh-keygen failed: {detail[-1] if detail else done.returncode}")
        return done.stdout

    def _ensure_pair(self, private: Path, comment: str) -> None:
        public = private.with_name(private.name + ".pub")
        if private.is_file() and public.is_file():
            if stat.S_IMODE(private.stat().st_mode) & 0o077:
                os.chmod(private, 0o600)  # ssh ignores a private key others can read
            return
        with self._lock("ssh-keys"):
            if not private.is_file():
                self._generate_key(private, comment)
            elif not public.is_file():
                if stat.S_IMODE(private.stat().st_mode) & 0o077:
                    os.chmod(private, 0o600)  # else ssh-keygen refuses to read it
                # the public half was deleted: derive it again from the private key
                fields = self._keygen(["-y", "-f", str(private)]).split()[:2]
                atomic_write(public, f"{' '.join(fields)} {comment}\n".encode(), mode=0o644)

    def ensure_user_key(self) -> Path:
        """The user key ``paths.user_key`` (ed25519, 0600), generated on first use."""
        key = self.paths.user_key
        self._ensure_pair(key, "containai")
        return key

    def public_key(self) -> str:
        """The user's public key line (generating the key if needed)."""
        key = self.ensure_user_key()
        return key.with_name(key.name + ".pub").read_text().strip()

    def host_key_path(self, name: str) -> Path:
        return self.paths.host_keys_dir / _check_name(name)

    def ensure_host_key(self, name: str) -> tuple[bytes, str]:
        """The container's own host key: (private key bytes, public key line). Idempotent."""
        private = self.host_key_path(name)
        self._ensure_pair(private, f"containai-host-{name}")
        public = private.with_name(private.name + ".pub")
        return private.read_bytes(), public.read_text().strip()

    # -- known_hosts -------------------------------------------------------------

    def _pinned(self, name: str) -> bool:
        """Whether ``known_hosts`` may hold a line for ``cai-<name>`` (a cheap pre-check)."""
        try:
            data = self.paths.known_hosts.read_bytes()
        except OSError:
            return False
        return alias(name).lower().encode() in data.lower()

    def _rewrite_known_hosts(self, name: str, new_line: str | None) -> bool:
        """Drop every line for ``cai-<name>``, then add ``new_line``; True when the file changed."""
        host = alias(name).lower()
        path = self.paths.known_hosts
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = b""
        kept: list[bytes] = []
        for line in _split_lines(data):
            fields = line.split(None, 1)
            hosts = fields[0].decode(errors="replace").lower().split(",") if fields else []
            if host not in hosts:
                kept.append(line)
        if kept and not kept[-1].endswith(b"\n"):
            kept[-1] += b"\n"
        if new_line is not None:
            kept.append(new_line.encode() + b"\n")
        new = b"".join(kept)
        if new == data:
            return False
        _mkdirs(path.parent)
        atomic_write(path, new)
        return True

    def pin_host_key(self, name: str, public_line: str) -> None:
        """Pin ``cai-<name> <type> <base64>`` in ``paths.known_hosts``, replacing an earlier pin."""
        keytype, blob = _parse_public_line(public_line)
        line = f"{alias(_check_name(name))} {keytype} {blob}"
        with self._lock("known_hosts"):
            self._rewrite_known_hosts(name, line)

    def pinned_names(self) -> list[str]:
        try:
            data = self.paths.known_hosts.read_text(errors="replace")
        except FileNotFoundError:
            return []
        names = []
        for line in data.splitlines():
            fields = line.split()
            if fields and fields[0].startswith(ALIAS_PREFIX):
                candidate = fields[0][len(ALIAS_PREFIX) :]
                if _NAME_RE.fullmatch(candidate):
                    names.append(candidate)
        return names

    # -- config entry ------------------------------------------------------------

    def ensure_control_dir(self, name: str) -> Path:
        """Create the control socket's directory (0700, owned by us) and return the socket path."""
        path = self.control_path(name)
        directory = path.parent
        if directory == self.paths.ssh_sockets_dir:
            _mkdirs(directory)
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
    ) -> Path:
        """Write ``~/.ssh/containai.d/<name>.conf``: a self-sufficient ``Host cai-<name>`` block.

        The same file serves ``ssh cai-<name>`` (through the Include line) and
        cai's own ``ssh -F <file>`` calls, so it names every file it needs.
        """
        _check_name(name)
        if not 0 < port < 65536:
            raise ValueError(f"invalid port {port}")
        if _USER_RE.fullmatch(user) is None:
            raise ValueError(f"invalid ssh user {user!r}")
        if _HOSTNAME_RE.fullmatch(hostname) is None:
            raise ValueError(f"invalid ssh hostname {hostname!r}")
        proxy_command = _proxy_command(proxy_jump) if proxy_jump else None
        host = alias(name)
        header = [
            f"# Managed by cai (ContainAI): SSH access to container '{name}'.",
            f"# Workspace: {_comment_safe(workspace) if workspace else '(unknown)'}",
            "# Rewritten by cai; removed by `cai stop --remove`, `cai gc`, `cai ssh cleanup`.",
        ]
        options: list[tuple[str, str]] = [
            ("HostName", hostname),
            ("Port", str(port)),
            ("User", user),
            ("IdentityFile", _conf_quote(str(self.paths.user_key), percent=True)),
            ("IdentitiesOnly", "yes"),
            ("PubkeyAuthentication", "yes"),
            ("PasswordAuthentication", "no"),
            ("KbdInteractiveAuthentication", "no"),
            ("UserKnownHostsFile", _conf_quote(str(self.paths.known_hosts), percent=True)),
            ("GlobalKnownHostsFile", "/dev/null"),
            ("HostKeyAlias", host),
            ("StrictHostKeyChecking", "yes"),
            ("CheckHostIP", "no"),
            ("UpdateHostKeys", "no"),
            ("ForwardAgent", "yes" if forward_agent else "no"),
            ("ForwardX11", "no"),
            ("ControlMaster", "auto"),
            ("ControlPath", _conf_quote(str(self.control_path(name)), percent=True)),
            ("ControlPersist", "10m"),
            ("ServerAliveInterval", "15"),
            ("ServerAliveCountMax", "4"),
            ("ConnectTimeout", "5"),
            # The hop never leaves the host (127.0.0.1 -> the container): the classic
            # curve first saves ~50 ms of CPU per login over the post-quantum hybrid.
            ("KexAlgorithms", _KEX_ALGORITHMS),
            ("LogLevel", "ERROR"),
        ]
        if proxy_command is not None:
            options.append(("ProxyCommand", proxy_command))
        text = "\n".join([*header, f"Host {host}", *(f"  {k} {v}" for k, v in options)]) + "\n"
        path = self.entry_path(name)
        _mkdirs(path.parent)
        atomic_write(path, text.encode())
        self.ensure_control_dir(name)
        return path

    # -- ~/.ssh/config -------------------------------------------------------------

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
        lines = _split_lines(data)
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
        return "Include " + _conf_quote(str(self.paths.ssh_include_dir / "*.conf"))

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
            with self._lock("ssh-config"):
                target = Path(os.path.realpath(config))
                try:
                    info: os.stat_result | None = os.stat(target)
                    data = target.read_bytes()
                except FileNotFoundError:
                    info, data = None, b""
                lines = _split_lines(data)
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
                        _mkdirs(target.parent)
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

    # -- control master ------------------------------------------------------------

    def master_alive(self, name: str) -> bool:
        """True when a control master answers on the socket (one ``connect()``, no fork)."""
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.settimeout(1.0)
            sock.connect(os.fsencode(self.control_path(name)))
        except OSError:
            return False
        finally:
            sock.close()
        return True

    def _control(self, name: str, operation: str) -> None:
        """``ssh -O OPERATION`` to the master; ``-F /dev/null`` works without the entry."""
        path = self.control_path(name)
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(
                [
                    "ssh",
                    "-F",
                    "/dev/null",
                    "-o",
                    f"ControlPath={_conf_quote(str(path), percent=True)}",
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
        path = self.control_path(name)
        if not os.path.lexists(path):
            return
        if self.master_alive(name):
            self._control(name, "exit")
            if not self._wait_gone(name, 2.0):
                return  # still answering: leave a live socket alone
        if os.path.lexists(path) and not self.master_alive(name):
            _unlink(path)

    def wait_ready(self, name: str, *, timeout: float = 30.0, port: int | None = None) -> None:
        """Retry ``ssh ... true`` until it succeeds (which also starts the control master).

        With ``port`` (the container's on 127.0.0.1), each attempt first waits, polling
        in-process every 10 ms, for sshd's banner on it: a container that is still
        booting costs no ssh process and no 50 ms back-off.

        Raises ``Failed`` at once on a host key mismatch or a broken entry file,
        else after ``timeout`` seconds with ssh's last error line.
        """
        self.ensure_control_dir(name)
        entry = self.entry_path(name)
        argv = self.ssh_argv(
            name,
            "true",
            tty=False,
            extra=["-o", "BatchMode=yes", "-o", "ConnectTimeout=2"],
        )
        fast_argv = [argv[0], *_nodelay_proxy(), *argv[1:]]
        deadline = time.monotonic() + timeout
        last = "no attempt made"
        while True:
            # Through the no-delay helper only when sshd was just seen to answer: ssh
            # drops a ControlPersist proxy's stderr, and its own errors say more.
            greeted = port is not None and _await_banner(port, deadline)
            remaining = deadline - time.monotonic()
            # stderr to a file, not a pipe: the backgrounded master must not hold it open
            with tempfile.TemporaryFile() as errfile:
                try:
                    done = subprocess.run(
                        fast_argv if greeted else argv,
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
            if time.monotonic() + _READY_POLL_SECONDS >= deadline:
                raise Failed(
                    f"container '{name}' did not accept SSH ({alias(name)}) "
                    f"within {timeout:g}s: {last}"
                )
            time.sleep(_READY_POLL_SECONDS)

    # -- cleanup ----------------------------------------------------------------------

    def remove(self, name: str) -> list[Path]:
        """Exit the master and remove the entry, the pin, the host key pair and the socket."""
        _check_name(name)
        removed: list[Path] = []
        socket_path = self.control_path(name)
        if os.path.lexists(socket_path):
            self.exit_master(name)
            if os.path.lexists(socket_path):
                _unlink(socket_path)
            if not os.path.lexists(socket_path):
                removed.append(socket_path)
        entry = self.entry_path(name)
        if _unlink(entry):
            removed.append(entry)
        if self._pinned(name):  # lock and rewrite only when there is a pin to drop
            with self._lock("known_hosts"):
                if self._rewrite_known_hosts(name, None):
                    removed.append(self.paths.known_hosts)
        private = self.host_key_path(name)
        for key in (private, private.with_name(private.name + ".pub")):
            if _unlink(key):
                removed.append(key)
        return removed

    def entries(self) -> list[str]:
        """Names that have an entry file, a pinned host key or a host key pair."""
        names: set[str] = set(self.pinned_names())
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for file in os.listdir(self.paths.ssh_include_dir):
                if file.endswith(".conf") and _NAME_RE.fullmatch(file[: -len(".conf")]):
                    names.add(file[: -len(".conf")])
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            files = set(os.listdir(self.paths.host_keys_dir))
            for file in files:
                if file.startswith("."):
                    continue  # temp files of a key generation
                name = file
                if file + ".pub" not in files and file.endswith(".pub"):
                    if file[: -len(".pub")] in files:
                        continue  # the public half of a pair
                    name = file[: -len(".pub")]  # a public half whose private key is gone
                if _NAME_RE.fullmatch(name):
                    names.add(name)
        return sorted(names)

    def stale(self, existing: Collection[str]) -> list[str]:
        """Names with SSH leftovers whose container is not in ``existing``."""
        keep = set(existing)
        return [name for name in self.entries() if name not in keep]
