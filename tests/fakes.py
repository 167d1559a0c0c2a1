"""In-memory fakes of the Protocols services reach the world through (DESIGN: never a
``MagicMock`` of the engine). Type-checked against those Protocols:

    PYTHONPATH=src .venv/bin/mypy --strict src tests/fakes.py

(the assignments at the end make mypy prove each fake is a valid implementation).

``FakeEngine`` keeps containers, volumes, networks and images in memory and records
every call in ``calls`` as ``(method, *arguments)``. Tests steer it through its
attributes: ``hooks[method](engine, n)`` runs before the n-th call of ``method`` acts
(a race: a container started meanwhile), ``up=False`` makes every call fail as an
engine that does not answer, ``hang`` makes calls wait.
"""

from __future__ import annotations

import contextlib
import ipaddress
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from containai.domain import labels as L
from containai.domain.engine_facts import EngineInfo, EngineVersion
from containai.domain.engine_objects import (
    CommandResult,
    ContainerInfo,
    ContainerSpec,
    ContainerStats,
    ImageInfo,
    Mount,
    NetworkInfo,
    Removal,
    VolumeInfo,
)
from containai.domain.errors import (
    EngineUnreachable,
    Failed,
    NameInUse,
    NotFound,
    SubnetTaken,
)
from containai.services.run_request import ImageProvider, ImageRef

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def managed_labels(workspace: str, port: int | None = 2300, **extra: str) -> dict[str, str]:
    """The labels of a container cai made for ``workspace``."""
    labels = {
        L.MANAGED: L.TRUE,
        L.WORKSPACE: workspace,
        L.DATA_VOLUME: "containai-data",
        L.RUNTIME: "runsc",
    }
    if port is not None:
        labels[L.SSH_PORT] = str(port)
    labels.update(extra)
    return labels


