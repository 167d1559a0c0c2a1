"""``Lifecycle.ensure_running``'s decisions over the in-memory fakes (tests/fakes.py):
create, start, attach, recreate, --reset's volume, the runtime, the volume owner, a port
taken meanwhile. The real-engine journeys are in tests/e2e; these pin the decisions."""

from __future__ import annotations

import re
from typing import Any

import pytest

from containai.domain import labels as L
from containai.domain.egress import Policy
from containai.domain.engine_objects import Mount, VolumeInfo
from containai.domain.errors import Failed, PortTaken, Refused
from containai.services.egress import Attachment
from containai.services.lifecycle import Lifecycle
from containai.services.run_request import Ready, RunRequest
from containai.services.workspace import Workspace
from tests.fakes import (
    EPOCH,
    Box,
    FakeConfig,
    FakeEngine,
    FakeHost,
    FakeImages,
    FakeLocks,
    FakeSsh,
    managed_labels,
)

WS = "/src/app"
NAME = "app-main"  # the generated name of WS on branch main
NEVER_ASKED: Any = lambda _name, _sessions: pytest.fail("asked to confirm")  # noqa: E731


class World:
    """A Lifecycle over fakes, and the fakes to look at afterwards."""

    def __init__(self, *boxes: Box, egress: Any = None, **engine: Any) -> None:
        self.engine = FakeEngine(**engine)
        for box in boxes:
            self.engine.add(box)
        self.ssh = FakeSsh()
        self.config = FakeConfig()
        self.locks = FakeLocks()
        self.host = FakeHost()
        self.warnings: list[str] = []
        self.lifecycle = Lifecycle(
            self.engine,
            self.ssh,
            self.config,
            self.locks,
            self.host,
            FakeImages(),
            warn=self.warnings.append,
            clock=lambda: EPOCH,
            egress=egress,
        )

    def run(self, **flags: Any) -> Ready:
        request = RunRequest(workspace=Workspace(WS, "main"), **flags)
        return self.lifecycle.ensure_running(request, NEVER_ASKED)

    def box(self, name: str = NAME) -> Box:
        box = self.engine.box(name)
        assert box is not None, f"no container {name}"
        return box

    def volume_of(self, name: str = NAME) -> str:
        spec = self.box(name).spec
        assert spec is not None
        return next(m.source for m in spec.mounts if m.kind == "volume")


def existing(state: str, port: int = 2300, **labels: str) -> Box:
    return Box(NAME, state, managed_labels(WS, port, **labels))


def test_create_when_missing() -> None:
    w = World()
    ready = w.run()
    assert (ready.name, ready.action, ready.ssh_port, ready.runtime) == (
        NAME,
        "create",
        2300,
        "runsc",  # auto: the strongest the engine has
    )
    box = w.box()
    assert box.state == "running"
    assert box.labels[L.WORKSPACE] == WS and box.labels[L.SSH_PORT] == "2300"
    assert w.engine.volumes["containai-data"].labels.get(L.MANAGED) == L.TRUE
    assert w.volume_of() == "containai-data"
    assert w.engine.calls_of("copy_in"), "the SSH keys were not sent"
    assert NAME in w.ssh.pins and w.ssh.written[NAME]["port"] == 2300
    assert w.config.states[WS]["container_name"] == NAME
    assert w.config.states[WS]["created_at"] == "2026-01-01T00:00:00Z"
    assert w.engine.verbs().index("create") < w.engine.verbs().index("start")


def test_start_when_stopped() -> None:
    w = World(existing("exited"))
    ready = w.run()
    assert (ready.action, ready.ssh_port, ready.runtime) == ("start", 2300, "runsc")
    assert w.box().state == "running"
    assert w.engine.calls_of("start") == [("start", NAME)]
    assert not w.engine.calls_of("create") and not w.engine.calls_of("remove")


def test_a_container_left_created_gets_its_keys_again() -> None:
    w = World(existing("created"))
    assert w.run().action == "start"
    assert w.engine.calls_of("copy_in") and NAME in w.ssh.pins


def test_attach_when_running() -> None:
    w = World(existing("running"))
    ready = w.run()
    assert (ready.action, ready.ssh_port, ready.data_volume) == ("attach", 2300, "containai-data")
    for verb in ("create", "start", "remove", "stop", "create_volume"):
        assert not w.engine.calls_of(verb), verb
    assert ("wait_ready", NAME) in w.ssh.calls


