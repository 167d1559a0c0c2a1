"""adapters/hotcache.py: the workspace and engine-selection caches are used only under
the exact key they were written with, and the key moves with everything selection
depends on."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from containai.adapters import hotcache
from containai.paths import Paths, resolve_paths


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def paths(home: Path) -> Paths:
    return resolve_paths({"HOME": str(home)})


def _env(home: Path, **more: str) -> dict[str, str]:
    return {"HOME": str(home), **more}


def _bump(path: Path) -> None:
    later = time.time() + 5
    os.utime(path, (later, later))


def test_selection_round_trip_including_docker_host(paths: Paths, home: Path) -> None:
    key = hotcache.engine_key(paths, _env(home), None)
    assert hotcache.read_selection(paths, key) is None
    hotcache.write_selection(paths, key, "containai-docker", "dedicated")
    assert hotcache.read_selection(paths, key) == ("containai-docker", "dedicated")
    hotcache.write_selection(paths, key, None, "docker")
    assert hotcache.read_selection(paths, key) == (None, "docker")
    assert hotcache.read_selection(paths, key + "x") is None


@pytest.mark.parametrize(
    "change",
    ["flag", "CONTAINAI_CONTEXT", "DOCKER_HOST", "DOCKER_CONTEXT", "config", "context", "docker"],
)
def test_the_key_moves_with_each_input_of_selection(paths: Paths, home: Path, change: str) -> None:
    meta = home / ".docker" / "contexts" / "meta"
    meta.mkdir(parents=True)
    (home / ".docker" / "config.json").write_text("{}")
    paths.config_file.parent.mkdir(parents=True)
    paths.config_file.write_text("")
    before = hotcache.engine_key(paths, _env(home), None)
    env, flag = _env(home), None
    if change == "flag":
        flag = "other"
    elif change == "config":
        _bump(paths.config_file)
    elif change == "context":  # a context created (or removed) changes the store's mtime
        (meta / "abc").mkdir()
        _bump(meta)
    elif change == "docker":  # `docker context use` rewrites config.json
        _bump(home / ".docker" / "config.json")
    else:
        env[change] = "x"
    assert hotcache.engine_key(paths, env, flag) != before


def test_a_garbled_selection_entry_is_no_entry(paths: Paths, home: Path) -> None:
    key = hotcache.engine_key(paths, _env(home), None)
    paths.state_dir.mkdir(parents=True)
    (paths.state_dir / "selection").write_text(key + "\n")
    assert hotcache.read_selection(paths, key) is None


def test_workspace_entry_is_keyed_too(paths: Paths, home: Path) -> None:
    key = hotcache.engine_key(paths, _env(home), None)
    hotcache.write(paths, "/src/a", "a-main", key)
    assert hotcache.read(paths, "/src/a", key) == "a-main"
    assert hotcache.read(paths, "/src/a", key + "x") is None
    assert hotcache.read(paths, "/src/b", key) is None


# Issue 13 item 1: a damaged cache is ignored (no UnicodeDecodeError) and rewritten.
GARBAGE = [bytes(range(256)) * 3, b"\xff\xfe\x00name\nkey\n", b"name\x00\nkey\n", b""]


@pytest.mark.parametrize("garbage", GARBAGE)
def test_a_damaged_workspace_cache_is_ignored_and_rewritten(
    paths: Paths, home: Path, garbage: bytes
) -> None:
    key = hotcache.engine_key(paths, _env(home), None)
    hotcache.write(paths, "/src/app", "app-main", key)
    entry = next((home / ".local" / "state" / "containai" / "workspaces").iterdir())
    entry.write_bytes(garbage)
    assert hotcache.read(paths, "/src/app", key) is None
    hotcache.write(paths, "/src/app", "app-main", key)
    assert hotcache.read(paths, "/src/app", key) == "app-main"


@pytest.mark.parametrize("garbage", GARBAGE)
def test_a_damaged_selection_cache_is_ignored_and_rewritten(
    paths: Paths, home: Path, garbage: bytes
) -> None:
    key = hotcache.engine_key(paths, _env(home), None)
    hotcache.write_selection(paths, key, "default", "docker")
    (home / ".local" / "state" / "containai" / "selection").write_bytes(garbage)
    assert hotcache.read_selection(paths, key) is None
    hotcache.write_selection(paths, key, "default", "docker")
    assert hotcache.read_selection(paths, key) == ("default", "docker")
