"""Run a program and capture its output, without the ``subprocess`` module.

``subprocess`` pulls in threading, selectors and signal handling (~4 ms of imports);
``cai list`` is one ``docker ps`` whose whole budget is three times that call, so the
engine adapter's plain captures use ``os.posix_spawn`` with two pipes drained by
``poll`` instead. Semantics match ``subprocess.run(argv, env=env,
capture_output=True, timeout=T, check=False)``: the program is found on ``env``'s
PATH, stdin is inherited, SIGPIPE is default in the child, and the child is killed
(and reaped) when it outlives the timeout.
"""

from __future__ import annotations

import importlib
import os
import select
import time

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

_CHUNK = 1 << 16
# `signal` imports enum (~2 ms); its C half has the number.
_SIGPIPE: int = importlib.import_module("_signal").SIGPIPE


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


def _which(name: str, env: Mapping[str, str]) -> str:
    """``name`` on ``env``'s PATH (as ``subprocess`` resolves it); FileNotFoundError if absent."""
    if "/" in name:
        return name
    for directory in env.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(directory or ".", name)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError(2, "No such file or directory", name)


def capture(
    argv: Sequence[str], env: Mapping[str, str], timeout: float, *, text: bool = True
) -> Captured:
    """Run ``argv``; raise ``FileNotFoundError`` when it does not exist, ``Timeout`` when
    it outlives ``timeout`` seconds."""
    program = _which(argv[0], env)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        pid = os.posix_spawn(
            program,
            list(argv),
            dict(env),
            file_actions=[(os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)],
            setsigdef=(_SIGPIPE,),
        )
    except BaseException:
        for fd in (out_r, err_r):
            os.close(fd)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    deadline = time.monotonic() + timeout
    status: int | None = None
    try:
        poller = select.poll()
        for fd in chunks:
            poller.register(fd, select.POLLIN)
        open_fds = {out_r, err_r}
        while open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for fd, _event in poller.poll(max(1, int(left * 1000))):
                data = os.read(fd, _CHUNK)
                if data:
                    chunks[fd].append(data)
                else:
                    poller.unregister(fd)
                    open_fds.discard(fd)
        while status is None:  # the pipes are closed: the child is done or nearly so
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = raw
            elif time.monotonic() >= deadline:
                break
            else:
                time.sleep(0.001)
    finally:
        if status is None:  # timed out or interrupted: kill and reap, exactly once
            _kill(pid)
        for fd in (out_r, err_r):
            os.close(fd)
    if status is None:
        raise Timeout(f"{argv[0]} ran longer than {timeout:g} s")
    out, err = b"".join(chunks[out_r]), b"".join(chunks[err_r])
    code = os.waitstatus_to_exitcode(status)
    if text:
        return Captured(
            list(argv), code, out.decode(errors="replace"), err.decode(errors="replace")
        )
    return Captured(list(argv), code, out, err)


def _kill(pid: int) -> None:
    """Kill and reap ``pid``, our child that has not been reaped yet."""
    try:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
