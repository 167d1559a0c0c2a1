"""`cai gc` of many containers is a constant number of engine calls per batch (issue 19):
one listing of the whole engine (``survey``) for the managed containers, the helpers and
the gateways; one re-check and one ``docker rm`` per batch; the removed containers' SSH
files, workspace states, gateways and networks each in one go, under the batch's locks.
Every safety rule still holds: only stale managed containers, never kept or running ones,
never a container of another kind, a gateway only when cai made it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from containai.domain import labels as L
from containai.services.egress import (
    GATEWAY_WORKSPACE_LABEL,
    SPEC_LABEL,
    Egress,
    gateway_name,
    network_name,
)
from containai.services.gc import GarbageCollector, survey
from containai.services.gc_gateways import GcGateways
from tests.fakes import Box, FakeConfig, FakeEngine, FakeLocks, FakeSsh
from tests.unit.test_egress import policy
from tests.unit.test_gc_service import ELIGIBLE, NOW, THIRTY_DAYS, World, box, managed, on_call

PER_BATCH = ["container_ids", "find_many", "remove_stopped", "remove_forced", "remove_networks"]


def others(engine: FakeEngine) -> None:
    """What else an engine holds that gc must never take for a managed container."""
    engine.add(Box("helper", "exited", {L.HELPER: L.TRUE, L.HELPER_VOLUME: "v"}))
    engine.add(box("almost", labels={L.MANAGED: "True", L.WORKSPACE: "/src/almost"}))
    engine.add(Box("stranger", "exited", {"com.example": "x"}))


def stale_world(count: int, batch: int = 200) -> World:
    """``count`` stale managed containers, each with its gateway and network, each named
    by its workspace's state; and one running container with its gateway."""
    engine = FakeEngine()
    egress = Egress(engine, image=lambda: "containai-gateway:x")
    states = {}
    for i in range(count):
        name = f"old-{i:03}"
        engine.add(box(name))
        egress.ensure(name, f"/src/{name}", 2300 + i, policy(), "runc")
        states[f"/src/{name}"] = {"container_name": name, "data_volume": "v"}
    engine.add(box("busy", state="running", stopped_days=None))
    egress.ensure("busy", "/src/busy", 2299, policy(), "runc")
    others(engine)
    engine.calls.clear()
    config = FakeConfig(states)
    locks = FakeLocks()
    ssh = FakeSsh({f"old-{i:03}" for i in range(count)} | {"busy"})
    listing = survey(engine)
    gateways = GcGateways(engine, listing, locks)
    gc = GarbageCollector(
        engine,
        ssh,
        config,
        locks,
        clock=lambda: NOW,
        batch=batch,
        on_removed=gateways.of_removed,
    )
    return World(engine, ssh, config, locks, gc)


@pytest.mark.parametrize("count", [1, 7, 60])
def test_engine_calls_per_batch_do_not_grow_with_the_containers(count: int) -> None:
    world = stale_world(count)
    listing = survey(world.engine)
    world.engine.calls.clear()
    result = world.gc.collect(THIRTY_DAYS, "30d", listing=listing)
    assert len(result.removed) == count and result.failed == []
    # never started ones: none here, so no `container_ids`
    assert world.engine.verbs() == [v for v in PER_BATCH if v != "container_ids"]
    # every stale container, its gateway and its network went; nothing else did
    names = {b.name for b in world.engine.containers.values()}
    assert names == {"busy", gateway_name("busy"), "helper", "almost", "stranger"}
    assert set(world.engine.networks) == {network_name("busy")}


def test_batches_each_make_the_same_few_calls() -> None:
    world = stale_world(10, batch=4)
    listing = survey(world.engine)
    world.engine.calls.clear()
    result = world.gc.collect(THIRTY_DAYS, "30d", listing=listing)
    assert len(result.removed) == 10
    assert world.engine.verbs() == [v for v in PER_BATCH if v != "container_ids"] * 3
    assert [len(c) - 1 for c in world.engine.calls_of("remove_forced")] == [4, 4, 2]
    # SSH files and states: one removal and one config write per batch, for exactly
    # the containers that batch removed
    assert [len(b) for b in world.ssh.batches] == [4, 4, 2]
    assert world.config.updates == 3
    assert world.ssh.names == {"busy"}
    assert all("container_name" not in s for s in world.config.states.values())


