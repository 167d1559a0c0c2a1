"""What exists: ``cai list``, every managed container of the engine (SPEC section 7).

Required facts (name, status, image) come from the engine's own records.
``list`` costs ONE engine round trip: ``docker ps`` with a Go template that
emits one JSON object per container. Each label is read with ``.Label "key"``
and JSON-quoted by the engine's client, so values holding commas, quotes or
``=`` (a workspace path ``/src/a,b=c``) come back exactly; the comma-joined
``.Labels`` string of ``docker ps`` is ambiguous and is not used.

One container in detail (``cai status``) is ``services/status.py``. This module is on
``cai list``'s path: it imports no subprocess, regex or thread machinery.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from containai import jsonfast
from containai.domain import labels as L
from containai.domain.age import parse_engine_time
from containai.record import Record

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    from typing import Any, Final

    # What `list` needs of the engine: `docker ARGS` (imported for mypy only, so
    # `cai list` builds none of the Protocol classes of `ports`).
    from containai.services.ports import RunEngine as ListEngine

SSH_ALIAS_PREFIX: Final = "cai-"  # SPEC section 10: `Host cai-<name>`

_STATUS_NAMES: Final = {"exited": "stopped"}


# ---------------------------------------------------------------- pure parsing
def display_status(state: str) -> str:
    """The engine's state as cai shows it: ``exited`` -> ``stopped``; others unchanged."""
    return _STATUS_NAMES.get(state, state or "unknown")


def port_of(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    port = int(value)
    return port if 0 < port < 65536 else None


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds_since(moment: datetime | None, now: datetime) -> int | None:
    if moment is None:
        return None
    return max(0, math.floor((now - moment).total_seconds()))


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
    L.WEAKENED,
    L.NETWORK_POLICY,
)
LIST_FORMAT: Final = (
    "{"
    + ",".join(f'"{key}":{tpl}' for key, tpl in _LIST_FIELDS)
    + ',"labels":{'
    + ",".join(f'"{key}":{{{{json (.Label "{key}")}}}}' for key in _LIST_LABELS)
    + "}}"
)


class Listed(Record):
    """One managed container as ``cai list`` shows it."""

    __slots__ = (
        "age_seconds",
        "created",
        "data_volume",
        "image",
        "keep",
        "name",
        "network",
        "runtime",
        "ssh_port",
        "state",
        "weakened",
        "workspace",
    )

    def __init__(
        self,
        name: str,
        state: str,
        workspace: str | None,
        ssh_port: int | None,
        data_volume: str | None,
        image: str,
        runtime: str | None,
        created: datetime | None,
        age_seconds: int | None,
        keep: bool,
        weakened: bool = False,
        network: str | None = None,
    ) -> None:
        self._set(
            name=name,
            state=state,
            workspace=workspace,
            ssh_port=ssh_port,
            data_volume=data_volume,
            image=image,
            runtime=runtime,
            created=created,
            age_seconds=age_seconds,
            keep=keep,
            weakened=weakened,
            network=network,
        )

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
    weakened: bool
    network: str | None  # egress policy label; None: made before egress policies (open)

    @property
    def status(self) -> str:
        return display_status(self.state)

    @property
    def ssh_alias(self) -> str:
        return SSH_ALIAS_PREFIX + self.name

    @property
    def isolation(self) -> str:
        return L.isolation_label(self.runtime or "", self.weakened)

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
            "network": self.network or "open",
        }


class PsRow(Record):
    """One line of ``docker ps --format LIST_FORMAT``: exact labels, empty ones dropped."""

    __slots__ = ("created", "id", "image", "labels", "name", "state")

    def __init__(
        self, id: str, name: str, state: str, image: str, created: str, labels: dict[str, str]
    ) -> None:
        self._set(id=id, name=name, state=state, image=image, created=created, labels=labels)

    id: str
    name: str
    state: str
    image: str
    created: str
    labels: dict[str, str]


def parse_ps_line(line: str) -> PsRow:
    row = jsonfast.loads(line)
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
        ssh_port=port_of(row.labels.get(L.SSH_PORT)),
        data_volume=row.labels.get(L.DATA_VOLUME),
        image=row.image,
        runtime=row.labels.get(L.RUNTIME),
        created=created,
        age_seconds=seconds_since(created, now),
        keep=L.is_kept(row.labels),
        weakened=L.is_weakened(row.labels),
        network=row.labels.get(L.NETWORK_POLICY),
    )


def parse_list_row(line: str, now: datetime) -> Listed | None:
    """One line of ``docker ps --format LIST_FORMAT``; ``None`` for an unmanaged one."""
    row = parse_ps_line(line)
    return listed(row, now) if L.is_managed(row.labels) else None


def list_managed(engine: ListEngine, now: datetime | None = None) -> list[Listed]:
    """Every managed container of the engine, sorted by name: one ``docker ps``."""
    now = now or datetime.now(UTC)
    return sorted((listed(r, now) for r in managed_rows(engine)), key=lambda r: r.name)
