"""The Protocols through which services reach the outside world.

Concrete adapters (``containai.adapters``) satisfy these structurally; the CLI
wires them (composition root). Unit tests hand in small in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pathlib import Path


class Completed(Protocol):
    """A finished ``docker`` call (``subprocess.CompletedProcess`` has this shape)."""

    returncode: int
    stdout: Any
    stderr: Any


class RunEngine(Protocol):
    """``docker ARGS`` against the selected engine (``DockerEngine.run``)."""

    def run(
        self,
        *args: str,
        input: str | bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
        text: bool = True,
    ) -> Completed: ...


class Engine(RunEngine, Protocol):
    context: str | None

    @property
    def display_name(self) -> str: ...

    def argv(self, *args: str) -> list[str]: ...

    def version(self) -> dict[str, Any]: ...

    def info(self) -> dict[str, Any]: ...

    def runtimes(self) -> list[str]: ...

    def inspect_container(self, name: str) -> dict[str, Any] | None: ...

    def inspect_containers(self, names: Iterable[str]) -> list[dict[str, Any]]: ...

    def list_containers(
        self, labels: Mapping[str, str | None] | None = None, *, all: bool = True
    ) -> list[dict[str, Any]]: ...

    def container_ids(
        self, labels: Mapping[str, str | None], *, states: Sequence[str] = ()
    ) -> list[str]: ...

    def ssh_ports_in_use(self) -> list[tuple[str, int]]: ...

    def create_container(self, args: Sequence[str]) -> str: ...

    def start(self, name: str) -> None: ...

    def stop(self, name: str, *, timeout: int = 10) -> None: ...

    def remove(self, *names: str, force: bool = False) -> None: ...

    def exec(
        self,
        name: str,
        command: Sequence[str],
        *,
        user: str | None = None,
        input: str | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> Completed: ...

    def copy_to(self, name: str, tar_bytes: bytes, dest: str) -> None: ...

    def logs_tail(self, name: str, lines: int = 20) -> str: ...

    def stats(self, name: str, timeout: float = 5.0) -> dict[str, Any] | None: ...

    def inspect_volume(self, name: str) -> dict[str, Any] | None: ...

    def create_volume(self, name: str, labels: Mapping[str, str] | None = None) -> None: ...

    def inspect_image(self, ref: str) -> dict[str, Any] | None: ...

    def list_images(self, reference: str | None = None) -> list[dict[str, Any]]: ...

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
        stream: Any = None,
        timeout: float = 3600.0,
    ) -> None: ...


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
    ) -> Path: ...

    def entry_path(self, name: str) -> Path: ...

    def ensure_include(self) -> str | None: ...

    def ssh_argv(
        self, name: str, remote: Sequence[str] | str | None, *, tty: bool, extra: Sequence[str] = ()
    ) -> list[str]: ...

    def master_alive(self, name: str) -> bool: ...

    def exit_master(self, name: str) -> None: ...

    def release_master(self, name: str, wait: float = 1.0) -> None: ...

    def wait_ready(self, name: str, *, timeout: float = 30.0, port: int | None = None) -> None: ...

    def remove(self, name: str) -> list[Path]: ...

    def entries(self) -> list[str]: ...

    def stale(self, existing: Collection[str]) -> list[str]: ...


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
