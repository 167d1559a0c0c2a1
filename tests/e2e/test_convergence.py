"""Convergence and crash safety on a real engine (SPEC section 5, issue 4.6): parallel
runs end with one container, SIGKILL at any point is repaired by the next run, a stop
racing a run leaves a usable workspace, live sessions guard a TTY-less stop, and a
stopped container whose port was taken comes back on a new one."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import CAI, Sandbox, docker

pytestmark = pytest.mark.usefixtures("engine")


def containers_of(ws: Path) -> list[str]:
    out = docker(
        "ps", "-a", "--filter", f"label=containai.workspace={ws}", "--format", "{{.Names}}"
    ).stdout
    return out.split()


def test_six_parallel_runs_converge(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("par", "main")
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _i: sandbox.cai("run", "--detached", cwd=ws), range(6)))
    assert [r.returncode for r in results] == [0] * 6, [r.stderr for r in results]
    assert containers_of(ws) == ["par-main"]
    with ThreadPoolExecutor(6) as pool:
        execs = list(
            pool.map(lambda i: sandbox.cai("exec", "--", "echo", str(i), cwd=ws), range(6))
        )
    assert [r.stdout for r in execs] == [f"{i}\n" for i in range(6)]


@pytest.mark.parametrize("delay", [0.15, 0.5, 0.9, 1.4, 2.0])
def test_sigkill_mid_create_is_repaired(sandbox: Sandbox, delay: float) -> None:
    ws = sandbox.workspace("kill", "main")
    proc = subprocess.Popen(
        [CAI, "run", "--detached"],
        cwd=ws,
        env=sandbox.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    res = sandbox.cai("run", "--detached", cwd=ws)
    assert res.returncode == 0, res.stderr
    assert containers_of(ws) == ["kill-main"]
    res = sandbox.cai("exec", "--", "pwd", cwd=ws)
    assert (res.returncode, res.stdout) == (0, f"{ws}\n"), res.stderr


def test_stop_racing_run_leaves_a_usable_workspace(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("race", "main")
    assert sandbox.cai("run", "--detached", cwd=ws).returncode == 0
    with ThreadPoolExecutor(2) as pool:
        stop = pool.submit(sandbox.cai, "stop", "--force", cwd=ws)
        run = pool.submit(sandbox.cai, "run", "--detached", cwd=ws)
        assert stop.result().returncode == 0, stop.result().stderr
        assert run.result().returncode == 0, run.result().stderr
    res = sandbox.cai("run", "--detached", cwd=ws)
    assert res.returncode == 0, res.stderr
    assert sandbox.cai("exec", "--", "true", cwd=ws).returncode == 0
    assert containers_of(ws) == ["race-main"]


def test_live_session_guards_stop_without_tty(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("live", "main")
    assert sandbox.cai("run", "--detached", cwd=ws).returncode == 0
    entry = sandbox.home / ".ssh" / "containai.d" / "live-main.conf"
    session = subprocess.Popen(
        [
            "ssh",
            "-F",
            str(entry),
            "-o",
            "ControlMaster=no",
            "-o",
            "ControlPath=none",
            "cai-live-main",
            "sleep",
            "120",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            st = sandbox.cai("status", "--json", cwd=ws)
            if st.returncode == 0 and (st.json.get("sessions") or {}).get("ssh_connections"):
                break
            time.sleep(0.5)
        res = sandbox.cai("stop", cwd=ws)
        assert res.returncode == 6, res.stderr
        assert "--force" in res.stderr and "live-main" in res.stderr
        state = docker("inspect", "-f", "{{.State.Status}}", "live-main").stdout.strip()
        assert state == "running"
        assert sandbox.cai("stop", "--force", cwd=ws).returncode == 0
    finally:
        session.kill()
        session.wait()


def test_idle_control_master_is_not_a_session(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("idle", "main")
    assert sandbox.cai("run", "--detached", cwd=ws).returncode == 0
    assert sandbox.cai("exec", "--", "true", cwd=ws).returncode == 0  # warm master
    res = sandbox.cai("stop", cwd=ws)
    assert res.returncode == 0, res.stderr


def test_taken_port_moves_and_entry_follows(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("moved", "main")
    assert sandbox.cai("run", "--detached", cwd=ws).returncode == 0
    port = int(
        docker(
            "inspect", "-f", '{{index .Config.Labels "containai.ssh-port"}}', "moved-main"
        ).stdout
    )
    assert sandbox.cai("stop", "--force", cwd=ws).returncode == 0
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    try:
        res = sandbox.cai("run", "--detached", cwd=ws)
        assert res.returncode == 0, res.stderr
        new = int(
            docker(
                "inspect", "-f", '{{index .Config.Labels "containai.ssh-port"}}', "moved-main"
            ).stdout
        )
        assert new != port
        entry = (sandbox.home / ".ssh" / "containai.d" / "moved-main.conf").read_text()
        assert f"Port {new}" in entry
        assert sandbox.cai("exec", "--", "true", cwd=ws).returncode == 0
    finally:
        squatter.close()
