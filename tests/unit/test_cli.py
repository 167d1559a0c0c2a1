"""The command surface: every command answers --help, usage errors are one line and
exit 2, the error boundary maps domain errors to exit codes and hides tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from containai.cli import main as cli_main
from containai.cli import parser as cli_parser
from containai.domain.errors import (
    ConfirmationNeeded,
    EngineUnreachable,
    Failed,
    NotFound,
    Refused,
    UsageError,
)

SURFACE = [
    ["run"],
    ["shell"],
    ["exec"],
    ["stop"],
    ["status"],
    ["list"],
    ["export"],
    ["import"],
    ["gc"],
    ["config"],
    ["doctor"],
    ["ssh"],
    ["ssh", "cleanup"],
    ["image"],
    ["image", "build"],
    ["template"],
    ["template", "list"],
    ["setup"],
    ["version"],
]


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in (
        "XDG_CONFIG_HOME",
        "XDG_STATE_HOME",
        "CONTAINAI_CONTEXT",
        "CONTAINAI_DATA_VOLUME",
        "CAI_DEBUG",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("words", SURFACE, ids=lambda w: " ".join(w))
def test_every_command_answers_help(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main([*words, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: cai")
    assert "--context" in out or words == ["ssh"] or words == ["image"] or words == ["template"]


def test_spec_commands_are_all_registered() -> None:
    spec = {
        "run",
        "shell",
        "exec",
        "stop",
        "status",
        "list",
        "export",
        "import",
        "gc",
        "config",
        "doctor",
        "ssh",
        "image",
        "template",
        "trust",
        "network",
        "setup",
        "version",
    }
    assert spec == set(cli_main.COMMANDS)


def test_unknown_command_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["bogus"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cai: error: ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_unknown_option_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["list", "--bogus"]) == 2
    assert capsys.readouterr().err.startswith("cai: error: unrecognized arguments")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], ["run"]),
        (["--fresh"], ["run", "--fresh"]),
        (["-w", "/x", "--detached"], ["run", "-w", "/x", "--detached"]),
        (["--context", "c", "-q"], ["run", "--context", "c", "-q"]),
        (["--context", "c", "list"], ["--context", "c", "list"]),
        (["exec"], ["exec"]),
        (["-h"], ["-h"]),
    ],
)
def test_bare_cai_means_run(argv: list[str], expected: list[str]) -> None:
    assert cli_parser._insert_default_command(argv) == expected


def test_args_after_double_dash_are_kept_verbatim() -> None:
    args = cli_main.parse(["exec", "-e", "A=1", "--", "ls", "-la", "--", "x"])
    assert args.command == "exec"
    assert args.rest == ["ls", "-la", "--", "x"]
    assert args.env == ["A=1"]
    args = cli_main.parse(["--", "--print", "hi"])
    assert args.command == "run" and args.rest == ["--print", "hi"]


_FAST_TOKENS = st.sampled_from(
    [
        "list",
        "version",
        "doctor",
        "status",
        "gc",
        "stop",
        "--json",
        "--js",
        "-q",
        "--quiet",
        "--verbose",
        "--context",
        "--context=c",
        "--context=",
        "c",
        "-h",
        "--",
        "x",
        "--all",
        "--age",
        "--age=7d",
        "0s",
        "-1d",
        "--dry-run",
        "--force",
        "--images",
        "--container",
        "--container=n",
        "-w",
        "-wX",
        "--workspace=/p",
        "/p",
        "--age=",
    ]
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(_FAST_TOKENS, max_size=7))
def test_the_flag_only_fast_path_parses_exactly_as_argparse(argv: list[str]) -> None:
    """Whatever the fast path accepts, argparse parses to the same values; what it
    declines (None) goes to argparse, which owns every message."""
    fast = cli_main.fast_parse(argv)
    if fast is None:
        return
    assert vars(fast) == vars(cli_parser.parse(argv))


@pytest.mark.parametrize(
    "argv",
    [
        ["list"],
        ["list", "--json"],
        ["-q", "list", "--json", "--verbose"],
        ["--context", "c", "list"],
        ["list", "--context=c", "--json"],
        ["version", "--json"],
        ["doctor"],
        ["gc", "--force", "--age", "0s"],
        ["gc", "--age=7d", "--dry-run", "--json", "--images"],
        ["status", "-w", "/p", "--json"],
        ["status", "--container=n"],
    ],
)
def test_flag_only_command_lines_skip_argparse(argv: list[str]) -> None:
    fast = cli_main.fast_parse(argv)
    assert fast is not None
    assert vars(fast) == vars(cli_parser.parse(argv))


@pytest.mark.parametrize(
    "argv",
    [
        ["list", "--js"],
        ["list", "-h"],
        ["list", "x"],
        ["stop", "--all"],
        ["gc", "--age"],
        ["gc", "--age", "-1d"],
        ["gc", "--age="],
        ["status", "-wX"],
        [],
        ["-q"],
    ],
)
def test_other_command_lines_go_to_argparse(argv: list[str]) -> None:
    assert cli_main.fast_parse(argv) is None


def test_double_dash_refused_for_commands_that_take_none(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli_main.main(["list", "--", "x"]) == 2
    assert "takes no arguments after '--'" in capsys.readouterr().err


def test_version_json(capsys: pytest.CaptureFixture[str]) -> None:
    from containai import __version__

    assert cli_main.main(["version", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == 1 and doc["version"] == __version__


def test_version_text(capsys: pytest.CaptureFixture[str]) -> None:
    from containai import __version__

    assert cli_main.main(["version"]) == 0
    assert capsys.readouterr().out == f"cai {__version__}\n"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (Failed("x"), 1),
        (UsageError("x"), 2),
        (EngineUnreachable("x"), 3),
        (NotFound("x"), 4),
        (Refused("x"), 5),
        (ConfirmationNeeded("x"), 6),
    ],
)
def test_error_boundary_maps_exit_codes(
    error: Exception,
    code: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from containai.cli.commands import version

    def boom(_args: object) -> int:
        raise error

    monkeypatch.setattr(version, "run", boom)
    assert cli_main.main(["version"]) == code
    assert capsys.readouterr().err == "cai: error: x\n"


def test_interrupt_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from containai.cli.commands import version

    def interrupted(_args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(version, "run", interrupted)
    assert cli_main.main(["version"]) == 130


def test_unexpected_error_is_a_bug_without_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from containai.cli.commands import version

    def bug(_args: object) -> int:
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(version, "run", bug)
    assert cli_main.main(["version"]) == 1
    err = capsys.readouterr().err
    assert "this is a bug" in err and "CAI_DEBUG=1" in err and "Traceback" not in err
    monkeypatch.setenv("CAI_DEBUG", "1")
    assert cli_main.main(["version"]) == 1
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["exec", "--container", "bad/name", "--", "true"], "container name"),
        (["run", "--data-volume", "a/b", "--dry-run"], "volume"),
        (["run", "--data-volume", "a..b", "--dry-run"], "volume"),
        (["run", "--template", "Bad", "--dry-run"], "template"),
        (["run", "-e", "NOEQUALS", "--dry-run"], "NOEQUALS"),
        (["run", "-e", "1BAD=x", "--dry-run"], "1BAD"),
        (["run", "--runtime", "kata", "--dry-run"], "kata"),
        (["run", "--memory", "lots", "--dry-run"], "lots"),
        (["run", "--cpus", "-1", "--dry-run"], "-1"),
        (["run", "--fresh", "--reset", "--dry-run"], "--reset"),
        (["run", "--container", "x", "--workspace", ".", "--dry-run"], "--workspace"),
        (["exec"], "exec needs a command"),
        (["config", "get", "no.such.key"], "no.such.key"),
        (["config", "set", "ssh.port_range_start", "80"], "1024"),
        (["config", "set", "ssh.forward_agent", "maybe"], "maybe"),
        (["config", "set", "gc.age", "7x"], "7x"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str], home: Path
) -> None:
    assert cli_main.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cai: error: ") and err.count("\n") == 1, err
    assert fragment in err
    assert not (home / ".config" / "containai" / "config.toml").exists()
