"""The engine adapter against the real engine: JSON in, domain errors out (exit codes)."""

from __future__ import annotations

import uuid

import pytest

from containai.adapters.engine import DockerEngine, context_exists, current_docker_context
from containai.domain.engine_objects import ContainerSpec
from containai.domain.errors import EngineUnreachable, Failed, NotFound
from tests.conftest import docker

pytestmark = pytest.mark.usefixtures("engine")


def test_version_and_runtimes() -> None:
    engine = DockerEngine("default")
    assert engine.server_version()
    assert "runc" in engine.runtimes()


def test_missing_objects_are_none_or_not_found() -> None:
    engine = DockerEngine("default")
    missing = f"cai-missing-{uuid.uuid4().hex[:8]}"
    assert engine.find(missing) is None
    assert engine.volume(missing) is None
    assert engine.network(missing) is None
    assert engine.image(f"{missing}:none") is None
    assert engine.image(f"{missing}:none") is None
    assert engine.find_many([missing]) == []
    with pytest.raises(NotFound) as err:
        engine.start(missing)
    assert err.value.exit_code == 4 and missing in str(err.value)


def test_unreachable_engine_is_exit_3_naming_it() -> None:
    engine = DockerEngine(
        None,
        env={
            "DOCKER_HOST": "unix:///nonexistent/docker.sock",
            "PATH": "/usr/local/bin:/usr/bin:/bin",
        },
    )
    with pytest.raises(EngineUnreachable) as err:
        engine.version()
    assert err.value.exit_code == 3
    assert "/nonexistent/docker.sock" in str(err.value)


def test_unknown_context_is_exit_3(tmp_path: object) -> None:
    engine = DockerEngine("no-such-context-here")
    with pytest.raises(EngineUnreachable) as err:
        engine.version()
    assert "no-such-context-here" in str(err.value)
    assert not context_exists("no-such-context-here", {"HOME": str(tmp_path)})
    assert context_exists("default", {"HOME": str(tmp_path)})
    assert current_docker_context({"HOME": str(tmp_path)}) == "default"
    assert current_docker_context({"DOCKER_HOST": "unix:///x"}) is None


def test_other_failures_are_failed_with_the_engines_words() -> None:
    engine = DockerEngine("default")
    with pytest.raises(Failed) as err:
        engine.create(ContainerSpec(name="Bad Name!", image="containai-base:bookworm"))
    assert err.value.exit_code == 1 and "create" in str(err.value)


def test_label_listing_and_volume_round_trip() -> None:
    engine = DockerEngine("default")
    tag = uuid.uuid4().hex[:8]
    volume = f"cai-test-{tag}"
    name = f"cai-test-engine-{tag}"
    try:
        engine.create_volume(volume, {"containai.test": tag})
        found_volume = engine.volume(volume)
        assert found_volume is not None and found_volume.labels["containai.test"] == tag
        made = engine.create(
            ContainerSpec(
                name=name,
                labels={"containai.test": tag, "containai.workspace": "/src/a,b=c"},
                entrypoint="true",
                image="containai-base:bookworm",
            )
        )
        rows = engine.list_containers({"containai.test": tag}, keys=["containai.workspace"])
        assert [(r.id, r.name, r.state) for r in rows] == [(made, name, "created")]
        assert rows[0].labels == {"containai.workspace": "/src/a,b=c"}  # exact, comma and all
        assert engine.container_ids({"containai.test": tag}) == [made]
        assert engine.list_containers({"containai.test": "other"}) == []
        info = engine.find(name)
        assert info is not None and info.labels["containai.test"] == tag
        assert engine.remove_stopped([made]).removed == (made,)
        assert engine.find(name) is None
    finally:
        docker("rm", "-f", name)
        docker("volume", "rm", "-f", volume)