def test_the_survey_is_one_listing_and_only_managed_containers_are_candidates() -> None:
    engine = FakeEngine()
    for name in ("old-a", "old-b"):
        engine.add(box(name))
    engine.add(box("never", state="created", stopped_days=None, created_days=45))
    engine.add(box("kept", labels=managed("/src/kept", **{L.KEEP: "true"})))
    engine.add(box("young", stopped_days=2))
    others(engine)
    gc = GarbageCollector(engine, FakeSsh(), FakeConfig(), FakeLocks(), clock=lambda: NOW)
    listing = survey(engine)
    assert engine.verbs() == ["list_containers"] and engine.calls[0][1:] == ()  # all of them
    result = gc.collect(THIRTY_DAYS, "30d", listing=listing)
    assert engine.verbs() == ["list_containers", "container_ids", "find_many", "remove_stopped"]
    assert [c.name for c in result.removed] == ELIGIBLE
    assert sorted(s.name for s in result.spared) == ["kept", "young"]  # others: not listed
    assert sorted(engine.calls_of("find_many")[0][1:]) == ["id-old-a", "id-old-b", "id-young"]
    assert {b.name for b in engine.containers.values()} == {
        "kept",
        "young",
        "helper",
        "almost",
        "stranger",
    }


def test_the_batch_cleanup_runs_under_its_locks_and_reports_what_could_not_go() -> None:
    world = stale_world(3)
    held: list[list[str]] = []
    world.engine.hooks["remove_forced"] = on_call(
        0, lambda _e: held.append(sorted(world.locks.held))
    )
    world.engine.network_errors = {network_name("old-001"): "network has active endpoints"}
    result = world.gc.collect(THIRTY_DAYS, "30d", listing=survey(world.engine))
    assert held == [[f"/src/old-{i:03}" for i in range(3)]]
    assert [(f.name, f.reason) for f in result.failed] == [
        (network_name("old-001"), "network has active endpoints")
    ]
    assert [c.name for c in result.removed] == ["old-000", "old-001", "old-002"]


def test_only_the_gateways_of_removed_containers_go() -> None:
    """A spared container (running, young, kept, busy) keeps its gateway; an impostor
    labelled for a removed container but not named as its gateway is never touched."""
    world = stale_world(2)
    world.engine.add(Box("impostor", "running", {L.GATEWAY_OF: "old-000"}))
    world.engine.containers["id-old-001"].finished = NOW - timedelta(days=1)  # young
    gateways = GcGateways(world.engine, listing := survey(world.engine), world.locks)
    world.gc.on_removed = gateways.of_removed
    world.engine.calls.clear()
    result = world.gc.collect(THIRTY_DAYS, "30d", listing=listing)
    assert [c.name for c in result.removed] == ["old-000"]
    assert world.engine.calls_of("remove_forced") == [("remove_forced", gateway_name("old-000"))]
    assert world.engine.calls_of("remove_networks") == [
        ("remove_networks", network_name("old-000"))
    ]
    assert world.engine.box("impostor") is not None
    assert world.engine.box(gateway_name("old-001")) is not None


def test_no_gateway_no_gateway_calls() -> None:
    engine = FakeEngine()
    engine.add(box("old-a"))
    listing = survey(engine)
    locks = FakeLocks()
    gateways = GcGateways(engine, listing, locks)
    gc = GarbageCollector(
        engine,
        FakeSsh(),
        FakeConfig(),
        locks,
        clock=lambda: NOW,
        on_removed=gateways.of_removed,
    )
    engine.calls.clear()
    gc.collect(THIRTY_DAYS, "30d", listing=listing)
    assert engine.verbs() == ["find_many", "remove_stopped"]
    assert gateways.orphans == [] and gateways.remove_orphans(set()) == ([], [], {})
    assert engine.verbs() == ["find_many", "remove_stopped"]


