"""The engine adapter against the real engine: JSON in, domain errors out (exit codes)."""

from __future__ import annotations

import uuid

import pytest

from containai.adapters.engine import DockerEngine, context_exists, current_docker_context
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
    assert engine.inspect_container(missing) is None
    assert engine.inspect_volume(missing) is None
    assert engine.inspect_image(f"{missing}:none") is None
    assert engine.inspect_containers([missing]) == []
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
        engine.create_container(["--name", "Bad Name!", "containai-base:bookworm"])
    assert err.value.exit_code == 1 and "create" in str(err.value)


def test_label_listing_and_volume_round_trip() -> None:
    engine = DockerEngine("default")
    tag = uuid.uuid4().hex[:8]
    volume = f"cai-test-{tag}"
    name = f"cai-test-engine-{tag}"
    try:
        engine.create_volume(volume, {"containai.test": tag})
        assert engine.inspect_volume(volume)["Labels"]["containai.test"] == tag  # type: ignore[index]
        engine.create_container(
            [
                "--name",
                name,
                "--label",
                f"containai.test={tag}",
                "--entrypoint",
                "true",
                "containai-base:bookworm",
            ]
        )
        rows = engine.list_containers({"containai.test": tag})
        assert [r["Names"] for r in rows] == [name]
        assert engine.container_ids({"containai.test": tag})
        assert engine.list_containers({"containai.test": "other"}) == []
    finally:
        docker("rm", "-f", name)
        docker("volume", "rm", "-f", volume)
