"""Names and places of cai's SSH files, and the small file helpers the other ssh
modules share: the ``cai-<name>`` alias, the entry file and control socket of a
container, private (0700) directories, ssh_config quoting, and the ``flock`` that
serializes edits of shared files.

On the hot path (``cai exec`` through a live control master): no I/O in the
path functions, and nothing imported here that the hot path does not load anyway.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Final

from containai.domain.labels import SSH_ALIAS_PREFIX
from containai.lazy import sha256_hex
from containai.paths import Paths

if TYPE_CHECKING:
    from collections.abc import Iterator

ALIAS_PREFIX: Final = SSH_ALIAS_PREFIX

# OpenSSH creates the control master socket at "<ControlPath>.<16 random chars>"
# (mux.c: rbuf[16+1]) and then link()s it into place; sun_path holds 108 bytes
# including the NUL. So the ControlPath itself must stay within 107 - 17 = 90 bytes.
_SUN_PATH_MAX: Final = 107
_MUX_TEMP_SUFFIX: Final = 17
CONTROL_PATH_MAX: Final = _SUN_PATH_MAX - _MUX_TEMP_SUFFIX

NAME_RE: Final = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}")


def alias(name: str) -> str:
    """The SSH host alias of a container: ``cai-<name>``."""
    return ALIAS_PREFIX + name


def check_name(name: str) -> str:
    """``name`` when it can name a container's files (no path separators, no dots first)."""
    if NAME_RE.fullmatch(name) is None:
        raise ValueError(f"invalid container name {name!r}")
    return name


def entry_path(paths: Paths, name: str) -> Path:
    """``~/.ssh/containai.d/<name>.conf``: the container's ``Host cai-<name>`` block."""
    return paths.ssh_include_dir / f"{name}.conf"


def control_path(paths: Paths, name: str) -> Path:
    """The control master socket; ``/tmp/cai-<uid>/<hash>`` when the natural path is too long.

    Deterministic and I/O-free; ``Sessions.ensure_control_dir`` creates its directory.
    """
    return _socket_path(paths, name)


def forward_control_path(paths: Paths, name: str) -> Path:
    """The socket of the container's forwards master (``cai forward --background``):
    ``<name>+fwd`` next to the control master's (``+`` is never in a container name)."""
    return _socket_path(paths, f"{name}+fwd")


def _socket_path(paths: Paths, leaf: str) -> Path:
    path = paths.ssh_sockets_dir / leaf
    if len(os.fsencode(path)) <= CONTROL_PATH_MAX:
        return path
    digest = sha256_hex(os.fsencode(path))[:16]
    return Path(f"/tmp/cai-{os.getuid()}") / digest


def host_key_path(paths: Paths, name: str) -> Path:
    """The private half of the container's own host key (``.pub`` next to it)."""
    return paths.host_keys_dir / check_name(name)


def conf_quote(value: str, *, percent: bool = False) -> str:
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


def split_lines(data: bytes) -> list[bytes]:
    """Split on ``\\n`` only (as OpenSSH reads config lines), keeping the terminators."""
    parts = data.split(b"\n")
    lines = [part + b"\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def mkdirs(path: Path) -> None:
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


def unlink(path: Path) -> bool:
    """Remove ``path``; ``False`` when it was not there."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


@contextlib.contextmanager
def locked(paths: Paths, what: str) -> Iterator[None]:
    """Hold cai's ``flock`` named ``what`` (``ssh-keys``, ``known_hosts``, ``ssh-config``)."""
    from containai.adapters.locks import FileLock

    mkdirs(paths.locks_dir)
    # No time limit (a key generation or a file rewrite is short): as before.
    with FileLock(paths.locks_dir / f"{what}.lock", timeout=float("inf"), mode=0o600):
        yield
