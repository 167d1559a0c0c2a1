"""adapters/spawn.py: the engine adapter's capture without ``subprocess`` behaves as
``subprocess.run(capture_output=True, timeout=T)``."""

from __future__ import annotations

import os
import time

import pytest

from containai.adapters import spawn

ENV = dict(os.environ)


def test_stdout_stderr_and_exit_code_are_kept_apart() -> None:
    done = spawn.capture(["sh", "-c", "echo out; echo err >&2; exit 3"], ENV, 10)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")


def test_bytes_mode_and_large_output_on_both_streams_do_not_deadlock() -> None:
    script = "head -c 300000 /dev/zero; head -c 300000 /dev/zero >&2"
    done = spawn.capture(["sh", "-c", script], ENV, 20, text=False)
    assert done.returncode == 0
    assert done.stdout == b"\0" * 300000 and done.stderr == b"\0" * 300000


def test_a_missing_program_is_file_not_found() -> None:
    with pytest.raises(FileNotFoundError):
        spawn.capture(["cai-no-such-program-x"], ENV, 5)


def test_a_program_past_its_timeout_is_killed() -> None:
    start = time.monotonic()
    with pytest.raises(spawn.Timeout):
        spawn.capture(["sh", "-c", "echo started; exec sleep 30"], ENV, 0.5)
    assert time.monotonic() - start < 5


def test_the_environment_is_the_one_given() -> None:
    done = spawn.capture(["sh", "-c", 'printf %s "$CAI_SPAWN_X"'], {**ENV, "CAI_SPAWN_X": "y"}, 5)
    assert done.stdout == "y"


def test_no_descriptor_leaks() -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        spawn.capture(["true"], ENV, 5)
    with pytest.raises(FileNotFoundError):
        spawn.capture(["cai-no-such-program-x"], ENV, 5)
    assert len(os.listdir("/proc/self/fd")) == before


def test_the_program_is_found_on_the_given_path(tmp_path: object) -> None:
    from pathlib import Path

    bindir = Path(str(tmp_path)) / "bin"
    bindir.mkdir()
    tool = bindir / "cai-spawn-probe"
    tool.write_text("#!/bin/sh\necho found\n")
    tool.chmod(0o755)
    done = spawn.capture(["cai-spawn-probe"], {**ENV, "PATH": f"{bindir}:/usr/bin:/bin"}, 5)
    assert done.stdout == "found\n"
    with pytest.raises(FileNotFoundError):
        spawn.capture(["cai-spawn-probe"], {**ENV, "PATH": "/usr/bin:/bin"}, 5)


def test_sigpipe_is_default_in_the_child() -> None:
    done = spawn.capture(["sh", "-c", "grep SigIgn /proc/self/status"], ENV, 5)
    ignored = int(done.stdout.split()[1], 16)
    assert not ignored & (1 << (13 - 1))  # SIGPIPE not ignored, as with subprocess


def test_a_child_that_closes_its_output_but_lingers_is_killed_at_the_timeout() -> None:
    start = time.monotonic()
    with pytest.raises(spawn.Timeout):
        spawn.capture(["sh", "-c", "exec >&- 2>&-; sleep 30"], ENV, 0.5)
    assert time.monotonic() - start < 5
