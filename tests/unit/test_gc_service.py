"""The gc service and `ssh cleanup` with in-memory fakes that implement their Protocols:
selection, the batched re-check and removal, what is spared and why, SSH entries and
workspace state, images; volumes are never touched."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from containai.cli.commands.gc import render_text
from containai.domain.errors import Failed, NotFound
from containai.services.gc import (
    GarbageCollector,
    GcResult,
    UnusedImage,
    is_cai_image,
    ssh_cleanup,
)
from containai.services.inventory import LIST_FORMAT

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
THIRTY_DAYS = timedelta(days=30)


def ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Box:
    """One container as the fake engine keeps it."""

    id: str
    name: str
    state: str
    labels: dict[str, str]
    created: datetime
    finished: datetime | None = None
    image_id: str = "sha256:base"

    def inspect(self) -> dict[str, Any]:
        return {
            "Id": self.id,
            "Name": "/" + self.name,
            "Created": ts(self.created),
            "Image": self.image_id,
            "State": {
                "Status": self.state,
                "FinishedAt": ts(self.finished) if self.finished else "0001-01-01T00:00:00Z",
            },
            "Config": {"Labels": dict(self.labels)},
        }

    def ps_line(self) -> str:
        """What `docker ps --format LIST_FORMAT` prints: the labels it asks for, "" if unset."""
        keys = ("containai.managed", "containai.workspace", "containai.ssh-port")
        keys += ("containai.data-volume", "containai.runtime", "containai.keep")
        return json.dumps(
            {
                "id": self.id,
                "names": self.name,
                "state": self.state,
                "image": "containai:default",
                "created": self.created.strftime("%Y-%m-%d %H:%M:%S +0000 UTC"),
                "labels": {k: self.labels.get(k, "") for k in keys},
            }
        )


@dataclass
class FakeEngine:
    """Just enough of the engine for gc: ps -q, inspect, rm (refusing running ones, like
    the real one), ps names, image ls/rm. Every call is recorded."""

    boxes: dict[str, Box] = field(default_factory=dict)
    images: list[dict[str, str]] = field(default_factory=list)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    before_rm: Any = None  # hook: runs between the re-check and `docker rm`
    after_inspects: dict[int, Any] = field(default_factory=dict)  # nth inspect -> hook
    after_state_checks: dict[int, Any] = field(default_factory=dict)  # nth `ps -q` by state
    image_errors: dict[str, Exception] = field(default_factory=dict)
    rm_errors: dict[str, str] = field(default_factory=dict)  # id -> stderr line, kept

    def add(self, box: Box) -> Box:
        self.boxes[box.id] = box
        return box

    def container_ids(
        self, labels: Mapping[str, str | None], *, states: Sequence[str] = ()
    ) -> list[str]:
        self.calls.append(
            ("ps", "-q", *(f"{k}={v}" for k, v in labels.items()), *(f"status={s}" for s in states))
        )
        n = sum(1 for c in self.calls if c[:2] == ("ps", "-q") and states)
        if states and n in self.after_state_checks:
            self.after_state_checks[n](self)
        return [
            b.id
            for b in self.boxes.values()
            if all(b.labels.get(k) == v or (v is None and k in b.labels) for k, v in labels.items())
            and (not states or b.state in states)
        ]

    def inspect_containers(self, names: Iterable[str]) -> list[dict[str, Any]]:
        names = list(names)
        self.calls.append(("inspect", *names))
        n = sum(1 for c in self.calls if c[0] == "inspect")
        if n in self.after_inspects:
            self.after_inspects[n](self)
        out = []
        for ref in names:
            box = self.boxes.get(ref) or next(
                (b for b in self.boxes.values() if b.name == ref), None
            )
            if box is not None:
                out.append(box.inspect())
        return out

    def run(
        self,
        *args: str,
        input: str | bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
        text: bool = True,
    ) -> subprocess.CompletedProcess[Any]:
        self.calls.append(tuple(args))
        if args[0] == "rm":
            assert "--force" not in args and "-f" not in args, "gc must never force a removal"
            if self.before_rm is not None:
                self.before_rm(self)
            out, err = [], []
            for ref in args[1:]:
                box = self.boxes.get(ref)
                if ref in self.rm_errors:
                    err.append(self.rm_errors[ref])
                elif box is None:
                    err.append(f"Error response from daemon: No such container: {ref}")
                elif box.state in ("running", "paused", "restarting"):
                    err.append(
                        "Error response from daemon: You cannot remove a running container "
                        f"{ref}. Stop the container before attempting removal or force remove"
                    )
                else:
                    del self.boxes[ref]
                    out.append(ref)
            code = 1 if err else 0
            return subprocess.CompletedProcess(args, code, "\n".join(out), "\n".join(err))
        if args[0] == "ps":
            fmt = args[args.index("--format") + 1]
            boxes = list(self.boxes.values())
            if "--filter" in args:
                key, _, value = (
                    args[args.index("--filter") + 1].removeprefix("label=").partition("=")
                )
                boxes = [b for b in boxes if b.labels.get(key) == value]
            if fmt == LIST_FORMAT:
                lines = [b.ps_line() for b in boxes]
            else:
                assert fmt == "{{.Names}}", fmt
                lines = [b.name for b in boxes]
            return subprocess.CompletedProcess(args, 0, "\n".join(lines) + "\n", "")
        raise AssertionError(f"unexpected docker call {args}")

    def list_images(self, reference: str | None = None) -> list[dict[str, Any]]:
        self.calls.append(("image", "ls"))
        return [dict(i) for i in self.images]

    def remove_image(self, ref: str) -> None:
        self.calls.append(("image", "rm", ref))
        if ref in self.image_errors:
            raise self.image_errors[ref]
        self.images = [i for i in self.images if f"{i['Repository']}:{i['Tag']}" != ref]

    def calls_of(self, verb: str) -> list[tuple[str, ...]]:
        return [c for c in self.calls if c[0] == verb]


@dataclass
class FakeSsh:
    names: set[str] = field(default_factory=set)
    removed: list[str] = field(default_factory=list)
    appear_on_stale: set[str] = field(default_factory=set)

    def remove(self, name: str) -> list[Path]:
        self.removed.append(name)
        self.names.discard(name)
        return [Path(f"/home/u/.ssh/containai.d/{name}.conf")]

    def entries(self) -> list[str]:
        return sorted(self.names)

    def stale(self, existing: Collection[str]) -> list[str]:
        self.names |= self.appear_on_stale  # a `cai run` wrote new files meanwhile
        return [n for n in sorted(self.names) if n not in existing]


@dataclass
class FakeConfig:
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    writes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def all_workspace_states(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self.states.items()}

    def set_workspace_state(self, workspace: str, values: Mapping[str, Any | None]) -> bool:
        self.writes.append((workspace, dict(values)))
        state = self.states.setdefault(workspace, {})
        for k, v in values.items():
            if v is None:
                state.pop(k, None)
            else:
                state[k] = v
        return True


@dataclass
class FakeLocks:
    busy: set[str] = field(default_factory=set)
    held: list[str] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)

    def workspace(self, workspace: str) -> Any:
        @contextlib.contextmanager
        def lock() -> Iterator[None]:
            if workspace in self.busy:
                raise TimeoutError(workspace)
            self.held.append(workspace)
            self.log.append(("acquire", workspace))
            try:
                yield
            finally:
                self.held.remove(workspace)
                self.log.append(("release", workspace))

        return lock()


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
    assert world.engine.calls_of("rm") == [] and world.ssh.removed == []
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
    assert len(world.engine.boxes) == 8
    assert render_text(result)[0] == (
        "would remove never (created 45d ago, never started, workspace /src/never)"
    )


def test_apply_removes_exactly_the_eligible_in_one_recheck_and_one_rm(world: World) -> None:
    plan = world.gc.plan(THIRTY_DAYS, "30d")
    calls_before = len(world.engine.calls)
    result = world.gc.apply(plan)
    assert [c.name for c in result.removed] == ELIGIBLE
    assert result.failed == []
    assert set(world.engine.boxes) == {"id-kept", "id-young", "id-busy", "id-foreign", "id-dead"}
    apply_calls = world.engine.calls[calls_before:]
    # the re-check: never-started ones by one `docker ps` on that state, the rest by id
    assert [c[0] for c in apply_calls] == ["ps", "inspect", "rm"]
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
    world.engine.before_rm = lambda _engine: seen.append(sorted(world.locks.held))
    world.gc.apply(world.gc.plan(THIRTY_DAYS, "30d"))
    assert seen == [sorted(f"/src/{n}" for n in ELIGIBLE)]
    assert world.locks.held == []


def test_a_busy_workspace_is_spared(world: World) -> None:
    world.locks.busy = {"/src/old-b"}
    result = world.gc.apply(world.gc.plan(THIRTY_DAYS, "30d"))
    assert [c.name for c in result.removed] == ["never", "old-a"]
    spared = {s.name: s for s in result.spared}
    assert spared["old-b"].changed and "busy" in spared["old-b"].reason
    assert "id-old-b" in world.engine.boxes and "old-b" not in world.ssh.removed


def test_a_container_started_after_listing_is_spared_by_the_recheck(world: World) -> None:
    plan = world.gc.plan(THIRTY_DAYS, "30d")
    world.engine.boxes["id-old-a"].state = "running"  # `cai run` started it meanwhile
    result = world.gc.apply(plan)
    assert [c.name for c in result.removed] == ["never", "old-b"]
    spared = {s.name: s for s in result.spared}
    assert spared["old-a"].changed
    assert spared["old-a"].reason == "running (changed since it was listed)"
    assert "id-old-a" in world.engine.boxes and "old-a" not in world.ssh.removed
    assert "id-old-a" not in world.engine.calls_of("rm")[0]  # not even asked to remove
    assert world.config.writes == []


def test_a_container_restarted_and_stopped_again_is_young_again(world: World) -> None:
    plan = world.gc.plan(THIRTY_DAYS, "30d")
    world.engine.boxes["id-old-b"].finished = NOW - timedelta(minutes=1)
    result = world.gc.apply(plan)
    spared = {s.name: s.reason for s in result.spared}
    assert spared["old-b"].startswith("too young")
    assert "id-old-b" in world.engine.boxes


def test_a_container_started_between_recheck_and_rm_is_refused_by_the_engine(
    world: World,
) -> None:
    def start_one(engine: FakeEngine) -> None:
        engine.boxes["id-never"].state = "running"

    world.engine.before_rm = start_one
    result = world.gc.apply(world.gc.plan(THIRTY_DAYS, "30d"))
    assert [c.name for c in result.removed] == ["old-a", "old-b"]
    spared = {s.name: s for s in result.spared}
    assert spared["never"].reason == "running (started after it was listed)"
    assert spared["never"].changed and result.failed == []
    assert "never" not in world.ssh.removed


def test_a_container_recreated_under_the_same_name_is_not_removed(world: World) -> None:
    plan = world.gc.plan(THIRTY_DAYS, "30d")
    del world.engine.boxes["id-old-a"]  # `cai run --fresh`: same name, new container
    world.engine.add(Box("id-new", "old-a", "exited", managed("/src/old-a"), NOW, NOW))
    result = world.gc.apply(plan)
    assert "id-new" in world.engine.boxes
    spared = {s.name: s.reason for s in result.spared}
    assert spared["old-a"] == "no longer exists (removed meanwhile)"
    assert "old-a" not in world.ssh.removed
    assert "id-new" not in world.engine.calls_of("rm")[0]


def test_removed_meanwhile_between_recheck_and_rm_is_not_a_failure(world: World) -> None:
    world.engine.before_rm = lambda engine: engine.boxes.pop("id-old-b")
    result = world.gc.apply(world.gc.plan(THIRTY_DAYS, "30d"))
    assert [c.name for c in result.removed] == ["never", "old-a"]
    assert {s.name: s.reason for s in result.spared}["old-b"] == (
        "no longer exists (removed meanwhile)"
    )
    assert result.failed == []


def test_an_unexplained_rm_failure_is_reported_per_container(world: World) -> None:
    world.engine.rm_errors = {
        "id-old-b": "Error response from daemon: removal of container id-old-b is already "
        "in progress"
    }
    result = world.gc.apply(world.gc.plan(THIRTY_DAYS, "30d"))
    assert [c.name for c in result.removed] == ["never", "old-a"]
    assert [f.name for f in result.failed] == ["old-b"]
    assert result.failed[0].reason == "removal of container id-old-b is already in progress"
    assert "old-b" not in world.ssh.removed


def test_an_rm_that_fails_as_a_whole_raises(world: World) -> None:
    def fail(*args: str, **kw: Any) -> subprocess.CompletedProcess[Any]:
        world.engine.calls.append(tuple(args))
        return subprocess.CompletedProcess(args, 1, "", "error during connect: EOF")

    plan = world.gc.plan(THIRTY_DAYS, "30d")
    world.engine.run = fail  # type: ignore[method-assign]
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
    assert [len(c) - 1 for c in world.engine.calls_of("rm")] == [4, 4, 2]


def test_nothing_to_do_asks_the_engine_only_to_list(world: World) -> None:
    plan = world.gc.plan(timedelta(days=365), "365d")
    result = world.gc.apply(plan)
    assert result.removed == [] and result.failed == []
    assert [c[0] for c in world.engine.calls] == ["ps", "inspect"]  # the plan's listing
    assert render_text(result) == []


def test_never_a_volume(world: World) -> None:
    world.engine.images = [{"Repository": "containai", "Tag": "old", "ID": "sha256:old"}]
    plan = world.gc.plan(timedelta(0), "0s", images=True)
    world.gc.apply(plan)
    assert not any("volume" in call for call in world.engine.calls)


def test_collect_lists_once_inspects_once_removes_once(world: World) -> None:
    result = world.gc.collect(THIRTY_DAYS, "30d")
    verbs = [c[0] for c in world.engine.calls]
    assert verbs == ["ps", "ps", "inspect", "rm"]
    assert world.engine.calls[0][-1] == LIST_FORMAT
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
    world.engine.before_rm = lambda _engine: seen.append(sorted(world.locks.held))
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
        {"Repository": "containai", "Tag": "default", "ID": "sha256:used-by-kept"},
        {"Repository": "containai", "Tag": "old", "ID": "sha256:old"},
        {"Repository": "containai", "Tag": "gone-with-gc", "ID": "sha256:only-old-a"},
        {"Repository": "ghcr.io/containai/base", "Tag": "1", "ID": "sha256:ghcr"},
        {"Repository": "containai", "Tag": "of-foreign", "ID": "sha256:foreign"},
        {"Repository": "debian", "Tag": "bookworm", "ID": "sha256:debian"},
        {"Repository": "<none>", "Tag": "<none>", "ID": "sha256:dangling"},
    ]
    world.engine.boxes["id-kept"].image_id = "sha256:used-by-kept"
    world.engine.boxes["id-old-a"].image_id = "sha256:only-old-a"
    world.engine.boxes["id-foreign"].image_id = "sha256:foreign"  # unmanaged still counts


def test_images_unused_by_any_container_are_removed_after_the_containers(world: World) -> None:
    image_world(world)
    plan = world.gc.plan(THIRTY_DAYS, "30d", images=True)
    assert ("ps", "-q") in world.engine.calls  # every container counts, managed or not
    assert [i.reference for i in plan.images] == [
        "containai:gone-with-gc",
        "containai:old",
        "ghcr.io/containai/base:1",
    ]
    result = world.gc.apply(plan)
    assert result.images == plan.images
    removed_refs = [c[2] for c in world.engine.calls if c[:2] == ("image", "rm")]
    assert removed_refs == ["containai:gone-with-gc", "containai:old", "ghcr.io/containai/base:1"]
    rm_index = world.engine.calls.index(world.engine.calls_of("rm")[0])
    first_image_rm = world.engine.calls.index(("image", "rm", "containai:gone-with-gc"))
    assert rm_index < first_image_rm


def test_an_image_of_a_spared_container_is_kept(world: World) -> None:
    image_world(world)
    plan = world.gc.plan(THIRTY_DAYS, "30d", images=True)
    world.engine.boxes["id-old-a"].state = "running"
    result = world.gc.apply(plan)
    assert "containai:gone-with-gc" not in [i.reference for i in result.images]
    assert ("image", "rm", "containai:gone-with-gc") not in world.engine.calls


def test_an_image_taken_into_use_meanwhile_is_skipped_other_errors_fail(world: World) -> None:
    image_world(world)
    world.engine.image_errors = {
        "containai:old": Failed(
            "docker image failed: conflict: unable to remove repository reference "
            '"containai:old" (must force) - container 1234 is using its referenced image 5678'
        ),
        "ghcr.io/containai/base:1": Failed("docker image failed: something odd"),
        "containai:gone-with-gc": NotFound("No such image: containai:gone-with-gc"),
    }
    result = world.gc.apply(world.gc.plan(THIRTY_DAYS, "30d", images=True))
    assert result.images == []
    assert [(f.name, f.reason) for f in result.failed] == [
        ("ghcr.io/containai/base:1", "docker image failed: something odd")
    ]


def test_without_images_flag_no_image_is_touched(world: World) -> None:
    image_world(world)
    result = world.gc.apply(world.gc.plan(THIRTY_DAYS, "30d"))
    assert result.images == []
    assert not any(c[0] == "image" for c in world.engine.calls)
    assert [c[0] for c in world.engine.calls] == ["ps", "inspect", "ps", "inspect", "rm"]
    assert world.engine.calls[0][-1] == LIST_FORMAT


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
    assert world.engine.calls == [("ps", "--all", "--no-trunc", "--format", "{{.Names}}")]


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
    world.engine.boxes = {}
    for name in ("n1", "n2"):
        world.engine.add(box(name, state="created", stopped_days=None, created_days=45))
    result = world.gc.collect(THIRTY_DAYS, "30d")
    assert [c[0] for c in world.engine.calls] == ["ps", "ps", "rm"]
    assert [(c.name, c.age_seconds) for c in result.removed] == [
        ("n1", 45 * 86400),
        ("n2", 45 * 86400),
    ]


def test_a_never_started_container_run_since_the_listing_is_decided_afresh(
    world: World,
) -> None:
    """Listed as never started, then started and stopped a minute ago: the state check
    no longer lists it, so it is inspected and is too young to go."""
    world.engine.boxes = {}
    world.engine.add(box("n1", state="created", stopped_days=None, created_days=45))

    def ran(engine: FakeEngine) -> None:
        engine.boxes["id-n1"].state = "exited"
        engine.boxes["id-n1"].finished = NOW - timedelta(minutes=1)

    world.engine.after_state_checks[1] = ran
    result = world.gc.collect(THIRTY_DAYS, "30d")
    assert [c[0] for c in world.engine.calls] == ["ps", "ps", "inspect"]
    assert result.removed == []
    assert [s.name for s in result.spared] == ["n1"]
    assert result.spared[0].reason.startswith("too young")
