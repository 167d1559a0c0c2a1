"""End-to-end tests touch only what they make: every managed container that was on the
engine before the session must still be there after it (a user's own, or the demo's)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.conftest import docker, engine_answers


def _managed_ids() -> set[str] | None:
    if not shutil.which("docker") or not engine_answers():
        return None
    listed = docker("ps", "-a", "-q", "--no-trunc", "--filter", "label=containai.managed")
    return set(listed.stdout.split()) if listed.returncode == 0 else None


@pytest.fixture(scope="session", autouse=True)
def bystanders_survive() -> Iterator[None]:
    before = _managed_ids()
    yield
    after = _managed_ids()
    if before is None or after is None:
        return
    gone = sorted(before - after)
    if gone:
        pytest.fail(
            f"the end-to-end tests removed {len(gone)} managed container(s) they did not "
            f"make: {', '.join(i[:12] for i in gone)}",
            pytrace=False,
        )
