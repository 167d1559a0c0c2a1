"""cai on a remote engine (SPEC section 16, DESIGN decision 8; docs/remote.md).

A context whose endpoint is ``ssh://`` is another machine: none of this machine's
files and none of its loopback ports are there. What changes, each in one place:

* ``RemoteHost``: the facts lifecycle asks the host (free ports, memory, CPUs) are
  the remote's: ports are chosen from the remote's labels only (a loopback port of
  the remote cannot be probed from here; a taken one fails the start and lifecycle
  takes the next), memory and CPUs from ``docker info``; nothing local is granted.
* ``RemoteImages``: images are built on the local engine (which has the mirrors and
  the build machinery) and sent with ``docker save | docker load`` when the remote
  lacks them or holds an older build (the template hash label).
* ``RemoteWorkspace``: no bind mount; a per-workspace volume mounted at the
  workspace's own absolute path, filled at creation (tracked and untracked,
  not-ignored files and the whole ``.git``); the CA bundle is copied, not mounted.
* ``link``/``push``: the ``cai-<name>`` git remote, and ``cai sync push``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from containai.domain import labels as L
from containai.domain import remote as R
from containai.domain.engine_facts import EngineInfo
from containai.domain.engine_objects import ImageInfo, Mount
from containai.domain.errors import Failed, NotFound, Refused
from containai.services.container_keys import file_tar
from containai.services.container_spec import HOST_CA
from containai.services.ports import Engine, HostProbe
from containai.services.run_request import ImageProvider, ImageRef

if TYPE_CHECKING:
    from containai.services.doctor import Check

Progress = Callable[[str], None]


class RemoteEngine(Engine, Protocol):
    """The engine port plus what only a remote needs: streaming a tar file in with its
    owners, and receiving an image."""

    def copy_in_file(self, name: str, tar_path: Path, dest: str) -> None: ...


class Copier(Protocol):
    """The workspace's side of the trip (``adapters/workspace_copy.py``)."""

    def write_archive(self, workspace: str, dest: Path, uid: int, gid: int) -> int: ...

    def ensure_git_remote(self, workspace: str, name: str, url: str) -> str: ...

    def has_git(self, workspace: str) -> bool: ...

    def missing_commits(self, workspace: str, shas: list[str]) -> list[str]: ...


class RemotePlacement(Protocol):
    """What ``Lifecycle`` asks of a remote engine's workspace (``RemoteWorkspace``)."""

    jump: str  # the context's SSH host: the entry reaches the remote loopback through it
    context: str  # recorded in the SSH entry (`cai ssh cleanup` of another context spares it)

    def mounts(self, name: str, workspace: str) -> list[Mount]: ...

    def after_create(
        self, name: str, workspace: str, uid: int, gid: int, ca_bundle: Path | None
    ) -> None: ...

    def link(self, name: str, workspace: str) -> str | None: ...


# ------------------------------------------------------------------------- host
class RemoteHost:
    """``HostProbe`` for a remote engine: its memory and CPUs; a port is free when
    nothing answers on the remote's loopback (``probe``, through the context's SSH
    host), never judged by this machine's ports."""

    def __init__(
        self,
        local: HostProbe,
        engine: Engine,
        probe: Callable[[int], bool] = lambda _port: True,
    ) -> None:
        self.local = local
        self.engine = engine
        self.probe = probe
        self._info: EngineInfo | None = None

    def _facts(self) -> EngineInfo:
        if self._info is None:
            self._info = self.engine.engine_info()
        return self._info

    def port_is_free(self, port: int) -> bool:
        return self.probe(port)

    def memory_bytes(self) -> int:
        return self._facts().memory_bytes or self.local.memory_bytes()

    def cpu_count(self) -> int:
        return self._facts().cpus or self.local.cpu_count()

    def uid_gid(self) -> tuple[int, int]:
        return self.local.uid_gid()

    def agent_ids(self, workspace: str) -> tuple[int, int]:
        return self.local.agent_ids(workspace)

    def grant(self, paths: object, uid: int, gid: int) -> int:
        return 0  # the workspace is a copy the agent owns: nothing local to open up

    def git_identity(self) -> tuple[str | None, str | None]:
        return self.local.git_identity()  # the user's, from this machine's git


# ------------------------------------------------------------------------ images
Send = Callable[[str], None]
"""``docker save REF | docker --context REMOTE load``."""


