"""Tar streams for ``cai export`` and ``cai import`` (DESIGN decision 1).

``docker cp`` streams a tar out of and into any container, running or stopped
(the engine mounts its volumes for the copy), so no helper image is pulled.
This module re-packs those streams in Python:

* export: ``docker cp C:/mnt/agent-data/. -`` (names ``./...``, relative to the
  volume root) -> gzip, written to a temp file next to the target, fsynced,
  chmod 0600 and renamed into place; hard links become regular files so the
  archive passes cai's own import checks; on any error or Ctrl-C the temp file
  is removed.
* import: the archive is read twice: once to list (and check) every member,
  once to stream it, renamed under a staging directory, into
  ``docker cp - C:/mnt/agent-data``. The second pass must see exactly the
  members the first one checked, or the completion marker is not written.
* host import: a list of :class:`TarItem` is written to a temp tar and copied in.

Gzip runs in a worker thread (zlib releases the GIL), so reading and parsing the
engine's stream overlaps with compression.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import io
import os
import queue
import subprocess
import tarfile
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol

from containai.adapters import procs
from containai.adapters.engine import DockerEngine
from containai.adapters.files import atomic_write_stream, stale_temps
from containai.domain.archive_rules import Member, MemberKind, is_staging
from containai.domain.errors import CaiError, Failed, NotFound

CHUNK = 1 << 20  # 1 MiB reads and writes
GZIP_MAGIC = b"\x1f\x8b"
GZIP_LEVEL = 2  # measured: level 2 is as fast as 1 and ~3% smaller; 6 is 3x slower
PIPE_SIZE = 1 << 20  # Linux F_SETPIPE_SZ for the engine's stream, when allowed
PROGRESS_EVERY = 0.25  # seconds between progress callbacks

Stream = IO[bytes] | io.RawIOBase | io.BufferedIOBase  # what tarfile reads or writes

# progress(done_bytes, total_bytes_or_None)
Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class ExportStats:
    members: int
    bytes_in: int  # uncompressed tar bytes read from the engine
    bytes_out: int  # archive size
    hardlinks: int  # hard links written as regular files


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


# ------------------------------------------------------------------ plumbing
def _widen_pipe(stream: Any) -> None:
    """Ask Linux for a 1 MiB pipe: fewer wake-ups between the engine and us."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is None or stream is None:
        return
    with contextlib.suppress(OSError, ValueError, AttributeError):
        fcntl.fcntl(stream.fileno(), set_size, PIPE_SIZE)


class _CountingRaw(io.RawIOBase):
    """A raw reader (``readinto``) that counts bytes and reports progress."""

    def __init__(self, raw: Any, progress: Progress | None, total: int | None) -> None:
        self._raw = raw
        self.count = 0
        self._progress = progress
        self._total = total
        self._last = 0.0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = int(self._raw.readinto(buffer) or 0)
        self.count += n
        if self._progress is not None:
            now = time.monotonic()
            if now - self._last >= PROGRESS_EVERY or n == 0:
                self._last = now
                self._progress(self.count, self._total)
        return n


class _Forward:
    """A read-only stream that can ``tell`` and seek forward (by skipping).

    tarfile's plain ``'r'`` mode reads headers and data straight from it; this is
    much faster than its ``'r|'`` stream mode, which copies its whole buffer on
    every 512-byte header read. A backward seek is a bug and raises.
    """

    def __init__(self, source: Any) -> None:
        self._source = source
        self._pos = 0
        self.last = b""  # the last read: tarfile's final header read must be a zero block

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._source.read(size)
        self._pos += len(data)
        self.last = data
        return data

    def tell(self) -> int:
        return self._pos

    def write(self, data: bytes) -> int:
        raise io.UnsupportedOperation("read-only stream")

    def close(self) -> None:
        """The source is closed by whoever opened it."""

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 1:
            pos += self._pos
        elif whence != 0:
            raise io.UnsupportedOperation("seek from the end of a stream")
        if pos < self._pos:
            raise io.UnsupportedOperation("backward seek in a tar stream")
        while self._pos < pos:
            if not self.read(min(CHUNK, pos - self._pos)):
                break
        return self._pos


