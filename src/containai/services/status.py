"""One container in detail: ``cai status`` (SPEC section 7).

Required facts (name, status, image) come from ``docker inspect``. The best-effort
ones (uptime, sessions, memory, CPU) have a budget of 5 seconds each and are
``None`` when unavailable: never guessed. The sessions probe and ``docker stats``
run concurrently, so ``cai status`` stays within the budget.
"""

from __future__ import annotations

import math
import re
import subprocess
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol

from containai.domain import labels as L
from containai.domain.age import parse_engine_time
from containai.domain.errors import CaiError
from containai.domain.sessions import Sessions
from containai.services.inventory import SSH_ALIAS_PREFIX, display_status, port_of, seconds_since

if TYPE_CHECKING:
    from concurrent.futures import Future

BEST_EFFORT_SECONDS: Final = 5.0
_SLACK_SECONDS: Final = 0.5  # for the subprocess timeout to fire and the thread to return

_SIZE_RE: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*([A-Za-z]*)")
_SIZE_UNITS: Final = {
    "": 1,
    "b": 1,
    # docker's binary units (MemUsage uses these: units.BytesSize)
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
    "pib": 1024**5,
    # docker's decimal units (NetIO/BlockIO: units.HumanSize)
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "pb": 1000**5,
}
_PERCENT_RE: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*%")


class StatsEngine(Protocol):
    """What ``status`` needs from the engine (``DockerEngine`` satisfies it)."""

    def stats(self, name: str, timeout: float = 5.0) -> dict[str, Any] | None: ...


SessionsProbe = Callable[[str, float], Sessions | None]


# ---------------------------------------------------------------- pure parsing
def parse_size(text: str) -> int | None:
    """``1.2GiB`` -> bytes (binary ``KiB``/``MiB``/``GiB``, decimal ``kB``/``MB``/``GB``,
    plain ``B``); ``None`` for anything else (``--``, empty)."""
    match = _SIZE_RE.fullmatch(text.strip())
    if match is None:
        return None
    factor = _SIZE_UNITS.get(match.group(2).lower())
    if factor is None:
        return None
    value = float(match.group(1)) * factor
    if not math.isfinite(value):
        return None
    return round(value)


def parse_mem_usage(text: str) -> tuple[int | None, int | None]:
    """``docker stats`` MemUsage ``'1.2GiB / 4GiB'`` -> (used bytes, limit bytes).

    ``'--'`` and ``'0B / 0B'`` (what the engine reports for a container it has no
    cgroup data for) are unknown: ``(None, None)``, never "0 of 0".
    """
    used_text, sep, limit_text = text.partition("/")
    if not sep:
        return None, None
    used, limit = parse_size(used_text), parse_size(limit_text)
    if limit is None or limit <= 0:
        return None, None
    return used, limit


def parse_percent(text: str) -> float | None:
    """``'5.2%'`` -> 5.2; ``'--'``, empty or anything else -> ``None``."""
    match = _PERCENT_RE.fullmatch(text.strip())
    if match is None:
        return None
    value = float(match.group(1))
    return value if math.isfinite(value) else None


# ---------------------------------------------------------------------- status
class Resources(NamedTuple):
    memory_bytes: int | None = None
    memory_limit_bytes: int | None = None
    cpu_percent: float | None = None

    @property
    def memory_percent(self) -> float | None:
        if self.memory_bytes is None or not self.memory_limit_bytes:
            return None
        return 100.0 * self.memory_bytes / self.memory_limit_bytes


def resources_from_stats(row: Mapping[str, Any] | None) -> Resources:
    """A ``docker stats --format '{{json .}}'`` row -> what is known of it."""
    if not row:
        return Resources()
    used, limit = parse_mem_usage(str(row.get("MemUsage") or ""))
    return Resources(used, limit, parse_percent(str(row.get("CPUPerc") or "")))


class StatusReport(NamedTuple):
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
        }


def _runtime_of(labels: Mapping[str, str], info: Mapping[str, Any]) -> str | None:
    runtime = labels.get(L.RUNTIME)
    if runtime:
        return runtime
    host_runtime = (info.get("HostConfig") or {}).get("Runtime")
    return str(host_runtime) if host_runtime else None


def _quietly(call: Callable[[], Any]) -> Any:
    """A best-effort probe: any failure (engine error, timeout, bad output) is "unknown"."""
    try:
        return call()
    except (CaiError, OSError, ValueError, KeyError, TypeError, subprocess.SubprocessError):
        return None


def container_status(
    info: Mapping[str, Any],
    *,
    engine: StatsEngine,
    sessions: SessionsProbe,
    now: datetime | None = None,
    budget: float = BEST_EFFORT_SECONDS,
    denials: Callable[[str], int | None] | None = None,
) -> StatusReport:
    """Everything ``cai status`` shows about the container ``info`` (``docker inspect``)."""
    now = now or datetime.now(UTC)
    name = str(info.get("Name") or "").lstrip("/")
    config = info.get("Config") or {}
    labels: dict[str, str] = dict(config.get("Labels") or {})
    state = info.get("State") or {}
    status = str(state.get("Status") or "")
    runtime = _runtime_of(labels, info)

    uptime: int | None = None
    denied: int | None = None
    found: Sessions | None = None
    resources = Resources()
    if status == "running":
        from concurrent.futures import ThreadPoolExecutor  # not on `cai list`'s path

        uptime = seconds_since(parse_engine_time(str(state.get("StartedAt") or "")), now)
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
        image=str(config.get("Image") or info.get("Image") or ""),
        runtime=runtime,
        isolation=L.isolation_label(runtime or "", L.is_weakened(labels)),
        ssh_port=port_of(labels.get(L.SSH_PORT)),
        data_volume=labels.get(L.DATA_VOLUME) or None,
        workspace=labels.get(L.WORKSPACE) or None,
        uptime_seconds=uptime,
        sessions=found,
        resources=resources,
        network_policy=labels.get(L.NETWORK_POLICY),
        denials=denied,
    )


def _result(future: Future[Any], timeout: float) -> Any:
    from concurrent.futures import TimeoutError as FutureTimeout

    try:
        return future.result(timeout=timeout)
    except FutureTimeout:
        return None
