"""Writing the tars cai makes, member by member (no engine here):

* ``repack``: the engine's ``docker cp DIR/. -`` stream -> an export archive (names
  relative to the volume root, hard links made regular files, an import's staging
  directory left out);
* ``restage``: a checked archive -> the stream ``cai import`` copies in, every
  member below a staging directory and the completion marker last;
* ``add_item``: one ``TarItem`` of a host import (a directory, a symlink, bytes, or
  a host file read to exactly the size it had).
"""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from containai.adapters.archive.reading import iterate, member_of, stream_reader
from containai.adapters.archive.streams import CHUNK, SizedReader, Stream
from containai.domain.archive_rules import Member, is_staging
from containai.domain.errors import Failed

Fetch = Callable[[str], contextlib.AbstractContextManager[tuple[tarfile.TarInfo, IO[bytes]]]]


class TarItem(Protocol):
    """One entry of a tar built by cai (``services/host_import.TarItem`` has this shape)."""

    @property
    def name(self) -> str: ...  # relative to the volume root

    @property
    def kind(self) -> str: ...  # dir | file | symlink

    @property
    def mode(self) -> int: ...

    @property
    def mtime(self) -> float: ...

    @property
    def source(self) -> Path | None: ...  # file content from this host file

    @property
    def data(self) -> bytes | None: ...  # or these bytes

    @property
    def linkname(self) -> str: ...


def _copy_exact(src: IO[bytes], dst: IO[bytes], size: int) -> None:
    remaining = size
    while remaining > 0:
        block = src.read(min(CHUNK, remaining))
        if not block:
            raise Failed("unexpected end of data in the tar stream")
        dst.write(block)
        remaining -= len(block)


def _drop_pax(info: tarfile.TarInfo, *keys: str) -> None:
    """Forget PAX records that tarfile would otherwise prefer over the changed fields."""
    if any(key in info.pax_headers for key in keys):
        info.pax_headers = {k: v for k, v in info.pax_headers.items() if k not in keys}


def _relative(name: str, root: str) -> str:
    """``root`` -> ``./``; ``root/x`` -> ``./x`` (``root`` is the stream's first directory)."""
    bare = name.rstrip("/")
    if bare == root:
        return "./"
    if root == ".":
        rel = bare.removeprefix("./")
    elif bare.startswith(root + "/"):
        rel = bare[len(root) + 1 :]
    else:
        raise Failed(f"unexpected member {name!r} outside the stream's root {root!r}")
    return "./" + rel.lstrip("/")


def repack(src: Any, out: Stream, *, fetch: Fetch) -> tuple[int, int]:
    """Re-pack the tar stream ``src`` (``docker cp DIR/. -``) into ``out``.

    Names are made relative to the stream's root directory (``./`` and ``./x``);
    modes, owners, mtimes, symlinks and PAX headers are kept. Hard links are
    written after everything else as regular files, with the content ``fetch``
    gives for their target name (the stream cannot be read back). An import's
    staging directory (``cai import`` in progress or killed) is left out. Returns
    (members written, hard links converted).
    """
    count = 0
    deferred: list[tarfile.TarInfo] = []
    with (
        stream_reader(src) as tin,
        tarfile.TarFile(
            fileobj=out, mode="w", format=tarfile.PAX_FORMAT, copybufsize=CHUNK
        ) as tout,
    ):
        root: str | None = None
        for info in iterate(tin):
            if root is None:
                root = info.name.rstrip("/") if info.isdir() else "."
            info.name = _relative(info.name, root)
            if is_staging(info.name):
                continue
            _drop_pax(info, "path", "linkpath")  # re-derived from name/linkname when needed
            if info.islnk():
                info.linkname = _relative(info.linkname, root)
                deferred.append(info)
                continue
            if info.isreg():
                data = tin.extractfile(info)
                assert data is not None
                tout.addfile(info, data)
            else:
                tout.addfile(info)
            count += 1
        by_target: dict[str, list[tarfile.TarInfo]] = {}
        for info in deferred:
            by_target.setdefault(info.linkname, []).append(info)
        for target, links in by_target.items():
            with fetch(target) as (found, data), tempfile.SpooledTemporaryFile(CHUNK * 16) as tmp:
                _copy_exact(data, tmp, found.size)
                for info in links:
                    info.type = tarfile.REGTYPE
                    info.linkname = ""
                    info.size = found.size
                    _drop_pax(info, "linkpath", "size")
                    tmp.seek(0)
                    tout.addfile(info, tmp)
                    count += 1
    return count, len(deferred)


def restage(
    tin: tarfile.TarFile,
    out: Stream,
    expected: Sequence[Member],
    staging: str,
    marker: str,
    source: str,
) -> None:
    """Write ``tin``'s members below ``staging/`` into ``out``; the ``marker`` last."""
    from containai.domain.archive_rules import normalize

    with tarfile.TarFile(
        fileobj=out, mode="w", format=tarfile.PAX_FORMAT, copybufsize=CHUNK
    ) as tout:
        top = tarfile.TarInfo(staging)
        top.type = tarfile.DIRTYPE
        top.mode = 0o755
        top.mtime = int(time.time())
        tout.addfile(top)
        index = 0
        for info in iterate(tin):
            if index >= len(expected) or member_of(info) != expected[index]:
                raise Failed(
                    f"archive {source} changed while it was imported (member {info.name!r}); "
                    "the volume was left as it was"
                )
            index += 1
            rel = normalize(info.name)
            assert rel is not None  # checked before
            info.name = f"{staging}/{rel}" if rel else staging
            _drop_pax(info, "path", "linkpath")
            if info.isreg():
                data = tin.extractfile(info)
                assert data is not None
                tout.addfile(info, data)
            else:
                tout.addfile(info)
        if index != len(expected):
            raise Failed(
                f"archive {source} changed while it was imported (it has fewer members now); "
                "the volume was left as it was"
            )
        done = tarfile.TarInfo(marker)
        done.mode = 0o600
        done.mtime = int(time.time())
        tout.addfile(done, io.BytesIO(b""))


def add_item(tar: tarfile.TarFile, item: TarItem, uid: int, gid: int) -> list[str]:
    """Add ``item`` owned ``uid:gid`` to ``tar``; warnings about its host file, if any."""
    info = tarfile.TarInfo(item.name)
    info.mode = item.mode & 0o7777
    info.mtime = int(item.mtime)
    info.uid, info.gid = uid, gid
    info.uname = info.gname = ""
    if item.kind == "dir":
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        return []
    if item.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = item.linkname
        tar.addfile(info)
        return []
    if item.data is not None:
        info.size = len(item.data)
        tar.addfile(info, io.BytesIO(item.data))
        return []
    assert item.source is not None
    try:
        handle = open(item.source, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        return [f"skipped {item.source}: {exc.strerror or exc}"]
    with handle:
        info.size = os.fstat(handle.fileno()).st_size
        reader = SizedReader(handle, info.size)
        tar.addfile(info, reader)
    if reader.short:
        return [f"{item.source} shrank while it was copied; its copy may be incomplete"]
    return []