def test_orphans_come_from_the_listing_and_are_checked_again_before_removal() -> None:
    engine = FakeEngine()
    egress = Egress(engine, image=lambda: "containai-gateway:x")
    for i, name in enumerate(("gone-a", "gone-b", "here")):
        egress.ensure(name, f"/src/{name}", 2300 + i, policy(), "runc")
    engine.add(box("here"))
    engine.calls.clear()
    gateways = GcGateways(engine, survey(engine), FakeLocks())
    assert gateways.orphans == [
        (gateway_name("gone-a"), "gone-a"),
        (gateway_name("gone-b"), "gone-b"),
    ]
    engine.add(box("gone-b"))  # `cai run` made it again meanwhile: its gateway stays
    engine.calls.clear()
    removed, spared, failed = gateways.remove_orphans({g for g, _c in gateways.orphans})
    assert (removed, failed) == ([gateway_name("gone-a")], {})
    assert [s.name for s in spared] == [gateway_name("gone-b")]
    assert engine.verbs() == ["list_containers", "remove_forced", "remove_networks"]
    assert engine.box(gateway_name("gone-b")) is not None
    assert (
        network_name("gone-b") in engine.networks and network_name("gone-a") not in engine.networks
    )
    # only the orphans shown are removed
    assert gateways.remove_orphans({"something-else"}) == ([], [], {})


def test_each_kind_of_leftover_is_named_as_what_it_is() -> None:
    from containai.cli.commands.gc import render_text
    from containai.services.gc_results import GcResult
    from containai.services.volume_helpers import Leftover

    leftovers = [
        Leftover("helper", "containai-helper-1", "import/export helper; its cai is gone"),
        Leftover("gateway", "app-gateway", "egress gateway of 'app', which no longer exists"),
        Leftover("file", "/x/.a.tgz.tmp", "temp file of a killed cai export"),
    ]
    assert render_text(GcResult(False, "30d"), leftovers) == [
        "removed helper container containai-helper-1 (import/export helper; its cai is gone)",
        "removed gateway container app-gateway (egress gateway of 'app', which no longer exists)",
        "removed file /x/.a.tgz.tmp (temp file of a killed cai export)",
    ]


# ------------------------------------------------- what gc takes for a gateway, and locks
def look_alike(container: str, workspace: str = "") -> Box:
    """A container labelled for ``container`` and named as its gateway, but without the
    spec label cai puts on every gateway it makes: not cai's."""
    labels = {L.GATEWAY_OF: container, GATEWAY_WORKSPACE_LABEL: workspace or f"/src/{container}"}
    return Box(gateway_name(container), "running", labels)


def orphaned(*containers: str) -> tuple[FakeEngine, FakeLocks]:
    """A fake engine where each of ``containers`` has its gateway and network, and
    none of the containers exists any more."""
    engine = FakeEngine()
    egress = Egress(engine, image=lambda: "containai-gateway:x")
    for i, name in enumerate(containers):
        egress.ensure(name, f"/src/{name}", 2300 + i, policy(), "runc")
    engine.calls.clear()
    return engine, FakeLocks()


def test_a_gateway_without_its_spec_label_is_left_alone_and_reported() -> None:
    """Named and labelled as a gateway is not enough: without ``containai.gateway-spec``
    (the hash cai labels every gateway it makes with) gc neither takes it for an orphan
    nor removes it with its container, and says so."""
    world = stale_world(2)
    engine = world.engine
    made = engine.box(gateway_name("old-001"))
    assert made is not None
    del made.labels[SPEC_LABEL]  # old-001 is gc'd: its look-alike stays, so does its network
    engine.add(look_alike("gone"))  # its container is gone: no orphan either
    listing = survey(engine)
    gateways = GcGateways(engine, listing, world.locks)
    world.gc.on_removed = gateways.of_removed
    assert gateways.orphans == []
    assert [(s.name, s.changed) for s in gateways.spared] == [
        (gateway_name("gone"), False),
        (gateway_name("old-001"), False),
    ]
    assert all(SPEC_LABEL in s.reason for s in gateways.spared)
    result = world.gc.collect(THIRTY_DAYS, "30d", listing=listing)
    assert [c.name for c in result.removed] == ["old-000", "old-001"]
    assert engine.calls_of("remove_forced") == [("remove_forced", gateway_name("old-000"))]
    assert engine.box(gateway_name("old-001")) is not None
    assert engine.box(gateway_name("gone")) is not None
    assert gateways.remove_orphans({gateway_name("gone")}) == ([], [], {})
    assert engine.box(gateway_name("gone")) is not None


