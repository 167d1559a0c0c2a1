"""The hot path's one-line cache: which container serves a workspace.

``$XDG_STATE_HOME/containai/workspaces/<escaped path>`` holds the container name that
the last successful ``cai run``/``exec`` used, so ``cai exec`` on a running container
finds its control master without parsing ``config.toml`` (tomllib costs ~10 ms). It is
a cache (DESIGN decision 4): the config's workspace state stays the record, and a stale
or missing entry only sends the command down the full path, which rewrites it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from containai.paths import Paths

_MAX_NAME = 250  # file-name limit, with room for the temp suffix


def _entry(paths: Paths, workspace: str) -> str | None:
    escaped = workspace.replace("%", "%25").replace("/", "%2F")
    if len(escaped.encode()) > _MAX_NAME:
        return None  # too long to name exactly: no cache, the full path is taken
    return os.path.join(paths.state_dir, "workspaces", escaped)


def read(paths: Paths, workspace: str, engine_key: str) -> str | None:
    """The cached container name, if it was cached for the same engine selection."""
    entry = _entry(paths, workspace)
    if entry is None:
        return None
    try:
        with open(entry, encoding="utf-8") as fh:
            name, _, key = fh.read().rstrip("\n").partition("\n")
    except OSError:
        return None
    return name if name and key == engine_key else None


def write(paths: Paths, workspace: str, name: str, engine_key: str) -> None:
    entry = _entry(paths, workspace)
    if entry is None or read(paths, workspace, engine_key) == name:
        return
    import contextlib
    from pathlib import Path

    from containai.adapters.files import atomic_write

    with contextlib.suppress(OSError):  # a cache: failing to write it only costs speed
        os.makedirs(os.path.dirname(entry), mode=0o700, exist_ok=True)
        atomic_write(Path(entry), f"{name}\n{engine_key}\n", mode=0o600)


def engine_key(paths: Paths, env: Mapping[str, str], flag: str | None) -> str:
    """Everything engine selection depends on, read without parsing anything: the flag,
    the variables, the config file's mtime, whether the dedicated context exists. A
    different key sends the command down the full path (which selects afresh)."""
    try:
        mtime = str(os.stat(paths.config_file).st_mtime_ns)
    except OSError:
        mtime = "-"
    docker_config = env.get("DOCKER_CONFIG") or os.path.join(env.get("HOME", ""), ".docker")
    meta = os.path.join(docker_config, "contexts", "meta")
    dedicated = "1" if os.path.isdir(meta) and os.listdir(meta) else "0"
    parts = (
        flag or "",
        env.get("CONTAINAI_CONTEXT", ""),
        env.get("DOCKER_HOST", ""),
        env.get("DOCKER_CONTEXT", ""),
        mtime,
        dedicated,
    )
    return "|".join(parts).replace("\n", " ")
