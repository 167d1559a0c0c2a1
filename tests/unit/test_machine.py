"""adapters/machine.py (cai doctor's facts about this machine) and adapters/programs.py
(how setup and doctor run a host program): parsing, and real small programs."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from containai.adapters import programs
from containai.adapters.machine import MachineProbe, ssh_version
from containai.domain.errors import Failed


@pytest.mark.parametrize(
    ("output", "version"),
    [
        (
            b"OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15 3 Sep 2024\n",
            "OpenSSH_9.2p1 Debian-2+deb12u3",
        ),
        (
            b"OpenSSH_8.9p1 Ubuntu-3ubuntu0.10, OpenSSL 3.0.2 15 Mar 2022",
            "OpenSSH_8.9p1 Ubuntu-3ubuntu0.10",
        ),
        (b"OpenSSH_for_Windows_9.5p1, LibreSSL 3.8.2\r\n", "OpenSSH_for_Windows_9.5p1"),
        (b"", None),
        (b"  \n", None),
    ],
)
def test_ssh_version(output: bytes, version: str | None) -> None:
    assert ssh_version(output) == version


class ReplyRunner:
    def __init__(self, rc: int, out: bytes = b"", err: bytes = b"") -> None:
        self.reply = (rc, out, err)
        self.calls: list[list[str]] = []

    def __call__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
        input: bytes | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        self.calls.append(list(argv))
        return subprocess.CompletedProcess(list(argv), *self.reply)


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """A PATH directory with an executable ``ssh`` (never run: the runner is fake)."""
    d = tmp_path / "bin"
    d.mkdir()
    ssh = d / "ssh"
    ssh.write_text("#!/bin/sh\nexit 0\n")
    ssh.chmod(0o755)
    return d


def test_ssh_client_version_runs_ssh_v_from_path(bin_dir: Path) -> None:
    run = ReplyRunner(0, err=b"OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15 3 Sep 2024\n")
    probe = MachineProbe({"PATH": str(bin_dir)}, run=run)
    assert probe.ssh_client_version() == "OpenSSH_9.2p1 Debian-2+deb12u3"
    assert run.calls == [[str(bin_dir / "ssh"), "-V"]]
    assert probe.has_program("ssh") and not probe.has_program("ssh-keygen")


def test_ssh_client_version_none_without_ssh(tmp_path: Path) -> None:
    run = ReplyRunner(0)
    assert MachineProbe({"PATH": str(tmp_path)}, run=run).ssh_client_version() is None
    assert run.calls == []


@pytest.mark.parametrize(("rc", "err"), [(255, b"ssh: broken library\n"), (0, b"")])
def test_ssh_client_version_that_fails_says_why(bin_dir: Path, rc: int, err: bytes) -> None:
    probe = MachineProbe({"PATH": str(bin_dir)}, run=ReplyRunner(rc, err=err))
    with pytest.raises(Failed, match="`ssh -V` failed"):
        probe.ssh_client_version()


def test_files_and_disk(tmp_path: Path) -> None:
    probe = MachineProbe({"PATH": ""})
    assert not probe.exists(tmp_path / "none")
    assert probe.read_bytes(tmp_path / "none") is None
    (tmp_path / "f").write_bytes(b"x")
    assert probe.exists(tmp_path / "f") and probe.read_bytes(tmp_path / "f") == b"x"
    free = probe.disk_free(str(tmp_path))
    assert free is not None and free >= 0
    assert probe.disk_free(str(tmp_path / "none")) is None
    assert probe.hostname()


# --------------------------------------------------------------------------- #
# programs
# --------------------------------------------------------------------------- #


def test_run_captures_output_and_status() -> None:
    proc = programs.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, b"out\n", b"err\n")


def test_run_missing_program_is_127() -> None:
    proc = programs.run(["/nonexistent/cai-no-such-program", "x"])
    assert proc.returncode == 127
    assert programs.last_error(proc) == "/nonexistent/cai-no-such-program: not found"


def test_run_that_outlives_its_timeout_is_124() -> None:
    proc = programs.run(["sleep", "5"], timeout=0.2)
    assert proc.returncode == 124
    assert "no answer within" in programs.last_error(proc)


def test_last_error_and_check() -> None:
    both = subprocess.CompletedProcess(["x"], 1, b"out\n", b"first\n\nlast line\n  \n")
    assert programs.last_error(both) == "last line"
    only_out = subprocess.CompletedProcess(["x"], 1, b"said this\n", b"")
    assert programs.last_error(only_out) == "said this"
    silent = subprocess.CompletedProcess(["x"], 9, b"", b"")
    assert programs.last_error(silent) == "exit 9"
    programs.check(subprocess.CompletedProcess(["x"], 0, b"", b""), "nothing")
    with pytest.raises(Failed, match="doing it failed: last line"):
        programs.check(both, "doing it")


def test_which_finds_programs_on_path() -> None:
    assert programs.which("sh") is not None
    assert programs.which("cai-no-such-program") is None