def test_recreate_on_fresh_keeps_volume_and_port() -> None:
    w = World(existing("running", **{L.DATA_VOLUME: "kept-volume"}))
    old = w.box()
    ready = w.run(fresh=True)
    assert (ready.action, ready.ssh_port, ready.data_volume) == ("recreate", 2300, "kept-volume")
    verbs = w.engine.verbs()
    assert verbs.index("remove") < verbs.index("create") < verbs.index("start")
    assert w.box() is not old and w.box().state == "running"
    assert w.volume_of() == "kept-volume"
    assert ("exit_master", NAME) in w.ssh.calls


def test_reset_makes_a_new_volume_and_records_it() -> None:
    w = World(existing("running"))
    ready = w.run(reset=True)
    assert ready.action == "recreate"
    volume = ready.data_volume
    assert re.fullmatch(r"app-main-20260101000000-[0-9a-f]{6}", volume), volume
    assert w.engine.volumes[volume].labels == {L.MANAGED: L.TRUE, L.WORKSPACE: WS}
    assert w.volume_of() == volume != "containai-data"
    assert w.config.states[WS]["data_volume"] == volume
    # recorded before the container is made, so a run that dies later still points at it
    first = next(i for i, (_ws, v) in enumerate(w.config.writes) if "data_volume" in v)
    assert w.config.writes[first][1] == {"data_volume": volume}


def test_reset_without_a_container_creates_with_a_new_volume() -> None:
    w = World()
    ready = w.run(reset=True)
    assert ready.action == "create" and ready.data_volume != "containai-data"
    assert w.volume_of() == ready.data_volume


def test_a_runtime_the_engine_lacks_is_an_error_and_nothing_is_made() -> None:
    w = World(runtime_names=("runc", "runsc"))
    with pytest.raises(Failed, match=r"runtime 'sysbox-runc' is not available.*runc, runsc"):
        w.run(runtime="sysbox-runc")
    for verb in ("create", "create_volume", "start"):
        assert not w.engine.calls_of(verb), verb


def test_a_weaker_runtime_from_a_repository_is_raised_to_the_best() -> None:
    w = World(runtime_names=("runc", "runsc"))
    ready = w.run(runtime="runc", runtime_may_lower=False, runtime_source="/src/app/.containai")
    assert ready.runtime == "runsc" and w.box().labels[L.RUNTIME] == "runsc"
    assert any("weaker" in m and "/src/app/.containai" in m for m in w.warnings)


def test_the_command_line_may_lower_the_runtime() -> None:
    w = World(runtime_names=("runc", "runsc"))
    assert w.run(runtime="runc").runtime == "runc"
    assert w.box().labels[L.WEAKENED] == L.TRUE


def test_auto_on_a_plain_engine_warns_and_uses_runc() -> None:
    w = World(runtime_names=("runc",))
    assert w.run().runtime == "runc"
    assert any("no sandboxing runtime" in m for m in w.warnings)


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        ({L.MANAGED: L.TRUE, L.WORKSPACE: "/src/other"}, "belongs to workspace /src/other"),
        ({}, "was not created by cai"),
    ],
)
def test_a_volume_that_is_not_this_workspaces_is_refused(
    labels: dict[str, str], reason: str
) -> None:
    w = World(volumes={"containai-data": VolumeInfo("containai-data", labels)})
    with pytest.raises(Refused, match=reason):
        w.run()
    assert not w.engine.calls_of("create") and not w.engine.calls_of("create_volume")


def test_a_volume_named_on_the_command_line_is_taken_whoever_made_it() -> None:
    other = VolumeInfo("shared", {L.MANAGED: L.TRUE, L.WORKSPACE: "/src/other"})
    w = World(volumes={"shared": other})
    ready = w.run(data_volume="shared", data_volume_explicit=True)
    assert ready.data_volume == "shared" and w.volume_of() == "shared"


