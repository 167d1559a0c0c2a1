"""The values ``ensure_running`` takes and returns, and what it needs from images."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from containai.domain.egress import Policy
from containai.services.workspace import Workspace


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

    def planned_tag(self, template: str) -> str | None:  # pragma: no cover - interface
        raise NotImplementedError


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
class Ready:
    name: str
    workspace: str
    data_volume: str
    ssh_port: int
    user: str
    action: str  # create | start | attach | recreate
    runtime: str
