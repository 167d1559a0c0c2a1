"""What the engine holds and what cai asks it to make, in cai's words (DESIGN decision 9).

Services get these values from the engine port (``services/ports.Engine``) and hand
``ContainerSpec`` to it; the adapter (``adapters/engine``) alone knows Docker's argv,
``--format`` templates, inspect JSON shapes and size units. A Kubernetes adapter would
fill the same values from a Sandbox and a PVC.

The values derive from ``containai.record.Record`` (slots, set once, equality by
fields), not dataclasses or NamedTuple: ``cai list`` builds one ``ContainerInfo`` per
container and must not import ``typing`` or ``dataclasses`` (DESIGN decision 2).
"""

from __future__ import annotations

from containai.domain.labels import SSH_PORT
from containai.lazy import sha256_hex
from containai.record import Record

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime
    from typing import Any

RUNNING = "running"
UP_STATES = frozenset({"running", "paused", "restarting"})
"""States whose process is up (what Docker's ``State.Running`` says)."""


def port_of(value: str | None) -> int | None:
    """A TCP port from a label value; ``None`` for anything that is not one."""
    if value is None or not value.strip().isdigit():
        return None
    port = int(value)
    return port if 0 < port < 65536 else None


class Mount(Record):
    """A mount of a container: a named volume or a host path (``bind``) at ``target``.
    From a listing (``docker ps``) only ``source`` is known (``kind``/``target`` "")."""

    __slots__ = ("kind", "no_copy", "readonly", "source", "target")

    def __init__(
        self,
        kind: str,
        source: str,
        target: str,
        *,
        readonly: bool = False,
        no_copy: bool = False,
    ) -> None:
        self._set(kind=kind, source=source, target=target, readonly=readonly, no_copy=no_copy)

    kind: str  # volume | bind
    source: str  # the volume's name, or the host path
    target: str  # where it is in the container
    readonly: bool
    no_copy: bool  # a volume not filled from the image's content at ``target``


class Publish(Record):
    """A container port published on a host address."""

    __slots__ = ("container_port", "host_ip", "host_port")

    def __init__(self, host_ip: str, host_port: int, container_port: int) -> None:
        self._set(host_ip=host_ip, host_port=host_port, container_port=container_port)

    host_ip: str
    host_port: int
    container_port: int


class ContainerInfo(Record):
    """One container as the engine knows it.

    ``find``/``find_many`` fill every field. A listing (``list_managed``,
    ``list_containers``) fills ``id``, ``name``, ``state``, ``running``, ``image``,
    ``created``, the labels it was asked for (exact values; empty ones left out) and,
    when asked, the sources of ``mounts``; the rest is ``None`` or empty there.
    """

    __slots__ = (
        "created",
        "env",
        "finished",
        "id",
        "image",
        "image_id",
        "labels",
        "mounts",
        "name",
        "networks",
        "running",
        "runtime",
        "started",
        "state",
    )

    def __init__(
        self,
        *,
        id: str,
        name: str,
        state: str,
        image: str = "",
        labels: Mapping[str, str] | None = None,
        created: datetime | None = None,
        running: bool | None = None,
        image_id: str | None = None,
        started: datetime | None = None,
        finished: datetime | None = None,
        runtime: str | None = None,
        env: Mapping[str, str] | None = None,
        mounts: Sequence[Mount] = (),
        networks: Mapping[str, str] | None = None,
    ) -> None:
        self._set(
            id=id,
            name=name,
            state=state,
            running=state in UP_STATES if running is None else running,
            image=image,
            image_id=image_id,
            labels=dict(labels or {}),
            created=created,
            started=started,
            finished=finished,
            runtime=runtime,
            env=dict(env or {}),
            mounts=tuple(mounts),
            networks=dict(networks or {}),
        )

    id: str
    name: str  # without Docker's leading "/"
    state: str  # the engine's: created | running | paused | restarting | exited | dead ...
    running: bool  # its process is up (running, paused or restarting)
    image: str  # as it was created from (``containai:default``)
    image_id: str | None  # ``sha256:...`` (None from a listing)
    labels: dict[str, str]
    created: datetime | None  # aware UTC; None when unknown
    started: datetime | None  # last start (None: never started, or from a listing)
    finished: datetime | None  # last exit (None: never exited, or from a listing)
    runtime: str | None  # the OCI runtime the engine runs it with
    env: dict[str, str]
    mounts: tuple[Mount, ...]
    networks: dict[str, str]  # network name -> the container's address on it ("" if none)

    @property
    def ssh_port(self) -> int | None:
        """The SSH port cai recorded on it (label ``containai.ssh-port``)."""
        return port_of(self.labels.get(SSH_PORT))


