from __future__ import annotations

import pytest

from containai.domain import labels
from containai.domain.labels import (
    build_labels,
    is_kept,
    is_managed,
    isolation_label,
    workspace_of,
)


def test_label_keys_match_spec() -> None:
    assert labels.MANAGED == "containai.managed"
    assert labels.WORKSPACE == "containai.workspace"
    assert labels.SSH_PORT == "containai.ssh-port"
    assert labels.DATA_VOLUME == "containai.data-volume"
    assert labels.TEMPLATE == "ai.containai.template"
    assert labels.TEMPLATE_HASH == "ai.containai.template-hash"
    assert labels.RUNTIME == "containai.runtime"
    assert labels.KEEP == "containai.keep"
    assert labels.SCHEMA == "containai.schema"
    assert len(set(labels.ALL)) == 9
    assert labels.MANAGED_FILTER == "containai.managed=true"


def _build(keep: bool) -> dict[str, str]:
    return build_labels(
        workspace="/home/u/src/myapp",
        ssh_port=2301,
        data_volume="containai-data",
        template="default",
        template_hash="sha256:abc",
        runtime="runsc",
        keep=keep,
    )


def test_build_labels() -> None:
    assert _build(keep=False) == {
        "containai.managed": "true",
        "containai.workspace": "/home/u/src/myapp",
        "containai.ssh-port": "2301",
        "containai.data-volume": "containai-data",
        "ai.containai.template": "default",
        "ai.containai.template-hash": "sha256:abc",
        "containai.runtime": "runsc",
        "containai.schema": "1",
    }


def test_build_labels_keep() -> None:
    built = _build(keep=True)
    assert built["containai.keep"] == "true"
    assert set(built) == set(labels.ALL)
    assert is_kept(built)
    assert not is_kept(_build(keep=False))


def test_built_labels_are_managed() -> None:
    built = _build(keep=False)
    assert is_managed(built)
    assert workspace_of(built) == "/home/u/src/myapp"


@pytest.mark.parametrize(
    "value",
    [None, {}, {"containai.managed": "false"}, {"containai.managed": "TRUE"}, {"other": "true"}],
)
def test_not_managed(value: dict[str, str] | None) -> None:
    assert not is_managed(value)
    assert workspace_of(value) is None


def test_workspace_of_unmanaged_container_is_none() -> None:
    assert workspace_of({"containai.workspace": "/src/app"}) is None
    assert workspace_of({"containai.managed": "true"}) is None


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        (" on ", True),
        ("false", False),
        ("", False),
        ("0", False),
        ("no", False),
        ("keep", False),
    ],
)
def test_is_kept(value: str, kept: bool) -> None:
    assert is_kept({"containai.keep": value}) is kept


def test_is_kept_without_label() -> None:
    assert not is_kept({})
    assert not is_kept(None)


@pytest.mark.parametrize(
    ("runtime", "expected"),
    [
        ("runsc", "runsc (gVisor)"),
        ("sysbox-runc", "sysbox-runc (Sysbox)"),
        ("runc", "runc (no extra isolation)"),
        ("kata", "kata (unknown isolation)"),
        ("", "unknown"),
    ],
)
def test_isolation_label(runtime: str, expected: str) -> None:
    assert isolation_label(runtime) == expected
