"""The gc service against the real engine through the real adapters (DockerEngine,
SshFiles, ConfigFiles, FileLocks): selection from real ``docker inspect`` data, the
batched re-check by id, one ``docker rm`` for the batch, the engine's own refusal of a
running container, SSH files and workspace state; volumes survive.

The engine is shared with other tests and people, so the engine handed to gc sees
only this test's containers when it *lists* (an extra label filter on ``docker ps``);
every other call (inspect, rm) goes to the engine unchanged.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from containai.adapters.config import ConfigFiles
from containai.adapters.engine import DockerEngine
from containai.adapters.locks import FileLocks
from containai.adapters.ssh import SshFiles
from containai.paths import Paths, resolve_paths
from containai.services.gc import GarbageCollector
from tests.conftest import docker, new_volume_name

pytestmark = [pytest.mark.engine, pytest.mark.timeout(300)]

IMAGE = "containai-base:bookworm"
SCOPE_LABEL = "containai.test-scope"


class ScopedEngine(DockerEngine):
    """The real engine; every `docker ps` sees only containers labelled with this test's
    scope, and `docker rm` refuses (before anything is removed) any container outside it."""

    def __init__(self, scope: str) -> None:
        super().__init__(None)
        self.scope = scope
        self.calls: list[tuple[str, ...]] = []
        self.before_rm: Callable[[], None] | None = None

    def run(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        self.calls.append(tuple(args))
        if args and args[0] == "ps":
            args = ("ps", "--filter", f"label={SCOPE_LABEL}={self.scope}", *args[1:])
        if args and args[0] == "rm":
            targets = [a for a in args[1:] if not a.startswith("-")]
            scopes = docker(
                "container",
                "inspect",
                "--format",
                f'{{{{index .Config.Labels "{SCOPE_LABEL}"}}}}',
                *targets,
            ).stdout.splitlines()
            assert scopes == [self.scope] * len(targets), "gc tried to remove a foreign container"
            if self.before_rm is not None:
                self.before_rm()
        return super().run(*args, **kwargs)


@dataclass
class Scene:
    tmp: Path
    scope: str
    prefix: str
    volume: str
    paths: Paths
    made: list[str] = field(default_factory=list)

    def name(self, short: str) -> str:
        return self.prefix + short

    def workspace(self, short: str) -> Path:
        ws = self.tmp / "ws" / short
        ws.mkdir(parents=True, exist_ok=True)
        return ws

    def make(
        self,
        short: str,
        state: str,
        *,
        managed: bool = True,
        keep: bool = False,
        command: tuple[str, ...] = ("true",),
    ) -> str:
        name = self.name(short)
        args = ["--name", name]
        labels = {
            "containai.managed": "true" if managed else "false",
            "containai.workspace": str(self.workspace(short)),
            "containai.data-volume": self.volume,
            "containai.ssh-port": "2499",
            "containai.runtime": "runc",
            "ai.containai.template": "default",
            SCOPE_LABEL: self.scope,
        }
        if keep:
            labels["containai.keep"] = "true"
        for key, value in labels.items():
            args += ["--label", f"{key}={value}"]
        args += ["--mount", f"type=volume,source={self.volume},target=/data"]
        args += ["--network", "none"]  # nothing here needs one; robust and fast
        if state == "running":
            proc = docker("run", "-d", *args, IMAGE, "sleep", "infinity")
        elif state == "exited":
            proc = docker("run", *args, IMAGE, *command)
        else:
            proc = docker("create", *args, IMAGE, *command)
        assert proc.returncode == 0, proc.stderr
        self.made.append(name)
        return name


def exists(name: str) -> bool:
    return docker("container", "inspect", name).returncode == 0


def state_of(name: str) -> str:
    return docker("container", "inspect", "--format", "{{.State.Status}}", name).stdout.strip()


@pytest.fixture
def scene(tmp_path: Path, engine: None) -> Iterator[Scene]:
    scope = uuid.uuid4().hex[:10]
    volume = new_volume_name()
    made = docker("volume", "create", "--label", f"containai.workspace={tmp_path}/ws", volume)
    assert made.returncode == 0, made.stderr
    paths = resolve_paths({"HOME": str(tmp_path / "home")})
    box = Scene(tmp_path, scope, f"cai-gci-{scope[:6]}-", volume, paths)
    yield box
    # The conftest sweep removes them by workspace label too; be explicit anyway.
    if box.made:
        docker("rm", "-f", *box.made)
    docker("volume", "rm", "-f", volume)


def collector(scene: Scene, engine: ScopedEngine) -> GarbageCollector:
    return GarbageCollector(
        engine,
        SshFiles(scene.paths),
        ConfigFiles(scene.paths),
        FileLocks(scene.paths.locks_dir, timeout=5),
    )


def test_gc_removes_exactly_the_eligible_with_one_rm(scene: Scene) -> None:
    old1, old2 = scene.make("old1", "exited"), scene.make("old2", "exited")
    never = scene.make("never", "created")
    kept = scene.make("kept", "exited", keep=True)
    running = scene.make("running", "running")
    unmanaged = scene.make("unmanaged", "exited", managed=False)
    ssh = SshFiles(scene.paths)
    everyone = [old1, old2, never, kept, running, unmanaged]
    for name in everyone:
        ssh.write_entry(name, port=2499, user="agent")
    config = ConfigFiles(scene.paths)
    config.set_workspace_state(
        str(scene.workspace("old1")), {"container_name": old1, "data_volume": "x"}
    )
    config.set_workspace_state(str(scene.workspace("old2")), {"container_name": "other"})
    engine = ScopedEngine(scene.scope)
    gc = collector(scene, engine)

    young = gc.plan(timedelta(hours=1), "1h")
    assert young.candidates == []
    assert {s.name: s.reason for s in young.spared}[old1].startswith("too young")

    plan = gc.plan(timedelta(0), "0s")
    assert sorted(c.name for c in plan.candidates) == sorted([old1, old2, never])
    spared = {s.name: s.reason for s in plan.spared}
    assert spared[running] == "running" and spared[kept].startswith("kept")
    assert unmanaged not in spared  # never even considered

    engine.calls.clear()
    result = gc.apply(plan)
    assert sorted(c.name for c in result.removed) == sorted([old1, old2, never])
    assert result.failed == []
    assert [c[0] for c in engine.calls if c[0] == "rm"] == ["rm"]  # one batch, one call
    for name in (old1, old2, never):
        assert not exists(name), name
        assert not ssh.entry_path(name).exists()
    for name in (kept, running, unmanaged):
        assert exists(name), name
        assert ssh.entry_path(name).exists()
    assert state_of(running) == "running"
    assert docker("volume", "inspect", scene.volume).returncode == 0  # never a volume
    assert config.workspace_state(str(scene.workspace("old1"))) == {"data_volume": "x"}
    assert config.workspace_state(str(scene.workspace("old2"))) == {"container_name": "other"}


def test_a_container_started_after_listing_is_spared(scene: Scene) -> None:
    never = scene.make("never", "created", command=("sleep", "infinity"))
    old = scene.make("old", "exited")
    engine = ScopedEngine(scene.scope)
    gc = collector(scene, engine)
    plan = gc.plan(timedelta(0), "0s")
    assert sorted(c.name for c in plan.candidates) == sorted([never, old])
    assert docker("start", never).returncode == 0
    result = gc.apply(plan)
    assert [c.name for c in result.removed] == [old]
    spared = {s.name: s for s in result.spared}
    assert spared[never].changed and spared[never].reason.startswith("running")
    assert state_of(never) == "running"


def test_the_engine_refuses_one_started_between_recheck_and_rm(scene: Scene) -> None:
    never = scene.make("never", "created", command=("sleep", "infinity"))
    old = scene.make("old", "exited")
    engine = ScopedEngine(scene.scope)
    gc = collector(scene, engine)
    plan = gc.plan(timedelta(0), "0s")

    def start_it() -> None:
        docker("start", never, check=True)

    engine.before_rm = start_it
    result = gc.apply(plan)
    assert [c.name for c in result.removed] == [old]
    spared = {s.name: s.reason for s in result.spared}
    assert spared[never] == "running (started after it was listed)"
    assert result.failed == []
    assert state_of(never) == "running"


def test_a_container_recreated_under_the_same_name_is_not_removed(scene: Scene) -> None:
    old = scene.make("old", "exited")
    engine = ScopedEngine(scene.scope)
    gc = collector(scene, engine)
    plan = gc.plan(timedelta(0), "0s")
    first_id = plan.candidates[0].id
    docker("rm", old, check=True)
    scene.made.remove(old)
    scene.make("old", "created")  # same name, a new container
    result = gc.apply(plan)
    assert result.removed == []
    assert {s.name: s.reason for s in result.spared}[old] == "no longer exists (removed meanwhile)"
    new_id = docker("container", "inspect", "--format", "{{.Id}}", old).stdout.strip()
    assert new_id and new_id != first_id
