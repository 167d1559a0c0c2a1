"""The container lifecycle: find, create, start, attach, recreate, stop, remove.

``ensure_running`` is idempotent convergence (DESIGN decision 5): it looks at
what exists and does only the missing steps, under a per-workspace lock, so a
``cai run`` killed at any point is finished by the next one and concurrent
runs end with one container. Services never print: questions go through the
``confirm`` callback, warnings through ``warn``.
"""

from __future__ import annotations

import contextlib
import io
import secrets
import tarfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from containai.domain import labels as L
from containai.domain import naming
from containai.domain.egress import Policy
from containai.domain.engine_objects import ContainerInfo, ContainerSpec, Mount, Publish, VolumeInfo
from containai.domain.errors import (
    CaiError,
    ConfirmationNeeded,
    Failed,
    NotFound,
    Refused,
    UsageError,
)
from containai.domain.host_safety import GitGuard
from containai.domain.isolation import choose_runtime, is_weakened
from containai.domain.sessions import PROBE_SCRIPT, Sessions, parse_probe
from containai.domain.validation import parse_cpus, parse_memory
from containai.services.egress import POLICY_LABEL, Egress, gateway_name, proxy_env
from containai.services.ports import Config, Engine, HostProbe, Locks, Ssh
from containai.services.workspace import Workspace

CONTAINER_SSH_PORT = 2222
DATA_MOUNT = "/mnt/agent-data"
KEY_DIR = "/etc/containai/ssh"
HOST_CA = "/etc/containai/host-ca.crt"
GIB = 1024**3
# How a start killed for lack of memory reads (runc's OOM kill, gVisor's sandbox killed
# while booting: exit status 137, or its start RPC cut off).
_OUT_OF_MEMORY = (
    "exit status 137",
    "oom-kill",
    "out of memory",
    "cannot allocate memory",
    "startroot",
)

Warn = Callable[[str], None]
# confirm(container, sessions) -> proceed? (raises ConfirmationNeeded when it cannot ask)
Confirm = Callable[[str, Sessions], bool]


@dataclass(frozen=True)
class ImageRef:
    tag: str
    template: str
    template_hash: str


class ImageProvider:
    """What lifecycle needs from the image service (see ``services/images.py``)."""

    def ensure(self, template: str) -> ImageRef:  # pragma: no cover - interface
        raise NotImplementedError

    def current_hash(self, template: str) -> str | None:  # pragma: no cover - interface
        raise NotImplementedError

    def ca_bundle_path(self) -> Path | None:  # pragma: no cover - interface
        raise NotImplementedError


class RemotePlacement(Protocol):
    """Where a container on a remote engine gets its workspace (``services/remote.py``)."""

    jump: str  # the context's SSH host: the entry reaches the remote loopback through it
    context: str  # recorded in the SSH entry (`cai ssh cleanup` of another context spares it)

    def mounts(self, name: str, workspace: str) -> list[Mount]: ...

    def after_create(
        self, name: str, workspace: str, uid: int, gid: int, ca_bundle: Path | None
    ) -> None: ...

    def link(self, name: str, workspace: str) -> str | None: ...


@dataclass
class RunRequest:
    workspace: Workspace
    container: str | None = None  # --container
    data_volume: str = "containai-data"  # effective volume (settings)
    data_volume_explicit: bool = False  # came from --data-volume
    # Named by the user (command line, or workspace state that cai recorded from it), or
    # the volume the container already had: not held to check_volume_owner.
    data_volume_vetted: bool = False
    template: str = "default"
    runtime: str = "auto"
    # Whether `runtime` may be below the engine's best: only when it came from the
    # command line or the user's own config, never from a repository (SPEC section 14).
    runtime_may_lower: bool = True
    runtime_source: str = ""
    fresh: bool = False
    reset: bool = False
    keep: bool = False
    force: bool = False
    memory: str | None = None
    cpus: str | None = None
    # A repository's memory/cpus are held to the user's own limit (None: the default).
    memory_from_repo: bool = False
    cpus_from_repo: bool = False
    memory_user: str | None = None
    cpus_user: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    port_range: tuple[int, int] = (2300, 2499)
    forward_agent: bool = False
    ssh_timeout: float = 30.0
    # git.config_writable (global config only): the repository's git config is not
    # mounted read-only (hooks stay read-only; SPEC section 14).
    git_config_writable: bool = False
    # The egress policy (SPEC section 15); None or mode "open": plain Docker networking.
    egress: Policy | None = None


