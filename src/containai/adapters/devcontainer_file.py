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

import errno
import os
import shutil
import stat
from pathlib import Path
from typing import Any

from containai.adapters.devcontainer_path import CANDIDATES, find
from containai.domain import devcontainer as D
from containai.domain.errors import ConfigError, summarize
from containai.domain.validation import terminal_safe

__all__ = [
    "CANDIDATES",
    "DevcontainerFiles",
    "find",
    "load",
    "parse",
    "read_limited",
    "snapshot_context",
]
MAX_BYTES = 64 * 1024
MAX_DOCKERFILE_BYTES = 1024 * 1024
# Bytes a context snapshot may copy when it cannot hard-link (another file system).
MAX_CONTEXT_COPY_BYTES = 1024 * 1024 * 1024
# Names a context snapshot may walk (files, folders, links, and the entries left out):
# hard-linked and empty files copy no byte, and without this a context of millions of
# them would make as many entries under cai's state folder. A large repository's whole
# tree (the Linux kernel: ~90,000) fits twice over; see docs/devcontainer.md.
MAX_CONTEXT_ENTRIES = 200_000
_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM})
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


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


def snapshot_context(workspace: str, context: str, dest: Path) -> Path:
    """The build context ``context`` (a folder inside ``workspace``), copied to ``dest``
    for the engine to read, without a race: the engine is never handed a path into
    the workspace, where the agent (or another container sharing a parent folder) can
    swap a folder for a link to the user's files between cai's check and the engine's
    read of it. The folder is opened from the workspace's real path one component at a
    time without following a link, walked by file descriptors (a folder swapped for a
    link meanwhile is not entered), and each entry is hard-linked (same file system;
    the file's bytes are the repository's anyway) or copied (at most
    ``MAX_CONTEXT_COPY_BYTES`` in all); links are copied as links, which the engine
    sends as links (never followed out of the context); sockets, FIFOs and devices are
    left out. At most ``MAX_CONTEXT_ENTRIES`` names are walked, counted as they are
    read. ``.dockerignore`` is copied with the rest and applies as before (the engine
    applies it: it does not shrink the snapshot). On any failure the partial snapshot
    is removed."""
    ws_real = os.path.realpath(workspace)
    real = _inside_real(context, workspace, "the build.context")
    rel = os.path.relpath(real, ws_real)
    parts = [] if rel == "." else rel.split(os.sep)
    try:
        fd = os.open(ws_real, _DIR_FLAGS)
    except OSError as exc:
        raise ConfigError(f"cannot open the workspace {workspace}: {exc.strerror}") from None
    try:
        for part in parts:
            try:
                inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError:
                raise ConfigError(
                    f"the build.context {context} changed while cai read it (a folder on its "
                    f"path is now a link or gone); run the command again {D.OFF}"
                ) from None
            os.close(fd)
            fd = inner
        _snapshot(fd, dest, terminal_safe(context))
    finally:
        os.close(fd)
    return dest


def _snapshot(top_fd: int, dest: Path, shown: str) -> None:
    """``_copy_tree`` into ``dest``, made here and removed again if the copy fails."""
    try:
        dest.mkdir(mode=0o755)  # private: inside the caller's 0700 temporary folder
    except OSError as exc:
        raise ConfigError(
            f"cannot make the snapshot {dest} of the build.context {shown}: "
            f"{exc.strerror or exc} {D.OFF}"
        ) from None
    try:
        _copy_tree(top_fd, dest)
    except BaseException as exc:
        shutil.rmtree(dest, ignore_errors=True)  # cai's own tree: rmtree follows no link
        if isinstance(exc, _OverCap):
            raise ConfigError(_over_cap(exc.entries, shown)) from None
        if isinstance(exc, OSError):  # a name too long for the snapshot, a full disk, ...
            raise ConfigError(
                f"cannot copy the build.context {shown} for the build: "
                f"{exc.strerror or exc}; simplify or narrow it {D.OFF}"
            ) from None
        raise


def _over_cap(entries: bool, shown: str) -> str:
    what = (
        f"has over {MAX_CONTEXT_ENTRIES} entries (files, folders and links)"
        if entries
        else f"is over {MAX_CONTEXT_COPY_BYTES >> 30} GiB to copy"
    )
    return (
        f"the build.context {shown} {what} for cai's snapshot of it; narrow it: point "
        '"context" in devcontainer.json at a smaller folder that holds what the Dockerfile '
        f"copies (a .dockerignore does not shrink the snapshot) {D.OFF}"
    )


class _OverCap(Exception):
    """The walk met a cap: ``entries`` (``MAX_CONTEXT_ENTRIES``) or bytes."""

    def __init__(self, *, entries: bool) -> None:
        super().__init__()
        self.entries = entries


