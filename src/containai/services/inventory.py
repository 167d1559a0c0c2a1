"""What exists: ``cai list``, every managed container of the engine (SPEC section 7).

Required facts (name, status, image) come from the engine's own records.
``list`` costs ONE engine round trip (``Engine.list_managed``, whose labels come back
exactly).

One container in detail (``cai status``) is ``services/status.py``. This module is on
``cai list``'s path: it imports no subprocess, regex or thread machinery.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from containai.domain import image_tags
from containai.domain import labels as L
from containai.domain.engine_objects import ContainerInfo
from containai.record import Record

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    from typing import Any, Final

    # What `list` needs of the engine (imported for mypy only, so `cai list` builds
    # none of the Protocol classes of `ports`).
    from containai.services.ports import ListEngine

SSH_ALIAS_PREFIX: Final = "cai-"  # SPEC section 10: `Host cai-<name>`

_STATUS_NAMES: Final = {"exited": "stopped"}


# ---------------------------------------------------------------- pure parsing
def display_status(state: str) -> str:
    """The engine's state as cai shows it: ``exited`` -> ``stopped``; others unchanged."""
    return _STATUS_NAMES.get(state, state or "unknown")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds_since(moment: datetime | None, now: datetime) -> int | None:
    if moment is None:
        return None
    return max(0, math.floor((now - moment).total_seconds()))


# ------------------------------------------------------------------------ list
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


def listed(row: ContainerInfo, now: datetime) -> Listed:
    created = row.created
    return Listed(
        name=row.name,
        state=row.state,
        workspace=row.labels.get(L.WORKSPACE),
        ssh_port=row.ssh_port,
        data_volume=row.labels.get(L.DATA_VOLUME),
        # the tag, never a bare id: a listing shows the id once the tag moved on
        image=image_tags.display(row.image, row.labels, L.TEMPLATE, L.TEMPLATE_HASH),
        runtime=row.labels.get(L.RUNTIME),
        created=created,
        age_seconds=seconds_since(created, now),
        keep=L.is_kept(row.labels),
        weakened=L.is_weakened(row.labels),
        network=row.labels.get(L.NETWORK_POLICY),
    )


def list_managed(engine: ListEngine, now: datetime | None = None) -> list[Listed]:
    """Every managed container of the engine, sorted by name: one engine call."""
    now = now or datetime.now(UTC)
    return sorted((listed(r, now) for r in engine.list_managed()), key=lambda r: r.name)
