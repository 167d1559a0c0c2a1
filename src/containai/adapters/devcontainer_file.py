"""Find, read and parse a workspace's devcontainer.json (SPEC section 18).

The file is JSON with comments (and trailing commas): it is parsed by ``json5``, a
pure-Python JSON5 parser (a superset of JSONC), imported only when a file exists
(~20 ms). ``domain/devcontainer.py`` interprets the result; this module does the I/O
around it, defensively, because the file is a stranger's and the agent in the
container can rewrite it at any time:

- Only ``.devcontainer/devcontainer.json``, then ``.devcontainer.json`` (SPEC order;
  the reference's ``.devcontainer/<name>/devcontainer.json`` choice is not offered).
- The file and the Dockerfile must be regular files whose real path is inside the
  workspace (a symlink to a host file is refused: cai reads no host file on a
  repository's behalf), opened without blocking (a FIFO or device never hangs cai) and
  read up to a size limit: ``MAX_BYTES`` for the JSON (json5 is slow, ~10 us a
  character), ``MAX_DOCKERFILE_BYTES`` for the Dockerfile. The build context must be a
  directory whose real path is inside the workspace.
- The trust digest is taken from the very bytes parsed, and the Dockerfile's bytes
  are handed over so the build uses what was hashed (no window for a swap).
- Duplicate keys are refused: a reviewer reading the first ``"image"`` must not trust
  a file whose second ``"image"`` is the one that counts.
- Every failure is a one-line ``ConfigError`` naming the file and the fix.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from containai.adapters.devcontainer_path import CANDIDATES, find
from containai.domain import devcontainer as D
from containai.domain.errors import ConfigError, summarize

__all__ = ["CANDIDATES", "DevcontainerFiles", "find", "load", "parse", "read_limited"]
MAX_BYTES = 64 * 1024
MAX_DOCKERFILE_BYTES = 1024 * 1024


def _inside_real(path: str, workspace: str, what: str) -> str:
    real = os.path.realpath(path)
    if not D.inside(real, os.path.realpath(workspace)):
        raise ConfigError(
            f"{what} {path} leads outside the workspace (to {real}); cai reads no host file "
            f"on a repository's behalf; remove the link {D.OFF}"
        )
    return real


def read_limited(path: str, workspace: str, limit: int, what: str) -> bytes:
    """The bytes of ``path``, a regular file inside ``workspace`` (real paths), at most
    ``limit`` of them; ``ConfigError`` otherwise (missing included)."""
    real = _inside_real(path, workspace, what)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(real, flags)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist; fix the path {D.OFF}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"{what} {path} is not a regular file; fix it {D.OFF}")
        opened = f"/proc/self/fd/{fd}"
        if os.path.exists(opened):  # what was opened, whatever changed since realpath
            _inside_real(opened, workspace, what)
        chunks = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise ConfigError(
            f"{what} {path} is over cai's limit of {limit // 1024} KiB; shorten it {D.OFF}"
        )
    return b"".join(chunks)


def parse(path: str, data: bytes) -> Any:
    """JSON with comments -> Python values; ``ConfigError`` naming ``path`` otherwise."""
    if len(data) > MAX_BYTES:
        raise ConfigError(
            f"{path} is over cai's limit of {MAX_BYTES // 1024} KiB for a devcontainer.json; "
            f"shorten it {D.OFF}"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text; fix the file {D.OFF}") from None
    import json5

    try:
        return json5.loads(text, allow_duplicate_keys=False)
    except RecursionError:
        raise ConfigError(
            f"{path} is nested too deeply to be a devcontainer.json; flatten it {D.OFF}"
        ) from None
    except (ValueError, OverflowError) as exc:
        raise ConfigError(
            f"{path} is not valid JSON with comments ({summarize(str(exc), 120)}); fix the "
            f"file {D.OFF}"
        ) from None


def load(workspace: str) -> D.Loaded | None:
    """The workspace's devcontainer.json read, parsed and interpreted (with the
    Dockerfile of its build read and checked), or ``None`` when it has none."""
    workspace = os.path.normpath(workspace)
    path = find(workspace)
    if path is None:
        return None
    data = read_limited(path, workspace, MAX_BYTES, "devcontainer.json")
    spec = D.interpret(parse(path, data), source=path, workspace=workspace)
    dockerfile: bytes | None = None
    if spec.build is not None:
        where = f"the build.dockerfile of {path},"
        dockerfile = read_limited(spec.build.dockerfile, workspace, MAX_DOCKERFILE_BYTES, where)
        context = _inside_real(spec.build.context, workspace, f"the build.context of {path},")
        if not os.path.isdir(context):
            raise ConfigError(
                f"the build.context of {path}, {spec.build.context}, is not a folder; fix the "
                f"path {D.OFF}"
            )
    return D.Loaded(path, D.trust_digest(data, dockerfile), spec, dockerfile)


class DevcontainerFiles:
    """The port the services use (``load``), for wiring in cli. One instance serves one
    cai command: each workspace's file is read and parsed once, and every part of the
    command (the lifecycle, the forward restore) sees the same bytes, the ones whose
    digest was checked against the trust. A file that fails is read again when asked."""

    def __init__(self) -> None:
        self._loaded: dict[str, D.Loaded | None] = {}

    def load(self, workspace: str) -> D.Loaded | None:
        key = os.path.normpath(workspace)
        if key not in self._loaded:
            self._loaded[key] = load(workspace)
        return self._loaded[key]

    def path(self, workspace: str) -> Path | None:
        found = find(workspace)
        return None if found is None else Path(found)
