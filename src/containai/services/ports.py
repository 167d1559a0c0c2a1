"""The Protocols through which services reach the outside world.

Concrete adapters (``containai.adapters``) satisfy these structurally; the CLI
wires them (composition root). Unit tests hand in the in-memory fakes of
``tests/fakes.py`` (type-checked against these Protocols). The values the engine
answers with are ``containai.domain.engine_objects``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pathlib import Path

    from containai.domain.archive_rules import Member
    from containai.domain.engine_facts import EngineInfo, EngineVersion
    from containai.domain.engine_objects import (
        CommandResult,
        ContainerInfo,
        ContainerSpec,
        ContainerStats,
        ImageInfo,
        NetworkInfo,
        Removal,
        VolumeInfo,
    )


class ListEngine(Protocol):
    """What listing the managed containers needs (``services/inventory.py``)."""

    def list_managed(self) -> list[ContainerInfo]: ...


class Engine(ListEngine, Protocol):
    """The engine in cai's terms (``adapters.engine.DockerEngine``); Docker's argv,
    formats and JSON shapes stay behind it."""

    context: str | None

    @property
    def display_name(self) -> str: ...

    def engine_version(self) -> EngineVersion:
        """``EngineUnreachable`` when the engine does not answer."""
        ...

    def engine_info(self) -> EngineInfo: ...

    def runtimes(self) -> list[str]: ...

    # containers
    def find(self, name: str) -> ContainerInfo | None: ...

    def find_many(self, refs: Iterable[str]) -> list[ContainerInfo]: ...

    def list_containers(
        self,
        labels: Mapping[str, str | None] | None = None,
        *,
        keys: Sequence[str] = (),
        mounts: bool = False,
    ) -> list[ContainerInfo]: ...

    def container_ids(
        self, labels: Mapping[str, str | None], *, states: Sequence[str] = ()
    ) -> list[str]: ...

    def used_ssh_ports(self) -> list[tuple[str, int]]: ...

    def create(self, spec: ContainerSpec) -> str: ...

    def run_once(self, spec: ContainerSpec, *, timeout: float) -> CommandResult: ...

    def start(self, name: str) -> None: ...

    def start_attached(self, name: str, *, timeout: float) -> CommandResult: ...

    def stop(self, name: str, *, timeout: int = 10) -> None: ...

    def remove(self, *names: str, force: bool = False) -> None: ...

    def remove_stopped(self, refs: Sequence[str]) -> Removal: ...

    def remove_forced(self, refs: Sequence[str]) -> Removal: ...

    def exec(
        self,
        name: str,
        command: Sequence[str],
        *,
        user: str | None = None,
        input: str | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> CommandResult: ...

    def exec_lines(self, name: str, command: Sequence[str]) -> Iterator[str]: ...

    def copy_in(self, name: str, tar_bytes: bytes, dest: str) -> None: ...

    def logs_tail(self, name: str, lines: int = 20) -> str: ...

    def logs(self, name: str, *, tail: int | None = None, follow: bool = False) -> Iterator[str]:
        """The container's log lines (its main process's stdout and stderr, merged),
        the last ``tail`` of them (``None``: all); with ``follow``, then new ones as they
        come until the container stops or the caller stops iterating."""
        ...

    def stats(self, name: str, timeout: float = 5.0) -> ContainerStats | None: ...

    # volumes
    def volume(self, name: str) -> VolumeInfo | None: ...

    def create_volume(self, name: str, labels: Mapping[str, str] | None = None) -> None: ...

    # networks
    def network(self, name: str) -> NetworkInfo | None: ...

    def create_network(
        self,
        name: str,
        labels: Mapping[str, str],
        *,
        internal: bool = False,
        host_address: bool = True,
        subnet: str | None = None,
        automatic: str | None = None,
    ) -> None: ...

    def remove_network(self, name: str) -> bool: ...

    def remove_networks(self, names: Sequence[str]) -> Removal: ...

    def connect_network(
        self,
        network: str,
        container: str,
        aliases: Sequence[str] = (),
        address: str | None = None,
    ) -> None: ...

    # images
    def image(self, ref: str) -> ImageInfo | None: ...

    def list_images(self, reference: str | None = None) -> list[ImageInfo]: ...

    def remove_image(self, ref: str) -> None: ...

    def pull(self, ref: str, timeout: float = 60.0) -> bool: ...

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
    ) -> None: ...

    def tag_image(self, source: str, target: str) -> None: ...


class Config(Protocol):
    @property
    def global_path(self) -> Path: ...

    def repo_path(self, workspace: str) -> Path: ...

    def read_global(self) -> dict[str, Any]: ...

    def read_repo(self, workspace: str) -> dict[str, Any]: ...

    def repo_digest(self, workspace: str) -> str | None: ...

    def trusted_digests(self) -> dict[str, str]: ...

    def set_trust(self, file: str, digest: str | None) -> bool: ...

    def workspace_state(self, workspace: str) -> dict[str, Any]: ...

    def all_workspace_states(self) -> dict[str, dict[str, Any]]: ...

    def set_value(self, path: Path, dotted: str, value: Any) -> bool: ...

    def unset_value(self, path: Path, dotted: str) -> bool: ...

    def set_workspace_state(self, workspace: str, values: Mapping[str, Any | None]) -> bool: ...

    def set_workspace_states(self, changes: Mapping[str, Mapping[str, Any | None]]) -> bool: ...


class Ssh(Protocol):
    def ensure_user_key(self) -> Path: ...

    def public_key(self) -> str: ...

    def ensure_host_key(self, name: str) -> tuple[bytes, str]: ...

    def pin_host_key(self, name: str, public_line: str) -> None: ...

    def pinned_names(self) -> list[str]: ...

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
    ) -> Path: ...

    def entry_path(self, name: str) -> Path: ...

    def entry_context(self, name: str) -> str | None: ...

    def ensure_include(self) -> str | None: ...

    def ssh_argv(
        self, name: str, remote: Sequence[str] | str | None, *, tty: bool, extra: Sequence[str] = ()
    ) -> list[str]: ...

    def master_alive(self, name: str) -> bool: ...

    def exit_master(self, name: str) -> None: ...

    def release_master(self, name: str, wait: float = 1.0) -> None: ...

    def wait_ready(self, name: str, *, timeout: float = 30.0, port: int | None = None) -> None: ...

    def remove(self, name: str) -> list[Path]: ...

    def remove_many(self, names: Sequence[str]) -> list[Path]: ...

    def entries(self) -> list[str]: ...

    def stale(self, existing: Collection[str]) -> list[str]: ...


class Tunnel(Protocol):
    """A foreground port forward: lives until ``close`` or until it fails."""

    def alive(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> int | None: ...

    def error(self) -> str: ...

    def close(self) -> None: ...


class Forwarder(Protocol):
    """Port forwards over SSH (``adapters/ssh/forwards.py``): a foreground tunnel, or
    background forwards held for a container until cancelled or the container stops."""

    def open(self, name: str, forwards: Sequence[tuple[int, int]]) -> Tunnel: ...

    def alive(self, name: str) -> bool: ...

    def add(self, name: str, port: int, host_port: int) -> None: ...

    def cancel(self, name: str, port: int, host_port: int) -> None: ...

    def close(self, name: str) -> None: ...


class Locks(Protocol):
    """Inter-process locks: one per workspace, one for port leases."""

    def workspace(self, workspace: str) -> Any: ...

    def ports(self) -> Any: ...


class HostProbe(Protocol):
    """Facts about the host that services need (injected so tests can fake them)."""

    def port_is_free(self, port: int) -> bool: ...

    def memory_bytes(self) -> int: ...

    def cpu_count(self) -> int: ...

    def uid_gid(self) -> tuple[int, int]: ...

    def agent_ids(self, workspace: str) -> tuple[int, int]: ...

    def grant(self, paths: Sequence[str], uid: int, gid: int) -> int: ...

    def git_identity(self) -> tuple[str | None, str | None]: ...


# progress(done_bytes, total_bytes_or_None)
Progress = Callable[[int, int | None], None]


class ExportResult(Protocol):
    @property
    def members(self) -> int: ...

    @property
    def bytes_in(self) -> int: ...

    @property
    def bytes_out(self) -> int: ...

    @property
    def hardlinks(self) -> int: ...


class Streams(Protocol):
    """The tar streams (``adapters/archive``) that move a data volume's content in and
    out of a container (copied by the engine, even a stopped one), and the temp files a
    killed export left."""

    def export_volume(
        self, container: str, source: str, output: Path, *, progress: Progress | None = None
    ) -> ExportResult: ...

    def read_members(self, archive: Path, *, progress: Progress | None = None) -> list[Member]: ...

    def copy_archive_in(
        self,
        container: str,
        dest: str,
        archive: Path,
        expected: Sequence[Member],
        *,
        staging: str,
        marker: str,
        progress: Progress | None = None,
    ) -> None: ...

    def copy_items_in(
        self, container: str, dest: str, items: Sequence[Any], *, uid: int, gid: int
    ) -> list[str]: ...

    def stale_exports(self) -> list[Path]: ...

    def remove_files(self, paths: Sequence[Path]) -> list[Path]: ...