def test_a_port_taken_before_the_first_start_is_leased_again() -> None:
    """The engine refuses to publish the port leased at create (someone bound it
    meanwhile): the container is made again on the next free port."""
    w = World()

    def taken_at_start(engine: FakeEngine, n: int) -> None:
        if n == 1:
            w.host.bound.add(2300)
            raise PortTaken(
                "docker start failed: Bind for 127.0.0.1:2300: port is already allocated"
            )

    w.engine.hooks["start"] = taken_at_start
    ready = w.run()
    assert (ready.action, ready.ssh_port) == ("create", 2301)
    assert w.box().labels[L.SSH_PORT] == "2301" and w.box().state == "running"
    assert len(w.engine.calls_of("create")) == 2 and w.engine.calls_of("remove")
    assert w.ssh.written[NAME]["port"] == 2301


def test_a_stopped_container_whose_port_was_taken_is_recreated_on_a_new_port() -> None:
    w = World(existing("exited", **{L.DATA_VOLUME: "kept-volume"}))
    w.host.bound.add(2300)
    ready = w.run()
    assert (ready.action, ready.ssh_port, ready.data_volume) == ("recreate", 2301, "kept-volume")
    assert w.volume_of() == "kept-volume"


class GatewayTakingPorts:
    """An egress whose gateway cannot publish the ports in ``taken`` (the engine still
    holds them): its start, beside the container's, fails as the engine says it."""

    def __init__(self, taken: set[int]) -> None:
        self.taken = taken
        self.ports: list[int] = []

    def gateway_image(self) -> str:
        return "containai-gateway:x"

    def prepare(self, name: str, workspace: str) -> tuple[Attachment, Any]:
        return Attachment(f"cai-net-{name}", "100.64.0.2", True), None

    def ensure(
        self, name: str, workspace: str, port: int, policy: Policy, runtime: str, *a: Any, **k: Any
    ) -> Any:
        self.ports.append(port)
        if port in self.taken:
            raise PortTaken(f"Bind for 127.0.0.1:{port} failed: port is already allocated")
        return Attachment(f"cai-net-{name}", "100.64.0.2")

    def running(self, name: str) -> bool:
        return True

    def stop(self, name: str) -> None:  # pragma: no cover - not reached here
        pass


def test_a_port_the_engine_holds_at_create_is_leased_again() -> None:
    """The gateway (started beside the container) cannot publish the port: the container
    is made again on the next port, and a refused port is not tried again."""
    gateway = GatewayTakingPorts({2300, 2301})
    w = World(egress=gateway)
    ready = w.run(egress=Policy("allowlist", (), (), ()))
    assert gateway.ports == [2300, 2301, 2302]
    assert ready.ssh_port == 2302 and w.box().labels[L.SSH_PORT] == "2302"
    assert w.box().spec is not None and w.box().spec.dns == ("100.64.0.2",)


def test_a_port_the_engine_keeps_holding_ends_in_an_error() -> None:
    w = World(egress=GatewayTakingPorts(set(range(2300, 2310))))
    with pytest.raises(Failed, match="no SSH port could be published") as err:
        w.run(egress=Policy("allowlist", (), (), ()))
    assert "2300, 2301, 2302" in str(err.value)
    assert not w.engine.containers  # the last one made was removed too


class Placement:
    """A remote engine's workspace placement (``services/remote.RemotePlacement``),
    recording what lifecycle asks of it."""

    jump = "me@box"
    context = "remote"

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def mounts(self, name: str, workspace: str) -> list[Mount]:
        self.calls.append(("mounts", name, workspace))
        return [Mount("volume", f"{name}-ws", workspace)]

    def after_create(self, name: str, workspace: str, uid: int, gid: int, ca: Any) -> None:
        self.calls.append(("after_create", name, workspace))

    def link(self, name: str, workspace: str) -> str | None:
        self.calls.append(("link", name, workspace))
        return None


def test_on_a_remote_engine_the_workspace_is_a_volume_and_the_entry_jumps() -> None:
    """SPEC 16: no bind mount of this machine's files, the copy sent after create, the
    entry through the context's host, the `cai-<name>` git remote once ready."""
    world = World()
    placement = Placement()
    world.lifecycle.remote = world.lifecycle.creation.remote = placement
    world.ssh.calls.clear()
    ready = world.run()
    spec = world.box().spec
    assert spec is not None
    assert not [m for m in spec.mounts if m.kind == "bind"]
    assert Mount("volume", f"{NAME}-ws", WS) in spec.mounts
    assert [c[0] for c in placement.calls] == ["mounts", "after_create", "link"]
    assert world.ssh.contexts[NAME] == "remote"
    assert (ready.action, ready.name) == ("create", NAME)


