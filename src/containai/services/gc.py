"""Garbage collection (``cai gc``, SPEC section 12).

Listing is ONE engine call (``survey``: every container of the engine, with the labels
gc, the import/export helpers and the egress gateways are read from; ``cai gc`` finds
its leftovers and orphaned gateways in the same listing); running, paused and kept
managed containers are decided from it. The rest
(``exited``/``created``) need when they finished (or were created) from ``find_many``
for their age. Removal goes in batches; for each batch gc

1. takes the workspace lock of every container in it (the lock ``cai run`` and
   ``cai stop`` hold), so a ``cai run`` on the same workspace either finishes
   first (the container runs: spared) or comes after (it creates a new one); a
   lock that stays busy spares its containers;
2. then, under those locks, looks at them all afresh and decides again with
   :func:`containai.domain.gc_policy.decide`: the ones listed as never started with
   ONE ``container_ids`` call for the ``created`` state (still listed: still never
   started, aged by their creation), the others with ONE ``find_many`` *by id* (the
   exact container that was listed, not a new one under the same name); one
   started, restarted or stopped again since the listing is spared;
3. removes the rest with ONE ``remove_stopped``, never by force: the engine itself
   refuses a container started after the look (spared too), and one removed or
   recreated meanwhile is gone (removal by id);
4. removes the removed containers' SSH entries, pinned keys and control sockets
   (``services/ssh_cleanup.forget``: ``known_hosts`` rewritten once), clears
   ``container_name`` in each workspace's state that names one of them (one write of
   the config), and hands their names to ``on_removed`` (``cai gc``: their gateways
   and networks, two engine calls), all still under the locks.

``plan`` (``--dry-run``, and the list shown before the ``[y/N]`` question) does
the listing and one look by id; ``apply`` then re-checks as above. ``collect``
(``--force``) does not look twice: its only re-check is the one of step 2. So
``cai gc --force`` is the listing, then the never-started ones listed again and/or
the stopped ones looked at by id, then one removal: a constant number of engine calls
per batch, however many containers go.

Volumes are never touched. ``--images`` then removes cai's image tags no remaining
container uses (``services/gc_images.py``: which, and the alias rule).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol, TypeVar

from containai.domain import labels as L
from containai.domain.engine_objects import ContainerInfo, Removal
from containai.domain.errors import CaiError
from containai.domain.gc_policy import PRUNABLE_STATES, GcView, decide
from containai.services.gc_images import (
    ImageEngine,
    remove_unused,
    unused_images,
)
from containai.services.gc_results import Candidate, GcPlan, GcResult, Spared
from containai.services.ports import ListEngine
from containai.services.ssh_cleanup import ContainerSsh, NamesEngine, forget

SURVEY_KEYS: Final = (
    L.MANAGED,
    L.WORKSPACE,
    L.DATA_VOLUME,
    L.KEEP,
    L.HELPER,
    L.HELPER_OWNER,
    L.HELPER_VOLUME,
    L.HELPER_STAGING,
    L.GATEWAY_OF,
    L.GATEWAY_WORKSPACE,
    L.GATEWAY_SPEC,
)
"""The labels ``survey`` reads: gc's own (``decide``, the candidates' workspace and
volume), the import/export helpers' (``services/volume_helpers``) and the gateways'
(``services/egress.gateways_in``, ``GATEWAY_KEYS``)."""

_T = TypeVar("_T")

BATCH: Final = 200
"""Containers per ``remove_stopped`` call (and per set of held workspace locks: bounded
fds)."""

GONE: Final = "no longer exists (removed meanwhile)"


class GcEngine(ListEngine, ImageEngine, NamesEngine, Protocol):
    """What gc needs from the engine (``DockerEngine`` satisfies it)."""

    def remove_stopped(self, refs: Sequence[str]) -> Removal: ...


def survey(engine: GcEngine) -> list[ContainerInfo]:
    """Every container of the engine (managed or not), in ONE listing, with the labels of
    ``SURVEY_KEYS`` and the sources of its mounts: what gc decides from, and where
    ``cai gc`` finds killed imports' helpers and the gateways of removed containers."""
    return engine.list_containers(keys=SURVEY_KEYS, mounts=True)


