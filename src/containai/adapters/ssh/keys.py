"""SSH keys and pins: the user's key, each container's own host key, and the
``known_hosts`` line that pins it under the container's alias (SPEC section 10,
DESIGN decision 3).

Keys come from the host's ``ssh-keygen`` (ed25519), generated in a private temp
directory and moved into place public half first, so "private key exists" always
implies "public key exists". Key generation and ``known_hosts`` rewrites are
serialized with ``flock`` locks, so concurrent ``cai`` processes converge.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Final

from containai.adapters.files import atomic_write
from containai.adapters.ssh.layout import (
    ALIAS_PREFIX,
    NAME_RE,
    alias,
    check_name,
    host_key_path,
    locked,
    mkdirs,
    split_lines,
    unlink,
)
from containai.domain.errors import Failed
from containai.lazy import lazy_module
from containai.paths import Paths

if TYPE_CHECKING:
    import base64
    import shutil
    import subprocess
    import tempfile
    from collections.abc import Sequence
else:
    base64 = lazy_module("base64")
    shutil = lazy_module("shutil")
    subprocess = lazy_module("subprocess")
    tempfile = lazy_module("tempfile")

_KEYTYPE_RE: Final = re.compile(r"[A-Za-z0-9@._+-]+")
_BASE64_RE: Final = re.compile(r"[A-Za-z0-9+/]+={0,2}")


def parse_public_line(public_line: str) -> tuple[str, str]:
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


def _generate_key(private: Path, comment: str) -> None:
    """Generate an ed25519 pair at ``private`` (+ .pub); caller holds the keys lock.

    Generated in a private temp dir; the public half is moved into place
    first, so "private key exists" always implies "public key exists".
    """
    mkdirs(private.parent)
    workdir = Path(tempfile.mkdtemp(dir=private.parent, prefix=".keygen-"))
    try:
        tmp_key = workdir / "key"
        _keygen(["-t", "ed25519", "-N", "", "-C", comment, "-q", "-f", str(tmp_key)])
        os.chmod(tmp_key, 0o600)
        os.replace(workdir / "key.pub", private.with_name(private.name + ".pub"))
        os.replace(tmp_key, private)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class Keys:
    """The user key, the containers' host keys and their pins in ``known_hosts``."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    # -- key pairs ----------------------------------------------------------------

    def _ensure_pair(self, private: Path, comment: str) -> None:
        public = private.with_name(private.name + ".pub")
        if private.is_file() and public.is_file():
            if stat.S_IMODE(private.stat().st_mode) & 0o077:
                os.chmod(private, 0o600)  # ssh ignores a private key others can read
            return
        with locked(self.paths, "ssh-keys"):
            if not private.is_file():
                _generate_key(private, comment)
            elif not public.is_file():
                if stat.S_IMODE(private.stat().st_mode) & 0o077:
                    os.chmod(private, 0o600)  # else ssh-keygen refuses to read it
                # the public half was deleted: derive it again from the private key
                fields = _keygen(["-y", "-f", str(private)]).split()[:2]
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

    def ensure_host_key(self, name: str) -> tuple[bytes, str]:
        """The container's own host key: (private key bytes, public key line). Idempotent."""
        private = host_key_path(self.paths, name)
        self._ensure_pair(private, f"containai-host-{name}")
        public = private.with_name(private.name + ".pub")
        return private.read_bytes(), public.read_text().strip()

    def remove_host_key(self, name: str) -> list[Path]:
        """Remove the container's host key pair; the files that were there."""
        private = host_key_path(self.paths, name)
        keys = (private, private.with_name(private.name + ".pub"))
        return [key for key in keys if unlink(key)]

    def host_key_names(self) -> set[str]:
        """Names that have a host key pair, or one half of it, on disk."""
        names: set[str] = set()
        try:
            files = set(os.listdir(self.paths.host_keys_dir))
        except (FileNotFoundError, NotADirectoryError):
            return names
        for file in files:
            if file.startswith("."):
                continue  # temp files of a key generation
            name = file
            if file + ".pub" not in files and file.endswith(".pub"):
                if file[: -len(".pub")] in files:
                    continue  # the public half of a pair
                name = file[: -len(".pub")]  # a public half whose private key is gone
            if NAME_RE.fullmatch(name):
                names.add(name)
        return names

    # -- known_hosts ---------------------------------------------------------------

    def _pinned(self, names: Sequence[str]) -> bool:
        """Whether ``known_hosts`` may hold a line for ``cai-<name>`` of any of ``names`` (a
        cheap pre-check)."""
        try:
            data = self.paths.known_hosts.read_bytes().lower()
        except OSError:
            return False
        return any(alias(name).lower().encode() in data for name in names)

    def _rewrite_known_hosts(self, names: Sequence[str], new_line: str | None) -> bool:
        """Drop every line for ``cai-<name>`` of each of ``names``, then add ``new_line``;
        True when the file changed."""
        drop = {alias(name).lower() for name in names}
        path = self.paths.known_hosts
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = b""
        kept: list[bytes] = []
        for line in split_lines(data):
            fields = line.split(None, 1)
            hosts = fields[0].decode(errors="replace").lower().split(",") if fields else []
            if drop.isdisjoint(hosts):
                kept.append(line)
        if kept and not kept[-1].endswith(b"\n"):
            kept[-1] += b"\n"
        if new_line is not None:
            kept.append(new_line.encode() + b"\n")
        new = b"".join(kept)
        if new == data:
            return False
        mkdirs(path.parent)
        atomic_write(path, new)
        return True

    def pin_host_key(self, name: str, public_line: str) -> None:
        """Pin ``cai-<name> <type> <base64>`` in ``paths.known_hosts``, replacing an earlier pin."""
        keytype, blob = parse_public_line(public_line)
        line = f"{alias(check_name(name))} {keytype} {blob}"
        with locked(self.paths, "known_hosts"):
            self._rewrite_known_hosts([name], line)

    def unpin(self, *names: str) -> bool:
        """Drop every pin of ``cai-<name>`` of each of ``names`` (one rewrite for all); True
        when ``known_hosts`` changed."""
        if not self._pinned(names):  # lock and rewrite only when there is a pin to drop
            return False
        with locked(self.paths, "known_hosts"):
            return self._rewrite_known_hosts(names, None)

    def pinned_names(self) -> list[str]:
        """Names pinned in ``known_hosts``, in file order."""
        try:
            data = self.paths.known_hosts.read_text(errors="replace")
        except FileNotFoundError:
            return []
        names = []
        for line in data.splitlines():
            fields = line.split()
            if fields and fields[0].startswith(ALIAS_PREFIX):
                candidate = fields[0][len(ALIAS_PREFIX) :]
                if NAME_RE.fullmatch(candidate):
                    names.append(candidate)
        return names
