"""Byte streams under the tar code: counting readers and writers (with progress), a
forward-only reader tarfile can ``tell`` and skip on, gzip in a worker thread, a
reader cut or padded to an exact size, and a wider pipe from the engine.

Gzip runs in a worker thread (zlib releases the GIL), so reading and parsing the
engine's stream overlaps with compression.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import queue
import threading
import time
import zlib
from collections.abc import Callable
from typing import IO, Any

CHUNK = 1 << 20  # 1 MiB reads and writes
GZIP_LEVEL = 2  # measured: level 2 is as fast as 1 and ~3% smaller; 6 is 3x slower
PIPE_SIZE = 1 << 20  # Linux F_SETPIPE_SZ for the engine's stream, when allowed
PROGRESS_EVERY = 0.25  # seconds between progress callbacks

Stream = IO[bytes] | io.RawIOBase | io.BufferedIOBase  # what tarfile reads or writes

# progress(done_bytes, total_bytes_or_None)
Progress = Callable[[int, int | None], None]


def widen_pipe(stream: Any) -> None:
    """Ask Linux for a 1 MiB pipe: fewer wake-ups between the engine and us."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is None or stream is None:
        return
    with contextlib.suppress(OSError, ValueError, AttributeError):
        fcntl.fcntl(stream.fileno(), set_size, PIPE_SIZE)


class CountingReader(io.RawIOBase):
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


class ForwardReader:
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


class CountingWriter(io.RawIOBase):
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


class ThreadedGzip(io.RawIOBase):
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


class SizedReader(io.RawIOBase):
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
