"""Lifecycle rules with in-memory fakes of the Protocols (no engine, no mocks):
lookup order, refusals, port leases, plans."""

from __future__ import annotations

from typing import Any

import pytest

from containai.domain.errors import Failed, OutOfMemory, Refused
from containai.services.container_keys import key_tar
from containai.services.lifecycle import Lifecycle
from containai.services.lookup import Lookup, entry_elsewhere
from containai.services.port_lease import lease_port
from containai.services.run_plan import plan_engine as run_plan
from containai.services.run_request import RunRequest
from containai.services.workspace import Workspace
from tests.fakes import Box, FakeConfig, FakeEngine, FakeHost, FakeImages, FakeSsh

WS = "/src/app"


def container(name: str, labels: dict[str, str], status: str = "running") -> Box:
    return Box(name, status, labels)


def managed(ws: str = WS, port: int = 2300, **extra: str) -> dict[str, str]:
    return {
        "containai.managed": "true",
        "containai.workspace": ws,
        "containai.ssh-port": str(port),
        "containai.data-volume": "containai-data",
        "containai.runtime": "runsc",
        **extra,
    }


def lifecycle(
    containers: dict[str, Box],
    state: dict[str, Any] | None = None,
    bound: set[int] | None = None,
) -> Lifecycle:
    engine = FakeEngine()
    for box in containers.values():
        engine.add(box)
    return Lifecycle(
        engine,
        FakeSsh(),  # type: ignore[arg-type]
        FakeConfig(state or {}),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        FakeHost(bound or set()),
        FakeImages({"default": "fedcba9876543210"}),
    )


WORKSPACE = Workspace(WS, "main")


def lease(lc: Lifecycle, *args: Any, **kwargs: Any) -> int:
    return lease_port(lc.engine, lc.host, *args, **kwargs)


def test_generated_name_when_nothing_exists() -> None:
    target = lifecycle({}).lookup.find(WORKSPACE)
    assert (target.name, target.exists) == ("app-main", False)


def test_state_name_wins_when_it_still_belongs_here() -> None:
    lc = lifecycle({"custom": container("custom", managed())}, {WS: {"container_name": "custom"}})
    assert lc.lookup.find(WORKSPACE).name == "custom"


def test_stale_state_name_falls_back_to_label_lookup() -> None:
    lc = lifecycle(
        {"custom": container("custom", managed(ws="/other")), "byl": container("byl", managed())},
        {WS: {"container_name": "custom"}},
    )
    assert lc.lookup.find(WORKSPACE).name == "byl"


def test_several_containers_for_one_workspace_is_refused() -> None:
    lc = lifecycle({"a": container("a", managed()), "b": container("b", managed())})
    with pytest.raises(Refused, match="--container"):
        lc.lookup.find(WORKSPACE)


def test_collision_with_another_workspace_gets_a_suffix() -> None:
    lc = lifecycle(
        {
            "app-main": container("app-main", managed(ws="/elsewhere/app")),
            "app-main-2": container("app-main-2", {"unmanaged": "1"}),
        }
    )
    assert lc.lookup.find(WORKSPACE).name == "app-main-3"


def test_explicit_unmanaged_container_is_refused() -> None:
    lc = lifecycle({"theirs": container("theirs", {})})
    with pytest.raises(Refused, match="not managed"):
        lc.lookup.find(WORKSPACE, "theirs")


def test_port_lease_skips_labelled_and_bound_ports() -> None:
    lc = lifecycle(
        {"x": container("x", managed(ws="/x", port=2300), status="exited")}, bound={2301}
    )
    assert lease(lc, (2300, 2305), None) == 2302
    assert lease(lc, (2300, 2305), 2304) == 2304
    assert lease(lc, (2300, 2305), 2300) == 2302  # preferred but held by a container
    with pytest.raises(Failed, match=r"no free SSH port in 2300\.\.2301"):
        lease(lc, (2300, 2301), None)


