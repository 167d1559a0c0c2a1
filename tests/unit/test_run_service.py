"""The run use case (``services/run.py``) with in-memory ports: the hot path answers
from the cache and a live control master alone; anything else goes down the full path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pytest

from containai.domain.errors import UsageError
from containai.services.run import Request, agent_name, start
from containai.services.workspace import Workspace

WS = "/src/app"


class FullPath(Exception):
    """Raised where the use case leaves the hot path (it asks for the run's settings)."""


class Settings:
    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = values

    def value(self, key: str) -> Any:
        return self.values[key]


class Notes:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)


class Ssh:
    def __init__(self, alive: set[str]) -> None:
        self.alive = alive

    def master_alive(self, name: str) -> bool:
        return name in self.alive

    def ssh_argv(
        self, name: str, remote: Sequence[str] | str | None, *, tty: bool, extra: Sequence[str] = ()
    ) -> list[str]:
        return ["ssh", *extra, "-t" if tty else "-T", f"cai-{name}", str(remote)]

    def remote_command(self, workspace: str, argv: Sequence[str], env: Mapping[str, str]) -> str:
        return f"cd {workspace} && {' '.join(argv) or 'login-shell'}"


class Cache:
    def __init__(self, entries: dict[str, str]) -> None:
        self.entries = entries

    def read(self, workspace: str) -> str | None:
        return self.entries.get(workspace)

    def write(self, workspace: str, name: str) -> None:
        self.entries[workspace] = name


class World:
    def __init__(self, cached: dict[str, str], alive: set[str]) -> None:
        self.env: dict[str, str] = {}
        self.out = Notes()
        self.ssh = Ssh(alive)
        self.container_cache = Cache(cached)
        self.settings_asked: list[str | None] = []

    def settings(self, workspace: str | None, cli: Mapping[str, Any] | None = None) -> Settings:
        if cli is not None:
            raise FullPath
        self.settings_asked.append(workspace)
        return Settings({"agent.default": "shell"})

    def lifecycle(self, settings: Any) -> Any:
        raise AssertionError("the hot path never builds the lifecycle")


def request(command: str = "exec", **fields: Any) -> Request:
    fields.setdefault("rest", ["ls", "-la"] if command == "exec" else [])
    return Request(command=command, workspace=Workspace(WS, "main"), **fields)


def test_exec_attaches_through_a_live_master_without_settings_or_engine() -> None:
    world = World({WS: "app-main"}, {"app-main"})
    outcome = start(request(stdin_tty=False, stdout_tty=True), world)  # type: ignore[arg-type]
    assert outcome.argv == ["ssh", "-T", "cai-app-main", f"cd {WS} && ls -la"]
    assert outcome.plan is None
    assert world.settings_asked == []
    assert world.out.lines == ["attaching to 'app-main' through its live SSH control master"]


def test_exec_takes_a_tty_only_when_stdin_is_one() -> None:
    world = World({WS: "app-main"}, {"app-main"})
    outcome = start(request(stdin_tty=True, stdout_tty=False), world)  # type: ignore[arg-type]
    assert outcome.argv is not None and "-t" in outcome.argv


def test_run_reads_the_default_agent_once_attached_fast() -> None:
    world = World({WS: "app-main"}, {"app-main"})
    outcome = start(request("run", stdin_tty=True, stdout_tty=True), world)  # type: ignore[arg-type]
    assert outcome.argv == ["ssh", "-t", "cai-app-main", f"cd {WS} && login-shell"]
    assert world.settings_asked == [WS]


@pytest.mark.parametrize(
    ("cached", "alive", "fields"),
    [
        ({}, {"app-main"}, {}),  # nothing cached
        ({WS: "app-main"}, set(), {}),  # the master is gone
        ({WS: "app-main"}, {"app-main"}, {"fresh": True}),
        ({WS: "app-main"}, {"app-main"}, {"reset": True}),
        ({WS: "app-main"}, {"app-main"}, {"keep": True}),
        ({WS: "app-main"}, {"app-main"}, {"detached": True}),
        ({WS: "app-main"}, {"app-main"}, {"dry_run": True}),
        ({WS: "app-main"}, {"app-main"}, {"root": True}),
        ({WS: "app-main"}, {"app-main"}, {"data_volume": "vol"}),
        ({WS: "app-main"}, {"app-main"}, {"container": "app-main"}),
    ],
)
def test_anything_unproven_or_changing_takes_the_full_path(
    cached: dict[str, str], alive: set[str], fields: dict[str, Any]
) -> None:
    world = World(cached, alive)
    with pytest.raises(FullPath):
        start(request(**fields), world)  # type: ignore[arg-type]


def test_a_refused_workspace_stops_before_the_cache_is_read() -> None:
    world = World({"/tmp": "tmp-main"}, {"tmp-main"})
    shared = Workspace("/tmp", "main", "/tmp is a shared directory (sticky bit, like /tmp)")
    refused = Request(command="exec", workspace=shared, rest=["true"])
    with pytest.raises(UsageError):
        start(refused, world)  # type: ignore[arg-type]


def test_agent_name_is_the_argument_else_the_setting() -> None:
    settings = Settings({"agent.default": "codex"})
    assert agent_name("gemini", settings) == "gemini"  # type: ignore[arg-type]
    assert agent_name(None, settings) == "codex"  # type: ignore[arg-type]


class _Target:
    exists = True
    name = "app-main"
    state = "exited"
    workspace = WS
    info = None
    labels: ClassVar[dict[str, str]] = {"containai.ssh-port": "2300"}


class _Lookup:
    def find(self, workspace: Any, container: Any) -> _Target:
        return _Target()


class _Probe:
    def __init__(self, free: bool) -> None:
        self.free = free
        self.asked: list[int] = []

    def port_is_free(self, port: int) -> bool:
        self.asked.append(port)
        return self.free


class _Images:
    def planned_tag(self, template: str) -> str:
        return f"containai:{template}-0123456789abcdef"


class _Lifecycle:
    def __init__(self, host: _Probe) -> None:
        self.host = host
        self.images = _Images()


class _Selection:
    context = "remote"


class PlanWorld(World):
    """A stopped container on an engine whose port probe is the lifecycle's (a remote
    engine's loopback), not this machine's."""

    def __init__(self, here: _Probe, there: _Probe) -> None:
        super().__init__({}, set())
        self.host = here
        self.there = there
        self.lookup = _Lookup()
        self.selection = _Selection()

    def lifecycle(self, settings: Any) -> Any:
        return _Lifecycle(self.there)


@pytest.mark.parametrize(("free_there", "action"), [(True, "start"), (False, "recreate")])
def test_dry_run_asks_the_lifecycles_port_probe(free_there: bool, action: str) -> None:
    from containai.services.run_plan import dry_run
    from containai.services.run_request import RunRequest

    here, there = _Probe(free=not free_there), _Probe(free=free_there)
    world = PlanWorld(here, there)
    req = RunRequest(Workspace(WS, "main"))
    settings = Settings({"agent.default": "shell"})
    plan = dry_run(request("run", detached=True), req, settings, world)  # type: ignore[arg-type]
    assert plan["action"] == action
    assert there.asked == [2300] and here.asked == []
