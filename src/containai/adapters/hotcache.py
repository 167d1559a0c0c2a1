"""The hot path's small caches: which container serves a workspace, which engine.

``$XDG_STATE_HOME/containai/workspaces/<escaped path>`` holds the container name that
the last successful ``cai run``/``exec`` used, so ``cai exec`` on a running container
finds its control master without parsing ``config.toml`` (tomllib costs ~10 ms).
``$XDG_STATE_HOME/containai/selection`` holds the last engine selection (context and
its source), so ``cai list`` asks the engine at once. Both are caches (DESIGN decision
4): the config stays the record, each entry carries the ``engine_key`` it was made
under, and a stale or missing entry only sends the command down the full path, which
rewrites it.
"""

from __future__ import annotations

import os

from containai.paths import Paths, docker_config_text

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    from collections.abc import Mapping

_MAX_NAME = 250  # file-name limit, with room for the temp suffix


def _plain(text: str) -> bool:
    """Printable text without NUL: what cai writes (anything else is a damaged cache)."""
    return text.isprintable()


def _entry(paths: Paths, workspace: str) -> str | None:
    escaped = workspace.replace("%", "%25").replace("/", "%2F")
    if len(escaped.encode()) > _MAX_NAME:
        return None  # too long to name exactly: no cache, the full path is taken
    return os.path.join(paths.state_text, "workspaces", escaped)


def read(paths: Paths, workspace: str, engine_key: str) -> str | None:
    """The cached container name, if it was cached for the same engine selection."""
    entry = _entry(paths, workspace)
    if entry is None:
        return None
    try:
        with open(entry, encoding="utf-8") as fh:
            name, _, key = fh.read().rstrip("\n").partition("\n")
    except (OSError, ValueError):  # unreadable, or not UTF-8 text: ignored (and rewritten)
        return None
    return name if name and key == engine_key and _plain(name) else None


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


def _mtime(path: str) -> str:
    try:
        return str(os.stat(path).st_mtime_ns)
    except OSError:
        return "-"


def engine_key(paths: Paths, env: Mapping[str, str], flag: str | None) -> str:
    """Everything engine selection depends on, read without parsing anything: the flag,
    the variables, and the modification times of cai's config file, of Docker's context
    store (a context created or removed changes it) and of Docker's ``config.json`` (its
    current context). A different key sends the command down the full path (which
    selects afresh)."""
    docker_config = docker_config_text(env)
    parts = (
        flag or "",
        env.get("CONTAINAI_CONTEXT", ""),
        env.get("DOCKER_HOST", ""),
        env.get("DOCKER_CONTEXT", ""),
        _mtime(paths.config_file_text),
        _mtime(os.path.join(docker_config, "contexts", "meta")),
        _mtime(os.path.join(docker_config, "config.json")),
    )
    return "|".join(parts).replace("\n", " ")


def _selection_entry(paths: Paths) -> str:
    return os.path.join(paths.state_text, "selection")


def read_selection(paths: Paths, key: str) -> tuple[str | None, str] | None:
    """``(context, source)`` selected last under the same ``key`` (context ``None``:
    DOCKER_HOST), or ``None`` when there is no such entry."""
    try:
        with open(_selection_entry(paths), encoding="utf-8") as fh:
            lines = fh.read().split("\n")
    except (OSError, ValueError):  # unreadable, or not UTF-8 text: ignored (and rewritten)
        return None
    if len(lines) < 3 or lines[0] != key or not lines[1] or not _plain(lines[1] + lines[2]):
        return None
    context = lines[2][1:] if lines[2].startswith("=") else None
    return context, lines[1]


def write_selection(paths: Paths, key: str, context: str | None, source: str) -> None:
    if read_selection(paths, key) == (context, source):
        return
    import contextlib
    from pathlib import Path

    from containai.adapters.files import atomic_write

    line = "" if context is None else "=" + context
    with contextlib.suppress(OSError):  # a cache: failing to write it only costs speed
        os.makedirs(paths.state_text, mode=0o700, exist_ok=True)
        atomic_write(Path(_selection_entry(paths)), f"{key}\n{source}\n{line}\n", mode=0o600)


class ContainerCache:
    """``read``/``write`` of the workspace -> container cache for one command's engine
    selection inputs (the run service's port); the key is taken afresh at each call, as
    a run may change what it depends on (cai's config file) before it writes."""

    __slots__ = ("env", "flag", "paths")

    def __init__(self, paths: Paths, env: Mapping[str, str], flag: str | None) -> None:
        self.paths = paths
        self.env = env
        self.flag = flag

    def read(self, workspace: str) -> str | None:
        return read(self.paths, workspace, engine_key(self.paths, self.env, self.flag))

    def write(self, workspace: str, name: str) -> None:
        write(self.paths, workspace, name, engine_key(self.paths, self.env, self.flag))
