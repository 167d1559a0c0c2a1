"""One container in detail: ``cai status`` (SPEC section 7).

Required facts (name, status, image) come from the engine's record of the
container (``Engine.find``). The best-effort ones (uptime, sessions, memory, CPU)
have a budget of 5 seconds each and are ``None`` when unavailable: never guessed.
The sessions probe and the engine's stats run concurrently, so ``cai status``
stays within the budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

from containai.domain import labels as L
from containai.domain.engine_objects import ContainerInfo, ContainerStats
from containai.domain.errors import CaiError
from containai.domain.sessions import Sessions
from containai.services.inventory import SSH_ALIAS_PREFIX, display_status, seconds_since

if TYPE_CHECKING:
    from concurrent.futures import Future

BEST_EFFORT_SECONDS: Final = 5.0
_SLACK_SECONDS: Final = 0.5  # for the engine call's own timeout to fire and the thread to return


class StatsEngine(Protocol):
    """What ``status`` needs from the engine (``DockerEngine`` satisfies it)."""

    def stats(self, name: str, timeout: float = 5.0) -> ContainerStats | None: ...


SessionsProbe = Callable[[str, float], Sessions | None]


# ---------------------------------------------------------------------- status
@dataclass(frozen=True)
class Resources:
    memory_bytes: int | None = None
    memory_limit_bytes: int | None = None
    cpu_percent: float | None = None

    @property
    def memory_percent(self) -> float | None:
        if self.memory_bytes is None or not self.memory_limit_bytes:
            return None
        return 100.0 * self.memory_bytes / self.memory_limit_bytes


def resources_from_stats(stats: ContainerStats | None) -> Resources:
    """What is known of a container's resource use."""
    if stats is None:
        return Resources()
    return Resources(stats.memory_bytes, stats.memory_limit_bytes, stats.cpu_percent)


@dataclass(frozen=True)
class StatusReport:
    container: str
    status: str  # running | stopped | created | paused | restarting | dead ...
    image: str
    runtime: str | None
    isolation: str
    ssh_port: int | None
    data_volume: str | None
    workspace: str | None
    uptime_seconds: int | None
    sessions: Sessions | None
    resources: Resources
    network_policy: str | None = None  # allowlist | open | none; None: made before policies
    denials: int | None = None  # connections the gateway refused (best effort)
    forwards: tuple[dict[str, object], ...] = ()  # cai forward's rows (SPEC 17)
    branch: str | None = None  # the workspace's branch when the container was made
    current_branch: str | None = None  # the workspace's branch now (the CLI fills it)

    @property
    def ssh_alias(self) -> str:
        return SSH_ALIAS_PREFIX + self.container

    def to_json(self) -> dict[str, Any]:
        return {
            "container": self.container,
            "status": self.status,
            "image": self.image,
            "isolation": self.isolation,
            "ssh_alias": self.ssh_alias,
            "ssh_port": self.ssh_port,
            "data_volume": self.data_volume,
            "workspace": self.workspace,
            "uptime_seconds": self.uptime_seconds,
            "sessions": {
                "ssh_connections": None if self.sessions is None else self.sessions.ssh_connections,
                "active_terminals": (
                    None if self.sessions is None else self.sessions.active_terminals
                ),
            },
            "resources": {
                "memory_bytes": self.resources.memory_bytes,
                "memory_limit_bytes": self.resources.memory_limit_bytes,
                "cpu_percent": self.resources.cpu_percent,
            },
            "network": {"policy": self.network_policy or "open", "denials": self.denials},
            "forwards": list(self.forwards),
            "branch": self.branch,
            "current_branch": self.current_branch,
        }


def _runtime_of(info: ContainerInfo) -> str | None:
    return info.labels.get(L.RUNTIME) or info.runtime or None


def _quietly(call: Callable[[], Any]) -> Any:
    """A best-effort probe: any failure (engine error, timeout, bad output) is "unknown"."""
    try:
        return call()
    except (CaiError, OSError, ValueError, KeyError, TypeError):
        return None


def container_status(
    info: ContainerInfo,
    *,
    engine: StatsEngine,
    sessions: SessionsProbe,
    now: datetime | None = None,
    budget: float = BEST_EFFORT_SECONDS,
    denials: Callable[[str], int | None] | None = None,
) -> StatusReport:
    """Everything ``cai status`` shows about the container ``info`` (``Engine.find``)."""
    now = now or datetime.now(UTC)
    name = info.name
    labels = info.labels
    status = info.state
    runtime = _runtime_of(info)

    uptime: int | None = None
    denied: int | None = None
    found: Sessions | None = None
    resources = Resources()
    if status == "running":
        from concurrent.futures import ThreadPoolExecutor  # not on `cai list`'s path

        uptime = seconds_since(info.started, now)
        pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="cai-status")
        try:
            f_sessions: Future[Any] = pool.submit(_quietly, lambda: sessions(name, budget))
            f_stats: Future[Any] = pool.submit(_quietly, lambda: engine.stats(name, budget))
            f_denials: Future[Any] | None = None
            if denials is not None and labels.get(L.NETWORK_POLICY) in ("allowlist", "none"):
                f_denials = pool.submit(_quietly, lambda: denials(name))
            found = _result(f_sessions, budget + _SLACK_SECONDS)
            resources = resources_from_stats(_result(f_stats, budget + _SLACK_SECONDS))
            if f_denials is not None:
                counted = _result(f_denials, budget + _SLACK_SECONDS)
                denied = counted if isinstance(counted, int) else None
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        if not isinstance(found, Sessions):
            found = None

    return StatusReport(
        container=name,
        status=display_status(status),
        image=info.image or info.image_id or "",
        runtime=runtime,
        isolation=L.isolation_label(runtime or "", L.is_weakened(labels)),
        ssh_port=info.ssh_port,
        data_volume=labels.get(L.DATA_VOLUME) or None,
        workspace=labels.get(L.WORKSPACE) or None,
        uptime_seconds=uptime,
        sessions=found,
        resources=resources,
        network_policy=labels.get(L.NETWORK_POLICY),
        denials=denied,
        branch=labels.get(L.BRANCH),
    )


def _result(future: Future[Any], timeout: float) -> Any:
    from concurrent.futures import TimeoutError as FutureTimeout

    try:
        return future.result(timeout=timeout)
    except FutureTimeout:
        return None
