"""Reading tar archives, as a stream: open a file whatever its compression, walk its
members once without keeping them, and describe each as the domain's ``Member``
(what ``domain/archive_rules.py`` checks before an import changes anything).

Strict about damage: a truncated or garbled archive is an error, never mistaken
for a shorter one, and every read error becomes a ``Failed`` naming the archive.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from containai.adapters.archive.streams import CHUNK, CountingReader, ForwardReader, Progress
from containai.domain.archive_rules import Member, MemberKind
from containai.domain.errors import Failed, NotFound


def stream_reader(source: Any) -> tarfile.TarFile:
    """A tar reader over a forward-only stream; members are not kept (see ``iterate``)."""
    return tarfile.TarFile(fileobj=ForwardReader(source), mode="r", copybufsize=CHUNK)


def iterate(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """Each member once, in order, without tarfile keeping all of them in memory.

    Strict about the end: tarfile takes a truncated or garbled header after the
    first member for the end of the archive; here that is an error, so a damaged
    archive is never mistaken for a shorter one.
    """
    kept: list[tarfile.TarInfo] = tar.__dict__["members"]  # tarfile keeps every header
    for info in tar:
        yield info
        kept.clear()
    source = tar.fileobj
    if isinstance(source, ForwardReader) and source.last != tarfile.NUL * tarfile.BLOCKSIZE:
        raise tarfile.ReadError("truncated or damaged: no end-of-archive marker")


def member_of(info: tarfile.TarInfo) -> Member:
    """A tar header as the domain's :class:`Member` (its kind, name and link target)."""
    kind: MemberKind
    if info.isreg():
        kind = "file"
    elif info.isdir():
        kind = "dir"
    elif info.issym():
        kind = "symlink"
    elif info.islnk():
        kind = "hardlink"
    elif info.ischr() or info.isblk():
        kind = "device"
    elif info.isfifo():
        kind = "fifo"
    else:
        kind = "other"
    return Member(
        info.name,
        kind,
        info.linkname if kind in ("symlink", "hardlink") else "",
        info.size if kind == "file" else 0,
    )


@contextlib.contextmanager
def open_archive(path: Path, progress: Progress | None = None) -> Iterator[tarfile.TarFile]:
    """A streaming reader of a (gzip-compressed or plain) tar file; errors -> ``Failed``."""
    try:
        raw = open(path, "rb", buffering=0)  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise NotFound(f"archive {path} does not exist") from None
    except OSError as exc:
        raise Failed(f"cannot read archive {path}: {exc.strerror or exc}") from None
    try:
        total = os.fstat(raw.fileno()).st_size
        counted = io.BufferedReader(CountingReader(raw, progress, total), CHUNK)
        magic = counted.peek(6)[:6]
        source: Any = counted
        if magic[:2] == b"\x1f\x8b":
            source = gzip.GzipFile(fileobj=counted, mode="rb")  # multi-member safe (pigz)
        elif magic[:3] == b"BZh":
            import bz2

            source = bz2.BZ2File(counted)
        elif magic == b"\xfd7zXZ\x00":
            import lzma

            source = lzma.LZMAFile(counted)  # noqa: SIM115 - closed with raw
        try:
            tar = stream_reader(source)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise Failed(
                f"{path} is not a tar archive cai can read ({exc}); give an archive made by "
                "`cai export`, or a directory"
            ) from None
        try:
            yield tar
        except (tarfile.TarError, EOFError, zlib.error, io.UnsupportedOperation) as exc:
            raise Failed(f"archive {path} is damaged ({exc}); nothing was changed") from None
        except OSError as exc:
            if isinstance(exc, gzip.BadGzipFile):
                raise Failed(f"archive {path} is damaged ({exc}); nothing was changed") from None
            raise
        finally:
            tar.close()
    finally:
        raw.close()


def read_members(archive: Path, progress: Progress | None = None) -> list[Member]:
    """Every member of ``archive``, in order (data is read and discarded)."""
    with open_archive(archive, progress) as tar:
        return [member_of(info) for info in iterate(tar)]
