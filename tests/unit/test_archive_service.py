"""Export/import use cases (services/archive.py) with in-memory fakes of the Protocols."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from containai.domain.archive_rules import Member
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
from containai.services.lifecycle import Target


class FakeEngine:
    context = "fake"
    display_name = "fake"

    def __init__(self, images: Sequence[dict[str, str]] = (), volumes: Sequence[str] = ()) -> None:
        self.images = list(images)
        self.volumes = set(volumes)
        self.containers: dict[str, list[str]] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.start_code = 0
        self.start_error: BaseException | None = None
        self.states: dict[str, str] = {}
        self.ps_lines: list[str] = []  # `docker ps` of the helpers
        self.created: list[list[str]] = []
        self.df = "overlay 262144000 1000 262144000 1% /mnt/agent-data\n"  # 250 GiB free

    def inspect_container(self, name: str) -> dict[str, Any] | None:
        if name not in self.containers:
            return None
        return {"State": {"Status": self.states.get(name, "created")}}

    def inspect_volume(self, name: str) -> dict[str, Any] | None:
        return {"Name": name} if name in self.volumes else None

    def create_volume(self, name: str, labels: Any = None) -> None:
        self.calls.append(("create_volume", name, dict(labels or {})))
        self.volumes.add(name)

    def inspect_image(self, ref: str) -> dict[str, Any] | None:
        for row in self.images:
            if ref in (f"{row['Repository']}:{row['Tag']}", row["ID"]):
                return {"Id": row["ID"]}
        return None

    def list_images(self, reference: str | None = None) -> list[dict[str, Any]]:
        if reference is None:
            return list(self.images)
        repo = reference.split(":")[0]
        return [r for r in self.images if r["Repository"] == repo]

    def create_container(self, args: Sequence[str]) -> str:
        name = args[args.index("--name") + 1]
        self.containers[name] = list(args)
        self.created.append(list(args))
        self.calls.append(("create", name))
        return "id-" + name

    def remove(self, *names: str, force: bool = False) -> None:
        for name in names:
            self.calls.append(("remove", name))
            self.containers.pop(name, None)

    def run(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(("run", *args))
        if args[0] == "ps":
            return subprocess.CompletedProcess(list(args), 0, "\n".join(self.ps_lines), "")
        if args[0] == "rm":
            for name in args[1:]:
                self.containers.pop(name, None)
            self.ps_lines = [
                line for line in self.ps_lines if not any(f'"{n}"' in line for n in args[1:])
            ]
            return subprocess.CompletedProcess(list(args), 0, "\n".join(args[1:]), "")
        name = args[-1]
        if SWEEP_SCRIPT in self.containers.get(name, []):
            del self.containers[name]
            return subprocess.CompletedProcess(list(args), 0, self.df, "")
        if self.start_error is not None:
            self.states[name] = "running"  # interrupted while the helper runs
            raise self.start_error
        if "--rm" in self.containers.get(name, []):
            del self.containers[name]  # the engine removes an auto-remove helper when it ends
        return subprocess.CompletedProcess(list(args), self.start_code, "", "boom\n")


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


IMG = {"Repository": "containai", "Tag": "default", "ID": "sha256:aaa"}
BASE = {"Repository": "containai-base", "Tag": "bookworm", "ID": "sha256:bbb"}
OTHER = {"Repository": "debian", "Tag": "12", "ID": "sha256:ccc"}
DANGLING = {"Repository": "<none>", "Tag": "<none>", "ID": "sha256:ddd"}


def service(engine: FakeEngine, streams: FakeStreams | None = None) -> VolumeArchives:
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
    images: list[dict[str, str]], preferred: str | None, expected: str
) -> None:
    assert service(FakeEngine(images)).helper_image(preferred) == expected


def test_no_local_image_is_a_clear_failure() -> None:
    with pytest.raises(Failed, match="no local image"):
        service(FakeEngine([])).helper_image()


def test_export_from_the_workspace_container_needs_no_helper(tmp_path: Path) -> None:
    engine, streams = FakeEngine([IMG]), FakeStreams()
    service(engine, streams).export(VolumeTarget("v", "c1"), tmp_path / "a.tgz")
    assert streams.calls == [("export", "c1", DATA_MOUNT, tmp_path / "a.tgz")]
    assert engine.calls == []


@pytest.mark.parametrize("fail", [None, Failed("stream broke"), KeyboardInterrupt()])
def test_export_without_container_uses_a_stopped_helper_and_removes_it(
    tmp_path: Path, fail: BaseException | None
) -> None:
    engine, streams = FakeEngine([IMG], volumes=["v"]), FakeStreams(fail=fail)
    archives = service(engine, streams)
    if fail is None:
        archives.export(VolumeTarget("v"), tmp_path / "a.tgz")
    else:
        with pytest.raises(type(fail)):
            archives.export(VolumeTarget("v"), tmp_path / "a.tgz")
    name = "containai-helper-t0k"
    assert ("create", name) in engine.calls and engine.calls[-1] == ("remove", name)
    assert not any(c[0] == "run" for c in engine.calls)  # never started
    assert [c for c in engine.calls if c[0] == "create"] == [("create", name)]
    assert streams.calls[0][1] == name


def test_helper_create_arguments() -> None:
    engine = FakeEngine([IMG], volumes=["v"])
    name = service(engine)._create_helper("v", "containai:default", ["-c", ":"])
    args = engine.containers[name]
    assert args[args.index("--label") + 1] == f"{HELPER_LABEL}=true"
    assert args[args.index("--network") + 1] == "none"
    assert args[args.index("--mount") + 1] == (
        f"type=volume,source=v,target={DATA_MOUNT},volume-nocopy=true"
    )
    assert args[-3:] == ["containai:default", "-c", ":"]


def test_export_of_a_missing_volume_is_not_found_and_creates_nothing(tmp_path: Path) -> None:
    engine = FakeEngine([IMG])
    with pytest.raises(NotFound, match="'nope'"):
        service(engine).export(VolumeTarget("nope"), tmp_path / "a.tgz")
    assert engine.calls == []


def test_restore_copies_into_staging_then_runs_the_swap() -> None:
    engine, streams = FakeEngine([IMG], volumes=["v"]), FakeStreams()
    service(engine, streams).restore(VolumeTarget("v"), Path("a.tgz"), [Member("a", "file")])
    name = "containai-helper-t0k"
    assert streams.calls == [
        ("copy_in", name, DATA_MOUNT, ".containai-import-t0k", ".containai-import-t0k.done")
    ]
    create = engine.calls.index(("create", name))
    start = engine.calls.index(("run", "start", "--attach", name))
    assert create < start
    assert name not in engine.containers  # it removed itself (--rm)
    assert not any(c[0] == "create_volume" for c in engine.calls)


@pytest.mark.parametrize("fail", [Failed("copy broke"), KeyboardInterrupt()])
def test_restore_failure_still_runs_the_cleanup_and_reraises(fail: BaseException) -> None:
    engine, streams = FakeEngine([IMG], volumes=["v"]), FakeStreams(fail=fail)
    with pytest.raises(type(fail)):
        service(engine, streams).restore(VolumeTarget("v"), Path("a.tgz"), [])
    name = "containai-helper-t0k"
    assert ("run", "start", "--attach", name) in engine.calls  # discards the staging dir
    assert name not in engine.containers


def test_restore_reports_a_failed_swap() -> None:
    engine = FakeEngine([IMG], volumes=["v"])
    engine.start_code = 1
    with pytest.raises(Failed, match="volume 'v' failed: boom"):
        service(engine).restore(VolumeTarget("v"), Path("a.tgz"), [])
    assert "containai-helper-t0k" not in engine.containers


def test_an_interrupted_swap_is_never_killed() -> None:
    engine = FakeEngine([IMG], volumes=["v"])
    engine.start_error = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        service(engine).restore(VolumeTarget("v"), Path("a.tgz"), [])
    # still running: left to finish and remove itself; `rm --force` would kill it mid-swap
    assert not any(c[0] == "remove" for c in engine.calls)
    assert "--rm" in engine.containers["containai-helper-t0k"]


def test_a_helper_that_never_started_is_removed() -> None:
    engine = FakeEngine([IMG], volumes=["v"])
    archives = service(engine)
    archives._release_helper(archives._create_helper("v", "img", ["-c", ":"], auto_remove=True))
    assert engine.calls[-1] == ("remove", "containai-helper-t0k")


def test_restore_creates_a_missing_volume_and_prefers_the_container_image() -> None:
    engine = FakeEngine([IMG, OTHER])
    service(engine).restore(VolumeTarget("new", None, "sha256:ccc"), Path("a.tgz"), [])
    assert ("create_volume", "new", {"containai.managed": "true"}) in engine.calls
    assert "sha256:ccc" in engine.containers.get("containai-helper-t0k", ["sha256:ccc"])


def test_swap_script_arguments_and_marker_logic() -> None:
    engine = FakeEngine([IMG], volumes=["v"])
    archives = service(engine)
    recorded: dict[str, list[str]] = {}
    original = engine.create_container

    def create(args: Sequence[str]) -> str:
        recorded["args"] = list(args)
        return original(args)

    engine.create_container = create  # type: ignore[method-assign]
    archives.restore(VolumeTarget("v"), Path("a.tgz"), [])
    args = recorded["args"]
    i = args.index("-c")
    assert args[i + 1] == SWAP_SCRIPT
    assert args[i + 2 :] == [
        "containai-import",
        ".containai-import-t0k",
        ".containai-import-t0k.done",
        ".containai-old-t0k",
        "",
    ]
    assert args[args.index("--entrypoint") + 1] == "/bin/sh"
    assert args[args.index("--user") + 1] == "0:0"


def test_copy_items_through_the_container_or_a_helper() -> None:
    engine, streams = FakeEngine([IMG], volumes=[]), FakeStreams()
    archives = service(engine, streams)
    archives.copy_items(VolumeTarget("v", "c1"), [], uid=1000, gid=1001)
    assert streams.calls[-1] == ("items_in", "c1", DATA_MOUNT, 1000, 1001)
    assert engine.calls == []
    archives.copy_items(VolumeTarget("v"), [], uid=1000, gid=1001)
    assert streams.calls[-1] == ("items_in", "containai-helper-t0k", DATA_MOUNT, 1000, 1001)
    assert ("create_volume", "v", {"containai.managed": "true"}) in engine.calls
    assert engine.calls[-1] == ("remove", "containai-helper-t0k")


def test_check_refuses_bad_members_naming_the_archive() -> None:
    streams = FakeStreams(members=[Member("a", "file"), Member("../x", "file")])
    with pytest.raises(Failed, match=r"a.tgz: member '../x'"):
        service(FakeEngine(), streams).check(Path("a.tgz"))
    streams.members = [Member("a", "file")]
    assert service(FakeEngine(), streams).check(Path("a.tgz")) == [Member("a", "file")]


def test_volume_of_a_container() -> None:
    info = {
        "Image": "sha256:x",
        "Mounts": [
            {"Type": "bind", "Destination": "/src", "Source": "/src"},
            {"Type": "volume", "Destination": DATA_MOUNT, "Name": "vol1"},
        ],
        "Config": {"Labels": {"containai.data-volume": "label-vol"}},
    }
    assert data_volume_of(info) == "vol1"
    assert data_volume_of({"Config": {"Labels": {"containai.data-volume": "lv"}}}) == "lv"
    assert data_volume_of({}) is None
    assert target_of(Target("c", info, "/w")) == VolumeTarget("vol1", "c", "sha256:x")
    with pytest.raises(NotFound, match="container 'c' has no data volume"):
        target_of(Target("c", {"Mounts": []}, "/w"))


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
def _helper_row(name: str, owner: str, volume: str, staging: str = "", age_h: float = 0) -> str:
    import json

    created = datetime(2025, 1, 1, 12, tzinfo=UTC).timestamp() - age_h * 3600
    when = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")
    return json.dumps(
        {
            "id": "id-" + name,
            "name": name,
            "state": "created",
            "created": when,
            "mounts": volume,
            "containai.helper.owner": owner,
            "containai.helper.volume": volume,
            "containai.helper.staging": staging,
        }
    )


def leftover_service(engine: FakeEngine, streams: FakeStreams | None = None) -> VolumeArchives:
    return VolumeArchives(
        engine,  # type: ignore[arg-type]
        streams or FakeStreams(),
        token=lambda: "t0k",
        owner="me",
        owner_alive=lambda owner: {"dead": False, "live": True}.get(owner),
        clock=lambda: datetime(2025, 1, 1, 12, tzinfo=UTC),
    )


def test_an_import_removes_dead_helpers_and_their_staging_but_not_live_ones() -> None:
    engine = FakeEngine([IMG], volumes=["v"])
    engine.ps_lines = [
        _helper_row("containai-helper-dead", "dead", "v", ".containai-import-dead"),
        _helper_row("containai-helper-live", "live", "v", ".containai-import-live"),
        _helper_row("containai-helper-far", "other-host", "v", ".containai-import-far", 1),
        _helper_row("containai-helper-old", "", "v", "", 2),  # an older cai's, 2 h old
    ]
    leftover_service(engine).restore(VolumeTarget("v"), Path("a.tgz"), [], owner=(1000, 1001))
    removed = [c for c in engine.calls if c[:2] == ("run", "rm")]
    assert removed == [("run", "rm", "containai-helper-dead", "containai-helper-old")]
    sweep = next(args for args in engine_created(engine) if SWEEP_SCRIPT in args)
    keep = sweep[sweep.index(SWEEP_SCRIPT) + 2 :]
    assert keep == [".containai-import-far", ".containai-import-live"]
    swap = next(args for args in engine_created(engine) if SWAP_SCRIPT in args)
    assert swap[-1] == "1000:1001"  # the volume root is cai's, whatever the archive says
    assert "containai.helper.owner=me" in swap
    assert "containai.helper.staging=.containai-import-t0k" in swap


def engine_created(engine: FakeEngine) -> list[list[str]]:
    return [list(a) for a in engine.created]


def test_an_archive_too_big_for_the_engine_disk_is_refused_before_the_copy() -> None:
    engine, streams = FakeEngine([IMG], volumes=["v"]), FakeStreams()
    engine.df = "overlay 10485760 9437184 1048576 90% /mnt/agent-data\n"  # 1 GiB free of 10
    bomb = [Member("./", "dir"), Member("zeros", "file", size=2 * 1024**3)]
    with pytest.raises(Failed) as err:
        leftover_service(engine, streams).restore(VolumeTarget("v"), Path("bomb.tgz"), bomb)
    text = str(err.value)
    assert "refusing to import bomb.tgz into volume 'v'" in text and "nothing was changed" in text
    assert "2.0GB" in text and "\n" not in text
    assert streams.calls == []  # nothing copied
    assert not any(SWAP_SCRIPT in args for args in engine_created(engine))


def test_a_failed_copy_says_the_volume_is_unchanged() -> None:
    engine = FakeEngine([IMG], volumes=["v"])
    streams = FakeStreams(fail=Failed("docker cp failed: file name too long"))
    with pytest.raises(Failed, match="file name too long; volume 'v' was left as it was"):
        leftover_service(engine, streams).restore(VolumeTarget("v"), Path("a.tgz"), [])


def test_gc_lists_and_removes_dead_helpers_and_export_temp_files() -> None:
    engine = FakeEngine([IMG], volumes=["v"])
    engine.ps_lines = [
        _helper_row("containai-helper-dead", "dead", "v", ".containai-import-dead"),
        _helper_row("containai-helper-live", "live", "v", ".containai-import-live"),
    ]

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
    sweep = next(args for args in engine_created(engine) if SWEEP_SCRIPT in args)
    assert sweep[sweep.index(SWEEP_SCRIPT) + 2 :] == [".containai-import-live"]
