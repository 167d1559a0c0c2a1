"""The egress gateways ``cai gc`` removes (SPEC sections 12 and 15): those of the
containers gc removes, and those whose container was removed by other means (orphans).

Both are found in gc's one listing of the engine (``services/gc.survey``), never by a
lookup per container; only a gateway cai made counts (``egress.gateways_in``: labelled
for a container, named as its gateway, and carrying the hash of how cai made it,
``containai.gateway-spec``, and its workspace). One that is named and labelled so but
lacks those is left alone and reported as spared (``spared``). Each removal is two
engine calls however many go (``Egress.remove_many``: the gateways by force, they hold
no data, then their networks). ``services/egress`` is loaded only when the listing has
a gateway.

The gateways of removed containers go under the locks of gc's batch (``of_removed``).
Orphans go in batches of their own, each under the workspace locks of its gateways
(``gateway-workspace`` label), taken in sorted order, then checked again by ONE listing
under them: a ``cai run`` that held a lock has made its container by then (its gateway
stays), one that comes later waits for the removal and makes a new one.
"""

from __future__ import annotations

import contextlib

from containai.domain import labels as L
from containai.services.gc import BATCH, busy_reason, chunks, hold_workspaces
from containai.services.gc_results import Spared

TYPE_CHECKING = False  # `typing` is not needed at run time here
if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from containai.domain.engine_objects import ContainerInfo
    from containai.services.egress import Egress
    from containai.services.gc import GcLocks
    from containai.services.ports import Engine

Orphan = tuple[str, str]  # (gateway, container)


class GcGateways:
    def __init__(
        self,
        engine: Engine,
        listing: Sequence[ContainerInfo],
        locks: GcLocks | None,
        *,
        batch: int = BATCH,
    ) -> None:
        """``listing``: every container of the engine, with ``egress.GATEWAY_KEYS``;
        ``locks``: the workspace locks (``cai run``'s) orphans are removed under."""
        self.engine = engine
        self.locks = locks
        self.batch = max(1, batch)
        self.served: dict[str, str] = {}  # container -> its gateway
        self.workspaces: dict[str, str] = {}  # gateway -> its workspace
        self.spared: list[Spared] = []
        """Named and labelled as a gateway, but not made by cai: left alone."""
        if any(L.GATEWAY_OF in row.labels for row in listing):
            self._sort(listing)
        names = {row.name for row in listing}
        self.orphans: list[Orphan] = sorted(
            (gateway, container)
            for container, gateway in self.served.items()
            if container not in names
        )
        """``(gateway, container)`` of each gateway whose container is gone."""

    def _sort(self, listing: Sequence[ContainerInfo]) -> None:
        from containai.services.egress import (
            GATEWAY_WORKSPACE_LABEL,
            looks_like_a_gateway,
            missing_labels,
        )

        for row in listing:
            container = looks_like_a_gateway(row)
            if not container:
                continue
            missing = missing_labels(row)
            if not missing:
                self.served[container] = row.name
                self.workspaces[row.name] = row.labels[GATEWAY_WORKSPACE_LABEL]
                continue
            self.spared.append(
                Spared(
                    row.name,
                    f"named and labelled as the gateway of '{container}' but without "
                    f"{' and '.join(missing)}: not made by cai, left alone",
                )
            )
        self.spared.sort(key=lambda s: s.name)

    def _egress(self) -> Egress:
        from containai.services.egress import Egress

        return Egress(self.engine, image=lambda: "")

    def of_removed(self, names: Sequence[str]) -> dict[str, str]:
        """The gateways and networks of containers gc has just removed (gc's
        ``on_removed``, under the batch's workspace locks); what could not go, and why."""
        had = [name for name in names if name in self.served]
        return dict(self._egress().remove_many(had).failed) if had else {}

    def remove_orphans(
        self, gateways: Collection[str]
    ) -> tuple[list[str], list[Spared], dict[str, str]]:
        """Those of ``gateways`` (orphans shown to the user) whose container is still
        gone, removed with their networks, a batch at a time: its workspace locks, ONE
        listing under them, two removals. Returns the gateways removed, the ones spared
        (their workspace stayed busy, or their container exists again) and what could
        not go and why."""
        chosen = [(g, c) for g, c in self.orphans if g in gateways]
        removed: list[str] = []
        spared: list[Spared] = []
        failed: dict[str, str] = {}
        for chunk in chunks(chosen, self.batch):
            with contextlib.ExitStack() as held:
                busy = hold_workspaces(held, self.locks, (self.workspaces[g] for g, _c in chunk))
                locked = [(g, c) for g, c in chunk if self.workspaces[g] not in busy]
                spared += [
                    Spared(g, busy_reason(self.workspaces[g]), changed=True)
                    for g, _c in chunk
                    if self.workspaces[g] in busy
                ]
                if locked:
                    gone, back = self._remove_locked(locked, failed)
                    removed += gone
                    spared += back
        return removed, spared, failed

    def _remove_locked(
        self, locked: Sequence[Orphan], failed: dict[str, str]
    ) -> tuple[list[str], list[Spared]]:
        """Under their workspace locks: those of ``locked`` still orphans by one listing
        now, removed (what fails goes into ``failed``); the gateways removed, and those
        spared because their container exists again."""
        from containai.services.egress import GATEWAY_KEYS

        egress = self._egress()
        rows = self.engine.list_containers(keys=GATEWAY_KEYS)
        still = set(egress.orphans(rows))
        names = {row.name for row in rows}
        back = [
            Spared(g, f"its container '{c}' exists again (made meanwhile)", changed=True)
            for g, c in locked
            if c in names
        ]
        go = [(g, c) for g, c in locked if (g, c) in still]
        if not go:
            return [], back
        outcome = egress.remove_many([c for _g, c in go])
        failed.update(outcome.failed)
        return [g for g, _c in go if g in outcome.removed], back
