"""``DockerArchive``: the tar streams of ``cai export`` and ``cai import`` through
``docker cp`` against one engine, and the journal that lets ``cai gc`` find the temp
file of an export that was killed.

* export: ``docker cp C:/mnt/agent-data/. -`` -> ``repack`` -> gzip (a worker
  thread) -> a temp file next to the target, fsynced, chmod 0600 and renamed into
  place (``files.atomic_write_stream``); on any error or Ctrl-C the temp file is
  removed. A hard link's content is fetched with one more ``docker cp`` of its target.
* import: the archive is read twice: once to list (and check) every member, once
  to stream it, renamed under a staging directory, into ``docker cp - C:DEST``.
* host import: a list of ``TarItem`` is spooled to a temp tar and copied in.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO

from containai.adapters import procs
from containai.adapters.archive.reading import open_archive, read_members
from containai.adapters.archive.repacking import TarItem, add_item, repack, restage
from containai.adapters.archive.streams import (
    CHUNK,
    GZIP_LEVEL,
    CountingReader,
    CountingWriter,
    Progress,
    ThreadedGzip,
    widen_pipe,
)
from containai.adapters.files import atomic_write_stream, stale_temps
from containai.domain.errors import CaiError, Failed

if TYPE_CHECKING:
    from containai.adapters.engine import DockerEngine
    from containai.domain.archive_rules import Member

GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class ExportStats:
    members: int
    bytes_in: int  # uncompressed tar bytes read from the engine
    bytes_out: int  # archive size
    hardlinks: int  # hard links written as regular files


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
        widen_pipe(proc.stdout)
        sink = ThreadedGzip(handle, self.gzip_level)
        assert proc.stdout is not None
        # Read the pipe's raw fd through our own large buffer (and count it).
        reader = CountingReader(proc.stdout.raw, progress, None)  # type: ignore[attr-defined]
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
        return read_members(archive, progress)

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
        widen_pipe(proc.stdin)
        assert proc.stdin is not None
        try:
            try:
                pipe = CountingWriter(proc.stdin)
                with open_archive(archive, progress) as tin:
                    restage(tin, pipe, expected, staging, marker, str(archive))
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
                    warnings += add_item(tar, item, uid, gid)
            spool.seek(0)
            args = ("cp", "-", f"{container}:{dest}")
            proc = self.engine.popen(*args, stdin=spool)
            self.engine.check_stream(args, proc)
        return warnings