@pytest.mark.parametrize(
    ("status", "flags", "action"),
    [
        ("running", {}, "attach"),
        ("exited", {}, "start"),
        ("created", {}, "start"),
        ("running", {"fresh": True}, "recreate"),
        ("exited", {"reset": True}, "recreate"),
    ],
)
def test_plan_actions(status: str, flags: dict[str, bool], action: str) -> None:
    lc = lifecycle({"app-main": container("app-main", managed(), status=status)})
    plan = run_plan(lc.lookup, lc.host, RunRequest(workspace=WORKSPACE, **flags))  # type: ignore[arg-type]
    assert plan["action"] == action
    assert plan["ssh_port"] == 2300 and plan["runtime"] == "runsc"
    assert plan["data_volume"] == (None if flags.get("reset") else "containai-data")
    if flags:  # recreated from today's build: `dry_run` asks the images for its tag
        assert plan["image"] is None and plan["template"] == "default"
        assert lc.images.planned_tag("default") == "containai:default-fedcba9876543210"


def test_plan_for_a_stopped_container_whose_port_was_taken_is_recreate() -> None:
    lc = lifecycle({"app-main": container("app-main", managed(), status="exited")}, bound={2300})
    assert run_plan(lc.lookup, lc.host, RunRequest(workspace=WORKSPACE))["action"] == "recreate"


def test_plan_create_picks_runtime_from_the_engine() -> None:
    life = lifecycle({})
    plan = run_plan(life.lookup, life.host, RunRequest(workspace=WORKSPACE))
    assert (plan["action"], plan["runtime"], plan["container"]) == ("create", "runsc", "app-main")


def test_key_tar_modes() -> None:
    import io
    import tarfile

    data = key_tar(b"PRIVATE", "ssh-ed25519 AAAA host", "ssh-ed25519 BBBB user")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["etc/containai/ssh/ssh_host_ed25519_key"].mode == 0o600
    assert members["etc/containai/ssh/authorized_keys"].mode == 0o644


# Issue 13 item 3: a start the runtime gives up on (too little memory) is one line that
# says so (exit 1), not an engine that "did not answer". The adapter says which
# (``OutOfMemory``, tests/unit/test_engine_adapter.py); the service reads no wording.
def test_a_start_killed_for_memory_names_the_cause() -> None:
    life = lifecycle({})
    cause = "docker start failed: OCI runtime create failed: exit status 137: unknown"
    life.engine.start_errors["app-main"] = OutOfMemory(cause)  # type: ignore[attr-defined]
    with pytest.raises(Failed) as err:
        life._start("app-main")
    text = str(err.value)
    assert "container 'app-main' did not start" in text and "memory limit is too small" in text
    assert "--memory" in text and "\n" not in text and err.value.exit_code == 1
    # the same words in a plain failure are not read as memory
    life.engine.start_errors["app-main"] = Failed(cause)  # type: ignore[attr-defined]
    with pytest.raises(Failed) as err:
        life._start("app-main")
    assert "memory limit" not in str(err.value)


def test_port_lease_keeps_the_port_its_own_gateway_holds() -> None:
    """--fresh: the container is gone but its gateway still publishes the port (bound on
    the host); the preferred port is kept, and no other container may take it."""
    lc = lifecycle(
        {"app-main-gateway": container("app-main-gateway", {"containai.ssh-port": "2300"})},
        bound={2300},
    )
    assert lease(lc, (2300, 2305), 2300, own="app-main") == 2300
    assert lease(lc, (2300, 2305), 2300, own="other-main") == 2301
    assert lease(lc, (2300, 2305), None, own="other-main") == 2301


def test_a_name_whose_ssh_entry_belongs_to_another_engine_is_taken() -> None:
    """SPEC 16: the same workspace on this machine and on a remote box must not share one
    SSH alias, host key and control socket: the second gets the next name."""
    engine, config = FakeEngine(), FakeConfig({})

    def name(ssh: FakeSsh, here: str) -> str:
        lookup = Lookup(engine, config, elsewhere=entry_elsewhere(ssh, here))  # type: ignore[arg-type]
        return lookup.find(WORKSPACE).name

    remote_entry = FakeSsh(names={"app-main"}, contexts={"app-main": "remote"})
    assert name(remote_entry, "") == "app-main-2"  # here: the local engine
    assert name(remote_entry, "remote") == "app-main"  # its own context's entry
    local_entry = FakeSsh(names={"app-main"})
    assert name(local_entry, "") == "app-main"  # a local entry of a local container
    assert name(local_entry, "remote") == "app-main-2"
    # Lifecycle's own lookup judges by the SSH entries it was given.
    lc = Lifecycle(
        engine,
        remote_entry,  # type: ignore[arg-type]
        config,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        FakeHost(set()),
        FakeImages({"default": "fedcba9876543210"}),
    )
    assert lc.lookup.find(WORKSPACE).name == "app-main-2"