class _Budget:
    """What the walk may still do: names to read, bytes to copy."""

    def __init__(self) -> None:
        self.entries = MAX_CONTEXT_ENTRIES
        self.bytes = MAX_CONTEXT_COPY_BYTES

    def names(self, dir_fd: int) -> list[str]:
        """The folder's names, each counted as it is read: a folder of millions stops
        at the cap, before its names fill memory."""
        names = []
        with os.scandir(dir_fd) as listing:
            for entry in listing:
                self.entries -= 1
                if self.entries < 0:
                    raise _OverCap(entries=True)
                names.append(entry.name)
        return names

    def copied(self, size: int) -> None:
        self.bytes -= size
        if self.bytes < 0:
            raise _OverCap(entries=False)


def _copy_tree(top_fd: int, dest: Path) -> None:
    """Walk by folder descriptors, depth first (a loop, not ``os.fwalk``: fwalk opens a
    folder without O_NONBLOCK, and one swapped for a FIFO would hang cai; it also
    recurses). One descriptor is open per level of the folder being copied, never one
    per folder waiting its turn (a wide folder would run out of descriptors). A folder
    is entered only when cai saw it as one, made it in the snapshot, and opened the
    same folder again without following a link: nothing is ever written through a link
    in the snapshot."""
    budget = _Budget()
    top = os.dup(top_fd)
    try:
        names = budget.names(top)
    except BaseException:
        os.close(top)
        raise
    stack: list[tuple[int, Path, list[str]]] = [(top, dest, names)]
    try:
        while stack:
            dir_fd, target, names = stack[-1]
            if not names:
                stack.pop()
                os.close(dir_fd)
                continue
            name = names.pop()
            inner = _copy_entry(name, dir_fd, target, budget)
            if inner is not None:
                try:
                    inner_names = budget.names(inner)
                except BaseException:
                    os.close(inner)
                    raise
                stack.append((inner, target / name, inner_names))
    finally:
        for dir_fd, _, _ in stack:
            os.close(dir_fd)


def _copy_entry(name: str, dir_fd: int, target: Path, budget: _Budget) -> int | None:
    """Copy one entry into ``target`` (a folder cai made); a folder's descriptor when it
    is to be walked."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return None  # gone meanwhile
    out = target / name
    if stat.S_ISDIR(st.st_mode):
        try:
            inner = os.open(name, _DIR_FLAGS | os.O_NONBLOCK, dir_fd=dir_fd)
        except OSError as exc:
            _reraise_exhausted(exc)
            return None  # swapped for a link, a FIFO, a file, or gone: left out
        same = os.fstat(inner)
        if (same.st_dev, same.st_ino) != (st.st_dev, st.st_ino):
            os.close(inner)
            return None
        try:
            out.mkdir(mode=stat.S_IMODE(st.st_mode) | 0o700)
        except BaseException:
            os.close(inner)
            raise
        return inner
    if stat.S_ISLNK(st.st_mode):
        try:
            link = os.readlink(name, dir_fd=dir_fd)
        except OSError:
            return None  # not a link any more: left out
        os.symlink(link, out)
    elif stat.S_ISREG(st.st_mode):
        _link_or_copy(name, dir_fd, out, stat.S_IMODE(st.st_mode), budget)
    return None


def _reraise_exhausted(exc: OSError) -> None:
    """An open that failed for want of descriptors or memory is an error, never a
    silent gap in the snapshot (the build would run on part of its context)."""
    if exc.errno in _EXHAUSTED:
        raise exc


def _link_or_copy(name: str, dir_fd: int, out: Path, mode: int, budget: _Budget) -> None:
    try:
        os.link(name, out, src_dir_fd=dir_fd, follow_symlinks=False)
        return
    except OSError:
        pass  # another file system, or links refused: copy
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        src = os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        _reraise_exhausted(exc)
        return  # swapped for a link or gone meanwhile: left out
    try:
        if not stat.S_ISREG(os.fstat(src).st_mode):
            return
        create = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        try:
            sink = os.open(out, create, mode | 0o600)
        except OSError as exc:
            _reraise_exhausted(exc)
            return  # there already (a name seen twice): never written through
        try:
            while chunk := os.read(src, 1 << 20):
                budget.copied(len(chunk))
                view = memoryview(chunk)
                while view:
                    view = view[os.write(sink, view) :]
        finally:
            os.close(sink)
    finally:
        os.close(src)


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

    def snapshot_context(self, workspace: str, context: str, dest: Path) -> Path:
        return snapshot_context(workspace, context, dest)