@dataclass(frozen=True)
class Target:
    """A container found for a workspace (or by name), with what the engine knows of it
    if it exists."""

    name: str
    info: ContainerInfo | None
    workspace: str

    @property
    def exists(self) -> bool:
        return self.info is not None

    @property
    def labels(self) -> dict[str, str]:
        if self.info is None:
            return {}
        return dict(self.info.labels)

    @property
    def state(self) -> str:
        if self.info is None:
            return "absent"
        return self.info.state or "unknown"


@dataclass(frozen=True)
class Ready:
    name: str
    workspace: str
    data_volume: str
    ssh_port: int
    user: str
    action: str  # create | start | attach | recreate
    runtime: str


AGENT_USER = "agent"  # the agent's account in the container: never root (SPEC section 14)


def agent_user(uid: int) -> str:
    """The SSH user of a new container, whatever ``uid`` cai runs as."""
    return AGENT_USER


def container_user(info: ContainerInfo | None) -> str:
    """The agent account an existing container was created with (``CAI_USER``): an
    older cai made root the agent when it ran as root."""
    if info is None or "CAI_USER" not in info.env:
        return AGENT_USER
    return info.env["CAI_USER"] or AGENT_USER


def key_tar(host_private: bytes, host_public: str, authorized: str) -> bytes:
    """A tar of the SSH files the container needs, extracted at ``/`` with ``docker cp``."""
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


