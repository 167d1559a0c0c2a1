"""The egress gateways ``cai gc`` removes (SPEC sections 12 and 15): those of the
containers gc removes, and those whose container was removed by other means (orphans).

Both are found in gc's one listing of the engine (``services/gc.survey``), never by a
lookup per container; only a gateway cai made counts (``egress.gateways_in``: labelled
for a container and named as its gateway). Each removal is two engine calls however
many go (``Egress.remove_many``: the gateways by force, they hold no data, then their
networks). ``services/egress`` is loaded only when the listing has a gateway.
"""

from __future__ import annotations

from containai.domain import labels as L

TYPE_CHECKING = False  # `typing` is not needed at run time here
if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from containai.domain.engine_objects import ContainerInfo
    from containai.services.egress import Egress
    from containai.services.ports import Engine


class GcGateways:
    def __init__(self, engine: Engine, listing: Sequence[ContainerInfo]) -> None:
        """``listing``: every container of the engine, with ``L.GATEWAY_OF``."""
        self.engine = engine
        self.served: dict[str, str] = {}  # container -> its gateway
        if any(L.GATEWAY_OF in row.labels for row in listing):
            from containai.services.egress import gateways_in

            self.served = gateways_in(listing)
        names = {row.name for row in listing}
        self.orphans: list[tuple[str, str]] = sorted(
            (gateway, container)
            for container, gateway in self.served.items()
            if container not in names
        )
        """``(gateway, container)`` of each gateway whose container is gone."""

    def _egress(self) -> Egress:
        from containai.services.egress import Egress

        return Egress(self.engine, image=lambda: "")

    def of_removed(self, names: Sequence[str]) -> dict[str, str]:
        """The gateways and networks of containers gc has just removed (gc's
        ``on_removed``, under the batch's workspace locks); what could not go, and why."""
        had = [name for name in names if name in self.served]
        return dict(self._egress().remove_many(had).failed) if had else {}

    def remove_orphans(self, gateways: Collection[str]) -> tuple[list[str], dict[str, str]]:
        """Those of ``gateways`` (orphans shown to the user) whose container is still gone,
        checked by one listing now, removed with their networks: (the gateways removed,
        what could not go and why)."""
        if not gateways:
            return [], {}
        egress = self._egress()
        still = [(g, c) for g, c in egress.orphans() if g in gateways]
        if not still:
            return [], {}
        outcome = egress.remove_many([container for _gateway, container in still])
        return [g for g, _c in still if g in outcome.removed], dict(outcome.failed)