def _stream_reader(tin_source: Any) -> tarfile.TarFile:
    """A tar reader over a forward-only stream; members are not kept (see ``_iterate``)."""
    return tarfile.TarFile(fileobj=_Forward(tin_source), mode="r", copybufsize=CHUNK)


def _iterate(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
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
    if isinstance(source, _Forward) and source.last != tarfile.NUL * tarfile.BLOCKSIZE:
        raise tarfile.ReadError("truncated or damaged: no end-of-archive marker")


class _CountingWriter(io.RawIOBase):
    """Write-only wrapper with ``tell()`` (tarfile's plain 'w' mode needs it) over a pipe."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._raw.write(data)
        n = len(data)
        self.count += n
        return n

    def tell(self) -> int:
        return self.count


_STOP = object()
_ABORT = object()


class _ThreadedGzip(io.RawIOBase):
    """A write-only gzip stream that compresses in a worker thread.

    ``finish()`` flushes the gzip trailer and reports any worker error; ``abort()``
    stops the worker without finishing (the caller removes the output).
    """

    def __init__(self, raw: IO[bytes], level: int = GZIP_LEVEL, depth: int = 16) -> None:
        self._raw = raw
        self._z = zlib.compressobj(level, zlib.DEFLATED, 31, 9)  # wbits 31: gzip container
        self._q: queue.Queue[object] = queue.Queue(depth)
        self._error: BaseException | None = None
        self.count = 0  # uncompressed bytes accepted
        self.written = 0  # compressed bytes written
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._thread = threading.Thread(target=self._work, name="cai-gzip", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        try:
            while True:
                item = self._q.get()
                if item is _ABORT:
                    return
                if item is _STOP:
                    tail = self._z.flush()
                    self._raw.write(tail)
                    self.written += len(tail)
                    return
                assert isinstance(item, bytes)
                out = self._z.compress(item)
                if out:
                    self._raw.write(out)
                    self.written += len(out)
        except BaseException as exc:
            self._error = exc
            while self._q.get() not in (_STOP, _ABORT):  # keep producers from blocking
                pass

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self._error is not None:
            raise self._error
        chunk = bytes(data)
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        self.count += len(chunk)
        if self._pending_size >= CHUNK:
            self._send()
        return len(chunk)

    def _send(self) -> None:
        # One queue hand-off per MiB: tar headers are 512-byte writes.
        if self._pending:
            self._q.put(b"".join(self._pending))
            self._pending.clear()
            self._pending_size = 0

    def tell(self) -> int:
        return self.count

    def finish(self) -> None:
        self._send()
        self._q.put(_STOP)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        if self._thread.is_alive():
            self._q.put(_ABORT)
            self._thread.join(timeout=10)


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
        counted = io.BufferedReader(_CountingRaw(raw, progress, total), CHUNK)
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
            tar = _stream_reader(source)
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


def _copy_exact(src: IO[bytes], dst: IO[bytes], size: int) -> None:
    remaining = size
    while remaining > 0:
        block = src.read(min(CHUNK, remaining))
        if not block:
            raise Failed("unexpected end of data in the tar stream")
        dst.write(block)
        remaining -= len(block)


class _SizedReader(io.RawIOBase):
    """Exactly ``size`` bytes of ``raw``: cut when the file grew, zero-padded when it shrank."""

    def __init__(self, raw: IO[bytes], size: int) -> None:
        self._raw = raw
        self._left = size
        self.short = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if size < 0 else min(size, self._left)
        data = self._raw.read(want)
        if not data:
            self.short = True
            data = b"\0" * want
        self._left -= len(data)
        return data


# --------------------------------------------------------------- the adapter
class DockerArchive:
    """Tar streams through ``docker cp``, against one engine."""

    def __init__(
        self, engine: DockerEngine, *, gzip_level: int = GZIP_LEVEL, journal: Path | None = None
    ) -> None:
        """``journal``: a directory where each export in progress records its output path
        (and its process), so ``cai gc`` finds the temp file of one that was killed."""
        self.engine = engine
        self.gzip_level = gzip_level
        self.journal = journal

    # ------------------------------------------------------ export leftovers
    def _record(self, output: Path) -> Path | None:
        if self.journal is None:
            return None
        record = self.journal / f"{os.getpid()}-{os.urandom(4).hex()}"
        try:
            self.journal.mkdir(mode=0o700, parents=True, exist_ok=True)
            record.write_text(f"{output}\n{procs.owner_token()}\n")
        except OSError:
            return None  # a help for gc only: the export goes on
        return record

    def _records(self) -> list[tuple[Path, Path]]:
        """(record, output path) of each export whose process is gone."""
        if self.journal is None:
            return []
        found: list[tuple[Path, Path]] = []
        try:
            records = sorted(self.journal.iterdir())
        except OSError:
            return []
        for record in records:
            try:
                output, _, owner = record.read_text().partition("\n")
            except (OSError, ValueError):
                found.append((record, Path()))
                continue
            if procs.owner_alive(owner.strip()) is not True:
                found.append((record, Path(output)))
        return found

    def stale_exports(self) -> list[Path]:
        """Temp files of exports that were killed (``cai gc`` lists and removes them)."""
        found: set[Path] = set()
        for _record, output in self._records():
            if output.name:
                found.update(stale_temps(output.parent, target=output.name, magic=GZIP_MAGIC))
        return sorted(found)

    def remove_files(self, paths: Sequence[Path]) -> list[Path]:
        """Remove the stale temp files ``paths`` (and the records of dead exports)."""
        removed = []
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
        for record, output in self._records():
            if not output.name or not stale_temps(
                output.parent, target=output.name, magic=GZIP_MAGIC
            ):
                with contextlib.suppress(OSError):
                    record.unlink()
        return removed

    # ---------------------------------------------------------------- export
    def export_volume(
        self, container: str, source: str, output: Path, *, progress: Progress | None = None
    ) -> ExportStats:
        """Stream ``source`` (a directory) of ``container`` into the gzip archive ``output``."""
        result: list[ExportStats] = []

        def write(handle: BinaryIO) -> None:
            result.append(self._export_to(container, source, handle, progress))

        # The temp files of exports killed before into this directory go first.
        for stale in stale_temps(output.parent, magic=GZIP_MAGIC):
            with contextlib.suppress(OSError):
                stale.unlink()
        record = self._record(output)
        try:
            atomic_write_stream(output, write, mode=0o600, sync_dir=True, lock=True)
        finally:
            if record is not None:
                with contextlib.suppress(OSError):
                    record.unlink()
        return result[0]

    def _export_to(
        self, container: str, source: str, handle: BinaryIO, progress: Progress | None
    ) -> ExportStats:
        args = ("cp", f"{container}:{source.rstrip('/')}/.", "-")
        proc = self.engine.popen(*args, stdout=subprocess.PIPE)
        _widen_pipe(proc.stdout)
        sink = _ThreadedGzip(handle, self.gzip_level)
        assert proc.stdout is not None
        # Read the pipe's raw fd through our own large buffer (and count it).
        reader = _CountingRaw(proc.stdout.raw, progress, None)  # type: ignore[attr-defined]
        try:
            try:
                members, links = repack(
                    io.BufferedReader(reader, CHUNK),
                    sink,
                    fetch=lambda name: self._fetch_file(container, source, name),
                )
            except (CaiError, tarfile.TarError, EOFError, OSError) as exc:
                # When the engine failed (no such container, volume gone ...), its own
                # error explains more than a truncated stream does.
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                else:
                    if proc.returncode != 0:
                        self.engine.check_stream(args, proc)
                if isinstance(exc, CaiError):
                    raise
                raise Failed(
                    f"reading the data volume of container '{container}' failed: {exc}"
                ) from None
            self.engine.check_stream(args, proc)
            sink.finish()
        except BaseException:
            sink.abort()
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(Exception):
                proc.wait(timeout=10)
            raise
        finally:
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        return ExportStats(members, reader.count, sink.written, links)

    @contextlib.contextmanager
    def _fetch_file(
        self, container: str, source: str, name: str
    ) -> Iterator[tuple[tarfile.TarInfo, IO[bytes]]]:
        """One regular file of the volume (by archive name), for a hard link's content."""
        rel = name.removeprefix("./")
        args = ("cp", f"{container}:{source.rstrip('/')}/{rel}", "-")
        proc = self.engine.popen(*args, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|", bufsize=CHUNK) as tar:
                info = tar.next()
                if info is None or not info.isreg():
                    raise Failed(f"'{rel}' in container '{container}' is not a regular file")
                data = tar.extractfile(info)
                assert data is not None
                yield info, data
                while tar.next() is not None:  # read to the end so docker cp exits cleanly
                    pass
        except tarfile.TarError as exc:
            self.engine.check_stream(args, proc)
            raise Failed(f"reading '{rel}' from container '{container}' failed: {exc}") from None
        except BaseException:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            raise
        self.engine.check_stream(args, proc)

    # ---------------------------------------------------------------- import
    def read_members(self, archive: Path, *, progress: Progress | None = None) -> list[Member]:
        """Every member of ``archive``, in order (data is read and discarded)."""
        with open_archive(archive, progress) as tar:
            return [member_of(info) for info in _iterate(tar)]

    def copy_archive_in(
        self,
        container: str,
        dest: str,
        archive: Path,
        expected: Sequence[Member],
        *,
        staging: str,
        marker: str,
        progress: Progress | None = None,
    ) -> None:
        """Stream ``archive`` into ``dest`` of ``container`` below the directory ``staging``.

        The file ``marker`` (next to ``staging``) is written last, and only when
        every member matched ``expected`` (what was checked): a consumer that
        finds no marker must discard ``staging``.
        """
        # No `-a`: with it the engine chowns everything to the container's configured
        # user; without it, the uid/gid of each tar header are kept.
        args = ("cp", "-", f"{container}:{dest}")
        proc = self.engine.popen(*args, stdin=subprocess.PIPE)
        _widen_pipe(proc.stdin)
        assert proc.stdin is not None
        try:
            try:
                pipe = _CountingWriter(proc.stdin)
                with open_archive(archive, progress) as tin:
                    _restage(tin, pipe, expected, staging, marker, str(archive))
                proc.stdin.close()
            except BrokenPipeError:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
                proc.stdin = None
                self.engine.check_stream(args, proc)
                raise Failed(f"copying into container '{container}' stopped early") from None
        except BaseException:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(Exception):
                proc.wait(timeout=10)
            raise
        self.engine.check_stream(args, proc)

    def copy_items_in(
        self, container: str, dest: str, items: Sequence[TarItem], *, uid: int, gid: int
    ) -> list[str]:
        """Write ``items`` (owned ``uid:gid``) into ``dest`` of ``container``.

        Returns warnings (files that changed size while being read).
        """
        warnings: list[str] = []
        with tempfile.TemporaryFile() as spool:
            with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for item in items:
                    warnings += _add_item(tar, item, uid, gid)
            spool.seek(0)
            args = ("cp", "-", f"{container}:{dest}")
            proc = self.engine.popen(*args, stdin=spool)
            self.engine.check_stream(args, proc)
        return warnings


def _add_item(tar: tarfile.TarFile, item: TarItem, uid: int, gid: int) -> list[str]:
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
        reader = _SizedReader(handle, info.size)
        tar.addfile(info, reader)
    if reader.short:
        return [f"{item.source} shrank while it was copied; its copy may be incomplete"]
    return []


# ----------------------------------------------------------------- repacking
Fetch = Callable[[str], contextlib.AbstractContextManager[tuple[tarfile.TarInfo, IO[bytes]]]]


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
        _stream_reader(src) as tin,
        tarfile.TarFile(
            fileobj=out, mode="w", format=tarfile.PAX_FORMAT, copybufsize=CHUNK
        ) as tout,
    ):
        root: str | None = None
        for info in _iterate(tin):
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


def _tar_writer(out: Stream) -> tarfile.TarFile:
    """A plain-mode tar writer straight onto ``out`` (which needs ``write`` and ``tell``)."""
    return tarfile.TarFile(fileobj=out, mode="w", format=tarfile.PAX_FORMAT, copybufsize=CHUNK)


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


def _restage(
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
        for info in _iterate(tin):
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