class RemoteImages(ImageProvider):
    """Images on a remote engine: built on the local one, sent when missing there."""

    def __init__(
        self,
        local: ImageProvider,
        remote: Engine,
        send: Send,
        *,
        gateway: Callable[[], str] | None = None,
        progress: Progress = lambda _m: None,
        lock: Callable[[str], AbstractContextManager[object]] | None = None,
        context: str = "",
    ) -> None:
        self.local = local
        self.remote = remote
        self.send = send
        self._gateway = gateway
        self.progress = progress
        self._lock = lock or (lambda _name: nullcontext())
        self.context = context
        self.sent: list[str] = []

    def _present(self, tag: str, template_hash: str | None) -> bool:
        info: ImageInfo | None = self.remote.image(tag)
        if info is None:
            return False
        return template_hash is None or info.labels.get(L.TEMPLATE_HASH) == template_hash

    def _ship(self, tag: str, template_hash: str | None) -> None:
        if self._present(tag, template_hash):
            return
        with self._lock(f"send-{tag.replace(':', '-').replace('/', '-')}"):
            if self._present(tag, template_hash):
                return
            started = time.monotonic()
            self.progress(
                f"sending image {tag} to context '{self.context}' (docker save | docker load)"
            )
            self.send(tag)
            self.sent.append(tag)
            self.progress(f"sent image {tag} in {time.monotonic() - started:.0f} s")

    def ensure(self, template: str) -> ImageRef:
        ref = self.local.ensure(template)
        self.ship(ref)
        return ref

    def ship(self, ref: ImageRef) -> None:
        """An image built here (a devcontainer's too) onto the remote, when missing."""
        self._ship(ref.tag, ref.template_hash)

    def ensure_gateway(self) -> str:
        if self._gateway is None:
            raise Failed("no egress gateway image provider")
        tag = self._gateway()
        self._ship(tag, None)  # its tag is its hash
        return tag

    def current_hash(self, template: str) -> str | None:
        return self.local.current_hash(template)

    def ca_bundle_path(self) -> Path | None:
        return self.local.ca_bundle_path()


# --------------------------------------------------------------------- workspace
@dataclass
class RemoteWorkspace:
    """The workspace of a container on a remote engine: a volume, not a bind mount."""

    engine: RemoteEngine
    copier: Copier
    context: str
    jump: str
    tmp_dir: Path
    progress: Progress = lambda _m: None
    warn: Progress = lambda _m: None
    new_volumes: set[str] = field(default_factory=set)  # made by this process

    def mounts(self, name: str, workspace: str) -> list[Mount]:
        """The workspace volume (made when missing, labelled with the workspace) at the
        workspace's own absolute path."""
        volume = R.workspace_volume(name)
        info = self.engine.volume(volume)
        if info is None:
            labels = {L.MANAGED: L.TRUE, L.WORKSPACE: workspace, R.WORKSPACE_VOLUME_LABEL: name}
            try:
                self.engine.create_volume(volume, labels)
            except Failed:
                if self.engine.volume(volume) is None:
                    raise
            else:
                self.new_volumes.add(volume)
        elif info.labels.get(L.WORKSPACE) != workspace:
            raise Refused(
                f"volume '{volume}' on context '{self.context}' holds workspace "
                f"{info.labels.get(L.WORKSPACE) or '(unknown)'}, not {workspace}; remove it "
                "or choose another --container"
            )
        return [Mount("volume", volume, workspace)]

    def after_create(
        self, name: str, workspace: str, uid: int, gid: int, ca_bundle: Path | None
    ) -> None:
        """Fill a container made a moment ago (not started): the CA bundle, and the
        workspace when its volume holds no copy yet (a recreated container keeps the
        copy the agent works on; ``cai sync push`` sends the local one again). A run
        that dies between making the volume and filling it leaves it empty: `cai sync
        push` fills it."""
        if ca_bundle is not None:
            self.engine.copy_in(name, file_tar(HOST_CA, ca_bundle.read_bytes()), "/")
        if R.workspace_volume(name) in self.new_volumes:
            self.send_workspace(name, workspace, uid, gid)

    def send_workspace(self, name: str, workspace: str, uid: int, gid: int) -> int:
        """Stream the workspace's tar into the container (running or not); the number
        of files and directories sent."""
        parent = str(Path(workspace).parent)
        self.tmp_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _temp_file(self.tmp_dir, "workspace", ".tar") as tar_path:
            started = time.monotonic()
            count = self.copier.write_archive(workspace, tar_path, uid, gid)
            size = tar_path.stat().st_size
            self.engine.copy_in_file(name, tar_path, parent)
            self.progress(
                f"copied workspace {workspace} ({count} entries, {size // 1024} KiB) into "
                f"container '{name}' on context '{self.context}' in "
                f"{time.monotonic() - started:.1f} s"
            )
        return count

    # ------------------------------------------------------------------ git
    def link(self, name: str, workspace: str) -> str | None:
        """The ``cai-<name>`` git remote in the local repository (``None`` outside git)."""
        try:
            if not self.copier.has_git(workspace):
                return None
            return self.copier.ensure_git_remote(
                workspace, R.git_remote_name(name), R.git_remote_url(name, workspace)
            )
        except Failed as exc:  # the container is fine; only the way home is missing
            self.warn(str(exc))
            return None

    def push(self, name: str, workspace: str, user: str, uid: int, gid: int, force: bool) -> int:
        """``cai sync push``: the local working tree and history into the running
        container again. Refused (unless ``force``) when the container holds commits
        the local repository lacks or uncommitted changes: those would be lost."""
        info = self.engine.find(name)
        if info is None:
            raise NotFound(f"container '{name}' does not exist on context '{self.context}'")
        if info.state != "running":
            raise Failed(
                f"container '{name}' is {info.state}; start it with `cai run --detached`, "
                "then `cai sync push`"
            )
        if not force and self.copier.has_git(workspace):
            self._check_nothing_lost(name, workspace, user)
        return self.send_workspace(name, workspace, uid, gid)

    def _check_nothing_lost(self, name: str, workspace: str, user: str) -> None:
        git = ["git", "-c", f"safe.directory={workspace}", "-C", workspace]
        refs = self.engine.exec(
            name, [*git, "for-each-ref", "--format=%(objectname)"], user=user, check=False
        )
        if refs.returncode != 0:
            raise Failed(
                f"cannot read the git history in container '{name}' ({refs.stderr.strip()}); "
                "add --force to overwrite it anyway"
            )
        # What the container says is hostile: only object names reach the local git.
        words = {line.strip() for line in refs.stdout.splitlines() if line.strip()}
        shas = sorted(w for w in words if R.is_object_name(w))
        if len(shas) != len(words):
            raise Failed(
                f"container '{name}' answered with something that is not a git object name; "
                "add --force to overwrite its copy anyway"
            )
        missing = self.copier.missing_commits(workspace, shas)
        alias = R.git_remote_name(name)
        if missing:
            raise Failed(
                f"container '{name}' has {len(missing)} commit(s) this repository does not: "
                f"bring them home first with `git fetch {alias}` (or add --force to "
                "overwrite them)"
            )
        status = self.engine.exec(
            name, [*git, "status", "--porcelain", "--untracked-files=no"], user=user, check=False
        )
        if status.returncode == 0 and status.stdout.strip():
            raise Failed(
                f"container '{name}' has uncommitted changes in {workspace}: commit them "
                f"there and `git fetch {alias}`, or add --force to overwrite them"
            )


