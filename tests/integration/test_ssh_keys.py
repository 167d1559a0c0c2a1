"""adapters/ssh/ (OpenSsh) against a real OpenSSH server on loopback (no Docker needed).

A throwaway ``sshd`` runs with the container host key cai generated and the
user key cai generated, so these tests check the whole chain the containers
use: pinned host key + HostKeyAlias, StrictHostKeyChecking, the control
master (started by ``wait_ready``, reused afterwards, found by
``master_alive``, stopped by ``exit_master``/``remove``) and the quoting of
``remote_command`` through a real remote shell.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from containai.adapters.ssh import CONTROL_PATH_MAX, OpenSsh, remote_command
from containai.domain.errors import Failed
from containai.paths import resolve_paths

SSHD = shutil.which("sshd") or next(
    (p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if os.path.exists(p)), None
)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

pytestmark = [
    # Locally these skip without OpenSSH's server; in CI (scripts/test installs it) they run.
    pytest.mark.skipif(
        not IN_CI and (SSHD is None or shutil.which("ssh") is None), reason="needs OpenSSH"
    ),
    pytest.mark.timeout(120),
]

NAME = "myapp-main"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Sshd:
    """One sshd on 127.0.0.1 that accepts the cai user key and serves a cai host key."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, host_key: Path, authorized: str) -> None:
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privsep directory
        elif not os.path.isdir("/run/sshd"):
            pytest.skip("sshd needs /run/sshd")
        keys = self.workdir / "authorized_keys"
        keys.write_text(authorized + "\n")
        config = self.workdir / "sshd_config"
        config.write_text(
            f"Port {self.port}\n"
            "ListenAddress 127.0.0.1\n"
            f'HostKey "{host_key}"\n'
            f'AuthorizedKeysFile "{keys}"\n'
            f'PidFile "{self.workdir / "sshd.pid"}"\n'
            "StrictModes no\n"
            "UsePAM no\n"
            "PasswordAuthentication no\n"
            "PermitRootLogin prohibit-password\n"
            "LogLevel VERBOSE\n"  # "Starting session" lines
        )
        assert SSHD is not None
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "sshd.log", "wb"),  # noqa: SIM115
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"sshd exited: {(self.workdir / 'sshd.log').read_text()}")
            with socket.socket() as probe, contextlib.suppress(OSError):
                probe.connect(("127.0.0.1", self.port))
                return
            time.sleep(0.05)
        pytest.fail("sshd did not start listening")

    def stop_listener(self) -> None:
        """Stop the listening daemon only; established sessions (their own processes) stay."""
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def kill_all(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    workdir = tmp_path / "sshd"
    workdir.mkdir()
    server = Sshd(workdir)
    yield server
    server.kill_all()


@pytest.fixture
def made() -> Iterator[list[tuple[OpenSsh, str]]]:
    """Every (files, name) a test sets up; their masters and files are removed afterwards."""
    created: list[tuple[OpenSsh, str]] = []
    yield created
    for files, name in created:
        files.remove(name)


def setup_container(
    home: Path, sshd: Sshd, made: list[tuple[OpenSsh, str]], name: str = NAME
) -> OpenSsh:
    files = OpenSsh(resolve_paths({"HOME": str(home)}))
    made.append((files, name))
    files.ensure_user_key()
    _, host_public = files.ensure_host_key(name)
    files.pin_host_key(name, host_public)
    files.write_entry(name, port=sshd.port, user=getpass.getuser(), workspace=str(home))
    return files


def run_ssh(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, check=False
    )


def test_ready_then_master_reused_and_exited(
    tmp_path: Path, sshd: Sshd, made: list[tuple[OpenSsh, str]]
) -> None:
    files = setup_container(tmp_path / "my home", sshd, made)
    sshd.start(files.host_key_path(NAME), files.public_key())
    assert files.master_alive(NAME) is False

    files.wait_ready(NAME, timeout=20)
    assert files.master_alive(NAME) is True  # wait_ready left a warm master behind
    assert os.path.exists(files.control_path(NAME))

    # the next calls go through the master: they work even with the daemon gone
    sshd.stop_listener()
    workspace = tmp_path / "w 'q' $x"
    workspace.mkdir()
    args = ["a b", "it's", 'say "hi"', "$HOME", "`id`", "*", ""]
    script = (
        "import json,os,sys; print(json.dumps([os.getcwd(), sys.argv[1:], os.environ['CAI_V']]))"
    )
    line = remote_command(
        str(workspace), [sys.executable, "-c", script, *args], {"CAI_V": "a 'b' $c"}
    )
    done = run_ssh(files.ssh_argv(NAME, line, tty=False))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [str(workspace), args, "a 'b' $c"]
    # the remote command's exit code is ssh's
    assert run_ssh(files.ssh_argv(NAME, "exit 7", tty=False)).returncode == 7

    files.exit_master(NAME)
    assert files.master_alive(NAME) is False
    assert not os.path.lexists(files.control_path(NAME))
    assert run_ssh(files.ssh_argv(NAME, "true", tty=False)).returncode == 255  # really gone


def test_wait_ready_retries_until_sshd_answers(
    tmp_path: Path, sshd: Sshd, made: list[tuple[OpenSsh, str]]
) -> None:
    files = setup_container(tmp_path / "home", sshd, made)
    starter = threading.Timer(1.0, sshd.start, (files.host_key_path(NAME), files.public_key()))
    started = time.monotonic()
    starter.start()
    try:
        files.wait_ready(NAME, timeout=30)
    finally:
        starter.join()
    assert time.monotonic() - started >= 1.0
    assert files.master_alive(NAME) is True


def test_host_key_mismatch_fails_at_once(
    tmp_path: Path, sshd: Sshd, made: list[tuple[OpenSsh, str]]
) -> None:
    files = setup_container(tmp_path / "home", sshd, made)
    sshd.start(files.host_key_path(NAME), files.public_key())
    impostor = OpenSsh(resolve_paths({"HOME": str(tmp_path / "impostor")}))
    files.pin_host_key(NAME, impostor.ensure_host_key(NAME)[1])
    started = time.monotonic()
    with pytest.raises(Failed) as caught:
        files.wait_ready(NAME, timeout=30)
    assert time.monotonic() - started < 10  # no retry loop until the timeout
    message = str(caught.value)
    assert f"container '{NAME}'" in message
    assert "does not match" in message
    assert str(files.paths.known_hosts) in message
    assert files.master_alive(NAME) is False


def test_missing_pin_fails_at_once(
    tmp_path: Path, sshd: Sshd, made: list[tuple[OpenSsh, str]]
) -> None:
    files = setup_container(tmp_path / "home", sshd, made)
    sshd.start(files.host_key_path(NAME), files.public_key())
    files.paths.known_hosts.write_text("")  # no trust on first use: nothing pinned, no login
    started = time.monotonic()
    with pytest.raises(Failed, match="no usable SSH host key pinned"):
        files.wait_ready(NAME, timeout=30)
    assert time.monotonic() - started < 10
    assert files.paths.known_hosts.read_text() == ""  # ssh did not add the key itself


def test_socket_path_at_the_limit_and_fallback(sshd: Sshd, made: list[tuple[OpenSsh, str]]) -> None:
    short_home = Path(tempfile.mkdtemp(prefix="cai-", dir="/tmp"))
    try:
        sockets = resolve_paths({"HOME": str(short_home)}).ssh_sockets_dir
        name = "n" * (CONTROL_PATH_MAX - len(os.fsencode(sockets / "")) - 1)
        files = setup_container(short_home, sshd, made, name=name)
        assert len(os.fsencode(files.control_path(name))) == CONTROL_PATH_MAX
        assert files.control_path(name).parent == sockets  # exactly at the limit: natural path
        deep = setup_container(short_home / ("d" * 100), sshd, made, name=name)
        deep.pin_host_key(name, files.ensure_host_key(name)[1])  # both talk to the one sshd
        assert deep.control_path(name).parent == Path(f"/tmp/cai-{os.getuid()}")
        authorized = files.public_key() + "\n" + deep.public_key()
        sshd.start(files.host_key_path(name), authorized)

        files.wait_ready(name, timeout=20)
        assert files.master_alive(name) is True
        deep.wait_ready(name, timeout=20)
        assert deep.master_alive(name) is True
        assert deep.control_path(name).exists()
    finally:
        for files, name in made:
            files.remove(name)
        made.clear()
        shutil.rmtree(short_home, ignore_errors=True)


def test_remove_stops_a_live_master(
    tmp_path: Path, sshd: Sshd, made: list[tuple[OpenSsh, str]]
) -> None:
    files = setup_container(tmp_path / "home", sshd, made)
    sshd.start(files.host_key_path(NAME), files.public_key())
    files.wait_ready(NAME, timeout=20)
    socket_path = files.control_path(NAME)
    assert files.master_alive(NAME)
    removed = files.remove(NAME)
    assert socket_path in removed
    assert files.entry_path(NAME) in removed
    assert files.master_alive(NAME) is False
    assert not os.path.lexists(socket_path)
    assert files.entries() == []


def test_ready_through_the_no_delay_helper_when_the_port_is_known(
    tmp_path: Path, sshd: Sshd, made: list[tuple[OpenSsh, str]]
) -> None:
    """With the port, the first login goes through the TCP_NODELAY helper once sshd's
    banner is seen, and leaves the same warm master behind."""
    files = setup_container(tmp_path / "home", sshd, made)
    sshd.start(files.host_key_path(NAME), files.public_key())
    files.wait_ready(NAME, timeout=20, port=sshd.port)
    assert files.master_alive(NAME) is True
    proc = run_ssh(files.ssh_argv(NAME, "echo through-the-master", tty=False))
    assert proc.returncode == 0 and proc.stdout.strip() == "through-the-master"


class CountingForwarder:
    """A TCP forwarder on 127.0.0.1 in front of ``target`` (as Docker's proxy or the
    gateway's forwarder is in front of a container's sshd): while nothing listens
    behind it, it accepts and closes; it counts the connections it carried through."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.carried = 0
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port: int = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                inner = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()
                continue
            self.carried += 1
            for src, dst in ((client, inner), (inner, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.server.close()


def test_the_first_login_is_the_connection_that_saw_the_banner(
    tmp_path: Path, sshd: Sshd, made: list[tuple[OpenSsh, str]]
) -> None:
    """sshd forks and re-executes itself for each connection (~0.1 s under gVisor): the
    banner wait hands its greeted connection to ssh instead of opening a second one, also
    when the container is still booting (its forwarder closing connections) at first."""
    files = setup_container(tmp_path / "home", sshd, made)
    forwarder = CountingForwarder(sshd.port)
    try:
        files.write_entry(
            NAME, port=forwarder.port, user=getpass.getuser(), workspace=str(tmp_path)
        )
        starter = threading.Timer(0.5, sshd.start, (files.host_key_path(NAME), files.public_key()))
        starter.start()
        try:
            files.wait_ready(NAME, timeout=30, port=forwarder.port)
        finally:
            starter.join()
        assert files.master_alive(NAME) is True
        # sshd.start's own probe connects to sshd directly, not through the forwarder
        assert forwarder.carried == 1
        # the login alone: no session forked, no shell started for it
        log = (sshd.workdir / "sshd.log").read_text()
        assert "Accepted publickey" in log
        assert "Starting session" not in log
        proc = run_ssh(files.ssh_argv(NAME, "echo after", tty=False))  # through the master
        assert proc.returncode == 0 and proc.stdout.strip() == "after"
        assert "Starting session" in (sshd.workdir / "sshd.log").read_text()
    finally:
        forwarder.close()


def test_no_banner_ends_with_ssh_own_error_at_the_deadline(
    tmp_path: Path, sshd: Sshd, made: list[tuple[OpenSsh, str]]
) -> None:
    files = setup_container(tmp_path / "home", sshd, made)
    forwarder = CountingForwarder(sshd.port)  # sshd never starts: accepted, then closed
    try:
        files.write_entry(
            NAME, port=forwarder.port, user=getpass.getuser(), workspace=str(tmp_path)
        )
        started = time.monotonic()
        with pytest.raises(Failed) as caught:
            files.wait_ready(NAME, timeout=1.5, port=forwarder.port)
        assert 1.4 <= time.monotonic() - started < 10
        message = str(caught.value)
        assert "did not accept SSH" in message
        assert "Connection closed" in message or "kex_exchange_identification" in message
    finally:
        forwarder.close()
