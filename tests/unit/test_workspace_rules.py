"""Which directories may be a workspace: never one that holds more than a project."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from containai.domain import workspace_rules
from containai.domain.errors import UsageError
from containai.services.workspace import identify

HOMES = ("/home/alice",)


@pytest.mark.parametrize("path", ["/", "/tmp", "/etc", "/home", "/root", "/work", "/usr"])
def test_root_and_top_level_directories_are_refused(path: str) -> None:
    assert workspace_rules.refusal(path, HOMES, sticky=False) is not None


@pytest.mark.parametrize("path", ["/home/alice", "/home/alice/", "/home"])
def test_the_home_directory_and_its_ancestors_are_refused(path: str) -> None:
    assert workspace_rules.refusal(path, HOMES, sticky=False) is not None


def test_a_shared_sticky_directory_is_refused() -> None:
    assert "sticky" in (workspace_rules.refusal("/var/tmp", HOMES, sticky=True) or "")


@pytest.mark.parametrize("path", ["/home/alice/src/app", "/srv/app", "/tmp/app", "/home/bob"])
def test_project_directories_are_accepted(path: str) -> None:
    assert workspace_rules.refusal(path, HOMES, sticky=False) is None


@given(st.lists(st.from_regex(r"[a-z0-9_.-]{1,8}", fullmatch=True), min_size=2, max_size=5))
def test_any_directory_below_home_is_accepted(parts: list[str]) -> None:
    parts = [p for p in parts if p not in (".", "..")]
    path = "/home/alice/" + "/".join(parts)
    if path.rstrip("/") != "/home/alice":
        assert workspace_rules.refusal(path, HOMES, sticky=False) is None


def _identify(cwd: Path, homes: tuple[str, ...]) -> str:
    found = identify(cwd, None, lambda p: (p, "nogit"), lambda p: "nogit", homes)
    found.check()
    return found.path


def test_identify_refuses_tmp_and_home_with_exit_2(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"shared directory|system directory"):
        _identify(Path("/tmp"), ())
    home = tmp_path / "home"
    home.mkdir()
    with pytest.raises(UsageError, match="your home directory") as info:
        _identify(home, (str(home),))
    assert info.value.exit_code == 2 and "--workspace" in str(info.value)
    project = home / "project"
    project.mkdir()
    assert _identify(project, (str(home),)) == str(project)


def test_a_sticky_project_directory_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    with pytest.raises(UsageError, match="sticky"):
        _identify(shared, ())


def test_image_packages_are_debian_names_never_shell_words() -> None:
    """image.packages reaches `apt-get install $EXTRA_PACKAGES` unquoted in the system
    layer (a trusted repository may set it): only Debian package names pass."""
    from containai.domain.settings import KEYS

    check = KEYS["image.packages"].check
    assert check is not None
    check(["postgresql-client", "g++", "libssl3"])
    for bad in ["a;rm -rf /", "$(id)", "-oAPT::x=1", "pkg name", "Pkg"]:
        with pytest.raises(ValueError, match="Debian package name"):
            check([bad])
