"""Which containers ``cai gc`` may remove (SPEC section 12).

Only managed containers, never kept ones, only ``exited`` (age from
``.State.FinishedAt``) or ``created`` (age from ``.Created``) ones, and only when
the age is known and strictly greater than ``--age``. Every other state
(``running``, ``paused``, ``restarting``, ``removing``, ``dead``) is left alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Final

from containai.domain.age import format_duration
from containai.domain.labels import KEEP, is_kept, is_managed
from containai.record import Record

PRUNABLE_STATES: Final = frozenset({"exited", "created"})


class GcView(Record):
    """What gc needs to know about one container (from ``docker inspect``)."""

    __slots__ = ("created", "finished_at", "labels", "name", "state")

    def __init__(
        self,
        name: str,
        state: str,
        labels: Mapping[str, str],
        created: datetime | None,
        finished_at: datetime | None,
    ) -> None:
        self._set(name=name, state=state, labels=labels, created=created, finished_at=finished_at)

    name: str
    state: str
    labels: Mapping[str, str]
    created: datetime | None
    finished_at: datetime | None


class GcDecision(Record):
    __slots__ = ("age_seconds", "eligible", "name", "reason")

    def __init__(self, name: str, eligible: bool, reason: str, age_seconds: float | None) -> None:
        self._set(name=name, eligible=eligible, reason=reason, age_seconds=age_seconds)

    name: str
    eligible: bool
    reason: str
    age_seconds: float | None
    """Seconds since the container stopped (or was created, if never started);
    ``None`` when the state is not prunable or the timestamp is unknown."""


def _age_seconds(view: GcView, now: datetime) -> float | None:
    if view.state == "exited":
        since = view.finished_at
    elif view.state == "created":
        since = view.created
    else:
        return None
    return None if since is None else (now - since).total_seconds()


def decide(view: GcView, now: datetime, min_age: timedelta) -> GcDecision:
    """Whether ``view`` may be pruned at ``now`` with ``--age min_age``, and why."""
    age = _age_seconds(view, now)

    def no(reason: str) -> GcDecision:
        return GcDecision(view.name, False, reason, age)

    if not is_managed(view.labels):
        return no("not managed")
    if is_kept(view.labels):
        return no(f"kept ({KEEP}={view.labels.get(KEEP)})")
    if view.state not in PRUNABLE_STATES:
        return no(view.state or "state unknown")
    if age is None:
        return no("age unknown")
    limit = min_age.total_seconds()
    if age <= limit:
        return no(f"too young ({format_duration(age)} <= {format_duration(limit)})")
    if view.state == "exited":
        reason = f"exited {format_duration(age)} ago"
    else:
        reason = f"created {format_duration(age)} ago, never started"
    return GcDecision(view.name, True, reason, age)


def select(views: Iterable[GcView], now: datetime, min_age: timedelta) -> list[GcDecision]:
    """A decision for every view, in the order given (filter on ``eligible``)."""
    return [decide(view, now, min_age) for view in views]


# ------------------------------------------------------------- helper leftovers
HELPER_FOREIGN_AGE: Final = timedelta(hours=24)
"""A helper made by a ``cai`` on another host (whose process this host cannot see) is
stale after this long; no import or export takes that long."""
HELPER_UNOWNED_AGE: Final = timedelta(hours=1)
"""A helper without an owner label (made by an older cai) is stale after this long."""


def helper_stale(
    state: str, owner: str | None, owner_alive: bool | None, age: timedelta | None
) -> str | None:
    """Why an export/import helper container is garbage, or ``None`` while it may be work
    in progress. A running one finishes and removes itself; one whose ``cai`` is gone is
    stale at once; one whose maker cannot be checked, after a fixed age."""
    if state not in PRUNABLE_STATES:
        return None
    if owner_alive is not None:
        return None if owner_alive else "its cai process is gone"
    limit = HELPER_FOREIGN_AGE if owner else HELPER_UNOWNED_AGE
    if age is None or age < limit:
        return None
    return f"left {format_duration(age.total_seconds())} ago"
