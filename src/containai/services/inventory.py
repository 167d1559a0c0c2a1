"""What exists: ``cai status`` (one container) and ``cai list`` (every managed one), SPEC 7.

Required facts (name, status, image) come from the engine's own records. The
best-effort ones (uptime, sessions, memory, CPU) have a budget of 5 seconds
each and are ``None`` when unavailable: never guessed. The sessions probe and
``docker stats`` run concurrently, so ``cai status`` stays within the budget.

``list`` costs ONE engine round trip: ``docker ps`` with a Go template that
emits one JSON object per container. Each label is read with ``.Label "key"``
and JSON-quoted by the engine's client, so values holding commas, quotes or
``=`` (a workspace path ``/src/a,b=c``) come back exactly; the comma-joined
``.Labels`` string of ``docker ps`` is ambiguous and is not used.
"""

from __future__ import annotations

import json
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
from containai.services.ports import RunEngine

if TYPE_CHECKING:
    from concurrent.futures import Future

BEST_EFFORT_SECONDS: Final = 5.0
SSH_ALIAS_PREFIX: Final = "cai-"  # SPEC section 10: `Host cai-<name>`
_SLACK_SECONDS: Final = 0.5  # for the subprocess timeout to fire and the thread to return

_STATUS_NAMES: Final = {"exited": "stopped"}

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


class ListEngine(RunEngine, Protocol):
    """What ``list`` needs from the engine (``DockerEngine`` satisfies it)."""


SessionsProbe = Callable[[str, float], Sessions | None]


# ---------------------------------------------------------------- pure parsing
def display_status(state: str) -> str:
    """The engine's state as cai shows it: ``exited`` -> ``stopped``; others unchanged."""
    return _STATUS_NAMES.get(state, state or "unknown")


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


def _port(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    port = int(value)
    return port if 0 < port < 65536 else None


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds_since(moment: datetime | None, now: datetime) -> int | None:
    if moment is None:
        return None
    return max(0, math.floor((now - moment).total_seconds()))


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
    found: Sessions | None = None
    resources = Resources()
    if status == "running":
        from concurrent.futures import ThreadPoolExecutor  # not on `cai list`'s path

        uptime = _seconds_since(parse_engine_time(str(state.get("StartedAt") or "")), now)
        pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cai-status")
        try:
            f_sessions: Future[Any] = pool.submit(_quietly, lambda: sessions(name, budget))
            f_stats: Future[Any] = pool.submit(_quietly, lambda: engine.stats(name, budget))
            found = _result(f_sessions, budget + _SLACK_SECONDS)
            resources = resources_from_stats(_result(f_stats, budget + _SLACK_SECONDS))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        if not isinstance(found, Sessions):
            found = None

    return StatusReport(
        container=name,
        status=display_status(status),
        image=str(config.get("Image") or info.get("Image") or ""),
        runtime=runtime,
        isolation=L.isolation_label(runtime or ""),
        ssh_port=_port(labels.get(L.SSH_PORT)),
        data_volume=labels.get(L.DATA_VOLUME) or None,
        workspace=labels.get(L.WORKSPACE) or None,
        uptime_seconds=uptime,
        sessions=found,
        resources=resources,
    )


def _result(future: Future[Any], timeout: float) -> Any:
    from concurrent.futures import TimeoutError as FutureTimeout

    try:
        return future.result(timeout=timeout)
    except FutureTimeout:
        return None


# ------------------------------------------------------------------------ list
# One JSON object per container. Labels through `.Label "key"` + `json`: exact values.
_LIST_FIELDS: Final = (
    ("id", "{{json .ID}}"),
    ("names", "{{json .Names}}"),
    ("state", "{{json .State}}"),
    ("image", "{{json .Image}}"),
    ("created", "{{json .CreatedAt}}"),
)
_LIST_LABELS: Final = (
    L.MANAGED,
    L.WORKSPACE,
    L.SSH_PORT,
    L.DATA_VOLUME,
    L.RUNTIME,
    L.KEEP,
)
LIST_FORMAT: Final = (
    "{"
    + ",".join(f'"{key}":{tpl}' for key, tpl in _LIST_FIELDS)
    + ',"labels":{'
    + ",".join(f'"{key}":{{{{json (.Label "{key}")}}}}' for key in _LIST_LABELS)
    + "}}"
)


class Listed(NamedTuple):
    """One managed container as ``cai list`` shows it."""

    name: str
    state: str  # the engine's (running, exited, created ...)
    workspace: str | None
    ssh_port: int | None
    data_volume: str | None
    image: str
    runtime: str | None
    created: datetime | None
    age_seconds: int | None
    keep: bool

    @property
    def status(self) -> str:
        return display_status(self.state)

    @property
    def ssh_alias(self) -> str:
        return SSH_ALIAS_PREFIX + self.name

    @property
    def isolation(self) -> str:
        return L.isolation_label(self.runtime or "")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "workspace": self.workspace,
            "ssh_alias": self.ssh_alias,
            "ssh_port": self.ssh_port,
            "data_volume": self.data_volume,
            "image": self.image,
            "isolation": self.isolation,
            "runtime": self.runtime,
            "created": _iso(self.created),
            "age_seconds": self.age_seconds,
            "keep": self.keep,
        }


class PsRow(NamedTuple):
    """One line of ``docker ps --format LIST_FORMAT``: exact labels, empty ones dropped."""

    id: str
    name: str
    state: str
    image: str
    created: str
    labels: dict[str, str]


def parse_ps_line(line: str) -> PsRow:
    row = json.loads(line)
    raw_labels = row.get("labels") or {}
    return PsRow(
        id=str(row.get("id") or ""),
        name=str(row.get("names") or "").split(",")[0].lstrip("/"),
        state=str(row.get("state") or ""),
        image=str(row.get("image") or ""),
        created=str(row.get("created") or ""),
        labels={str(k): str(v) for k, v in raw_labels.items() if v not in (None, "")},
    )


def managed_rows(engine: ListEngine) -> list[PsRow]:
    """Every managed container of the engine (``docker ps`` rows): ONE engine call."""
    out = engine.run(
        "ps",
        "--all",
        "--no-trunc",
        "--filter",
        f"label={L.MANAGED_FILTER}",
        "--format",
        LIST_FORMAT,
    ).stdout
    rows = [parse_ps_line(line) for line in str(out).splitlines() if line.strip()]
    return [r for r in rows if L.is_managed(r.labels)]


def listed(row: PsRow, now: datetime) -> Listed:
    created = parse_engine_time(row.created)
    return Listed(
        name=row.name,
        state=row.state,
        workspace=row.labels.get(L.WORKSPACE),
        ssh_port=_port(row.labels.get(L.SSH_PORT)),
        data_volume=row.labels.get(L.DATA_VOLUME),
        image=row.image,
        runtime=row.labels.get(L.RUNTIME),
        created=created,
        age_seconds=_seconds_since(created, now),
        keep=L.is_kept(row.labels),
    )


def parse_list_row(line: str, now: datetime) -> Listed | None:
    """One line of ``docker ps --format LIST_FORMAT``; ``None`` for an unmanaged one."""
    row = parse_ps_line(line)
    return listed(row, now) if L.is_managed(row.labels) else None


def list_managed(engine: ListEngine, now: datetime | None = None) -> list[Listed]:
    """Every managed container of the engine, sorted by name: one ``docker ps``."""
    now = now or datetime.now(UTC)
    return sorted((listed(r, now) for r in managed_rows(engine)), key=lambda r: r.name)
