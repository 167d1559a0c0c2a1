"""The gc service and `ssh cleanup` with in-memory fakes that implement their Protocols:
selection, the batched re-check and removal, what is spared and why, SSH entries and
workspace state, images; volumes are never touched."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from containai.cli.commands.gc import render_text
from containai.domain.engine_objects import ImageInfo
from containai.domain.errors import Failed, ImageInUse, NotFound
from containai.services.gc import GarbageCollector
from containai.services.gc_images import UnusedImage, is_cai_image
from containai.services.gc_results import GcResult
from containai.services.ssh_cleanup import ssh_cleanup
from tests.fakes import Box, FakeConfig, FakeEngine, FakeLocks, FakeSsh

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
THIRTY_DAYS = timedelta(days=30)


def on_call(n: int, action: Callable[[FakeEngine], object]) -> Callable[[FakeEngine, int], None]:
    """A hook that acts before the n-th call of its method (0: before every call)."""

    def hook(engine: FakeEngine, count: int) -> None:
        if n in (0, count):
            action(engine)

    return hook


def image(repo: str, tag: str, image_id: str) -> ImageInfo:
    return ImageInfo(image_id, repo, tag)


def managed(ws: str, **extra: str) -> dict[str, str]:
    return {
        "containai.managed": "true",
        "containai.workspace": ws,
        "containai.data-volume": f"vol-{ws.rsplit('/', 1)[-1]}",
        **extra,
    }


def box(
    name: str,
    *,
    state: str = "exited",
    stopped_days: float | None = 40,
    created_days: float = 100,
    labels: dict[str, str] | None = None,
    image_id: str = "sha256:base",
) -> Box:
    finished = NOW - timedelta(days=stopped_days) if stopped_days is not None else None
    return Box(
        id=f"id-{name}",
        name=name,
        state=state,
        labels=managed(f"/src/{name}") if labels is None else labels,
        created=NOW - timedelta(days=created_days),
        finished=finished,
        image_id=image_id,
    )


def boxes(world: World) -> dict[str, Box]:
    return world.engine.containers


@dataclass
class World:
    engine: FakeEngine
    ssh: FakeSsh
    config: FakeConfig
    locks: FakeLocks
    gc: GarbageCollector


@pytest.fixture
def world() -> World:
    engine = FakeEngine()
    engine.add(box("old-a"))
    engine.add(box("old-b", stopped_days=31))
    engine.add(box("never", state="created", stopped_days=None, created_days=45))
    engine.add(box("kept", labels=managed("/src/kept", **{"containai.keep": "true"})))
    engine.add(box("young", stopped_days=2))
    engine.add(box("busy", state="running", stopped_days=None))
    engine.add(box("foreign", labels={"containai.workspace": "/src/foreign"}))
    engine.add(box("dead", state="dead"))
    ssh = FakeSsh({"old-a", "old-b", "never", "kept", "young", "busy"})
    config = FakeConfig(
        {
            "/src/old-a": {"container_name": "old-a", "data_volume": "vol-a"},
            "/src/old-b": {"container_name": "something-else"},
        }
    )
    locks = FakeLocks()
    gc = GarbageCollector(engine, ssh, config, locks, clock=lambda: NOW)
    return World(engine, ssh, config, locks, gc)


ELIGIBLE = ["never", "old-a", "old-b"]


def test_plan_selects_only_old_stopped_unkept_managed_containers(world: World) -> None:
    plan = world.gc.plan(THIRTY_DAYS, "30d")
    assert [c.name for c in plan.candidates] == ELIGIBLE
    reasons = {s.name: s.reason for s in plan.spared}
    assert set(reasons) == {"kept", "young", "busy", "dead"}  # unmanaged: not even listed
    assert reasons["kept"].startswith("kept")
    assert reasons["young"].startswith("too young")
    assert reasons["busy"] == "running"
    never = next(c for c in plan.candidates if c.name == "never")
    assert never.state == "created" and never.age_seconds == 45 * 86400
    old_a = next(c for c in plan.candidates if c.name == "old-a")
    assert (old_a.workspace, old_a.data_volume, old_a.age_seconds) == (
        "/src/old-a",
        "vol-old-a",
        40 * 86400,
    )
    # Planning changes nothing: no rm, no SSH, no state.
    assert world.engine.calls_of("remove_stopped") == [] and world.ssh.removed == []
    assert world.config.writes == []


def test_the_age_threshold_is_strict(world: World) -> None:
    plan = world.gc.plan(timedelta(days=31), "31d")
    assert [c.name for c in plan.candidates] == ["never", "old-a"]  # old-b is exactly 31d
    assert [c.name for c in world.gc.plan(timedelta(0), "0s").candidates] == [
        "never",
        "old-a",
        "old-b",
        "young",
    ]


def test_dry_run_result_lists_without_removing(world: World) -> None:
    result = world.gc.dry_run(world.gc.plan(THIRTY_DAYS, "30d"))
    assert result.dry_run and [c.name for c in result.removed] == ELIGIBLE
    assert len(world.engine.containers) == 8
    assert render_text(result)[0] == (
        "would remove never (created 45d ago, never started, workspace /src/never)"
    )


def test_apply_removes_exactly_the_eligible_in_one_recheck_and_one_rm(world: World) -> None:
    plan = world.gc.plan(THIRTY_DAYS, "30d")
    calls_before = len(world.engine.calls)
    result = world.gc.apply(plan)
    assert [c.name for c in result.removed] == ELIGIBLE
    assert result.failed == []
    assert set(world.engine.containers) == {
        "id-kept",
        "id-young",
        "id-busy",
        "id-foreign",
        "id-dead",
    }
    apply_calls = world.engine.calls[calls_before:]
    # the re-check: never-started ones by one `docker ps` on that state, the rest by id
    assert [c[0] for c in apply_calls] == ["container_ids", "find_many", "remove_stopped"]
    assert apply_calls[0][-1] == "status=created"
    assert sorted(apply_calls[1][1:]) == ["id-old-a", "id-old-b"]
    assert sorted(apply_calls[2][1:]) == sorted(f"id-{n}" for n in ELIGIBLE)
    assert render_text(result) == [
        "removed never (created 45d ago, never started, workspace /src/never)",
        "removed old-a (exited 40d ago, workspace /src/old-a)",
        "removed old-b (exited 31d ago, workspace /src/old-b)",
    ]


def test_apply_removes_ssh_entries_and_clears_state_pointing_at_the_container(
    world: World,
) -> None:
    world.gc.apply(world.gc.plan(THIRTY_DAYS, "30d"))
    assert sorted(world.ssh.removed) == ELIGIBLE
    assert world.ssh.names == {"kept", "young", "busy"}
    # Only the workspace whose state named the removed container is rewritten.
    assert world.config.writes == [("/src/old-a", {"container_name": None})]
    assert world.config.states["/src/old-a"] == {"data_volume": "vol-a"}
    assert world.config.states["/src/old-b"] == {"container_name": "something-else"}


def test_apply_holds_each_workspace_lock_while_removing(world: World) -> None:
    seen: list[list[str]] = []
    world.engine.hooks["remove_stopped"] = on_call(
        0, lambda _e: seen.append(sorted(world.locks.held))
    )
    world.gc.apply(world.gc.plan(THIRTY_DAYS, "30d"))
    assert seen == [sorted(f"/src/{n}" for n in ELIGIBLE)]
    assert world.locks.held == []


def test_a_busy_workspace_is_spared(world: World) -> None:
    world.locks.busy = {"/src/old-b"}
    result = world.gc.apply(world.gc.plan(THIRTY_DAYS, "30d"))
    assert [c.name for c in result.removed] == ["never", "old-a"]
    spared = {s.name: s for s in result.spared}
    assert spared["old-b"].changed and "busy" in spared["old-b"].reason
    assert "id-old-b" in world.engine.containers and "old-b" not in world.ssh.removed


def test_a_container_started_after_listing_is_spared_by_the_recheck(world: World) -> None:
    plan = world.gc.plan(THIRTY_DAYS, "30d")
    world.engine.containers["id-old-a"].state = "running"  # `cai run` started it meanwhile
    result = world.gc.apply(plan)
    assert [c.name for c in result.removed] == ["never", "old-b"]
    spared = {s.name: s for s in result.spared}
    assert spared["old-a"].changed
    assert spared["old-a"].reason == "running (changed since it was listed)"
    assert "id-old-a" in world.engine.containers and "old-a" not in world.ssh.removed
    assert "id-old-a" not in world.engine.calls_of("remove_stopped")[0]  # not even asked
    assert world.config.writes == []


def test_a_container_restarted_and_stopped_again_is_young_again(world: World) -> None:
    plan = world.gc.plan(THIRTY_DAYS, "30d")
    world.engine.containers["id-old-b"].finished = NOW - timedelta(minutes=1)
    result = world.gc.apply(plan)
    spared = {s.name: s.reason for s in result.spared}
    assert spared["old-b"].startswith("too young")
    assert "id-old-b" in world.engine.containers


def test_a_container_started_between_recheck_and_rm_is_refused_by_the_engine(
    world: World,
) -> None:
    def start_one(engine: FakeEngine) -> None:
        engine.containers["id-never"].state = "running"

    world.engine.hooks["remove_stopped"] = on_call(0, start_one)
    result = world.gc.apply(world.gc.plan(THIRTY_DAYS, "30d"))
    assert [c.name for c in result.removed] == ["old-a", "old-b"]
    spared = {s.name: s for s in result.spared}
    assert spared["never"].reason == "running (started after it was listed)"
    assert spared["never"].changed and result.failed == []
    assert "never" not in world.ssh.removed


def test_a_container_recreated_under_the_same_name_is_not_removed(world: World) -> None:
    plan = world.gc.plan(THIRTY_DAYS, "30d")
    del world.engine.containers["id-old-a"]  # `cai run --fresh`: same name, new container
    world.engine.add(
        Box("old-a", "exited", managed("/src/old-a"), id="id-new", created=NOW, finished=NOW)
    )
    result = world.gc.apply(plan)
    assert "id-new" in world.engine.containers
    spared = {s.name: s.reason for s in result.spared}
    assert spared["old-a"] == "no longer exists (removed meanwhile)"
    assert "old-a" not in world.ssh.removed
    assert "id-new" not in world.engine.calls_of("remove_stopped")[0]


def test_removed_meanwhile_between_recheck_and_rm_is_not_a_failure(world: World) -> None:
    world.engine.hooks["remove_stopped"] = on_call(0, lambda e: e.containers.pop("id-old-b"))
    result = world.gc.apply(world.gc.plan(THIRTY_DAYS, "30d"))
    assert [c.name for c in result.removed] == ["never", "old-a"]
    assert {s.name: s.reason for s in result.spared}["old-b"] == (
        "no longer exists (removed meanwhile)"
    )
    assert result.failed == []


def test_an_unexplained_rm_failure_is_reported_per_container(world: World) -> None:
    world.engine.rm_errors = {"id-old-b": "removal of container id-old-b is already in progress"}
    result = world.gc.apply(world.gc.plan(THIRTY_DAYS, "30d"))
    assert [c.name for c in result.removed] == ["never", "old-a"]
    assert [f.name for f in result.failed] == ["old-b"]
    assert result.failed[0].reason == "removal of container id-old-b is already in progress"
    assert "old-b" not in world.ssh.removed


def test_an_rm_that_fails_as_a_whole_raises(world: World) -> None:
    plan = world.gc.plan(THIRTY_DAYS, "30d")
    world.engine.rm_failure = Failed("docker rm failed: error during connect: EOF")
    with pytest.raises(Failed, match="docker rm failed: error during connect"):
        world.gc.apply(plan)
    assert world.ssh.removed == []


def test_batches_bound_each_rm(world: World) -> None:
    for i in range(7):
        world.engine.add(box(f"bulk-{i}"))
    gc = GarbageCollector(
        world.engine, world.ssh, world.config, world.locks, clock=lambda: NOW, batch=4
    )
    result = gc.apply(gc.plan(THIRTY_DAYS, "30d"))
    assert len(result.removed) == 10
    assert [len(c) - 1 for c in world.engine.calls_of("remove_stopped")] == [4, 4, 2]


def test_nothing_to_do_asks_the_engine_only_to_list(world: World) -> None:
    plan = world.gc.plan(timedelta(days=365), "365d")
    result = world.gc.apply(plan)
    assert result.removed == [] and result.failed == []
    assert world.engine.verbs() == ["list_managed", "find_many"]  # the plan's listing
    assert render_text(result) == []


def test_never_a_volume(world: World) -> None:
    world.engine.images = [image("containai", "old", "sha256:old")]
    plan = world.gc.plan(timedelta(0), "0s", images=True)
    world.gc.apply(plan)
    assert not any("volume" in verb for verb in world.engine.verbs())


def test_collect_lists_once_inspects_once_removes_once(world: World) -> None:
    result = world.gc.collect(THIRTY_DAYS, "30d")
    verbs = world.engine.verbs()
    assert verbs == ["list_managed", "container_ids", "find_many", "remove_stopped"]
    # only containers that may be old enough are looked at again (not running, dead or
    # kept ones); the never-started one through `docker ps`, the stopped ones by inspect
    assert world.engine.calls[1][-1] == "status=created"
    assert sorted(world.engine.calls[2][1:]) == sorted(
        f"id-{n}" for n in ["old-a", "old-b", "young"]
    )
    assert [c.name for c in result.removed] == ELIGIBLE
    old_a = next(c for c in result.removed if c.name == "old-a")
    assert (old_a.reason, old_a.age_seconds) == ("exited 40d ago", 40 * 86400)
    spared = {s.name: s for s in result.spared}
    assert set(spared) == {"kept", "young", "busy", "dead"}
    assert not any(s.changed for s in result.spared)  # first decisions, nothing to warn
    assert spared["young"].reason.startswith("too young")
    assert sorted(world.ssh.removed) == ELIGIBLE


def test_collect_removes_only_once_every_lock_is_held(world: World) -> None:
    seen: list[list[str]] = []
    world.engine.hooks["remove_stopped"] = on_call(
        0, lambda _e: seen.append(sorted(world.locks.held))
    )
    world.gc.collect(THIRTY_DAYS, "30d")
    # every container that may go was locked (young ones too: decided under the lock)
    assert seen == [sorted(f"/src/{n}" for n in ["never", "old-a", "old-b", "young"])]


# --------------------------------------------------------------------- images
@pytest.mark.parametrize(
    ("ref", "ours"),
    [
        ("containai:default", True),
        ("containai:my.template", True),
        ("ghcr.io/containai/base:1.2", True),
        ("ghcr.io/containai/x/y:latest", True),
        ("containai-base:bookworm", False),
        ("containai-tmp:default", False),
        ("docker.io/library/containai:x", False),
        ("ghcr.io/containaix/base:1", False),
        ("debian:bookworm-slim", False),
        ("containai", False),
        ("localhost:5000/containai", False),
    ],
)
def test_is_cai_image(ref: str, ours: bool) -> None:
    assert is_cai_image(ref) is ours


def image_world(world: World) -> None:
    world.engine.images = [
        image("containai", "default", "sha256:used-by-kept"),
        image("containai", "old", "sha256:old"),
        image("containai", "gone-with-gc", "sha256:only-old-a"),
        image("ghcr.io/containai/base", "1", "sha256:ghcr"),
        image("containai", "of-foreign", "sha256:foreign"),
        image("debian", "bookworm", "sha256:debian"),
        image("<none>", "<none>", "sha256:dangling"),
    ]
    world.engine.containers["id-kept"].image_id = "sha256:used-by-kept"
    world.engine.containers["id-old-a"].image_id = "sha256:only-old-a"
    world.engine.containers["id-foreign"].image_id = "sha256:foreign"  # unmanaged still counts


def test_images_unused_by_any_container_are_removed_after_the_containers(world: World) -> None:
    image_world(world)
    plan = world.gc.plan(THIRTY_DAYS, "30d", images=True)
    assert ("container_ids",) in world.engine.calls  # every container counts, managed or not
    assert [i.reference for i in plan.images] == [
        "containai:gone-with-gc",
        "containai:old",
        "ghcr.io/containai/base:1",
    ]
    result = world.gc.apply(plan)
    assert result.images == plan.images
    removed_refs = [c[1] for c in world.engine.calls_of("remove_image")]
    assert removed_refs == ["containai:gone-with-gc", "containai:old", "ghcr.io/containai/base:1"]
    rm_index = world.engine.calls.index(world.engine.calls_of("remove_stopped")[0])
    first_image_rm = world.engine.calls.index(("remove_image", "containai:gone-with-gc"))
    assert rm_index < first_image_rm


def test_an_image_of_a_spared_container_is_kept(world: World) -> None:
    image_world(world)
    plan = world.gc.plan(THIRTY_DAYS, "30d", images=True)
    world.engine.containers["id-old-a"].state = "running"
    result = world.gc.apply(plan)
    assert "containai:gone-with-gc" not in [i.reference for i in result.images]
    assert ("remove_image", "containai:gone-with-gc") not in world.engine.calls


def test_an_image_taken_into_use_meanwhile_is_skipped_other_errors_fail(world: World) -> None:
    image_world(world)
    world.engine.image_errors = {
        # what the engine adapter raises for "container 1234 is using its referenced image"
        "containai:old": ImageInUse("conflict: unable to remove repository reference"),
        "ghcr.io/containai/base:1": Failed("docker image failed: something odd"),
        "containai:gone-with-gc": NotFound("No such image: containai:gone-with-gc"),
    }
    result = world.gc.apply(world.gc.plan(THIRTY_DAYS, "30d", images=True))
    assert result.images == []
    assert [(f.name, f.reason) for f in result.failed] == [
        ("ghcr.io/containai/base:1", "docker image failed: something odd")
    ]


def test_the_current_alias_and_every_tag_of_its_image_are_kept(world: World) -> None:
    """Builds are containai:<template>-<hash>; containai:<template> names the latest. gc
    never removes the alias of a template that exists, nor the build it names; an old
    build no container uses goes, and so does the alias of a template that is gone."""
    world.engine.images = [
        image("containai", "web", "sha256:latest"),
        image("containai", "web-0123456789abcdef", "sha256:latest"),
        image("containai", "web-fedcba9876543210", "sha256:older"),
        image("containai", "web-00000000000000aa", "sha256:in-use"),
        image("containai", "gone", "sha256:gone"),
    ]
    world.engine.containers["id-busy"].image_id = "sha256:in-use"
    gc = GarbageCollector(
        world.engine,
        world.ssh,
        world.config,
        world.locks,
        clock=lambda: NOW,
        templates=lambda: ["web", "default"],
    )
    plan = gc.plan(THIRTY_DAYS, "30d", images=True)
    assert [i.reference for i in plan.images] == [
        "containai:gone",
        "containai:web-fedcba9876543210",
    ]
    result = gc.apply(plan)
    assert [i.reference for i in result.images] == [i.reference for i in plan.images]
    removed = {c[1] for c in world.engine.calls_of("remove_image")}
    assert removed == {"containai:gone", "containai:web-fedcba9876543210"}


def test_old_gateway_builds_go_todays_stays(world: World) -> None:
    """containai-gateway:<hash> builds of older inputs no container uses are removed;
    the one today's cai makes (keep_images) stays, or the next cold create rebuilds it;
    one a gateway container uses stays; other repositories are never touched."""
    world.engine.images = [
        image("containai-gateway", "0000000000000new", "sha256:gw-new"),
        image("containai-gateway", "00000000000000old", "sha256:gw-old"),
        image("containai-gateway", "0000000000000used", "sha256:gw-used"),
        image("squid", "latest", "sha256:gw-old"),
        image("containai-gatewayx", "1", "sha256:other"),
    ]
    world.engine.containers["id-busy"].image_id = "sha256:gw-used"
    gc = GarbageCollector(
        world.engine,
        world.ssh,
        world.config,
        world.locks,
        clock=lambda: NOW,
        keep_images=lambda: ["containai-gateway:0000000000000new"],
    )
    plan = gc.plan(THIRTY_DAYS, "30d", images=True)
    assert [i.reference for i in plan.images] == ["containai-gateway:00000000000000old"]
    gc.apply(plan)
    removed = {c[1] for c in world.engine.calls_of("remove_image")}
    assert removed == {"containai-gateway:00000000000000old"}


def test_without_images_flag_no_image_is_touched(world: World) -> None:
    image_world(world)
    result = world.gc.apply(world.gc.plan(THIRTY_DAYS, "30d"))
    assert result.images == []
    assert not any("image" in verb for verb in world.engine.verbs())
    assert world.engine.verbs() == [
        "list_managed",
        "find_many",
        "container_ids",
        "find_many",
        "remove_stopped",
    ]


def test_result_json_shape() -> None:
    result = GcResult(True, "7d", images=[UnusedImage("containai:x", "sha256:1")])
    assert result.to_json() == {
        "dry_run": True,
        "age": "7d",
        "removed": [],
        "spared": [],
        "images": [{"reference": "containai:x", "id": "sha256:1"}],
        "failed": [],
    }


# ---------------------------------------------------------------- ssh cleanup
def test_ssh_cleanup_removes_only_names_without_a_container(world: World) -> None:
    world.ssh.names |= {"gone-1", "gone-2"}
    stale = ssh_cleanup(world.engine, world.ssh, dry_run=False)
    assert stale == ["gone-1", "gone-2"]
    assert world.ssh.removed == ["gone-1", "gone-2"]
    assert world.ssh.names == {"old-a", "old-b", "never", "kept", "young", "busy"}
    assert world.engine.calls == [("list_containers",)]


def test_ssh_cleanup_dry_run_removes_nothing(world: World) -> None:
    world.ssh.names |= {"gone-1"}
    assert ssh_cleanup(world.engine, world.ssh, dry_run=True) == ["gone-1"]
    assert world.ssh.removed == []


def test_ssh_cleanup_keeps_files_written_after_it_listed_the_containers(world: World) -> None:
    # A `cai run` created files for a new container after `docker ps` answered.
    world.ssh.appear_on_stale = {"brand-new"}
    assert ssh_cleanup(world.engine, world.ssh, dry_run=False) == []
    assert "brand-new" in world.ssh.names


def test_ssh_cleanup_counts_unmanaged_containers_as_existing(world: World) -> None:
    world.ssh.names |= {"foreign"}
    assert "foreign" not in ssh_cleanup(world.engine, world.ssh, dry_run=True)


def test_never_started_containers_need_no_inspect(world: World) -> None:
    world.engine.containers = {}
    for name in ("n1", "n2"):
        world.engine.add(box(name, state="created", stopped_days=None, created_days=45))
    result = world.gc.collect(THIRTY_DAYS, "30d")
    assert world.engine.verbs() == ["list_managed", "container_ids", "remove_stopped"]
    assert [(c.name, c.age_seconds) for c in result.removed] == [
        ("n1", 45 * 86400),
        ("n2", 45 * 86400),
    ]


def test_a_never_started_container_run_since_the_listing_is_decided_afresh(
    world: World,
) -> None:
    """Listed as never started, then started and stopped a minute ago: the state check
    no longer lists it, so it is inspected and is too young to go."""
    world.engine.containers = {}
    world.engine.add(box("n1", state="created", stopped_days=None, created_days=45))

    def ran(engine: FakeEngine) -> None:
        engine.containers["id-n1"].state = "exited"
        engine.containers["id-n1"].finished = NOW - timedelta(minutes=1)

    world.engine.hooks["container_ids"] = on_call(1, ran)
    result = world.gc.collect(THIRTY_DAYS, "30d")
    assert world.engine.verbs() == ["list_managed", "container_ids", "find_many"]
    assert result.removed == []
    assert [s.name for s in result.spared] == ["n1"]
    assert result.spared[0].reason.startswith("too young")