GcSsh = ContainerSsh  # what gc needs of the SSH files: remove one container's


class GcConfig(Protocol):
    def all_workspace_states(self) -> dict[str, dict[str, Any]]: ...

    def set_workspace_states(self, changes: Mapping[str, Mapping[str, Any | None]]) -> bool: ...


class GcLocks(Protocol):
    """``workspace(path)`` is a context manager; acquiring it may raise ``TimeoutError``."""

    def workspace(self, workspace: str) -> Any: ...


def hold_workspaces(
    held: contextlib.ExitStack, locks: GcLocks | None, workspaces: Iterable[str]
) -> set[str]:
    """Take the lock of each of ``workspaces`` into ``held``, in sorted order: two gcs
    never wait on each other in a cycle, and ``cai run`` holds one workspace lock at a
    time (the locks it, or gc, takes under one, of the ports, a build, the config or
    the SSH files, are taken last, never with a workspace lock inside them). The ones
    that stay busy (``TimeoutError``) are returned, not held."""
    busy: set[str] = set()
    if locks is None:
        return busy
    for workspace in sorted(set(workspaces)):
        try:
            held.enter_context(locks.workspace(workspace))
        except TimeoutError:
            busy.add(workspace)
    return busy


def busy_reason(workspace: str | None) -> str:
    return f"busy: another cai command holds workspace {workspace}"


# ------------------------------------------------------------------ pure helpers
def view_of(info: ContainerInfo) -> GcView:
    """A container as the engine knows it -> what the gc policy looks at."""
    return GcView(
        name=info.name,
        state=info.state,
        labels=dict(info.labels),
        created=info.created,
        finished_at=info.finished,
    )