@contextlib.contextmanager
def _temp_file(directory: Path, prefix: str, suffix: str) -> Iterator[Path]:
    import os
    import tempfile

    fd, name = tempfile.mkstemp(prefix=f"cai-{prefix}-", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


class ContextSsh(Protocol):
    """What ``cai ssh cleanup`` needs of the SSH files, with each entry's context."""

    def entries(self) -> list[str]: ...

    def stale(self, existing: Collection[str]) -> list[str]: ...

    def remove_many(self, names: Sequence[str]) -> list[Path]: ...

    def entry_context(self, name: str) -> str | None: ...


class OfContext:
    """The SSH files of one context's containers (``None``: this machine's engine), so
    a cleanup run against one engine never takes another engine's entries for stale."""

    def __init__(self, ssh: ContextSsh, context: str | None) -> None:
        self.ssh = ssh
        self.context = context

    def _mine(self, name: str) -> bool:
        return (self.ssh.entry_context(name) or None) == self.context

    def entries(self) -> list[str]:
        return [name for name in self.ssh.entries() if self._mine(name)]

    def stale(self, existing: Collection[str]) -> list[str]:
        return [name for name in self.ssh.stale(existing) if self._mine(name)]

    def remove_many(self, names: Sequence[str]) -> list[Path]:
        return self.ssh.remove_many(names)


def doctor_check(context: str, url: str) -> Check | None:
    """``cai doctor``'s line about a remote engine (``None`` for this machine's)."""
    from containai.domain.errors import UsageError
    from containai.services.doctor import FAIL, OK, Check

    try:
        endpoint = R.classify(url)
    except UsageError as exc:
        return Check("remote", FAIL, str(exc), "recreate the context with host=ssh://user@host")
    if not endpoint.remote:
        return None
    if endpoint.jump is None:
        return Check(
            "remote",
            FAIL,
            f"context '{context}' reaches its engine at {endpoint.url}, not over SSH: cai "
            "cannot reach containers there",
            "docker context create NAME --docker host=ssh://user@host, then --context NAME",
        )
    return Check(
        "remote",
        OK,
        f"{endpoint.url} is another machine: SSH to containers through {endpoint.jump}, "
        "images built here and sent, the workspace copied (docs/remote.md)",
    )
