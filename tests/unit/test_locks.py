"""adapters/locks.py: exclusive across processes, released on exit (even SIGKILL),
re-entrant per object, TimeoutError when busy."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from containai.adapters.locks import FileLock, FileLocks

HOLD = """
import sys, time
from containai.adapters.locks import FileLock
lock = FileLock(sys.argv[1], timeout=5)
lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


def _holder(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_lock_held_by_another_process_times_out(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    proc = _holder(path)
    try:
        lock = FileLock(path, timeout=0.3)
        start = time.monotonic()
        with pytest.raises(TimeoutError, match=r"x\.lock"):
            lock.acquire()
        assert time.monotonic() - start >= 0.3
        assert not lock.is_locked
    finally:
        proc.kill()
        proc.wait()


def test_the_kernel_releases_the_lock_of_a_killed_holder(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    proc = _holder(path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with FileLock(path, timeout=2) as lock:
        assert lock.is_locked


def test_two_objects_on_one_path_exclude_each_other(tmp_path: Path) -> None:
    first = FileLock(tmp_path / "x.lock", timeout=1)
    second = FileLock(tmp_path / "x.lock", timeout=0.1)
    with first, pytest.raises(TimeoutError):
        second.acquire()
    with second:  # released by first's exit
        assert second.is_locked
    assert not second.is_locked


def test_one_object_is_reentrant(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "x.lock", timeout=0.1)
    with lock:
        with lock:
            assert lock.is_locked
        assert lock.is_locked  # the inner exit keeps the outer hold
        with pytest.raises(TimeoutError):
            FileLock(tmp_path / "x.lock", timeout=0.1).acquire()
    assert not lock.is_locked


def test_a_waiter_gets_the_lock_when_it_is_released(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    proc = _holder(path)
    try:
        lock = FileLock(path, timeout=10)
        start = time.monotonic()
        killer = subprocess.Popen(["sh", "-c", f"sleep 0.3; kill {proc.pid}"])
        with lock:
            assert time.monotonic() - start >= 0.2
        killer.wait()
    finally:
        proc.kill()
        proc.wait()


def test_named_locks_live_in_a_private_directory(tmp_path: Path) -> None:
    locks = FileLocks(tmp_path / "locks", timeout=1)
    with locks.workspace("/src/a"), locks.ports(), locks.named("build"):
        pass
    assert (tmp_path / "locks").stat().st_mode & 0o777 == 0o700
    names = sorted(p.name for p in (tmp_path / "locks").iterdir())
    assert "ports.lock" in names and "build.lock" in names
    assert any(n.startswith("ws-") for n in names)
    assert locks.workspace("/src/a").path == locks.workspace("/src/a").path
    assert locks.workspace("/src/a").path != locks.workspace("/src/b").path


# Issue 13 item 2: an unusable lock path is one line naming it and the fix.
def test_an_empty_directory_in_place_of_a_lock_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "ports.lock").mkdir()
    with FileLocks(tmp_path).ports():
        assert (tmp_path / "ports.lock").is_file()


def test_a_lock_path_that_cannot_be_used_is_one_line_naming_it(tmp_path: Path) -> None:
    from containai.domain.errors import Failed

    (tmp_path / "ports.lock" / "x").mkdir(parents=True)
    with pytest.raises(Failed) as err:
        FileLocks(tmp_path).ports().acquire()
    text = str(err.value)
    assert "\n" not in text and str(tmp_path / "ports.lock") in text and "rm -r" in text
    (tmp_path / "file").write_text("")
    with pytest.raises(Failed) as err:
        FileLocks(tmp_path / "file").ports()
    assert str(tmp_path / "file") in str(err.value) and "\n" not in str(err.value)
