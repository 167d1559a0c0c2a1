"""`cai forward`, `cai logs`, `cai code` (SPEC section 17): the port rules, the record
of background forwards, the use case over in-memory fakes, and the command lines that
are refused before anything is asked of the engine."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from containai.cli import main as cli_main
from containai.cli.commands import logs as logs_command
from containai.domain import editor
from containai.domain import forwards as F
from containai.domain.errors import Failed, NotFound, UsageError
from containai.domain.forwards import Forward
from containai.domain.validation import terminal_safe
from containai.services import logs
from containai.services.forward import Forwards
from tests.fakes import FakeConfig, FakeEngine, FakeForwarder, FakeHost, FakeLocks

WS = "/src/app"


# ------------------------------------------------------------------ domain: ports
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8000", Forward(8000)),
        ("8000:18000", Forward(8000, 18000)),
        ("1", Forward(1)),
        ("65535:1", Forward(65535, 1)),
    ],
)
def test_port_specs(text: str, expected: Forward) -> None:
    assert F.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    ["0", "65536", "70000", "-1", "abc", "", ":", "80:", ":80", "1:2:3", "８０", " 80x", "8000:0"],
)
def test_bad_ports_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="invalid port"):
        F.parse(text)


@given(st.integers(1, 65535), st.integers(1, 65535))
def test_a_forward_reads_back_as_written(port: int, host: int) -> None:
    assert F.parse(str(Forward(port, host))) == Forward(port, host)
    assert F.parse(str(Forward(port))) == Forward(port)


@given(st.integers().filter(lambda n: not 1 <= n <= 65535))
def test_out_of_range_numbers_are_refused(n: int) -> None:
    with pytest.raises(UsageError):
        F.parse(str(n))


def test_the_same_host_port_twice_is_refused() -> None:
    with pytest.raises(UsageError, match="twice"):
        F.parse_all(["8000:9000", "8001:9000"])
    assert F.parse_all(["8000", "8000"]) == [Forward(8000)]


def test_default_host_port_is_the_same_then_the_next_free() -> None:
    assert F.choose_host_port(Forward(8000), lambda p: True) == Forward(8000, 8000)
    taken = {8000, 8001}
    assert F.choose_host_port(Forward(8000), lambda p: p not in taken) == Forward(8000, 8002)
    assert F.choose_host_port(Forward(8000), lambda p: True, [8000]) == Forward(8000, 8001)
    with pytest.raises(Failed, match="no free port"):
        F.choose_host_port(Forward(65535), lambda p: False)


def test_a_named_host_port_in_use_is_refused() -> None:
    with pytest.raises(Failed, match=r"127\.0\.0\.1:18000 is already in use"):
        F.choose_host_port(Forward(8000, 18000), lambda p: p != 18000)
    assert F.choose_host_port(Forward(8000, 18000), lambda p: True) == Forward(8000, 18000)


def test_the_record_is_per_container_and_skips_bad_entries() -> None:
    state = {"forwards": {"a": ["8000:8000", "junk", "9000", "1:2"], "b": ["5:6"]}}
    assert F.recorded(state, "a") == [Forward(8000, 8000), Forward(1, 2)]
    assert F.recorded({"forwards": "x"}, "a") == []
    assert F.with_record(state, "a", []) == {"b": ["5:6"]}
    assert F.with_record({"forwards": {"a": ["1:2"]}}, "a", []) is None
    assert F.with_record({}, "c", [Forward(3, 4)]) == {"c": ["3:4"]}


def test_stop_port_means_host_port_first() -> None:
    items = [Forward(8000, 18000), Forward(18000, 8000), Forward(8000, 8001)]
    assert F.matching(items, 18000) == [Forward(8000, 18000)]
    assert F.matching(items, 8001) == [Forward(8000, 8001)]
    assert F.matching(items, 1) == []


# ------------------------------------------------------------ the use case
def service(bound: set[int] | None = None) -> tuple[Forwards, FakeForwarder, FakeConfig]:
    host = FakeHost(bound=set(bound or ()))
    forwarder = FakeForwarder(host)
    config = FakeConfig()
    fw = Forwards(forwarder, config, FakeLocks(), host.port_is_free, sleep=lambda _s: None)
    return fw, forwarder, config


def test_background_forwards_are_made_and_recorded() -> None:
    fw, _forwarder, config = service(bound={8000})
    made = fw.background("app-main", WS, [Forward(8000), Forward(5173, 15173)])
    assert made == [Forward(8000, 8001), Forward(5173, 15173)]
    assert config.states[WS]["forwards"] == {"app-main": ["8000:8001", "5173:15173"]}
    assert [r.active for r in fw.listing("app-main", WS)] == [True, True]
    # asked again while the master holds it: nothing new
    assert fw.background("app-main", WS, [Forward(8000)]) == []


def test_a_failed_background_forward_records_nothing() -> None:
    fw, _forwarder, config = service(bound={18000})
    with pytest.raises(Failed, match="already in use"):
        fw.background("app-main", WS, [Forward(8000, 18000)])
    assert "forwards" not in config.states.get(WS, {})


def test_stop_one_then_all() -> None:
    fw, forwarder, config = service()
    fw.background("app-main", WS, [Forward(8000), Forward(9000)])
    assert fw.stop("app-main", WS, 9000) == [Forward(9000, 9000)]
    assert ("cancel", "app-main", 9000, 9000) in forwarder.calls
    assert config.states[WS]["forwards"] == {"app-main": ["8000:8000"]}
    with pytest.raises(NotFound, match="no background forward on port 9000"):
        fw.stop("app-main", WS, 9000)
    assert fw.stop("app-main", WS, None) == [Forward(8000, 8000)]
    assert ("close", "app-main") in forwarder.calls
    assert "forwards" not in config.states[WS]


def test_restore_brings_back_recorded_and_configured_forwards() -> None:
    fw, forwarder, config = service()
    config.states[WS] = {"forwards": {"app-main": ["8000:18000"]}}
    done = fw.restore("app-main", WS, ["3000", "8000"])  # 8000 is recorded already
    assert [(r.forward, r.problem) for r in done] == [
        (Forward(8000, 18000), None),
        (Forward(3000, 3000), None),
    ]
    assert config.states[WS]["forwards"] == {"app-main": ["8000:18000", "3000:3000"]}
    # the master holds them now: a second run adds nothing and asks nothing
    calls = len(forwarder.calls)
    assert fw.restore("app-main", WS, ["3000"]) == []
    assert len(forwarder.calls) == calls


def test_restore_reports_a_taken_port_and_goes_on() -> None:
    fw, _forwarder, config = service(bound={18000})
    config.states[WS] = {"forwards": {"app-main": ["8000:18000", "9000:9000"]}}
    done = fw.restore("app-main", WS)
    assert done[0].problem is not None and "18000" in done[0].problem
    assert done[1] == logs_restored(Forward(9000, 9000))


def logs_restored(forward: Forward) -> object:
    from containai.services.forward import Restored

    return Restored(forward)


def test_restore_without_anything_to_do_asks_nothing() -> None:
    fw, forwarder, _config = service()
    assert fw.restore("app-main", WS, []) == []
    assert forwarder.calls == []


def test_foreground_returns_once_listening_and_frees_on_close() -> None:
    fw, forwarder, _config = service(bound={8000})
    chosen, tunnel = fw.foreground("app-main", [Forward(8000)])
    assert chosen == [Forward(8000, 8001)]
    assert forwarder.calls == [("open", "app-main", ((8000, 8001),))]
    tunnel.close()
    assert forwarder.host.bound == {8000}


def test_foreground_failure_says_what_ssh_said() -> None:
    fw, forwarder, _config = service()
    forwarder.fail_open = "channel_setup_fwd_listener_tcpip: cannot listen to port: 8000"
    with pytest.raises(Failed, match="cannot listen"):
        fw.foreground("app-main", [Forward(8000)])
    assert forwarder.tunnels[0].closed


# ------------------------------------------------------------------ logs
def test_lifecycle_logs_are_split_per_file() -> None:
    engine = FakeEngine()

    class Answer:
        stdout = (
            "/home/agent/.containai/logs/a.log\0one\ntwo\n\0/home/agent/.containai/logs/b.log\0\0"
        )

    engine.exec = lambda *a, **k: Answer()  # type: ignore[method-assign,assignment]
    found = logs.lifecycle_logs(engine, "x", "agent", None)
    assert [(f.path, f.lines) for f in found] == [
        ("/home/agent/.containai/logs/a.log", ["one", "two"]),
        ("/home/agent/.containai/logs/b.log", []),
    ]
    assert logs.lifecycle_logs(engine, "x", "agent", 0) == []


def test_the_log_script_reads_only_regular_files_and_bounds_them() -> None:
    script = logs._script(5)
    assert '[ -f "$f" ] && [ ! -L "$f" ]' in script
    assert f"tail -c {logs.MAX_BYTES}" in script and "tail -n 5" in script
    assert "tail -n" not in logs._script(None)


@pytest.mark.parametrize(("text", "expected"), [(None, None), ("all", None), ("0", 0), ("25", 25)])
def test_tail_values(text: str | None, expected: int | None) -> None:
    assert logs_command.parse_tail(text) == expected


@pytest.mark.parametrize("text", ["-1", "x", "1.5", "", "٣"])
def test_bad_tail_values(text: str) -> None:
    with pytest.raises(UsageError, match="--tail"):
        logs_command.parse_tail(text)


def test_container_output_cannot_drive_the_terminal() -> None:
    assert terminal_safe("ok\tline") == "ok\tline"
    assert terminal_safe("\x1b]0;pwned\x07red\r") == "\\x1b]0;pwned\\x07red\\x0d"


# ------------------------------------------------------------------ code
def test_editor_command_and_uri() -> None:
    assert editor.argv("code", "cai-app-main", "/src/my app") == [
        "code",
        "--remote",
        "ssh-remote+cai-app-main",
        "/src/my app",
    ]
    assert editor.folder_uri("cai-app-main", "/src/my app") == (
        "vscode-remote://ssh-remote+cai-app-main/src/my%20app"
    )
    assert editor.check_editor("/opt/Cursor/cursor") == "/opt/Cursor/cursor"
    for bad in ("", "-x", "code --wait", "a\nb"):
        with pytest.raises(UsageError, match="--editor"):
            editor.check_editor(bad)


# -------------------------------------------- refused before the engine is asked
@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["forward"], "give a PORT"),
        (["forward", "0"], "invalid port '0'"),
        (["forward", "65536"], "not between 1 and 65535"),
        (["forward", "80:90:100"], "PORT:HOSTPORT"),
        (["forward", "8000", "--list"], "takes no PORT"),
        (["forward", "--stop", "x"], "invalid port 'x'"),
        (["forward", "--stop", "1:2"], "one PORT"),
        (["forward", "--list", "--stop"], "not allowed with"),
        (["forward", "8000", "--json"], "--json goes with --list"),
        (["forward", "8000", "--container", "../x"], "container"),
        (["forward", "8000", "--container", "a", "-w", "/"], "exclude each other"),
        (["logs", "--tail", "-3"], "--tail"),
        (["logs", "--tail", "many"], "--tail"),
        (["logs", "--bogus"], "unrecognized"),
        (["code", "--editor", "-x"], "--editor"),
        (["code", "--editor", ""], "--editor"),
    ],
)
def test_bad_command_lines_are_exit_2(
    argv: list[str],
    words: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PATH", "/nonexistent")  # no docker, no ssh: nothing may be asked
    monkeypatch.chdir(tmp_path)
    assert cli_main.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cai: error: ") and err.count("\n") == 1, err
    assert words in err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_help_of_each_new_command(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("forward", "logs", "code"):
        assert cli_main.main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert "--background" in out and "--tail" in out and "--editor" in out


def test_the_log_script_bounds_its_whole_output(tmp_path: Path) -> None:
    """Many big log files (the agent's) are not read whole into cai on the host."""
    import subprocess

    folder = tmp_path / ".containai" / "logs"
    folder.mkdir(parents=True)
    for i in range(12):
        (folder / f"f{i}.log").write_bytes(b"x" * (logs.MAX_BYTES + 10))
    out = subprocess.run(
        ["sh", "-c", logs._script(None)], env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert 0 < len(out) <= 4 * logs.MAX_BYTES + 4096
