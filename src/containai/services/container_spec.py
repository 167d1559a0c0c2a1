"""What a new container is made of: its labels, environment, mounts (the data volume,
the workspace, the git guard, the CA bundle), limits and network wiring, as one
``ContainerSpec``; and the rules on them (SPEC section 14)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

from containai.domain import labels as L
from containai.domain import naming
from containai.domain.engine_objects import (
    ContainerInfo,
    ContainerSpec,
    Mount,
    Publish,
    VolumeInfo,
)
from containai.domain.errors import Refused
from containai.domain.host_safety import GitGuard
from containai.domain.validation import parse_cpus, parse_memory
from containai.services.lookup import Target
from containai.services.ports import HostProbe
from containai.services.run_request import ImageProvider, ImageRef, RunRequest

CONTAINER_SSH_PORT = 2222
DATA_MOUNT = L.DATA_MOUNT
HOST_CA = "/etc/containai/host-ca.crt"
GIB = 1024**3
AGENT_USER = "agent"  # the agent's account in the container: never root (SPEC section 14)

Warn = Callable[[str], None]


def agent_user(uid: int) -> str:
    """The SSH user of a new container, whatever ``uid`` cai runs as."""
    return AGENT_USER


def container_user(info: ContainerInfo | None) -> str:
    """The agent account an existing container was created with (``CAI_USER``): an
    older cai made root the agent when it ran as root."""
    if info is None or "CAI_USER" not in info.env:
        return AGENT_USER
    return info.env["CAI_USER"] or AGENT_USER


class Wiring(NamedTuple):
    """How a new container is wired to the network (labels, env: merged into its spec)."""

    labels: dict[str, str]
    network: str | None = None
    dns: tuple[str, ...] = ()
    publish: tuple[Publish, ...] = ()
    env: dict[str, str] = {}  # noqa: RUF012 - never mutated


def limits(req: RunRequest, host: HostProbe, warn: Warn) -> tuple[int, float]:
    """Memory and CPUs; a repository's values never exceed the user's own (SPEC 14)."""
    mem_user = (
        parse_memory(req.memory_user) if req.memory_user else max(2 * GIB, host.memory_bytes() // 2)
    )
    cpus_user = parse_cpus(req.cpus_user) if req.cpus_user else float(max(1, host.cpu_count() // 2))
    memory = parse_memory(req.memory) if req.memory else mem_user
    cpus = parse_cpus(req.cpus) if req.cpus else cpus_user
    if req.memory_from_repo and memory > mem_user:
        warn(
            f"container.memory {req.memory} from the repository settings is above your "
            f"limit; using {mem_user} bytes (raise it with `cai config set container.memory`)"
        )
        memory = mem_user
    if req.cpus_from_repo and cpus > cpus_user:
        warn(
            f"container.cpus {req.cpus} from the repository settings is above your limit; "
            f"using {cpus_user:g} (raise it with `cai config set container.cpus`)"
        )
        cpus = cpus_user
    return memory, cpus


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


class MountGuard:
    """The git guard's mounts (SPEC section 14), each of its warnings given once per run
    (even when the container is created again)."""

    def __init__(self, git_guard: Callable[[str], GitGuard], host: HostProbe, warn: Warn) -> None:
        self.git_guard = git_guard
        self.host = host
        self.warn = warn
        self._warned: set[str] = set()

    def __call__(self, req: RunRequest, uid: int, gid: int) -> list[Mount]:
        """The mounts, after letting the agent write what it must: when cai runs as root
        on a root-owned workspace, the agent's group gets write access to the workspace
        and a worktree's common git directory."""
        guard = self.git_guard(req.workspace.path)
        for message in guard.warnings:  # e.g. a .git naming a directory it cannot vouch for
            if message not in self._warned:
                self._warned.add(message)
                self.warn(message)
        self.host.grant([req.workspace.path, *guard.shared], uid, gid)
        return [
            Mount("bind", path, path, readonly=read_only)
            for path, read_only in guard.mounts(config_writable=req.git_config_writable)
        ]


def template_drift(images: ImageProvider, target: Target, warn: Warn) -> None:
    """Warn when an existing container's template changed since it was made."""
    template = target.labels.get(L.TEMPLATE)
    recorded = target.labels.get(L.TEMPLATE_HASH)
    if not template or not recorded or L.DEVCONTAINER_BASE in target.labels:
        return
    try:
        current = images.current_hash(template)
    except Exception:
        return
    if current and current != recorded:
        warn(
            f"template '{template}' changed since container '{target.name}' was created; "
            "run `cai --fresh` to recreate it from the new image (the data volume is kept)"
        )


def ca_mount(ca: Path | None) -> list[Mount]:
    """The host CA bundle, read-only, so agents install packages behind a TLS proxy."""
    if ca is None:
        return []
    return [Mount("bind", str(ca), HOST_CA, readonly=True)]


def build_spec(
    req: RunRequest,
    *,
    name: str,
    volume: str,
    port: int,
    runtime: str,
    weakened: bool,
    image: ImageRef,
    ids: tuple[int, int],
    mounts: list[Mount],
    wiring: Wiring,
    bind_workspace: bool = True,
    memory: int,
    cpus: float,
    extra_env: dict[str, str] | None = None,
    extra_labels: dict[str, str] | None = None,
    identity: Mapping[str, str] | None = None,
) -> ContainerSpec:
    """The new container: the workspace bound at its own path, agent state on the data
    volume, no raw sockets, no new privileges; labels record what it was made with.
    ``extra_env`` (a devcontainer's ``containerEnv``) comes first, so cai's own
    variables and ``-e`` win over it. ``identity``: the host's git identity for the
    entrypoint (``services/identity.py``). ``bind_workspace=False`` on a remote engine:
    ``mounts`` then hold the workspace's own volume (``services/remote.py``)."""
    uid, gid = ids
    labels = L.build_labels(
        workspace=req.workspace.path,
        ssh_port=port,
        data_volume=volume,
        template=image.template,
        template_hash=image.template_hash,
        runtime=runtime,
        keep=req.keep,
        weakened=weakened,
        branch=req.workspace.branch,
    )
    env = {
        **(extra_env or {}),
        **wiring.env,
        "CAI_UID": str(uid),
        "CAI_GID": str(gid),
        "CAI_USER": agent_user(uid),
        "CAI_WORKSPACE": req.workspace.path,
        "CAI_TEMPLATE": image.template,
        **(identity or {}),
    }
    if req.forward_agent:  # the server side of ssh.forward_agent (sshd drop-in)
        env["CAI_SSH_FORWARD_AGENT"] = "true"
    env.update(req.env)
    return ContainerSpec(
        name=name,
        hostname=naming.hostname_for(name),
        labels={**labels, **wiring.labels, **(extra_labels or {})},
        runtime=runtime,
        init=True,
        security_opts=["no-new-privileges"],
        cap_drop=["NET_RAW"],  # no spoofed or raw packets, even from root inside
        mounts=[
            Mount("volume", volume, DATA_MOUNT),
            *([Mount("bind", req.workspace.path, req.workspace.path)] if bind_workspace else []),
            *mounts,
        ],
        workdir=req.workspace.path,
        network=wiring.network,
        dns=wiring.dns,
        publish=wiring.publish,
        memory=memory,
        cpus=cpus,
        env=env,
        image=image.tag,
    )