def test_orphans_go_under_their_workspace_locks_taken_in_order() -> None:
    engine, locks = orphaned("gone-c", "gone-a", "gone-b")
    gateways = GcGateways(engine, survey(engine), locks)
    held: list[list[str]] = []
    for verb in ("list_containers", "remove_forced", "remove_networks"):
        engine.hooks[verb] = on_call(0, lambda _e: held.append(list(locks.held)))
    engine.calls.clear()
    removed, spared, failed = gateways.remove_orphans({g for g, _c in gateways.orphans})
    assert sorted(removed) == [gateway_name(c) for c in ("gone-a", "gone-b", "gone-c")]
    assert (spared, failed) == ([], {})
    workspaces = ["/src/gone-a", "/src/gone-b", "/src/gone-c"]
    # the one re-check and the removal, all under every lock, taken sorted
    assert engine.verbs() == ["list_containers", "remove_forced", "remove_networks"]
    assert held == [workspaces] * 3
    assert [w for what, w in locks.log if what == "acquire"] == workspaces
    assert locks.held == []


def test_a_run_holding_the_workspace_lock_keeps_its_gateway() -> None:
    """`cai run` makes the workspace's container again while gc is about to remove its
    gateway: gc waits for the workspace lock, then sees the container and spares it."""
    engine, locks = orphaned("gone-a", "gone-b")
    gateways = GcGateways(engine, survey(engine), locks)

    def run_finishes(workspace: str) -> None:
        if workspace == "/src/gone-b" and engine.box("gone-b") is None:
            engine.add(box("gone-b", state="running", stopped_days=None))

    locks.waited = run_finishes
    removed, spared, failed = gateways.remove_orphans({g for g, _c in gateways.orphans})
    assert (removed, failed) == ([gateway_name("gone-a")], {})
    assert [(s.name, s.changed) for s in spared] == [(gateway_name("gone-b"), True)]
    assert "gone-b" in spared[0].reason
    assert engine.box(gateway_name("gone-b")) is not None
    assert network_name("gone-b") in engine.networks
    assert network_name("gone-a") not in engine.networks


def test_an_orphan_whose_workspace_stays_busy_is_spared() -> None:
    engine, locks = orphaned("gone-a", "gone-b")
    locks.busy = {"/src/gone-a"}
    gateways = GcGateways(engine, survey(engine), locks)
    engine.calls.clear()
    removed, spared, failed = gateways.remove_orphans({g for g, _c in gateways.orphans})
    assert (removed, failed) == ([gateway_name("gone-b")], {})
    assert [(s.name, s.reason, s.changed) for s in spared] == [
        (
            gateway_name("gone-a"),
            "busy: another cai command holds workspace /src/gone-a",
            True,
        )
    ]
    assert engine.box(gateway_name("gone-a")) is not None
    assert engine.verbs() == ["list_containers", "remove_forced", "remove_networks"]


def test_orphans_go_in_batches_of_the_same_few_calls() -> None:
    names = [f"gone-{i}" for i in range(7)]
    engine, locks = orphaned(*names)
    gateways = GcGateways(engine, survey(engine), locks, batch=3)
    most: list[int] = []
    engine.hooks["remove_forced"] = on_call(0, lambda _e: most.append(len(locks.held)))
    engine.calls.clear()
    removed, spared, failed = gateways.remove_orphans({g for g, _c in gateways.orphans})
    assert sorted(removed) == sorted(gateway_name(n) for n in names)
    assert (spared, failed) == ([], {})
    assert engine.verbs() == ["list_containers", "remove_forced", "remove_networks"] * 3
    assert most == [3, 3, 1]