def test_a_new_workspace_is_looked_up_in_one_listing() -> None:
    """The workspace's own container (by label) and the names a new one may not take
    come from one listing of the engine: no inspect per candidate name."""
    w = World(
        Box(NAME, "exited", {"com.example": "not cai's"}),  # holds the first candidate
        Box("app-main-3", "exited", managed_labels("/src/other")),
    )
    ready = w.run()
    assert ready.name == "app-main-2" and ready.action == "create"
    verbs = w.engine.verbs()
    assert verbs[0] == "list_containers" and "find" not in verbs[: verbs.index("create")]
    assert w.box(NAME).labels == {"com.example": "not cai's"}  # untouched


def test_the_listing_finds_the_workspace_container_whatever_its_name() -> None:
    w = World(Box("custom", "exited", managed_labels(WS)))
    ready = w.run()
    assert (ready.name, ready.action) == ("custom", "start")
    assert w.engine.verbs()[:2] == ["list_containers", "find"]


def egress_world(*boxes: Box) -> World:
    from containai.services.egress import Egress

    w = World(*boxes)
    egress = Egress(w.engine, image=lambda: "containai-gateway:x")
    lc = w.lifecycle
    lc.egress = lc.gateways.egress = lc.creation.egress = egress
    return w


ALLOWLIST = Policy("allowlist", (), (), ())


def test_the_network_is_made_beside_the_checks_and_goes_when_the_create_fails() -> None:
    """The workspace network is made while the runtimes, the volume and the image are
    asked for; if the container is not made after all (here: a runtime the engine does
    not have), the network made for it goes again: nothing is left."""
    w = egress_world()
    w.engine.runtime_names = ("runc",)
    with pytest.raises(Exception, match="runsc"):
        w.run(egress=ALLOWLIST, runtime="runsc", runtime_may_lower=False)
    assert w.engine.calls_of("create_network") and w.engine.networks == {}
    assert not w.engine.containers


def test_a_network_that_was_there_is_kept_when_the_create_fails() -> None:
    w = egress_world()
    w.engine.runtime_names = ("runc",)
    w.engine.create_network(
        "cai-net-app-main",
        {"containai.network-of": NAME, "containai.gateway-address": "100.64.0.2"},
        internal=True,
        subnet="100.64.0.0/28",
    )
    with pytest.raises(Exception, match="runsc"):
        w.run(egress=ALLOWLIST, runtime="runsc", runtime_may_lower=False)
    assert "cai-net-app-main" in w.engine.networks


def test_behind_the_gateway_the_create_makes_both_and_keeps_the_network() -> None:
    w = egress_world()
    ready = w.run(egress=ALLOWLIST)
    assert ready.action == "create" and w.box().state == "running"
    assert w.box(f"{NAME}-gateway").state == "running"
    assert list(w.engine.networks) == [f"cai-net-{NAME}"]


def test_a_restart_behind_the_gateway_looks_at_the_gateway_once() -> None:
    """A stopped pair: the gateway is inspected once (whether to stop it first, then how
    to start it), its policy rendered in, and both started; a running gateway of a
    stopped container is stopped first, as before, and then looked at afresh."""
    w = egress_world()
    w.run(egress=ALLOWLIST)
    gateway = f"{NAME}-gateway"
    for name in (NAME, gateway):
        w.engine.stop(name)
    w.engine.calls.clear()
    ready = w.run(egress=ALLOWLIST)
    assert ready.action == "start" and w.box(gateway).state == "running"
    assert w.engine.calls_of("find").count(("find", gateway)) == 1
    assert ("copy_in", gateway, "/") in w.engine.calls  # the policy, rendered afresh
    w.engine.stop(NAME)  # the gateway still runs
    w.engine.calls.clear()
    assert w.run(egress=ALLOWLIST).action == "start"
    assert ("stop", gateway) in w.engine.calls
    assert w.engine.calls_of("find").count(("find", gateway)) == 3  # stopped: asked again
    assert w.box(gateway).state == "running"