@dataclass
class Box:
    """One container as the fake engine keeps it (mutable: tests change its state)."""

    name: str
    state: str = "created"
    labels: dict[str, str] = field(default_factory=dict)
    id: str = ""
    image: str = "containai:default"
    image_id: str = "sha256:base"
    created: datetime | None = EPOCH
    started: datetime | None = None
    finished: datetime | None = None
    runtime: str | None = "runc"
    env: dict[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    networks: dict[str, str] = field(default_factory=lambda: {"bridge": ""})
    spec: ContainerSpec | None = None  # what it was created from (``create``)

    def __post_init__(self) -> None:
        self.id = self.id or f"id-{self.name}"

    def info(self) -> ContainerInfo:
        return ContainerInfo(
            id=self.id,
            name=self.name,
            state=self.state,
            image=self.image,
            image_id=self.image_id,
            labels=self.labels,
            created=self.created,
            started=self.started,
            finished=self.finished,
            runtime=self.runtime,
            env=self.env,
            mounts=self.mounts,
            networks=self.networks,
        )

    def row(self, keys: Iterable[str] | None, mounts: bool = False) -> ContainerInfo:
        """As a listing shows it: the labels asked for (``None``: all), no details."""
        wanted = self.labels if keys is None else {k: self.labels.get(k, "") for k in keys}
        return ContainerInfo(
            id=self.id,
            name=self.name,
            state=self.state,
            image=self.image,
            created=self.created,
            labels={k: v for k, v in wanted.items() if v},
            mounts=[Mount("", m.source, "") for m in self.mounts] if mounts else (),
        )

    def matches(self, labels: Mapping[str, str | None]) -> bool:
        return all(
            k in self.labels and (v is None or self.labels[k] == v) for k, v in labels.items()
        )


Attached = Callable[["FakeEngine", Box], CommandResult]
Exec = Callable[[str, Sequence[str], "str | None"], CommandResult]


@dataclass
class FakeEngine:
    """The engine port in memory (``services/ports.Engine``, and what doctor reads)."""

    containers: dict[str, Box] = field(default_factory=dict)  # by id
    volumes: dict[str, VolumeInfo] = field(default_factory=dict)
    networks: dict[str, NetworkInfo] = field(default_factory=dict)
    images: list[ImageInfo] = field(default_factory=list)
    copied: list[tuple[str, str, bytes]] = field(default_factory=list)  # copy_in's tars
    runtime_names: tuple[str, ...] = ("runc", "runsc")
    default_runtime: str = "runc"
    server: str = "20.10.24+dfsg1"
    root: str = "/var/lib/docker"
    hostname: str = "box"
    name: str | None = "fake"
    up: bool = True
    hang: threading.Event | None = None
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    hooks: dict[str, Callable[[FakeEngine, int], None]] = field(default_factory=dict)
    start_errors: dict[str, Exception] = field(default_factory=dict)  # name -> raised
    rm_errors: dict[str, str] = field(default_factory=dict)  # ref -> the engine's reason
    rm_failure: Exception | None = None  # `remove_stopped` failing as a whole
    network_errors: dict[str, str] = field(default_factory=dict)  # network -> rm's reason
    image_errors: dict[str, Exception] = field(default_factory=dict)  # ref -> raised
    pullable: set[str] = field(default_factory=set)
    build_output: list[str] = field(default_factory=list)  # what `build` prints, by line
    build_args: dict[str, dict[str, str]] = field(default_factory=dict)  # by tag built
    attached: Attached | None = None  # what a helper started attached does
    exec_handler: Exec | None = None
    exec_users: list[tuple[str, str | None]] = field(default_factory=list)  # (name, --user)
    log_lines: list[str] = field(default_factory=list)
    stats_answer: ContainerStats | None = None
    stats_delay: float = 0.0
    stats_error: Exception | None = None
    address: str = "172.30.0.2"  # a container's address on a network it is connected to

    context: str | None = "fake"

    # ---------------------------------------------------------------- helpers
    def add(self, box: Box) -> Box:
        self.containers[box.id] = box
        return box

    def box(self, ref: str) -> Box | None:
        """A container by id or name."""
        return self.containers.get(ref) or next(
            (b for b in self.containers.values() if b.name == ref), None
        )

    def verbs(self) -> list[str]:
        return [c[0] for c in self.calls]

    def calls_of(self, verb: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == verb]

    def _call(self, verb: str, *args: Any) -> None:
        self.calls.append((verb, *args))
        if self.hang is not None:
            self.hang.wait(10)
        if not self.up:
            raise EngineUnreachable(f"the Docker engine of context '{self.display_name}' ...")
        hook = self.hooks.get(verb)
        if hook is not None:
            hook(self, len(self.calls_of(verb)))

    # ----------------------------------------------------------------- engine
    @property
    def display_name(self) -> str:
        return self.name or "DOCKER_HOST=unix:///nonexistent.sock"

    def engine_version(self) -> EngineVersion:
        self._call("version")
        return EngineVersion(self.server, "1.41")

    def engine_info(self) -> EngineInfo:
        self._call("info")
        return EngineInfo(
            runtimes=self.runtime_names,
            default_runtime=self.default_runtime,
            root_dir=self.root,
            host_name=self.hostname,
        )

    def runtimes(self) -> list[str]:
        self._call("runtimes")
        return sorted(self.runtime_names)

    # ------------------------------------------------------------- containers
    def find(self, name: str) -> ContainerInfo | None:
        self._call("find", name)
        box = self.box(name)
        return None if box is None else box.info()

    def find_many(self, refs: Iterable[str]) -> list[ContainerInfo]:
        refs = list(refs)
        self._call("find_many", *refs)
        return [b.info() for ref in refs if (b := self.box(ref)) is not None]

    def list_managed(self) -> list[ContainerInfo]:
        self._call("list_managed")
        return [b.row(None) for b in self.containers.values() if L.is_managed(b.labels)]

    def list_containers(
        self,
        labels: Mapping[str, str | None] | None = None,
        *,
        keys: Sequence[str] = (),
        mounts: bool = False,
    ) -> list[ContainerInfo]:
        wanted = dict(labels or {})
        self._call("list_containers", *(f"{k}={v}" for k, v in wanted.items()))
        return [b.row(keys, mounts) for b in self.containers.values() if b.matches(wanted)]

    def container_ids(
        self, labels: Mapping[str, str | None], *, states: Sequence[str] = ()
    ) -> list[str]:
        self._call(
            "container_ids",
            *(f"{k}={v}" for k, v in labels.items()),
            *(f"status={s}" for s in states),
        )
        return [
            b.id
            for b in self.containers.values()
            if b.matches(labels) and (not states or b.state in states)
        ]

    def used_ssh_ports(self) -> list[tuple[str, int]]:
        self._call("used_ssh_ports")
        return [
            (b.name, int(b.labels[L.SSH_PORT]))
            for b in self.containers.values()
            if b.labels.get(L.SSH_PORT, "").isdigit()
        ]

    def create(self, spec: ContainerSpec) -> str:
        self._call("create", spec.name)
        name = spec.name or f"anon-{len(self.containers)}"
        if self.box(name) is not None:
            raise NameInUse(
                f'docker create failed: Conflict. The container name "/{name}" is already in use'
            )
        box = self.add(
            Box(
                name=name,
                labels=dict(spec.labels),
                image=spec.image,
                runtime=spec.runtime or "runc",
                env=dict(spec.env),
                mounts=spec.mounts,
                networks={spec.network or "bridge": ""},
                spec=spec,
            )
        )
        return box.id

    def run_once(self, spec: ContainerSpec, *, timeout: float) -> CommandResult:
        self._call("run_once", spec.image, *spec.command)
        box = Box(name=spec.name or "run-once", labels=dict(spec.labels), spec=spec)
        if self.attached is None:
            return CommandResult(0, "", "")
        return self.attached(self, box)

    def start(self, name: str) -> None:
        self._call("start", name)
        if name in self.start_errors:
            raise self.start_errors[name]
        box = self._existing(name)
        box.state = "running"
        box.started = datetime.now(UTC)

    def start_attached(self, name: str, *, timeout: float) -> CommandResult:
        self._call("start_attached", name)
        box = self._existing(name)
        result = CommandResult(0, "", "") if self.attached is None else self.attached(self, box)
        if box.spec is not None and box.spec.auto_remove and box.state != "running":
            self.containers.pop(box.id, None)  # the engine removes it when it ends
        return result

    def stop(self, name: str, *, timeout: int = 10) -> None:
        self._call("stop", name)
        box = self._existing(name)
        box.state = "exited"
        box.finished = datetime.now(UTC)

    def remove(self, *names: str, force: bool = False) -> None:
        self._call("remove", *names)
        for name in names:
            box = self.box(name)
            if box is None:
                raise NotFound(f"No such container: {name}")
            if box.state in ("running", "paused", "restarting") and not force:
                raise Failed(f"docker rm failed: You cannot remove a running container {name}")
            self.containers.pop(box.id, None)

    def remove_stopped(self, refs: Sequence[str]) -> Removal:
        self._call("remove_stopped", *refs)
        if self.rm_failure is not None:
            raise self.rm_failure
        return self._removal(refs, force=False)

    def remove_forced(self, refs: Sequence[str]) -> Removal:
        self._call("remove_forced", *refs)
        return self._removal(refs, force=True)

    def _removal(self, refs: Sequence[str], *, force: bool) -> Removal:
        """``docker rm`` of ``refs`` in one call: running ones refused unless by force."""
        removed: list[str] = []
        running: list[str] = []
        gone: list[str] = []
        failed: dict[str, str] = {}
        for ref in refs:
            box = self.box(ref)
            if ref in self.rm_errors:
                failed[ref] = self.rm_errors[ref]
            elif box is None:
                gone.append(ref)
            elif box.state in ("running", "paused", "restarting") and not force:
                running.append(ref)
            else:
                del self.containers[box.id]
                removed.append(ref)
        return Removal(removed, running, gone, failed)

    def exec(
        self,
        name: str,
        command: Sequence[str],
        *,
        user: str | None = None,
        input: str | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> CommandResult:
        self._call("exec", name, *command)
        self.exec_users.append((name, user))
        if self.exec_handler is None:
            return CommandResult(0, "", "")
        return self.exec_handler(name, command, input)

    def exec_lines(self, name: str, command: Sequence[str]) -> Iterator[str]:
        self._call("exec_lines", name, *command)
        yield from self.log_lines

    def copy_in(self, name: str, tar_bytes: bytes, dest: str) -> None:
        self._call("copy_in", name, dest)
        self.copied.append((name, dest, tar_bytes))
        self._existing(name)

    def copy_in_file(self, name: str, tar_path: Path, dest: str) -> None:
        self._call("copy_in_file", name, dest, tar_path.read_bytes())
        self._existing(name)

    def logs_tail(self, name: str, lines: int = 20) -> str:
        self._call("logs_tail", name)
        return ""

    def logs(self, name: str, *, tail: int | None = None, follow: bool = False) -> Iterator[str]:
        self._call("logs", name, tail, follow)
        self._existing(name)
        lines = list(self.log_lines)
        yield from lines if tail is None else lines[len(lines) - tail :] if tail else []

    def stats(self, name: str, timeout: float = 5.0) -> ContainerStats | None:
        self._call("stats", name, timeout)
        if self.stats_delay:
            import time

            time.sleep(min(self.stats_delay, timeout + 1))
        if self.stats_error is not None:
            raise self.stats_error
        return self.stats_answer

    def _existing(self, name: str) -> Box:
        box = self.box(name)
        if box is None:
            raise NotFound(f"No such container: {name}")
        return box

    # ---------------------------------------------------------------- volumes
    def volume(self, name: str) -> VolumeInfo | None:
        self._call("volume", name)
        return self.volumes.get(name)

    def create_volume(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        self._call("create_volume", name, dict(labels or {}))
        self.volumes[name] = VolumeInfo(name, labels)

    # --------------------------------------------------------------- networks
    def network(self, name: str) -> NetworkInfo | None:
        self._call("network", name)
        return self.networks.get(name)

    def create_network(
        self,
        name: str,
        labels: Mapping[str, str],
        *,
        internal: bool = False,
        host_address: bool = True,
        subnet: str | None = None,
        automatic: str | None = None,
    ) -> None:
        self._call("create_network", name, f"internal={internal}", f"host_address={host_address}")
        if name in self.networks:
            raise NameInUse(
                f"docker network create failed: network with name {name} already exists"
            )
        mine = ipaddress.ip_network(subnet or "172.30.0.0/16")
        for other in self.networks.values():
            if any(mine.overlaps(ipaddress.ip_network(s)) for s in other.subnets):
                raise SubnetTaken(
                    "docker network create failed: Pool overlaps with other one on this "
                    "address space"
                )
        self.networks[name] = NetworkInfo(name, labels, internal=internal, subnets=[str(mine)])

    def remove_network(self, name: str) -> bool:
        self._call("remove_network", name)
        return self.networks.pop(name, None) is not None

    def remove_networks(self, names: Sequence[str]) -> Removal:
        self._call("remove_networks", *names)
        removed: list[str] = []
        gone: list[str] = []
        failed: dict[str, str] = {}
        for name in names:
            if name in self.network_errors:
                failed[name] = self.network_errors[name]
            elif self.networks.pop(name, None) is None:
                gone.append(name)
            else:
                removed.append(name)
        return Removal(removed, (), gone, failed)

    def connect_network(
        self,
        network: str,
        container: str,
        aliases: Sequence[str] = (),
        address: str | None = None,
    ) -> None:
        self._call("connect_network", network, container)
        self._existing(container).networks[network] = address or self.address

    # ----------------------------------------------------------------- images
    def _image(self, ref: str) -> ImageInfo | None:
        return next((i for i in self.images if ref in (i.reference, i.id)), None)

    def image(self, ref: str) -> ImageInfo | None:
        self._call("image", ref)
        return self._image(ref)

    def list_images(self, reference: str | None = None) -> list[ImageInfo]:
        self._call("list_images", reference)
        if reference is None:
            return list(self.images)
        repo = reference.split(":")[0]
        return [i for i in self.images if i.repository == repo]

    def remove_image(self, ref: str) -> None:
        self._call("remove_image", ref)
        if ref in self.image_errors:
            raise self.image_errors[ref]
        self.images = [i for i in self.images if i.reference != ref]

    def pull(self, ref: str, timeout: float = 60.0) -> bool:
        self._call("pull", ref)
        if ref not in self.pullable:
            return False
        repo, _, tag = ref.rpartition(":")
        self.images.append(ImageInfo(f"sha256:{ref}", repo, tag))
        return True

    def build(
        self,
        context_dir: Path,
        *,
        tag: str,
        build_args: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        dockerfile: Path | None = None,
        on_line: Callable[[str, tuple[int, int] | None], None] | None = None,
        timeout: float = 3600.0,
        target: str | None = None,
    ) -> None:
        self._call("build", tag)
        self.build_args[tag] = dict(build_args or {})
        if on_line is not None:
            for line in self.build_output:
                on_line(line, None)
        repo, _, name = tag.rpartition(":")
        self.images = [i for i in self.images if i.reference != tag]
        self.images.append(ImageInfo(f"sha256:{tag}", repo, name, labels))

    def tag_image(self, source: str, target: str) -> None:
        self._call("tag_image", source, target)
        found = self._image(source)
        if found is None:
            raise NotFound(f"no such image: {source}")
        repo, _, name = target.rpartition(":")
        self.images = [i for i in self.images if i.reference != target]
        self.images.append(ImageInfo(found.id, repo, name, found.labels))


# ------------------------------------------------------------------ the others
@dataclass
class FakeSsh:
    """The ``Ssh`` port in memory: entries by name (what gc and ``ssh cleanup`` touch),
    host keys and their pins, control masters, readiness. ``calls`` records
    ``(method, name)``; ``not_ready`` makes ``wait_ready`` fail with that message."""

    names: set[str] = field(default_factory=set)
    removed: list[str] = field(default_factory=list)
    appear_on_stale: set[str] = field(default_factory=set)
    contexts: dict[str, str] = field(default_factory=dict)  # name -> its entry's context
    pins: dict[str, str] = field(default_factory=dict)  # name -> pinned public line
    written: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> entry
    masters: set[str] = field(default_factory=set)
    calls: list[tuple[str, str]] = field(default_factory=list)
    not_ready: str | None = None
    batches: list[list[str]] = field(default_factory=list)  # the names of each removal

    def ensure_user_key(self) -> Path:
        return Path("/home/u/.config/containai/id_ed25519")

    def public_key(self) -> str:
        return "ssh-ed25519 AAAAuser cai"

    def ensure_host_key(self, name: str) -> tuple[bytes, str]:
        self.calls.append(("ensure_host_key", name))
        return b"private-" + name.encode(), f"ssh-ed25519 AAAA{name}"

    def pin_host_key(self, name: str, public_line: str) -> None:
        self.calls.append(("pin_host_key", name))
        self.pins[name] = public_line

    def pinned_names(self) -> list[str]:
        return sorted(self.pins)

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
        self.calls.append(("write_entry", name))
        self.written[name] = {"port": port, "user": user, "workspace": workspace}
        if context is not None:
            self.contexts[name] = context
        self.names.add(name)
        return self.entry_path(name)

    def entry_path(self, name: str) -> Path:
        return Path(f"/home/u/.ssh/containai.d/{name}.conf")

    def ensure_include(self) -> str | None:
        return None

    def ssh_argv(
        self, name: str, remote: Sequence[str] | str | None, *, tty: bool, extra: Sequence[str] = ()
    ) -> list[str]:
        return ["ssh", f"cai-{name}"]

    def master_alive(self, name: str) -> bool:
        return name in self.masters

    def exit_master(self, name: str) -> None:
        self.calls.append(("exit_master", name))
        self.masters.discard(name)

    def release_master(self, name: str, wait: float = 1.0) -> None:
        self.calls.append(("release_master", name))

    def wait_ready(self, name: str, *, timeout: float = 30.0, port: int | None = None) -> None:
        self.calls.append(("wait_ready", name))
        if self.not_ready is not None:
            raise Failed(self.not_ready)

    def entry_context(self, name: str) -> str | None:
        return self.contexts.get(name, "") if name in self.names else None

    def remove(self, name: str) -> list[Path]:
        return self.remove_many([name])

    def remove_many(self, names: Sequence[str]) -> list[Path]:
        self.batches.append(list(names))
        self.removed.extend(names)
        self.names.difference_update(names)
        return [Path(f"/home/u/.ssh/containai.d/{name}.conf") for name in names]

    def entries(self) -> list[str]:
        return sorted(self.names)

    def stale(self, existing: Collection[str]) -> list[str]:
        self.names |= self.appear_on_stale  # a `cai run` wrote new files meanwhile
        return [n for n in sorted(self.names) if n not in existing]


@dataclass
class FakeConfig:
    """Workspace state (the part of the config services read and write)."""

    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    writes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    updates: int = 0  # read-modify-writes of the file (one per set_workspace_state[s])

    def workspace_state(self, workspace: str) -> dict[str, Any]:
        return dict(self.states.get(workspace, {}))

    def all_workspace_states(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self.states.items()}

    # the rest of the ``Config`` port: no settings files, nothing trusted
    @property
    def global_path(self) -> Path:
        return Path("/home/u/.config/containai/config.toml")

    def repo_path(self, workspace: str) -> Path:
        return Path(workspace) / ".containai" / "config.toml"

    def read_global(self) -> dict[str, Any]:
        return {}

    def read_repo(self, workspace: str) -> dict[str, Any]:
        return {}

    def repo_digest(self, workspace: str) -> str | None:
        return None

    def trusted_digests(self) -> dict[str, str]:
        return {}

    def set_trust(self, file: str, digest: str | None) -> bool:
        return False

    def set_value(self, path: Path, dotted: str, value: Any) -> bool:
        return False

    def unset_value(self, path: Path, dotted: str) -> bool:
        return False

    def set_workspace_state(self, workspace: str, values: Mapping[str, Any | None]) -> bool:
        return self.set_workspace_states({workspace: values})

    def set_workspace_states(self, changes: Mapping[str, Mapping[str, Any | None]]) -> bool:
        self.updates += 1
        for workspace, values in changes.items():
            self.writes.append((workspace, dict(values)))
            state = self.states.setdefault(workspace, {})
            for k, v in values.items():
                if v is None:
                    state.pop(k, None)
                else:
                    state[k] = v
        return True


@dataclass
class FakeLocks:
    """Workspace locks: ``busy`` ones time out, the held ones are listed. ``waited(ws)``
    runs as a lock is taken: what the command that held it did before letting go."""

    busy: set[str] = field(default_factory=set)
    held: list[str] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)
    waited: Callable[[str], None] | None = None

    def workspace(self, workspace: str) -> Any:
        @contextlib.contextmanager
        def lock() -> Iterator[None]:
            if workspace in self.busy:
                raise TimeoutError(workspace)
            if self.waited is not None:
                self.waited(workspace)
            self.held.append(workspace)
            self.log.append(("acquire", workspace))
            try:
                yield
            finally:
                self.held.remove(workspace)
                self.log.append(("release", workspace))

        return lock()

    def ports(self) -> Any:
        return contextlib.nullcontext()


@dataclass
class FakeHost:
    """The host's facts: bound ports, memory, CPUs, ids."""

    bound: set[int] = field(default_factory=set)
    memory: int = 8 * 1024**3
    cpus: int = 4
    ids: tuple[int, int] = (1000, 1000)
    identity: tuple[str | None, str | None] = (None, None)  # the host's git user.name/email

    def port_is_free(self, port: int) -> bool:
        return port not in self.bound

    def memory_bytes(self) -> int:
        return self.memory

    def cpu_count(self) -> int:
        return self.cpus

    def uid_gid(self) -> tuple[int, int]:
        return self.ids

    def agent_ids(self, workspace: str) -> tuple[int, int]:
        return self.ids

    def grant(self, paths: Sequence[str], uid: int, gid: int) -> int:
        return 0

    def git_identity(self) -> tuple[str | None, str | None]:
        return self.identity


class FakeImages(ImageProvider):
    """Images by template: ``containai:<template>-<hash>`` with a fixed hash per template."""

    def __init__(self, hashes: Mapping[str, str] | None = None) -> None:
        self.hashes = dict(hashes or {})

    def _hash(self, template: str) -> str:
        return self.hashes.get(template, "0123456789abcdef")

    def ensure(self, template: str) -> ImageRef:
        digest = self._hash(template)
        return ImageRef(f"containai:{template}-{digest}", template, digest)

    def current_hash(self, template: str) -> str | None:
        return self._hash(template)

    def ca_bundle_path(self) -> Path | None:
        return None

    def planned_tag(self, template: str) -> str | None:
        return f"containai:{template}-{self._hash(template)}"


@dataclass
class FakeTunnel:
    """A foreground forward that holds its ports on a ``FakeHost`` until closed."""

    host: FakeHost
    ports: list[int]
    fails: str | None = None  # ssh's error: the tunnel dies at once
    closed: bool = False

    def alive(self) -> bool:
        return self.fails is None and not self.closed

    def wait(self, timeout: float | None = None) -> int | None:
        return 255 if self.fails is not None else None

    def error(self) -> str:
        return self.fails or ""

    def close(self) -> None:
        self.closed = True
        self.host.bound -= set(self.ports)


@dataclass
class FakeForwarder:
    """SSH port forwards over a ``FakeHost``: each forward binds its host port there."""

    host: FakeHost
    masters: dict[str, set[tuple[int, int]]] = field(default_factory=dict)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    fail_open: str | None = None
    tunnels: list[FakeTunnel] = field(default_factory=list)

    def open(self, name: str, forwards: Sequence[tuple[int, int]]) -> FakeTunnel:
        self.calls.append(("open", name, tuple(forwards)))
        ports = [hp for _p, hp in forwards]
        tunnel = FakeTunnel(self.host, ports, self.fail_open)
        if self.fail_open is None:
            self.host.bound |= set(ports)
        self.tunnels.append(tunnel)
        return tunnel

    def alive(self, name: str) -> bool:
        return name in self.masters

    def add(self, name: str, port: int, host_port: int) -> None:
        self.calls.append(("add", name, port, host_port))
        if host_port in self.host.bound:
            raise Failed(f"could not forward 127.0.0.1:{host_port}")
        self.masters.setdefault(name, set()).add((port, host_port))
        self.host.bound.add(host_port)

    def cancel(self, name: str, port: int, host_port: int) -> None:
        self.calls.append(("cancel", name, port, host_port))
        held = self.masters.get(name, set())
        if (port, host_port) in held:
            held.discard((port, host_port))
            self.host.bound.discard(host_port)

    def close(self, name: str) -> None:
        self.calls.append(("close", name))
        for _port, host_port in self.masters.pop(name, set()):
            self.host.bound.discard(host_port)


# mypy proves each fake implements its Protocol (`mypy --strict src tests/fakes.py`).
def _conforms() -> None:
    from containai.services.doctor import DoctorEngine
    from containai.services.forward import StateConfig
    from containai.services.gc import GcConfig, GcEngine, GcLocks, GcSsh
    from containai.services.ports import Config, Engine, Forwarder, HostProbe, Locks, Ssh
    from containai.services.ssh_cleanup import CleanupSsh, NamesEngine

    _engine: Engine = FakeEngine()
    _doctor: DoctorEngine = FakeEngine()
    _gc: GcEngine = FakeEngine()
    _ssh: GcSsh = FakeSsh()
    _cleanup: CleanupSsh = FakeSsh()
    _names: NamesEngine = FakeEngine()
    _config: GcConfig = FakeConfig()
    _locks: GcLocks = FakeLocks()
    _all_locks: Locks = FakeLocks()
    _host: HostProbe = FakeHost()
    _forwarder: Forwarder = FakeForwarder(FakeHost())
    _state: StateConfig = FakeConfig()
    _full_ssh: Ssh = FakeSsh()
    _full_config: Config = FakeConfig()
    from containai.services.remote import RemoteEngine

    _remote: RemoteEngine = FakeEngine()
