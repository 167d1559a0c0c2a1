"""SSH files of containers that are gone (SPEC section 10): ``cai ssh cleanup``, and the
files of each container ``cai gc`` removes.

A container's SSH files are its ``Host cai-<name>`` entry, its pinned host key and its
control socket (``adapters/ssh``). They outlive the container when it is removed by
other means than cai (``docker rm``); ``ssh_cleanup`` finds and removes those.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from containai.domain.engine_objects import ContainerInfo


class NamesEngine(Protocol):
    """What ``ssh cleanup`` needs: the containers there are."""

    def list_containers(
        self,
        labels: Mapping[str, str | None] | None = None,
        *,
        keys: Sequence[str] = (),
        mounts: bool = False,
    ) -> list[ContainerInfo]: ...


class ContainerSsh(Protocol):
    """Removing containers' SSH files (what ``cai gc`` needs)."""

    def remove_many(self, names: Sequence[str]) -> list[Path]: ...


class CleanupSsh(ContainerSsh, Protocol):
    """The SSH files of every container (what ``cai ssh cleanup`` needs)."""

    def entries(self) -> list[str]: ...

    def stale(self, existing: Collection[str]) -> list[str]: ...


def forget(ssh: ContainerSsh, names: Sequence[str]) -> list[Path]:
    """Remove the SSH entries, pinned keys and control sockets of containers ``names``
    (which are gone; ``known_hosts`` is rewritten once for all); the paths removed."""
    return ssh.remove_many(names) if names else []


def existing_names(engine: NamesEngine) -> set[str]:
    """Names of every container of the engine (managed or not): one listing."""
    return {c.name for c in engine.list_containers() if c.name}


def ssh_cleanup(engine: NamesEngine, ssh: CleanupSsh, *, dry_run: bool) -> list[str]:
    """Names whose SSH entry, pinned key or control socket outlived their container
    (removed unless ``dry_run``). SSH files are read *before* the engine is asked,
    so the files of a container created meanwhile are never taken for stale ones."""
    before = set(ssh.entries())
    existing = existing_names(engine)
    stale = [name for name in ssh.stale(existing) if name in before]
    if not dry_run:
        forget(ssh, stale)
    return stale
