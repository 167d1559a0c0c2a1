"""Run a program and capture its output, without the ``subprocess`` module.

``subprocess`` pulls in threading, selectors and signal handling (~4 ms of imports);
``cai list`` is one ``docker ps`` whose whole budget is three times that call, so the
engine adapter's plain captures use ``os.posix_spawnp`` with two pipes drained by
``poll`` instead. Semantics match ``subprocess.run(argv, capture_output=True,
timeout=T, check=False)``: stdin is inherited, the child is killed on timeout.
"""

from __future__ import annotations

import os
import select
import time

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

_CHUNK = 1 << 16


class Captured:
    """What a finished program left: ``returncode``, ``stdout``, ``stderr`` (str or bytes)."""

    __slots__ = ("args", "returncode", "stderr", "stdout")

    def __init__(self, args: list[str], returncode: int, stdout: str | bytes, stderr: str | bytes):
        self.args = args
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


class Timeout(Exception):
    """The program ran longer than its timeout (and was killed)."""


def capture(
    argv: Sequence[str], env: Mapping[str, str], timeout: float, *, text: bool = True
) -> Captured:
    """Run ``argv``; raise ``FileNotFoundError`` when it does not exist, ``Timeout`` when
    it outlives ``timeout`` seconds."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        pid = os.posix_spawnp(
            argv[0],
            list(argv),
            dict(env),
            file_actions=[(os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)],
        )
    except BaseException:
        for fd in (out_r, err_r):
            os.close(fd)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    poller = select.poll()
    for fd in chunks:
        poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    open_fds = {out_r, err_r}
    try:
        while open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                _kill(pid)
                raise Timeout(f"{argv[0]} ran longer than {timeout:.0f} s")
            for fd, _event in poller.poll(max(1, int(left * 1000))):
                data = os.read(fd, _CHUNK)
                if data:
                    chunks[fd].append(data)
                else:
                    poller.unregister(fd)
                    open_fds.discard(fd)
        status = os.waitpid(pid, 0)[1]
    except BaseException:
        _kill(pid)
        raise
    finally:
        for fd in (out_r, err_r):
            os.close(fd)
    out, err = b"".join(chunks[out_r]), b"".join(chunks[err_r])
    code = os.waitstatus_to_exitcode(status)
    if text:
        return Captured(
            list(argv), code, out.decode(errors="replace"), err.decode(errors="replace")
        )
    return Captured(list(argv), code, out, err)


def _kill(pid: int) -> None:
    """Kill and reap ``pid`` (nothing if it is gone already)."""
    try:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
