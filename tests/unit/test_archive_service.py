"""Export/import use cases (services/archive.py) with in-memory fakes of the Protocols."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from containai.domain.archive_rules import Member
from containai.domain.engine_objects import (
    CommandResult,
    ContainerInfo,
    ContainerSpec,
    ImageInfo,
    Mount,
    VolumeInfo,
)
from containai.domain.errors import Failed, NotFound
from containai.services.archive import (
    DATA_MOUNT,
    FALLBACK_IMAGE,
    HELPER_LABEL,
    SWAP_SCRIPT,
    SWEEP_SCRIPT,
    VolumeArchives,
    VolumeTarget,
    archive_path,
    data_volume_of,
    default_archive_name,
    target_of,
)
from containai.services.lookup import Target
from tests.fakes import Box, FakeEngine

HELPER = "containai-helper-t0k"


class Engine(FakeEngine):
    """The fake engine with helpers that run: a sweep prints `df`, a swap ends with
    ``start_code`` (or is interrupted by ``start_error`` while it runs)."""

    def __init__(self, images: Sequence[ImageInfo] = (), volumes: Sequence[str] = ()) -> None:
        super().__init__(images=list(images), volumes={v: VolumeInfo(v) for v in volumes})
        self.start_code = 0
        self.start_error: BaseException | None = None
        self.df = "overlay 262144000 1000 262144000 1% /mnt/agent-data\n"  # 250 GiB free
        self.attached = Engine._run_helper
        self.made: list[Box] = []

    def _run_helper(self, box: Box) -> CommandResult:
        assert box.spec is not None
        if SWEEP_SCRIPT in box.spec.command:
            return CommandResult(0, self.df, "")
        if self.start_error is not None:
            box.state = "running"  # interrupted while the helper runs
            raise self.start_error
        return CommandResult(self.start_code, "", "boom\n")

    def specs(self) -> list[ContainerSpec]:
        """Every container created, in order (removed ones too)."""
        return [b.spec for b in self.made if b.spec is not None]

    def spec(self, name: str) -> ContainerSpec:
        return next(s for s in reversed(self.specs()) if s.name == name)

    def create(self, spec: ContainerSpec) -> str:
        made = super().create(spec)
        self.made.append(self.containers[made])
        return made


@dataclass
class FakeStreams:
    fail: BaseException | None = None
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    members: list[Member] = field(default_factory=list)

    def export_volume(
        self, container: str, source: str, output: Path, *, progress: Any = None
    ) -> Any:
        self.calls.append(("export", container, source, output))
        if self.fail:
            raise self.fail
        return "stats"

    def read_members(self, archive: Path, *, progress: Any = None) -> list[Member]:
        return self.members

    def copy_archive_in(
        self, container: str, dest: str, archive: Path, expected: Any, **kw: Any
    ) -> None:
        self.calls.append(("copy_in", container, dest, kw["staging"], kw["marker"]))
        if self.fail:
            raise self.fail

    def copy_items_in(
        self, container: str, dest: str, items: Any, *, uid: int, gid: int
    ) -> list[str]:
        self.calls.append(("items_in", container, dest, uid, gid))
        return []


IMG = ImageInfo("sha256:aaa", "containai", "default")
BASE = ImageInfo("sha256:bbb", "containai-base", "bookworm")
OTHER = ImageInfo("sha256:ccc", "debian", "12")
DANGLING = ImageInfo("sha256:ddd", "<none>", "<none>")


def service(engine: Engine, streams: FakeStreams | None = None) -> VolumeArchives:
    return VolumeArchives(engine, streams or FakeStreams(), token=lambda: "t0k")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("images", "preferred", "expected"),
    [
        ([OTHER, BASE, IMG], None, "containai:default"),
        ([OTHER, BASE], None, FALLBACK_IMAGE),
        ([DANGLING, OTHER], None, "debian:12"),
        ([DANGLING], None, "sha256:ddd"),
        ([OTHER, IMG], "sha256:ccc", "sha256:ccc"),  # the workspace container's image
        ([OTHER, IMG], "sha256:gone", "containai:default"),
    ],
)
def test_helper_image_is_always_local(
    images: list[ImageInfo], preferred: str | None, expected: str
) -> None:
    assert service(Engine(images)).helper_image(preferred) == expected


def test_no_local_image_is_a_clear_failure() -> None:
    with pytest.raises(Failed, match="no local image"):
        service(Engine([])).helper_image()


def test_export_from_the_workspace_container_needs_no_helper(tmp_path: Path) -> None:
    engine, streams = Engine([IMG]), FakeStreams()
    service(engine, streams).export(VolumeTarget("v", "c1"), tmp_path / "a.tgz")
    assert streams.calls == [("export", "c1", DATA_MOUNT, tmp_path / "a.tgz")]
    assert engine.calls == []


@pytest.mark.parametrize("fail", [None, Failed("stream broke"), KeyboardInterrupt()])
def test_export_without_container_uses_a_stopped_helper_and_removes_it(
    tmp_path: Path, fail: BaseException | None
) -> None:
    engine, streams = Engine([IMG], volumes=["v"]), FakeStreams(fail=fail)
    archives = service(engine, streams)
    if fail is None:
        archives.export(VolumeTarget("v"), tmp_path / "a.tgz")
    else:
        with pytest.raises(type(fail)):
            archives.export(VolumeTarget("v"), tmp_path / "a.tgz")
    name = HELPER
    assert ("create", name) in engine.calls and engine.calls[-1] == ("remove", name)
    assert not any("start" in verb for verb in engine.verbs())  # never started
    assert engine.calls_of("create") == [("create", name)]
    assert streams.calls[0][1] == name


def test_helper_create_arguments() -> None:
    engine = Engine([IMG], volumes=["v"])
    name = service(engine).helpers.create("v", "containai:default", ["-c", ":"])
    spec = engine.spec(name)
    assert spec.labels[HELPER_LABEL] == "true"
    assert spec.network == "none"
    assert spec.mounts == (Mount("volume", "v", DATA_MOUNT, no_copy=True),)
    assert (spec.image, spec.command) == ("containai:default", ("-c", ":"))
    assert (spec.user, spec.entrypoint, spec.auto_remove) == ("0:0", "/bin/sh", False)


def test_export_of_a_missing_volume_is_not_found_and_creates_nothing(tmp_path: Path) -> None:
    engine = Engine([IMG])
    with pytest.raises(NotFound, match="'nope'"):
        service(engine).export(VolumeTarget("nope"), tmp_path / "a.tgz")
    assert engine.calls_of("create") == []


def test_restore_copies_into_staging_then_runs_the_swap() -> None:
    engine, streams = Engine([IMG], volumes=["v"]), FakeStreams()
    service(engine, streams).restore(VolumeTarget("v"), Path("a.tgz"), [Member("a", "file")])
    name = HELPER
    assert streams.calls == [
        ("copy_in", name, DATA_MOUNT, ".containai-import-t0k", ".containai-import-t0k.done")
    ]
    create = engine.calls.index(("create", name))
    start = engine.calls.index(("start_attached", name))
    assert create < start
    assert engine.box(name) is None  # it removed itself (--rm)
    assert not any(c[0] == "create_volume" for c in engine.calls)


@pytest.mark.parametrize("fail", [Failed("copy broke"), KeyboardInterrupt()])
def test_restore_failure_still_runs_the_cleanup_and_reraises(fail: BaseException) -> None:
    engine, streams = Engine([IMG], volumes=["v"]), FakeStreams(fail=fail)
    with pytest.raises(type(fail)):
        service(engine, streams).restore(VolumeTarget("v"), Path("a.tgz"), [])
    name = HELPER
    assert ("start_attached", name) in engine.calls  # discards the staging dir
    assert engine.box(name) is None


def test_restore_reports_a_failed_swap() -> None:
    engine = Engine([IMG], volumes=["v"])
    engine.start_code = 1
    with pytest.raises(Failed, match="volume 'v' failed: boom"):
        service(engine).restore(VolumeTarget("v"), Path("a.tgz"), [])
    assert engine.box(HELPER) is None


def test_an_interrupted_swap_is_never_killed() -> None:
    engine = Engine([IMG], volumes=["v"])
    engine.start_error = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        service(engine).restore(VolumeTarget("v"), Path("a.tgz"), [])
    # still running: left to finish and remove itself; `rm --force` would kill it mid-swap
    assert not any(c[0] == "remove" for c in engine.calls)
    assert engine.spec(HELPER).auto_remove and engine.box(HELPER) is not None


def test_a_helper_that_never_started_is_removed() -> None:
    engine = Engine([IMG], volumes=["v"])
    archives = service(engine)
    archives.helpers.release(archives.helpers.create("v", "img", ["-c", ":"], auto_remove=True))
    assert engine.calls[-1] == ("remove", HELPER)


def test_restore_creates_a_missing_volume_and_prefers_the_container_image() -> None:
    engine = Engine([IMG, OTHER])
    service(engine).restore(VolumeTarget("new", None, "sha256:ccc"), Path("a.tgz"), [])
    assert ("create_volume", "new", {"containai.managed": "true"}) in engine.calls
    assert engine.spec(HELPER).image == "sha256:ccc"


def test_swap_script_arguments_and_marker_logic() -> None:
    engine = Engine([IMG], volumes=["v"])
    service(engine).restore(VolumeTarget("v"), Path("a.tgz"), [])
    spec = engine.spec(HELPER)
    assert spec.command == (
        "-c",
        SWAP_SCRIPT,
        "containai-import",
        ".containai-import-t0k",
        ".containai-import-t0k.done",
        ".containai-old-t0k",
        "",
    )
    assert (spec.entrypoint, spec.user, spec.auto_remove) == ("/bin/sh", "0:0", True)


def test_copy_items_through_the_container_or_a_helper() -> None:
    engine, streams = Engine([IMG], volumes=[]), FakeStreams()
    archives = service(engine, streams)
    archives.copy_items(VolumeTarget("v", "c1"), [], uid=1000, gid=1001)
    assert streams.calls[-1] == ("items_in", "c1", DATA_MOUNT, 1000, 1001)
    assert engine.calls_of("create") == []
    archives.copy_items(VolumeTarget("v"), [], uid=1000, gid=1001)
    assert streams.calls[-1] == ("items_in", HELPER, DATA_MOUNT, 1000, 1001)
    assert ("create_volume", "v", {"containai.managed": "true"}) in engine.calls
    assert engine.calls[-1] == ("remove", HELPER)


def test_check_refuses_bad_members_naming_the_archive() -> None:
    streams = FakeStreams(members=[Member("a", "file"), Member("../x", "file")])
    with pytest.raises(Failed, match=r"a.tgz: member '../x'"):
        service(Engine(), streams).check(Path("a.tgz"))
    streams.members = [Member("a", "file")]
    assert service(Engine(), streams).check(Path("a.tgz")) == [Member("a", "file")]


def test_volume_of_a_container() -> None:
    def info(mounts: Sequence[Mount] = (), labels: dict[str, str] | None = None) -> ContainerInfo:
        return ContainerInfo(
            id="x", name="c", state="exited", image_id="sha256:x", mounts=mounts, labels=labels
        )

    mounts = [Mount("bind", "/src", "/src"), Mount("volume", "vol1", DATA_MOUNT)]
    labelled = info(mounts, {"containai.data-volume": "label-vol"})
    assert data_volume_of(labelled) == "vol1"
    assert data_volume_of(info(labels={"containai.data-volume": "lv"})) == "lv"
    assert data_volume_of(info()) is None
    assert target_of(Target("c", labelled, "/w")) == VolumeTarget("vol1", "c", "sha256:x")
    with pytest.raises(NotFound, match="container 'c' has no data volume"):
        target_of(Target("c", info(), "/w"))


NOW = datetime(2024, 3, 5, 7, 8, 9, tzinfo=UTC)


def test_default_archive_name() -> None:
    assert default_archive_name("containai-data", NOW) == (
        "containai-export-containai-data-20240305-070809.tgz"
    )


def test_archive_path(tmp_path: Path) -> None:
    name = "containai-export-v-20240305-070809.tgz"
    assert archive_path(None, tmp_path, "v", NOW) == tmp_path / name
    assert archive_path(".", tmp_path, "v", NOW) == tmp_path / name
    (tmp_path / "d").mkdir()
    assert archive_path("d", tmp_path, "v", NOW) == tmp_path / "d" / name
    assert archive_path(str(tmp_path / "d"), Path("/"), "v", NOW) == tmp_path / "d" / name
    assert archive_path("x.tgz", tmp_path, "v", NOW) == tmp_path / "x.tgz"
    with pytest.raises(NotFound, match="does not exist"):
        archive_path("missing/x.tgz", tmp_path, "v", NOW)
    with pytest.raises(NotFound, match="does not exist"):
        archive_path("missing/", tmp_path, "v", NOW)


# ------------------------------------------------ issue 13: leftovers, space, owner
def _helper(
    name: str, owner: str, volume: str, staging: str = "", age_h: float = 0, *, old: bool = False
) -> Box:
    """A helper as it is listed (``old``: made by an older cai, no volume label)."""
    created = datetime.fromtimestamp(
        datetime(2025, 1, 1, 12, tzinfo=UTC).timestamp() - age_h * 3600, UTC
    ).replace(microsecond=0)
    labels = {
        HELPER_LABEL: "true",
        "containai.helper.owner": owner,
        "containai.helper.volume": "" if old else volume,
        "containai.helper.staging": staging,
    }
    return Box(
        name,
        "created",
        {k: v for k, v in labels.items() if v},
        created=created,
        mounts=(Mount("volume", volume, DATA_MOUNT),),
    )


def leftover_service(engine: Engine, streams: FakeStreams | None = None) -> VolumeArchives:
    return VolumeArchives(
        engine,  # type: ignore[arg-type]
        streams or FakeStreams(),
        token=lambda: "t0k",
        owner="me",
        owner_alive=lambda owner: {"dead": False, "live": True}.get(owner),
        clock=lambda: datetime(2025, 1, 1, 12, tzinfo=UTC),
    )


def test_an_import_removes_dead_helpers_and_their_staging_but_not_live_ones() -> None:
    engine = Engine([IMG], volumes=["v"])
    for helper in (
        _helper("containai-helper-dead", "dead", "v", ".containai-import-dead"),
        _helper("containai-helper-live", "live", "v", ".containai-import-live"),
        _helper("containai-helper-far", "other-host", "v", ".containai-import-far", 1),
        _helper("containai-helper-old", "", "v", "", 2, old=True),  # an older cai's, 2 h old
    ):
        engine.add(helper)
    leftover_service(engine).restore(VolumeTarget("v"), Path("a.tgz"), [], owner=(1000, 1001))
    removed = engine.calls_of("remove_stopped")
    assert removed == [("remove_stopped", "containai-helper-dead", "containai-helper-old")]
    sweep = next(s for s in engine.specs() if SWEEP_SCRIPT in s.command)
    keep = sweep.command[sweep.command.index(SWEEP_SCRIPT) + 2 :]
    assert keep == (".containai-import-far", ".containai-import-live")
    swap = next(s for s in engine.specs() if SWAP_SCRIPT in s.command)
    assert swap.command[-1] == "1000:1001"  # the volume root is cai's, whatever the archive says
    assert swap.labels["containai.helper.owner"] == "me"
    assert swap.labels["containai.helper.staging"] == ".containai-import-t0k"


def test_an_archive_too_big_for_the_engine_disk_is_refused_before_the_copy() -> None:
    engine, streams = Engine([IMG], volumes=["v"]), FakeStreams()
    engine.df = "overlay 10485760 9437184 1048576 90% /mnt/agent-data\n"  # 1 GiB free of 10
    bomb = [Member("./", "dir"), Member("zeros", "file", size=2 * 1024**3)]
    with pytest.raises(Failed) as err:
        leftover_service(engine, streams).restore(VolumeTarget("v"), Path("bomb.tgz"), bomb)
    text = str(err.value)
    assert "refusing to import bomb.tgz into volume 'v'" in text and "nothing was changed" in text
    assert "2.0GB" in text and "\n" not in text
    assert streams.calls == []  # nothing copied
    assert not any(SWAP_SCRIPT in s.command for s in engine.specs())


def test_a_failed_copy_says_the_volume_is_unchanged() -> None:
    engine = Engine([IMG], volumes=["v"])
    streams = FakeStreams(fail=Failed("docker cp failed: file name too long"))
    with pytest.raises(Failed, match="file name too long; volume 'v' was left as it was"):
        leftover_service(engine, streams).restore(VolumeTarget("v"), Path("a.tgz"), [])


def test_gc_lists_and_removes_dead_helpers_and_export_temp_files() -> None:
    engine = Engine([IMG], volumes=["v"])
    engine.add(_helper("containai-helper-dead", "dead", "v", ".containai-import-dead"))
    engine.add(_helper("containai-helper-live", "live", "v", ".containai-import-live"))

    class Temps(FakeStreams):
        def stale_exports(self) -> list[Path]:
            return [Path("/x/.e.tgz.abcd1234.tmp")]

        def remove_files(self, paths: Sequence[Path]) -> list[Path]:
            self.calls.append(("remove_files", list(paths)))
            return list(paths)

    archives = leftover_service(engine, Temps())
    found = archives.leftovers()
    assert [(f.kind, f.name) for f in found] == [
        ("helper", "containai-helper-dead"),
        ("file", "/x/.e.tgz.abcd1234.tmp"),
    ]
    assert "its cai process is gone" in found[0].reason
    assert archives.remove_leftovers(found) == [found[1], found[0]]
    sweep = next(s for s in engine.specs() if SWEEP_SCRIPT in s.command)
    assert sweep.command[sweep.command.index(SWEEP_SCRIPT) + 2 :] == (".containai-import-live",)