def chunks(items: Sequence[_T], size: int) -> Iterable[Sequence[_T]]:
    """``items`` in runs of ``size`` (one batch each: its locks, its few engine calls)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------------- service
class GarbageCollector:
    def __init__(
        self,
        engine: GcEngine,
        ssh: GcSsh,
        config: GcConfig,
        locks: GcLocks | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        batch: int = BATCH,
        on_removed: Callable[[Sequence[str]], Mapping[str, str]] = lambda _names: {},
        templates: Callable[[], Collection[str]] = lambda: (),
        keep_images: Callable[[], Collection[str]] = lambda: (),
    ) -> None:
        # Given the names of each batch's removed containers, under its locks (``cai gc``:
        # their gateways and networks); returns what it failed to remove, and why.
        self.on_removed = on_removed
        self.templates = templates  # names whose alias containai:<name> --images keeps
        self.keep_images = keep_images  # references --images keeps (today's gateway)
        self.engine = engine
        self.ssh = ssh
        self.config = config
        self.locks = locks
        self.clock = clock
        self.batch = max(1, batch)
        self._listed: dict[str, ContainerInfo] = {}  # id -> as the last survey listed it

    # ---------------------------------------------------------------- listing
    def _survey(
        self, listing: Sequence[ContainerInfo] | None
    ) -> tuple[list[Candidate], list[Spared]]:
        """One listing (``listing``, from ``survey``, when the caller made it; else
        ``list_managed`` now): containers that may be old enough (age still unknown), and
        the ones that are spared whatever their age (running, kept ...)."""
        maybe: list[Candidate] = []
        spared: list[Spared] = []
        self._listed = {}
        rows = self.engine.list_managed() if listing is None else listing
        for row in rows:
            if not L.is_managed(row.labels):
                continue  # never even listed: not cai's
            if row.id:
                self._listed[row.id] = row
            view = GcView(row.name, row.state, row.labels, None, None)
            if view.state in PRUNABLE_STATES and not L.is_kept(row.labels):
                maybe.append(
                    Candidate(
                        id=row.id or row.name,
                        name=row.name,
                        state=row.state,
                        age_seconds=None,
                        workspace=row.labels.get(L.WORKSPACE) or None,
                        data_volume=row.labels.get(L.DATA_VOLUME) or None,
                        reason="",
                    )
                )
            else:
                spared.append(Spared(row.name, decide(view, self.clock(), timedelta(0)).reason))
        maybe.sort(key=lambda c: c.name)
        return maybe, spared

    def _inspect(self, cands: Sequence[Candidate], *, recheck: bool = True) -> dict[str, GcView]:
        """What each of ``cands`` is now, by id; containers that are gone are left out.

        A container listed as never started (``created``) is still that if the engine
        still lists it so: the ids in that state come in one call, and their age is the
        listing's creation time (whole seconds, SPEC section 12); without ``recheck`` (a
        plan, right after the listing) the listing is the answer. The others (``exited``,
        or no longer ``created``) need when they finished: ONE ``find_many`` by id."""
        if not cands:
            return {}
        views: dict[str, GcView] = {}
        rest = [c for c in cands if c.id not in self._listed or c.state != "created"]
        never_started = [c for c in cands if c.id in self._listed and c.state == "created"]
        if never_started:
            # Right after the listing (a plan), the listing itself is the answer.
            still = (
                set(self.engine.container_ids({L.MANAGED: L.TRUE}, states=("created",)))
                if recheck
                else {c.id for c in never_started}
            )
            for cand in never_started:
                row = self._listed[cand.id]
                if cand.id in still:
                    views[cand.id] = GcView(row.name, "created", row.labels, row.created, None)
                else:
                    rest.append(cand)
        if rest:
            for info in self.engine.find_many([c.id for c in rest]):
                views[info.id] = view_of(info)
        return views

    def _decide(
        self,
        cands: Sequence[Candidate],
        fresh: Mapping[str, GcView],
        min_age: timedelta,
    ) -> Iterator[tuple[Candidate, Candidate | None, str]]:
        """For each listed candidate: (listed, decided candidate or None, reason)."""
        now = self.clock()
        for cand in cands:
            view = fresh.get(cand.id)
            if view is None:
                yield cand, None, GONE
                continue
            decision = decide(view, now, min_age)
            if not decision.eligible:
                yield cand, None, decision.reason
                continue
            age = decision.age_seconds
            yield (
                cand,
                Candidate(
                    id=cand.id,
                    name=view.name or cand.name,
                    state=view.state,
                    age_seconds=None if age is None else max(0, math.floor(age)),
                    workspace=view.labels.get(L.WORKSPACE) or None,
                    data_volume=view.labels.get(L.DATA_VOLUME) or None,
                    reason=decision.reason,
                ),
                decision.reason,
            )

    # ------------------------------------------------------------------ plan
    def plan(
        self,
        min_age: timedelta,
        age_text: str,
        *,
        images: bool = False,
        listing: Sequence[ContainerInfo] | None = None,
    ) -> GcPlan:
        """What gc would remove now (the listing + one look by id). Changes nothing."""
        maybe, spared = self._survey(listing)
        candidates: list[Candidate] = []
        for listed, fresh, reason in self._decide(
            maybe, self._inspect(maybe, recheck=False), min_age
        ):
            if fresh is None:
                if reason != GONE:
                    spared.append(Spared(listed.name, reason))
            else:
                candidates.append(fresh)
        spared.sort(key=lambda s: s.name)
        unused = (
            unused_images(
                self.engine,
                self.templates(),
                {c.id for c in candidates},
                self.keep_images(),
            )
            if images
            else []
        )
        return GcPlan(age_text, min_age, candidates, spared, unused, images, decided=True)

    def dry_run(self, plan: GcPlan) -> GcResult:
        return GcResult(True, plan.age, list(plan.candidates), list(plan.spared), list(plan.images))

    # ----------------------------------------------------------------- apply
    def collect(
        self,
        min_age: timedelta,
        age_text: str,
        *,
        images: bool = False,
        listing: Sequence[ContainerInfo] | None = None,
    ) -> GcResult:
        """``--force``: list, then lock + inspect + remove. The inspect beside the locks is
        the only one: nothing was shown first, so there is nothing to re-check twice."""
        maybe, spared = self._survey(listing)
        plan = GcPlan(age_text, min_age, maybe, spared, [], images, decided=False)
        return self.apply(plan)

    def apply(self, plan: GcPlan) -> GcResult:
        """Remove what ``plan`` selected, deciding again for each container first."""
        result = GcResult(False, plan.age, spared=list(plan.spared))
        states = self.config.all_workspace_states() if plan.candidates else {}
        for chunk in chunks(plan.candidates, self.batch):
            with contextlib.ExitStack() as held:
                busy, fresh = self._lock_and_inspect(held, chunk)
                removed = self._remove_batch(chunk, busy, fresh, plan, result)
                if removed:
                    self._after_removal(removed, states, result)
        if plan.with_images:
            for image in unused_images(self.engine, self.templates(), keep=self.keep_images()):
                try:
                    if remove_unused(self.engine, image):
                        result.images.append(image)
                except CaiError as exc:
                    result.failed.append(Spared(image.reference, str(exc)))
        result.spared.sort(key=lambda s: s.name)
        return result

    def _after_removal(
        self, removed: Sequence[Candidate], states: Mapping[str, Any], result: GcResult
    ) -> None:
        """What goes with a batch of removed containers, each kind in one go: their SSH
        files, the workspace states naming them, their gateways and networks."""
        names = [c.name for c in removed]
        forget(self.ssh, names)
        cleared = {
            c.workspace: {"container_name": None}
            for c in removed
            if c.workspace and (states.get(c.workspace) or {}).get("container_name") == c.name
        }
        if cleared:
            self.config.set_workspace_states(cleared)
        for what, reason in sorted(self.on_removed(names).items()):
            result.failed.append(Spared(what, reason))

    def _lock_and_inspect(
        self, held: contextlib.ExitStack, chunk: Sequence[Candidate]
    ) -> tuple[set[str], dict[str, GcView]]:
        """The workspace locks of ``chunk``, then a fresh inspect of it under them: a
        ``cai`` command that held a lock has finished, and one that comes later waits
        for the removal. A lock that stays busy spares its containers."""
        busy = hold_workspaces(held, self.locks, (c.workspace for c in chunk if c.workspace))
        return busy, self._inspect([c for c in chunk if c.workspace not in busy])

    def _remove_batch(
        self,
        chunk: Sequence[Candidate],
        busy: Collection[str],
        fresh: Mapping[str, GcView],
        plan: GcPlan,
        result: GcResult,
    ) -> list[Candidate]:
        def spare(cand: Candidate, reason: str, changed: bool = True) -> None:
            result.spared.append(Spared(cand.name, reason, changed=changed))

        checked: list[Candidate] = []
        for cand in chunk:
            if cand.workspace in busy:
                spare(cand, busy_reason(cand.workspace))
            else:
                checked.append(cand)
        go: list[Candidate] = []
        for listed, decided, reason in self._decide(checked, fresh, plan.min_age):
            if decided is not None:
                go.append(decided)
            elif reason == GONE:
                if plan.decided:
                    spare(listed, reason)
            elif plan.decided:
                spare(listed, f"{reason} (changed since it was listed)")
            else:
                spare(listed, reason, changed=False)
        if not go:
            return []
        outcome = self.engine.remove_stopped([c.id for c in go])  # Failed: as a whole
        removed: list[Candidate] = []
        for cand in go:
            if cand.id in outcome.removed:
                removed.append(cand)
            elif cand.id in outcome.running:
                spare(cand, "running (started after it was listed)")
            elif cand.id in outcome.gone:
                spare(cand, GONE)
            else:
                reason = outcome.failed.get(cand.id, "docker rm failed: no message")
                result.failed.append(Spared(cand.name, reason))
        result.removed.extend(removed)
        return removed
