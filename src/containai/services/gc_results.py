"""``cai gc``'s value objects (SPEC section 12): the containers it removes
(``Candidate``) or spares (``Spared``), the plan shown before it acts (``GcPlan``), and
what it did (``GcResult``, the JSON of ``cai gc --json``). The work is in
``services/gc.py``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from containai.record import Record
from containai.services.gc_images import UnusedImage


class Candidate(Record):
    """A container gc removes (or would remove)."""

    __slots__ = ("age_seconds", "data_volume", "id", "name", "reason", "state", "workspace")

    def __init__(
        self,
        id: str,
        name: str,
        state: str,
        age_seconds: int | None,
        workspace: str | None,
        data_volume: str | None,
        reason: str,
    ) -> None:
        self._set(
            id=id,
            name=name,
            state=state,
            age_seconds=age_seconds,
            workspace=workspace,
            data_volume=data_volume,
            reason=reason,
        )

    id: str
    name: str
    state: str  # exited | created
    age_seconds: int | None
    workspace: str | None
    data_volume: str | None
    reason: str  # "exited 31d 2h ago" ("" while not yet decided)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id,
            "state": self.state,
            "age_seconds": self.age_seconds,
            "workspace": self.workspace,
            "data_volume": self.data_volume,
            "reason": self.reason,
        }


class Spared(Record):
    """A container gc leaves alone (a managed one, or a gateway cai did not make), and why."""

    __slots__ = ("changed", "name", "reason")

    def __init__(self, name: str, reason: str, changed: bool = False) -> None:
        self._set(name=name, reason=reason, changed=changed)

    name: str
    reason: str
    changed: bool  # eligible when listed, spared by the re-check at removal

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "reason": self.reason}


class GcPlan(Record):
    __slots__ = ("age", "candidates", "decided", "images", "min_age", "spared", "with_images")

    def __init__(
        self,
        age: str,
        min_age: timedelta,
        candidates: list[Candidate],
        spared: list[Spared],
        images: list[UnusedImage],
        with_images: bool,
        decided: bool = True,
    ) -> None:
        self._set(
            age=age,
            min_age=min_age,
            candidates=candidates,
            spared=spared,
            images=images,
            with_images=with_images,
            decided=decided,
        )

    age: str
    min_age: timedelta
    candidates: list[Candidate]
    spared: list[Spared]
    images: list[UnusedImage]  # unused once every candidate is gone ([] without --images)
    with_images: bool
    decided: bool
    """``True``: candidates were decided (and shown) already, so a different decision at
    removal is a change worth a warning. ``False`` (``collect``): the decision at
    removal is the first one."""


class GcResult:
    """What gc did (or, with ``dry_run``, would do); filled in as it goes."""

    def __init__(
        self,
        dry_run: bool,
        age: str,
        removed: list[Candidate] | None = None,
        spared: list[Spared] | None = None,
        images: list[UnusedImage] | None = None,
        failed: list[Spared] | None = None,
    ) -> None:
        self.dry_run = dry_run
        self.age = age
        self.removed: list[Candidate] = removed if removed is not None else []
        self.spared: list[Spared] = spared if spared is not None else []
        self.images: list[UnusedImage] = images if images is not None else []
        self.failed: list[Spared] = failed if failed is not None else []

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "age": self.age,
            "removed": [c.to_json() for c in self.removed],
            "spared": [s.to_json() for s in self.spared],
            "images": [i.to_json() for i in self.images],
            "failed": [f.to_json() for f in self.failed],
        }