class Lifecycle:
    def __init__(
        self,
        engine: Engine,
        ssh: Ssh,
        config: Config,
        locks: Locks,
        host: HostProbe,
        images: ImageProvider,
        *,
        warn: Warn = lambda _msg: None,
        info: Warn = lambda _msg: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        git_guard: Callable[[str], GitGuard] = lambda _workspace: GitGuard(),
        egress: Egress | None = None,
        remote: RemotePlacement | None = None,
    ) -> None:
        self.engine = engine
        self.ssh = ssh
        self.config = config
        self.locks = locks
        self.host = host
        self.images = images
        self.warn = warn
        self.info = info
        self.clock = clock
        self.git_guard = git_guard
        self.egress = egress
        self.remote = remote  # on a remote engine: no bind mounts (SPEC section 16)
        self._guard_warned: set[str] = set()  # once per run, even if created again

    # ------------------------------------------------------------------ lookup
    def _owner(self, name: str, seen: dict[str, ContainerInfo | None]) -> naming.Owner:
        """Who holds ``name`` (``seen`` keeps what the engine said for the caller)."""
        info = seen[name] = self.engine.find(name)
        if info is None:
            # The SSH alias, host key and control socket are named after the container:
            # a name whose entry belongs to a container on another engine is taken.
            entry = self.ssh.entry_context(name)
            here = "" if self.remote is None else self.remote.context
            return None if entry is None or entry == here else f"(context {entry or 'local'})"
        labels = info.labels
        if not L.is_managed(labels):
            return naming.UNMANAGED
        return str(labels.get(L.WORKSPACE, ""))

    def find(self, workspace: Workspace, container: str | None = None) -> Target:
        """The container serving ``workspace`` (SPEC section 3 lookup order), or the name a
        new one would get. ``--container`` names it directly."""
        if container is not None:
            info = self.engine.find(container)
            if info is None:
                return Target(container, None, workspace.path)
            labels = info.labels
            if not L.is_managed(labels):
                raise Refused(
                    f"container '{container}' is not managed by cai (no label "
                    f"{L.MANAGED}=true); cai will not touch it: choose another --container"
                )
            return Target(container, info, str(labels.get(L.WORKSPACE) or workspace.path))
        state_name = self.config.workspace_state(workspace.path).get("container_name")
        if isinstance(state_name, str) and state_name:
            info = self.engine.find(state_name)
            if info is not None:
                labels = info.labels
                if L.is_managed(labels) and labels.get(L.WORKSPACE) == workspace.path:
                    return Target(state_name, info, workspace.path)
        rows = self.engine.list_containers({L.MANAGED: L.TRUE, L.WORKSPACE: workspace.path})
        names = sorted({r.name for r in rows if r.name})
        if len(names) > 1:
            raise Refused(
                f"workspace {workspace.path} has several containers ({', '.join(names)}); "
                "choose one with --container NAME"
            )
        if names:
            info = self.engine.find(names[0])
            if info is not None:
                return Target(names[0], info, workspace.path)
        seen: dict[str, ContainerInfo | None] = {}
        name = naming.choose_name(
            workspace.base_name, workspace.path, lambda n: self._owner(n, seen)
        )
        info = seen[name] if name in seen else self.engine.find(name)
        return Target(name, info, workspace.path)

    def find_existing(self, workspace: Workspace, container: str | None) -> Target:
        """Like ``find`` but the container must exist (exit 4 otherwise)."""
        target = self.find(workspace, container)
        if not target.exists:
            where = "" if container else f" (workspace {workspace.path})"
            raise NotFound(
                f"container '{target.name}'{where} does not exist; create it with "
                "`cai run --detached`"
            )
        return target

    # -------------------------------------------------------------- sessions
    def sessions(self, name: str, timeout: float = 5.0) -> Sessions | None:
        """Best-effort session count from inside the container; ``None`` when unknown."""
        try:
            proc = self.engine.exec(name, ["sh", "-c", PROBE_SCRIPT], timeout=timeout, check=False)
        except Exception:
            return None
        if proc.returncode != 0 and not proc.stdout:
            return None
        return parse_probe(proc.stdout)

    def _guard_sessions(self, target: Target, force: bool, confirm: Confirm) -> None:
        if force or target.state != "running":
            return
        self.ssh.release_master(target.name)
        found = self.sessions(target.name)
        if found is None:
            self.info(f"active sessions of '{target.name}': unknown (could not look); proceeding")
            return
        if not found.any:
            return
        if not confirm(target.name, found):
            raise Failed(f"left container '{target.name}' as it was (not confirmed)")

    # ------------------------------------------------------------------ create
    def _lease_port(
        self,
        port_range: tuple[int, int],
        preferred: int | None,
        avoid: set[int] | None = None,
        own: str | None = None,
    ) -> int:
        # Every container with an SSH port label: cai's own and their gateways (which
        # publish the port), running or not; but the gateway of ``own`` (the container
        # being made), which is re-made for whatever port it gets.
        mine = gateway_name(own) if own else None
        used = set(avoid or ())
        held_by_mine: set[int] = set()  # published by this container's own gateway
        for name, p in self.engine.used_ssh_ports():
            (held_by_mine if name == mine else used).add(p)
        start, end = port_range
        if (
            preferred is not None
            and start <= preferred <= end
            and preferred not in used
            and (preferred in held_by_mine or self.host.port_is_free(preferred))
        ):
            return preferred  # (--fresh keeps the port its gateway still holds)
        for port in range(start, end + 1):
            if port not in used and self.host.port_is_free(port):
                return port
        raise Failed(
            f"no free SSH port in {start}..{end}: every port is used by a managed container or "
            "bound on the host; remove old containers (`cai gc`) or widen the range with "
            "`cai config set ssh.port_range_end N`"
        )

    def _limits(self, req: RunRequest) -> tuple[int, float]:
        """Memory and CPUs; a repository's values never exceed the user's own (SPEC 14)."""
        mem_user = (
            parse_memory(req.memory_user)
            if req.memory_user
            else max(2 * GIB, self.host.memory_bytes() // 2)
        )
        cpus_user = (
            parse_cpus(req.cpus_user)
            if req.cpus_user
            else float(max(1, self.host.cpu_count() // 2))
        )
        memory = parse_memory(req.memory) if req.memory else mem_user
        cpus = parse_cpus(req.cpus) if req.cpus else cpus_user
        if req.memory_from_repo and memory > mem_user:
            self.warn(
                f"container.memory {req.memory} from the repository settings is above your "
                f"limit; using {mem_user} bytes (raise it with `cai config set container.memory`)"
            )
            memory = mem_user
        if req.cpus_from_repo and cpus > cpus_user:
            self.warn(
                f"container.cpus {req.cpus} from the repository settings is above your limit; "
                f"using {cpus_user:g} (raise it with `cai config set container.cpus`)"
            )
            cpus = cpus_user
        return memory, cpus

    def _create(
        self, req: RunRequest, name: str, volume: str, preferred_port: int | None, runtime: str
    ) -> tuple[int, str]:
        """Create the container (not started); return its SSH port and its runtime
        (``auto`` resolved to the strongest the engine has). Never for a directory that
        may not be a workspace (``/tmp``, a home: exit 2), whatever ``--container`` says."""
        from concurrent.futures import ThreadPoolExecutor

        req.workspace.check()

        # The engine's runtimes, the data volume and the image are asked for at once
        # (a round trip each); nothing is created before the runtime is known to exist.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="cai-create") as pool:
            runtimes = pool.submit(self.engine.runtimes)
            existing_volume = pool.submit(self.engine.volume, volume)
            image = self.images.ensure(req.template)
            available = runtimes.result()
            runtime, warning = choose_runtime(
                runtime, available, may_lower=req.runtime_may_lower, source=req.runtime_source
            )
            volume_info = existing_volume.result()
            volume_missing = volume_info is None
        if warning:
            self.warn(warning)
        if volume_info is not None and not (req.data_volume_explicit or req.data_volume_vetted):
            check_volume_owner(volume, volume_info, req.workspace.path)
        if volume_missing:
            try:
                self.engine.create_volume(volume, {L.MANAGED: L.TRUE})
            except Failed:
                if self.engine.volume(volume) is None:
                    raise
        private, public = self.ssh.ensure_host_key(name)
        uid, gid = self.host.agent_ids(req.workspace.path)
        workspace_mounts = (
            self.remote.mounts(name, req.workspace.path)
            if self.remote is not None
            else [
                Mount("bind", req.workspace.path, req.workspace.path),
                *self._guard_mounts(req, uid, gid),
                *self._ca_mount(),
            ]
        )
        memory, cpus = self._limits(req)
        with self.locks.ports():
            taken: set[int] = set()
            for _attempt in range(5):
                port = self._lease_port(req.port_range, preferred_port, taken, own=name)
                try:
                    network = self._wiring(req, name, port, runtime)
                    break
                except Failed as exc:
                    # The engine still holds the port (a container it has not released):
                    # take the next one.
                    if "port is already allocated" not in str(exc) or port in taken:
                        raise
                    taken.add(port)
                    preferred_port = None
            else:
                raise Failed(f"no SSH port could be published for container '{name}'")
            labels = L.build_labels(
                workspace=req.workspace.path,
                ssh_port=port,
                data_volume=volume,
                template=image.template,
                template_hash=image.template_hash,
                runtime=runtime,
                keep=req.keep,
                weakened=is_weakened(runtime, available),
            )
            env = {
                **network.env,
                "CAI_UID": str(uid),
                "CAI_GID": str(gid),
                "CAI_USER": agent_user(uid),
                "CAI_WORKSPACE": req.workspace.path,
                "CAI_TEMPLATE": image.template,
            }
            if req.forward_agent:  # the server side of ssh.forward_agent (sshd drop-in)
                env["CAI_SSH_FORWARD_AGENT"] = "true"
            env.update(req.env)
            spec = ContainerSpec(
                name=name,
                hostname=naming.hostname_for(name),
                labels={**labels, **network.labels},
                runtime=runtime,
                init=True,
                security_opts=["no-new-privileges"],
                cap_drop=["NET_RAW"],  # no spoofed or raw packets, even from root inside
                mounts=[Mount("volume", volume, DATA_MOUNT), *workspace_mounts],
                workdir=req.workspace.path,
                network=network.network,
                dns=network.dns,
                publish=network.publish,
                memory=memory,
                cpus=cpus,
                env=env,
                image=image.tag,
            )
            try:
                self.engine.create(spec)
            except Failed as exc:
                if "already in use" not in str(exc):
                    raise
                # Someone created that name meanwhile: reuse it only if it is this
                # workspace's own managed container, never another's or an unmanaged one.
                labels = self._labels_of(name)
                if L.is_managed(labels) and labels.get(L.WORKSPACE) == req.workspace.path:
                    return int(labels.get(L.SSH_PORT, port)), labels.get(L.RUNTIME, runtime)
                raise Refused(
                    f"container name '{name}' was taken meanwhile by another workspace or a "
                    "container cai does not manage; run the command again (cai then picks "
                    "the next free name) or choose one with --container NAME"
                ) from None
        self.ssh.pin_host_key(name, public)
        self.engine.copy_in(name, key_tar(private, public, self.ssh.public_key()), "/")
        if self.remote is not None:
            ca = self.images.ca_bundle_path()
            self.remote.after_create(name, req.workspace.path, uid, gid, ca)
        return port, runtime

    def _wiring(self, req: RunRequest, name: str, port: int, runtime: str) -> _Wiring:
        """Under an allowlist (or none) policy: the workspace's internal network, its
        gateway made and started first (it publishes the SSH port and is the resolver),
        and the proxy variables. Open: the engine's default network, SSH published."""
        policy = req.egress
        if policy is None or policy.mode == "open" or self.egress is None:
            return _Wiring(
                labels={POLICY_LABEL: "open"},
                publish=(Publish("127.0.0.1", port, CONTAINER_SSH_PORT),),
            )
        attach = self.egress.ensure(name, req.workspace.path, port, policy, runtime)
        return _Wiring(
            labels={POLICY_LABEL: policy.mode},
            network=attach.network,
            dns=(attach.dns,),
            env=proxy_env(),
        )

    def _ensure_gateway(
        self, req: RunRequest, target: Target, port: int, runtime: str, *, attach: bool = False
    ) -> None:
        """An existing container's gateway running with the current policy; a container
        made before egress policies gets a warning naming the move. Attaching to a running
        container, a running gateway is left as it is (one inspect): `cai network allow|
        deny` applies changes live, and a start renders the policy afresh."""
        mode = target.labels.get(POLICY_LABEL)
        if mode is None:
            self.warn(
                f"container '{target.name}' was created before cai's egress policy: its "
                "network is open (plain Docker egress); move it behind the gateway with "
                "`cai --fresh` (the data volume is kept)"
            )
            return
        if mode == "open" or self.egress is None:
            return
        if attach and self.egress.running(target.name):
            return
        policy = req.egress or Policy(mode, (), (), ())
        if policy.mode != mode:  # fixed at creation, like the labels
            self.warn(
                f"container '{target.name}' was created with network.policy {mode}, not "
                f"{policy.mode}; recreate it with `cai --fresh` to change it"
            )
            policy = policy._replace(mode=mode)
        self.egress.ensure(target.name, target.workspace, port, policy, runtime)

    def _guard_mounts(self, req: RunRequest, uid: int, gid: int) -> list[Mount]:
        """The git guard's mounts (SPEC section 14), after letting the agent write what
        it must: when cai runs as root on a root-owned workspace, the agent's group gets
        write access to the workspace and a worktree's common git directory."""
        guard = self.git_guard(req.workspace.path)
        for message in guard.warnings:  # e.g. a .git naming a directory it cannot vouch for
            if message not in self._guard_warned:
                self._guard_warned.add(message)
                self.warn(message)
        self.host.grant([req.workspace.path, *guard.shared], uid, gid)
        return [
            Mount("bind", path, path, readonly=read_only)
            for path, read_only in guard.mounts(config_writable=req.git_config_writable)
        ]

    def _ca_mount(self) -> list[Mount]:
        """The host CA bundle, read-only, so agents install packages behind a TLS proxy."""
        ca = self.images.ca_bundle_path()
        if ca is None:
            return []
        return [Mount("bind", str(ca), HOST_CA, readonly=True)]

    def _labels_of(self, name: str) -> dict[str, str]:
        info = self.engine.find(name)
        return {} if info is None else dict(info.labels)

    def _install_keys(self, name: str) -> None:
        """Re-send the SSH files to an existing container (after a crash mid-creation)."""
        private, public = self.ssh.ensure_host_key(name)
        self.ssh.pin_host_key(name, public)
        self.engine.copy_in(name, key_tar(private, public, self.ssh.public_key()), "/")

    def _start(self, name: str) -> None:
        try:
            self.engine.start(name)
        except Failed as exc:
            text = str(exc).lower()
            if "port is already allocated" in text or "address already in use" in text:
                raise _PortTaken() from None
            cause = str(exc).removeprefix("docker start failed: ")
            if any(marker in text for marker in _OUT_OF_MEMORY):
                raise Failed(
                    f"container '{name}' did not start: its memory limit is too small (the "
                    f"runtime was killed: {cause}); give it more with --memory 4g or "
                    "`cai config set container.memory 4g`"
                ) from None
            raise Failed(f"container '{name}' did not start: {cause}") from None

    # --------------------------------------------------------- ensure_running
    def ensure_running(self, req: RunRequest, confirm: Confirm) -> Ready:
        """Converge the workspace's container to running and reachable over SSH."""
        self.images.ca_bundle_path()  # a bad CA bundle is refused before anything is made
        self.ssh.ensure_user_key()
        lock_workspace = req.workspace.path
        if req.container is not None:
            # --container may name another workspace's container: serialize with that one.
            named = self.find(req.workspace, req.container)
            if named.exists:
                lock_workspace = named.workspace
        with self.locks.workspace(lock_workspace):
            target = self.find(req.workspace, req.container)
            workspace = req.workspace
            if target.exists and target.workspace != workspace.path:
                workspace = Workspace(target.workspace, workspace.branch)
                req.workspace = workspace
            volume = req.data_volume
            action = "attach"
            preferred_port: int | None = None
            if target.exists:
                labels = target.labels
                preferred_port = _int(labels.get(L.SSH_PORT))
                if req.keep and not L.is_kept(labels) and not (req.fresh or req.reset):
                    raise UsageError(
                        f"container '{target.name}' was created without --keep and labels are "
                        "fixed at creation; recreate it with `cai --fresh --keep`"
                    )
                current_volume = labels.get(L.DATA_VOLUME, volume)
                if req.fresh or req.reset:
                    self._guard_sessions(target, req.force, confirm)
                if req.reset:
                    volume = self._new_reset_volume(workspace)
                elif req.fresh:
                    volume = volume if req.data_volume_explicit else current_volume
                elif req.data_volume_explicit and current_volume != volume:
                    raise Failed(
                        f"container '{target.name}' uses data volume '{current_volume}', not "
                        f"'{volume}'; recreate it with `cai --fresh --data-volume {volume}`"
                    )
                else:
                    volume = current_volume
                if volume == current_volume:
                    req.data_volume_vetted = True
                if req.fresh or req.reset:
                    self.ssh.exit_master(target.name)
                    self.engine.remove(target.name, force=True)
                    target = Target(target.name, None, workspace.path)
                    action = "recreate"
            elif req.reset:
                volume = self._new_reset_volume(workspace)
            runtime = self._runtime(req.runtime, target)
            created = False
            if not target.exists:
                port, runtime = self._create(req, target.name, volume, preferred_port, runtime)
                action = "create" if action == "attach" else action
                created = True
            else:
                port = _int(target.labels.get(L.SSH_PORT)) or 0
                self._warn_template_drift(target)
            # The first attempt goes by what is known (just created, or inspected by
            # find under this lock); a retry asks the engine again.
            known: str | None = "created" if created else target.state
            for _attempt in range(3):
                if known is not None:
                    status, known = known, None
                else:
                    info = self.engine.find(target.name)
                    if info is None:
                        raise Failed(
                            f"container '{target.name}' disappeared while starting it; "
                            "run the command again"
                        )
                    status = info.state
                if status == "running":
                    if not created:
                        self._ensure_gateway(req, target, port, runtime, attach=True)
                    break
                if (
                    not created
                    and target.labels.get(POLICY_LABEL) not in (None, "open")
                    and self.egress is not None
                    and self.egress.running(target.name)
                ):
                    self.egress.stop(target.name)  # frees its port for the check below
                if status == "created" and not created:
                    # Created by a run that died before starting it: resend the keys.
                    self._install_keys(target.name)
                # A container made in this run behind a gateway: the port is its gateway's,
                # published a moment ago (taken, by us).
                behind_gateway = (
                    created
                    and self.egress is not None
                    and req.egress is not None
                    and req.egress.mode != "open"
                )
                if not behind_gateway and not self.host.port_is_free(port):
                    # Its port was taken meanwhile: recreate on a new port (volume kept).
                    self.ssh.exit_master(target.name)
                    self.engine.remove(target.name, force=True)
                    port, runtime = self._create(req, target.name, volume, None, runtime)
                    created = True
                    action = "recreate" if action != "create" else action
                if action == "attach":
                    action = "start"
                if not created:
                    self._ensure_gateway(req, target, port, runtime)
                try:
                    self._start(target.name)
                    break
                except Failed:
                    if created:  # made for this run with what failed: the next run makes it anew
                        with contextlib.suppress(CaiError):
                            self.engine.remove(target.name, force=True)
                    raise
                except _PortTaken:
                    self.engine.remove(target.name, force=True)
                    port, runtime = self._create(req, target.name, volume, None, runtime)
                    created = True
            user = container_user(None if created else target.info)
            if user == "root":
                self.warn(
                    f"container '{target.name}' was created by an older cai with root as its "
                    "agent; recreate it with `cai --fresh` (the agent never runs as root now)"
                )
            self.ssh.write_entry(
                target.name,
                port=port,
                user=user,
                forward_agent=req.forward_agent,
                proxy_jump=None if self.remote is None else self.remote.jump,
                context=None if self.remote is None else self.remote.context,
                workspace=workspace.path,
            )
            if not created and action in ("attach", "start"):
                self._heal_pin(target.name)
            warning = self.ssh.ensure_include()
            if warning:
                self.warn(warning)
            # Recorded while the container boots (its sshd is not up yet): the record
            # names a container that exists whether or not the login below succeeds.
            state: dict[str, Any] = {"container_name": target.name}
            if created:
                state["created_at"] = self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
            if req.reset or (req.data_volume_explicit and created):
                state["data_volume"] = volume
            if req.container is None or target.workspace == req.workspace.path:
                self.config.set_workspace_state(workspace.path, state)
            try:
                # A remote port is on the remote's loopback: no banner to poll from here.
                local_port = port if self.remote is None else None
                self.ssh.wait_ready(target.name, timeout=req.ssh_timeout, port=local_port)
            except Failed as exc:
                if "host key" in str(exc).lower() or "identification" in str(exc).lower():
                    raise
                log = self.engine.logs_tail(target.name, 20)
                raise Failed(
                    f"container '{target.name}' is not reachable over SSH on 127.0.0.1:{port} "
                    f"after {req.ssh_timeout:.0f} s ({exc}); last lines of its log:\n{log}"
                ) from None
            if self.remote is not None:  # the git remote `cai-<name>` (SPEC section 16)
                self.remote.link(target.name, workspace.path)
            return Ready(target.name, workspace.path, volume, port, user, action, runtime)

    def _heal_pin(self, name: str) -> None:
        """An existing container whose pin was lost (a crash between create and pin, or a
        cleanup): pin the public key the container itself holds. A pin that exists is never
        replaced here, so a changed host key still fails the login (no TOFU)."""
        if name.lower() in (n.lower() for n in self.ssh.pinned_names()):
            return
        proc = self.engine.exec(
            name, ["cat", f"{KEY_DIR}/ssh_host_ed25519_key.pub"], timeout=10, check=False
        )
        public = proc.stdout.strip()
        if proc.returncode == 0 and public.startswith("ssh-"):
            self.ssh.pin_host_key(name, public)

    def _runtime(self, requested: str, target: Target) -> str:
        """An existing container's runtime; for a new one, what was asked (``auto`` or a
        name), which ``_create`` resolves and checks against the engine."""
        if target.exists:
            return target.labels.get(L.RUNTIME, "runc")
        return requested

    def _warn_template_drift(self, target: Target) -> None:
        template = target.labels.get(L.TEMPLATE)
        recorded = target.labels.get(L.TEMPLATE_HASH)
        if not template or not recorded:
            return
        try:
            current = self.images.current_hash(template)
        except Exception:
            return
        if current and current != recorded:
            self.warn(
                f"template '{template}' changed since container '{target.name}' was created; "
                "run `cai --fresh` to recreate it from the new image (the data volume is kept)"
            )

    def _new_reset_volume(self, workspace: Workspace) -> str:
        """A new, empty volume for ``--reset``, recorded in workspace state at once, so a
        run that dies later still leaves the workspace pointing at it."""
        name = naming.reset_volume_name(
            workspace.repo, workspace.branch, self.clock(), secrets.token_hex(3)
        )
        self.engine.create_volume(name, {L.MANAGED: L.TRUE, L.WORKSPACE: workspace.path})
        self.config.set_workspace_state(workspace.path, {"data_volume": name})
        return name

    # ------------------------------------------------------------------- plan
    def plan(self, req: RunRequest) -> dict[str, Any]:
        """What ``ensure_running`` would do, changing nothing (``--dry-run``)."""
        target = self.find(req.workspace, req.container)
        plan: dict[str, Any] = {"container": target.name, "ssh_alias": f"cai-{target.name}"}
        if not target.exists:
            runtime, _warning = choose_runtime(
                req.runtime,
                self.engine.runtimes(),
                may_lower=req.runtime_may_lower,
                source=req.runtime_source,
            )
            plan.update(
                action="create", runtime=runtime, data_volume=None if req.reset else req.data_volume
            )
            return plan
        labels = target.labels
        port = _int(labels.get(L.SSH_PORT))
        if req.fresh or req.reset:
            action = "recreate"
        elif target.state == "running":
            action = "attach"
        elif port is not None and not self.host.port_is_free(port):
            action = "recreate"
        else:
            action = "start"
        volume: str | None = labels.get(L.DATA_VOLUME, req.data_volume)
        if req.reset:
            volume = None
        elif req.fresh and req.data_volume_explicit:
            volume = req.data_volume
        plan.update(
            action=action,
            workspace=target.workspace,
            data_volume=volume,
            image=str((target.info.image if target.info else "") or plan.get("image")),
            template=labels.get(L.TEMPLATE, req.template),
            runtime=labels.get(L.RUNTIME),
            ssh_port=port,
        )
        if req.fresh or req.reset:
            plan["image"] = f"containai:{req.template}"
            plan["template"] = req.template
        return plan

    # -------------------------------------------------------------- stopping
    def managed_targets(self) -> list[Target]:
        ids = self.engine.container_ids({L.MANAGED: L.TRUE})
        return [
            Target(info.name, info, info.labels.get(L.WORKSPACE, ""))
            for info in self.engine.find_many(ids)
        ]

    def stop(
        self, targets: Sequence[Target], *, remove: bool, force: bool, confirm: Confirm
    ) -> list[str]:
        """Stop (or remove) each target; returns the names acted on. Never a volume."""
        for target in targets:
            if not L.is_managed(target.labels):
                raise Refused(
                    f"container '{target.name}' is not managed by cai; cai will not stop it"
                )
        for target in targets:
            self._guard_sessions(target, force, confirm)
        done = []
        for target in targets:
            with self.locks.workspace(target.workspace):
                self.ssh.exit_master(target.name)
                if remove:
                    self.engine.remove(target.name, force=True)
                    if self.egress is not None:
                        self.egress.remove(target.name)
                    self.ssh.remove(target.name)
                    state = self.config.workspace_state(target.workspace)
                    if state.get("container_name") == target.name:
                        self.config.set_workspace_state(target.workspace, {"container_name": None})
                elif target.state in ("running", "restarting", "paused"):
                    self.engine.stop(target.name)
                    if self.egress is not None:
                        self.egress.stop(target.name)
                elif self.egress is not None:
                    self.egress.stop(target.name)
            done.append(target.name)
        return done


class _PortTaken(Exception):
    pass


class _Wiring(NamedTuple):
    """How a new container is wired to the network (labels, env: merged into its spec)."""

    labels: dict[str, str]
    network: str | None = None
    dns: tuple[str, ...] = ()
    publish: tuple[Publish, ...] = ()
    env: dict[str, str] = {}  # noqa: RUF012 - never mutated


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def check_volume_owner(volume: str, info: VolumeInfo, workspace: str) -> None:
    """A data volume that did not come from ``--data-volume`` must be one cai created
    (label ``containai.managed``) and not another workspace's (SPEC section 14), so a
    setting cannot mount any volume on the engine into this container."""
    labels = info.labels
    if not L.is_managed(labels):
        raise Refused(
            f"data volume '{volume}' was not created by cai (no label {L.MANAGED}=true), so "
            "cai will not mount it from a setting; to use it anyway, name it on the command "
            f"line: `cai run --data-volume {volume}`"
        )
    owner = labels.get(L.WORKSPACE)
    if owner and owner != workspace:
        raise Refused(
            f"data volume '{volume}' belongs to workspace {owner}, not {workspace}; to share "
            f"it anyway, name it on the command line: `cai run --data-volume {volume}`"
        )


def confirm_unavailable(name: str, found: Sessions) -> bool:
    """The ``confirm`` for callers that can never ask."""
    raise ConfirmationNeeded(
        f"container '{name}' may have active sessions ({found.ssh_connections} SSH, "
        f"{found.active_terminals} terminals) and there is no TTY to ask; add --force"
    )
