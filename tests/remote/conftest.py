"""``remote_engine``: one remote-looking Docker engine for the whole session
(tests/remote/fixture.py; docs/remote.md). Skips when the machine cannot host
it (not root, OpenSSH's server missing, ...), fails instead when ``CI=true``."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.conftest import require_engine
from tests.remote.fixture import RemoteEngine, Unavailable, start

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(msg: str) -> None:
    if IN_CI:
        pytest.fail(f"{msg} -- the remote-engine tests never skip in CI")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def remote_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteEngine]:
    require_engine()  # the local engine: images come from it
    try:
        engine = start(tmp_path_factory.mktemp("remote"))
    except Unavailable as exc:
        unavailable(str(exc))
        raise  # unreachable: unavailable() raises
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def remote_base(remote_engine: RemoteEngine) -> str:
    """A base image (with perl) present on the remote engine, sent there by save|load."""
    try:
        return remote_engine.base_image()
    except Unavailable as exc:
        unavailable(str(exc))
        raise
