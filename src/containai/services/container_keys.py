"""A container's SSH files: its host key (pinned on the host) and the user's key,
copied in as a tar; and re-pinning a container whose pin was lost."""

from __future__ import annotations

import io
import tarfile
import time

from containai.services.ports import Engine, Ssh

KEY_DIR = "/etc/containai/ssh"


def key_tar(host_private: bytes, host_public: str, authorized: str) -> bytes:
    """A tar of the SSH files the container needs, extracted at ``/`` by the engine
    (``copy_in``)."""
    buf = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("etc", "etc/containai", KEY_DIR.lstrip("/")):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            info.mtime = int(now)
            tar.addfile(info)
        for path, data, mode in (
            (f"{KEY_DIR}/ssh_host_ed25519_key", host_private, 0o600),
            (f"{KEY_DIR}/ssh_host_ed25519_key.pub", host_public.encode() + b"\n", 0o644),
            (f"{KEY_DIR}/authorized_keys", authorized.encode() + b"\n", 0o644),
        ):
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size = len(data)
            info.mode = mode
            info.mtime = int(now)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def file_tar(path: str, data: bytes, mode: int = 0o644) -> bytes:
    """A tar of one root-owned file at ``path`` (extracted at ``/`` by ``copy_in``)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(path.lstrip("/"))
        info.size = len(data)
        info.mode = mode
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def send_keys(engine: Engine, ssh: Ssh, name: str, private: bytes, public: str) -> None:
    """Copy the container's host key and the user's key into it."""
    engine.copy_in(name, key_tar(private, public, ssh.public_key()), "/")


def install_keys(engine: Engine, ssh: Ssh, name: str) -> None:
    """Re-send the SSH files to an existing container (after a crash mid-creation)."""
    private, public = ssh.ensure_host_key(name)
    ssh.pin_host_key(name, public)
    send_keys(engine, ssh, name, private, public)


def heal_pin(engine: Engine, ssh: Ssh, name: str) -> None:
    """An existing container whose pin was lost (a crash between create and pin, or a
    cleanup): pin the public key the container itself holds. A pin that exists is never
    replaced here, so a changed host key still fails the login (no TOFU)."""
    if name.lower() in (n.lower() for n in ssh.pinned_names()):
        return
    proc = engine.exec(
        name, ["cat", f"{KEY_DIR}/ssh_host_ed25519_key.pub"], timeout=10, check=False
    )
    public = proc.stdout.strip()
    if proc.returncode == 0 and public.startswith("ssh-"):
        ssh.pin_host_key(name, public)