class VolumeInfo(Record):
    __slots__ = ("labels", "name")

    def __init__(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        self._set(name=name, labels=dict(labels or {}))

    name: str
    labels: dict[str, str]


class NetworkInfo(Record):
    __slots__ = ("internal", "labels", "name", "subnets")

    def __init__(
        self,
        name: str,
        labels: Mapping[str, str] | None = None,
        *,
        internal: bool = False,
        subnets: Sequence[str] = (),
    ) -> None:
        self._set(name=name, labels=dict(labels or {}), internal=internal, subnets=tuple(subnets))

    name: str
    labels: dict[str, str]
    internal: bool  # no route out of it
    subnets: tuple[str, ...]  # CIDRs of its address pools (IPv4 and IPv6)


class ImageInfo(Record):
    """A local image; ``repository``/``tag`` are "" when unknown (or ``<none>``)."""

    __slots__ = ("id", "labels", "repository", "tag")

    def __init__(
        self,
        id: str,
        repository: str = "",
        tag: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self._set(id=id, repository=repository, tag=tag, labels=dict(labels or {}))

    id: str
    repository: str
    tag: str
    labels: dict[str, str]

    @property
    def reference(self) -> str | None:
        """``repository:tag``; ``None`` for an untagged (dangling) image."""
        if not self.repository or not self.tag or "<none>" in (self.repository, self.tag):
            return None
        return f"{self.repository}:{self.tag}"


class ContainerStats(Record):
    """A running container's resource use at one moment; ``None``: the engine did not say."""

    __slots__ = ("cpu_percent", "memory_bytes", "memory_limit_bytes")

    def __init__(
        self,
        memory_bytes: int | None = None,
        memory_limit_bytes: int | None = None,
        cpu_percent: float | None = None,
    ) -> None:
        self._set(
            memory_bytes=memory_bytes,
            memory_limit_bytes=memory_limit_bytes,
            cpu_percent=cpu_percent,
        )

    memory_bytes: int | None
    memory_limit_bytes: int | None
    cpu_percent: float | None


class CommandResult(Record):
    """What a command run in a container (or a helper run to its end) left."""

    __slots__ = ("returncode", "stderr", "stdout")

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self._set(returncode=returncode, stdout=stdout, stderr=stderr)

    returncode: int
    stdout: str
    stderr: str


class Removal(Record):
    """The outcome of removing containers (or networks) in one call, per reference given."""

    __slots__ = ("failed", "gone", "removed", "running")

    def __init__(
        self,
        removed: Sequence[str] = (),
        running: Sequence[str] = (),
        gone: Sequence[str] = (),
        failed: Mapping[str, str] | None = None,
    ) -> None:
        self._set(
            removed=tuple(removed),
            running=tuple(running),
            gone=tuple(gone),
            failed=dict(failed or {}),
        )

    removed: tuple[str, ...]
    running: tuple[str, ...]  # refused: it runs (started after it was looked at)
    gone: tuple[str, ...]  # no such container (removed meanwhile)
    failed: dict[str, str]  # ref -> the engine's reason


class ContainerSpec(Record):
    """A container to create (``Engine.create``) or run to its end (``Engine.run_once``).

    ``memory`` is in bytes, ``cpus`` in CPUs. ``labels`` and ``env`` keep their order.
    """

    __slots__ = (
        "auto_remove",
        "cap_add",
        "cap_drop",
        "command",
        "cpus",
        "dns",
        "entrypoint",
        "env",
        "hostname",
        "image",
        "init",
        "labels",
        "memory",
        "mounts",
        "name",
        "network",
        "publish",
        "restart",
        "runtime",
        "security_opts",
        "sysctls",
        "user",
        "workdir",
    )

    def __init__(
        self,
        *,
        image: str,
        name: str | None = None,
        command: Sequence[str] = (),
        entrypoint: str | None = None,
        hostname: str | None = None,
        labels: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        mounts: Sequence[Mount] = (),
        network: str | None = None,
        dns: Sequence[str] = (),
        publish: Sequence[Publish] = (),
        runtime: str | None = None,
        init: bool = False,
        restart: str | None = None,
        memory: int | None = None,
        cpus: float | None = None,
        security_opts: Sequence[str] = (),
        cap_drop: Sequence[str] = (),
        cap_add: Sequence[str] = (),
        workdir: str | None = None,
        user: str | None = None,
        auto_remove: bool = False,
        sysctls: Mapping[str, str] | None = None,
    ) -> None:
        self._set(
            image=image,
            name=name,
            command=tuple(command),
            entrypoint=entrypoint,
            hostname=hostname,
            labels=dict(labels or {}),
            env=dict(env or {}),
            mounts=tuple(mounts),
            network=network,
            dns=tuple(dns),
            publish=tuple(publish),
            runtime=runtime,
            init=init,
            restart=restart,
            memory=memory,
            cpus=cpus,
            security_opts=tuple(security_opts),
            cap_drop=tuple(cap_drop),
            cap_add=tuple(cap_add),
            workdir=workdir,
            user=user,
            auto_remove=auto_remove,
            sysctls=dict(sysctls or {}),
        )

    image: str
    name: str | None
    command: tuple[str, ...]  # arguments after the image (to the entrypoint)
    entrypoint: str | None
    hostname: str | None
    labels: dict[str, str]
    env: dict[str, str]
    mounts: tuple[Mount, ...]
    network: str | None  # None: the engine's default network
    dns: tuple[str, ...]
    publish: tuple[Publish, ...]
    runtime: str | None
    init: bool  # a minimal init as PID 1 (reaps zombies, forwards signals)
    restart: str | None  # restart policy (``unless-stopped``)
    memory: int | None
    cpus: float | None
    security_opts: tuple[str, ...]
    cap_drop: tuple[str, ...]
    cap_add: tuple[str, ...]
    workdir: str | None
    user: str | None
    auto_remove: bool  # removed by the engine when it ends
    sysctls: dict[str, str]  # namespaced kernel settings (``--sysctl``)

    def replace(self, **changes: object) -> ContainerSpec:
        """A copy with ``changes`` (field names as in ``__init__``)."""
        fields: dict[str, Any] = {name: getattr(self, name) for name in self.__slots__}
        fields.update(changes)
        return ContainerSpec(**fields)

    def fingerprint(self) -> str:
        """16 hex digits naming everything in the spec: a container made from another
        spec has another fingerprint (recorded in a label to tell stale ones)."""
        return sha256_hex(repr(self))[:16]
