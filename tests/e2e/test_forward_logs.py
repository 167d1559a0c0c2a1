"""SPEC section 17 end to end: `cai forward` serves a page from inside the container on
the host's 127.0.0.1 (foreground until Ctrl-C; --background, --list, --stop; restored
after a stop/start by the function `cai run` calls), `cai logs` shows the entrypoint's
output and the lifecycle logs, `cai code` runs the editor (a fake one on PATH)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import CAI, Sandbox

pytestmark = pytest.mark.usefixtures("engine")

INSIDE = 8000
PAGE = "hello-from-the-container"
SERVE = (
    "mkdir -p /tmp/www && echo " + PAGE + " > /tmp/www/index.html && cd /tmp/www && "
    f"(setsid python3 -m http.server {INSIDE} --bind 127.0.0.1 >/dev/null 2>&1 &) && "
    "for i in $(seq 100); do python3 -c "
    f"'import socket; socket.create_connection((\"127.0.0.1\", {INSIDE}))' 2>/dev/null "
    "&& exit 0; sleep 0.1; done; exit 1"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def page(port: int, timeout: float = 2.0) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as answer:
            return str(answer.read().decode().strip())
    except OSError:
        return None


def wait_page(port: int, seconds: float = 30.0) -> str | None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = page(port)
        if got is not None:
            return got
        time.sleep(0.2)
    return None


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def one_error(result: object, code: int) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)  # type: ignore[attr-defined]
    err = result.stderr  # type: ignore[attr-defined]
    assert err.startswith("cai: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


def test_forward_code_and_logs(sandbox: Sandbox, tmp_path: Path) -> None:
    ws = sandbox.workspace("fwd")
    made = sandbox.cai("run", "-d", cwd=ws)
    assert made.returncode == 0, made.stderr
    served = sandbox.cai("exec", "--", "sh", "-c", SERVE, cwd=ws)
    assert served.returncode == 0, served.stderr

    # --- bad input: one line, spec exit code, nothing listening ------------------------
    one_error(sandbox.cai("forward", "0", cwd=ws), 2)
    one_error(sandbox.cai("forward", "65536", cwd=ws), 2)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        refused = sandbox.cai("forward", f"{INSIDE}:{taken}", "--background", cwd=ws)
        one_error(refused, 1)
        assert f"127.0.0.1:{taken} is already in use" in refused.stderr
    assert sandbox.cai("forward", "--list", "--json", cwd=ws).json["forwards"] == []

    # --- foreground: serves the page until Ctrl-C, then the port is free ---------------
    fg_port = free_port()
    proc = subprocess.Popen(
        [CAI, "forward", f"{INSIDE}:{fg_port}"],
        cwd=ws,
        env=sandbox.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert wait_page(fg_port) == PAGE
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert f"forwarding 127.0.0.1:{fg_port} -> port {INSIDE}" in err
    assert f"removed forward 127.0.0.1:{fg_port}" in err
    assert not listening(fg_port)

    # --- background, list, stop -----------------------------------------------------
    bg_port = free_port()
    bg = sandbox.cai("forward", f"{INSIDE}:{bg_port}", "--background", cwd=ws)
    assert bg.returncode == 0, bg.stderr
    assert f"forwarding 127.0.0.1:{bg_port} -> port {INSIDE}" in bg.stderr
    assert page(bg_port) == PAGE  # the command has returned: the forward outlives it
    listed = sandbox.cai("forward", "--list", "--json", cwd=ws).json["forwards"]
    assert listed == [
        {"port": INSIDE, "host_port": bg_port, "address": f"127.0.0.1:{bg_port}", "active": True}
    ]
    text = sandbox.cai("forward", "--list", cwd=ws)
    assert f"127.0.0.1:{bg_port}" in text.stdout and "active" in text.stdout
    status = sandbox.cai("status", "--json", cwd=ws).json  # status shows them (SPEC 17)
    assert status["forwards"] == listed
    shown = sandbox.cai("status", cwd=ws).stdout
    assert f"Forward: 127.0.0.1:{bg_port} -> port {INSIDE}, active" in shown
    stopped = sandbox.cai("forward", "--stop", str(bg_port), cwd=ws)
    assert stopped.returncode == 0, stopped.stderr
    assert page(bg_port) is None and not listening(bg_port)
    assert sandbox.cai("forward", "--list", "--json", cwd=ws).json["forwards"] == []
    one_error(sandbox.cai("forward", "--stop", str(bg_port), cwd=ws), 4)

    # --- recorded, gone with the container, restored after it starts again -----------
    keep_port = free_port()
    kept = sandbox.cai("forward", f"{INSIDE}:{keep_port}", "--background", cwd=ws)
    assert kept.returncode == 0, kept.stderr
    down = sandbox.cai("stop", cwd=ws)  # cai's own forwards master is not a user session
    assert down.returncode == 0, down.stderr
    assert not listening(keep_port)
    inactive = sandbox.cai("forward", "--list", "--json", cwd=ws).json["forwards"]
    assert [(f["host_port"], f["active"]) for f in inactive] == [(keep_port, False)]
    one_error(sandbox.cai("forward", "9999", cwd=ws), 1)  # not running
    up = sandbox.cai("run", "-d", cwd=ws)  # cai run brings the recorded forward back
    assert up.returncode == 0, up.stderr
    assert f"forwarding 127.0.0.1:{keep_port}" in up.stderr
    assert sandbox.cai("exec", "--", "sh", "-c", SERVE, cwd=ws).returncode == 0
    assert wait_page(keep_port, 10) == PAGE
    assert sandbox.cai("forward", "--stop", cwd=ws).returncode == 0
    assert not listening(keep_port)

    # --- logs: the entrypoint's lines; lifecycle logs shown, escapes neutralized ------
    logs = sandbox.cai("logs", cwd=ws)
    assert logs.returncode == 0, logs.stderr
    assert "containai: starting sshd on port 2222" in logs.stdout
    assert len(sandbox.cai("logs", "--tail", "1", cwd=ws).stdout.splitlines()) == 1
    write = (
        "mkdir -p ~/.containai/logs && "
        "printf 'setup ok\\n\\033]0;x\\007\\n' > ~/.containai/logs/post-create.log"
    )
    assert sandbox.cai("exec", "--", "sh", "-c", write, cwd=ws).returncode == 0
    logs = sandbox.cai("logs", cwd=ws)
    assert "/.containai/logs/post-create.log <==" in logs.stdout
    assert "setup ok" in logs.stdout and "\x1b" not in logs.stdout and "\\x1b]0;x" in logs.stdout
    assert "containai: starting sshd" in logs.stdout.split("==> container ")[1]
    one_error(sandbox.cai("logs", "--tail", "x", cwd=ws), 2)

    # --- code: the editor gets --remote ssh-remote+cai-<name> <workspace> ---------------
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "editor-args"
    (bin_dir / "code").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    (bin_dir / "code").chmod(0o755)
    name = sandbox.cai("status", "--json", cwd=ws).json["container"]
    path = {"PATH": f"{bin_dir}{os.pathsep}{sandbox.env['PATH']}"}
    opened = sandbox.cai("code", cwd=ws, env=path)
    assert opened.returncode == 0, opened.stderr
    assert record.read_text().splitlines() == ["--remote", f"ssh-remote+cai-{name}", str(ws)]
    missing = sandbox.cai("code", "--editor", "cai-test-no-such-editor", cwd=ws)
    one_error(missing, 1)
    assert missing.stdout.splitlines() == [
        f"cai-test-no-such-editor --remote ssh-remote+cai-{name} {ws}",
        f"vscode-remote://ssh-remote+cai-{name}{ws}",
    ]
    assert json.loads(sandbox.cai("status", "--json", cwd=ws).stdout)["container"] == name
