"""The command surface: every command answers --help, usage errors are one line and
exit 2, the error boundary maps domain errors to exit codes and hides tracebacks."""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from containai.cli import argv as cli_argv
from containai.cli import commands
from containai.cli import main as cli_main
from containai.cli.output import Output
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
    ["trust"],
    ["network"],
    ["completion"],
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
        "completion",
        "forward",
        "code",
        "logs",
        "sync",  # SPEC section 16: `cai sync push`
    }
    assert spec == set(commands.names())


@pytest.mark.parametrize("module_name", commands.module_names())
def test_every_command_module_declares_the_contract(module_name: str) -> None:
    """A command is one module: its name (the file's, less a trailing '_'), its help
    line, its description, its arguments and its handler."""
    module = importlib.import_module(f"containai.cli.commands.{module_name}")
    assert module_name.rstrip("_") == module.NAME
    assert commands.load(module.NAME) is module
    assert isinstance(module.HELP, str) and module.HELP and "\n" not in module.HELP
    assert isinstance(module.DESCRIPTION, str) and module.DESCRIPTION
    assert callable(module.arguments) and callable(module.run)
    assert getattr(module, "REST", None) in (None, "after --", "command")
    spec = cli_argv.record(module)  # the argparse-free path can read it (or declines)
    if getattr(module, "REST", None) == "command":  # `cai exec CMD`: found by its options
        assert spec is not None and spec.positionals == []


TOY = """
NAME = "toy"
HELP = "a toy command"
DESCRIPTION = "A toy command, for the test that a command is one module."


def arguments(p):
    from containai.cli.options import add_json_option

    p.add_argument("--times", metavar="N")
    add_json_option(p)


def run(args):
    print(f"toy times={args.times} json={args.json} quiet={args.quiet}")
    return 3
"""


def test_a_new_command_is_one_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Adding a command = adding one module to cli/commands/ (here in a second directory
    of that package): it is listed, parsed (both paths), dispatched and suggested."""
    package = tmp_path / "more"
    package.mkdir()
    (package / "toy.py").write_text(TOY)
    monkeypatch.setattr(commands, "__path__", [*commands.__path__, str(package)])
    monkeypatch.delitem(sys.modules, "containai.cli.commands.toy", raising=False)
    importlib.invalidate_caches()
    try:
        assert "toy" in commands.names()
        assert cli_main.main(["--help"]) == 0
        assert "a toy command" in capsys.readouterr().out
        assert cli_main.main(["toy", "--help"]) == 0
        assert "for the test that a command is one module" in capsys.readouterr().out
        assert cli_argv.fast_parse(["toy", "--times", "2", "--json"]) is not None
        assert cli_main.main(["-q", "toy", "--times", "2", "--json"]) == 3
        assert capsys.readouterr().out == "toy times=2 json=True quiet=True\n"
        assert cli_main.main(["toy", "--time", "2"]) == 2
        assert "did you mean '--times'" in capsys.readouterr().err
        assert cli_main.main(["toys"]) == 2
        assert "did you mean 'toy'?" in capsys.readouterr().err
    finally:
        sys.modules.pop("containai.cli.commands.toy", None)


def test_unknown_command_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["bogus"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cai: error: ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_unknown_command_suggests_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["stats"]) == 2
    assert capsys.readouterr().err == (
        "cai: error: unknown command 'stats'; did you mean 'status'? (see 'cai --help')\n"
    )


def test_unknown_option_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["list", "--bogus"]) == 2
    assert capsys.readouterr().err.startswith("cai: error: unrecognized arguments")


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["stop", "--remov"], "--remove"),
        (["list", "--js"], "--json"),
        (["gc", "--dry"], "--dry-run"),
        (["exec", "--contai", "x", "--", "true"], "--container"),
        (["ssh", "cleanup", "--dry-rn"], "--dry-run"),
    ],
)
def test_options_are_never_abbreviated(
    argv: list[str], hint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """SPEC section 2: `cai stop --remov` is an error (exit 2), not `--remove`."""
    assert cli_main.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cai: error: unrecognized arguments: ") and err.count("\n") == 1
    assert f"did you mean '{hint}'?" in err


def test_a_wrong_choice_suggests_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["config", "lsit"]) == 2
    assert "did you mean 'list'?" in capsys.readouterr().err
    assert cli_main.main(["image", "biuld"]) == 2
    assert "did you mean 'build'?" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "command", "values"),
    [
        ([], "run", {}),
        (["--fresh"], "run", {"fresh": True}),
        (["-w", "/x", "--detached"], "run", {"workspace": "/x", "detached": True}),
        (["--context", "c", "-q"], "run", {"context": "c", "quiet": True}),
        (["--context", "c", "list"], "list", {"context": "c"}),
        (["--", "--print", "hi"], "run", {"rest": ["--print", "hi"]}),
        (["--restart", "--", "x"], "run", {"fresh": True, "rest": ["x"]}),
    ],
)
def test_bare_cai_means_run(argv: list[str], command: str, values: dict[str, object]) -> None:
    for fast in (True, False):
        args = cli_argv.parse(argv, fast=fast)
        assert args.command == command
        for key, value in values.items():
            assert getattr(args, key) == value


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_option_is_the_version_command(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main.main(["version"]) == 0
    expected = capsys.readouterr().out
    assert cli_main.main([flag]) == 0
    assert capsys.readouterr().out == expected
    assert cli_main.main(["-q", flag, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["schema"] == 1


def test_args_after_double_dash_are_kept_verbatim() -> None:
    args = cli_argv.parse(["exec", "-e", "A=1", "--", "ls", "-la", "--", "x"])
    assert args.command == "exec"
    assert args.rest == ["ls", "-la", "--", "x"]
    assert args.env == ["A=1"]
    args = cli_argv.parse(["--", "--print", "hi"])
    assert args.command == "run" and args.rest == ["--print", "hi"]


@pytest.mark.parametrize(
    ("argv", "rest", "values"),
    [
        (["exec", "ls", "-la"], ["ls", "-la"], {}),
        (["exec", "-e", "A=1", "ls", "-la", "--", "x"], ["ls", "-la", "--", "x"], {"env": ["A=1"]}),
        (["exec", "--container", "c", "make", "test"], ["make", "test"], {"container": "c"}),
        (["exec", "--container=c", "-d", "true"], ["true"], {"container": "c", "detached": True}),
        (
            ["exec", "--root", "apt-get", "install", "-y", "jq"],
            ["apt-get", "install", "-y", "jq"],
            {"root": True},
        ),
        (["--context", "c", "exec", "-q", "env"], ["env"], {"context": "c", "quiet": True}),
        (["exec", "-e", "ls"], [], {"env": ["ls"]}),  # -e takes the word as its value
        (["exec"], [], {}),
    ],
)
def test_exec_takes_its_command_without_double_dash(
    argv: list[str], rest: list[str], values: dict[str, object]
) -> None:
    """`cai exec CMD ...` = `cai exec -- CMD ...` when CMD is no option of exec."""
    for fast in (True, False):
        args = cli_argv.parse(argv, fast=fast)
        assert args.command == "exec" and args.rest == rest
        for key, value in values.items():
            assert getattr(args, key) == value


def test_exec_with_an_unknown_option_before_its_command_is_an_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli_main.main(["exec", "--bogus", "ls"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_run_keeps_its_agent_positional() -> None:
    args = cli_argv.parse(["run", "codex", "--fresh", "--", "--help"])
    assert args.agent == "codex" and args.fresh and args.rest == ["--help"]


_COMMANDS = [
    "list", "version", "doctor", "status", "gc", "stop", "export", "import", "run", "shell",
    "exec", "trust", "setup", "config", "ssh",
]  # fmt: skip
_OPTIONS = [
    # options (and mistakes)
    "--json", "--js", "-q", "--quiet", "--verbose", "--context", "--context=c", "--context=",
    "-h", "--", "--all", "--age", "--age=7d", "--age=", "--dry-run", "--force", "--images",
    "--container", "--container=n", "-w", "-wX", "--workspace=/p", "-e", "--env=B=2", "-d",
    "--detached", "--fresh", "--restart", "--reset", "--keep", "--root", "--runtime",
    "--memory", "--data-volume", "--show", "--revoke", "--remove", "--remov", "--export",
    "--output", "-o", "--from", "--no-secrets", "-V", "--version", "--json=x",
    # values and words
    "c", "x", "0s", "-1d", "/p", "A=1", "runc", "v", "a.tgz", "ls", "-la", "",
]  # fmt: skip


def _outcome(argv: list[str], *, fast: bool) -> tuple[object, ...]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            args = cli_argv.parse(argv, fast=fast)
        except SystemExit as exc:
            return ("exit", exc.code, out.getvalue(), err.getvalue())
        except UsageError as exc:
            return ("usage", str(exc))
    return ("parsed", vars(args))


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(_COMMANDS + _OPTIONS), max_size=7))
def test_the_argparse_free_path_parses_exactly_as_argparse(argv: list[str]) -> None:
    """Whatever the argparse-free path accepts, argparse parses to the same values; what
    it declines goes to argparse, which owns every message."""
    assert _outcome(argv, fast=True) == _outcome(argv, fast=False)


@settings(max_examples=600, deadline=None)
@given(
    st.lists(st.sampled_from(["-q", "--context=c", "--verbose"]), max_size=1),
    st.sampled_from(_COMMANDS),
    st.lists(st.sampled_from(_OPTIONS), max_size=6),
)
def test_each_commands_options_parse_exactly_as_argparse(
    before: list[str], command: str, after: list[str]
) -> None:
    argv = [*before, command, *after]
    assert _outcome(argv, fast=True) == _outcome(argv, fast=False)


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
        ["stop", "--all", "--remove"],
        ["exec", "--", "true"],
        ["exec", "true"],
        ["exec", "-e", "A=1", "--env=B=2", "--", "env"],
        [],
        ["--fresh", "--", "--print", "hi"],
        ["run", "--detached"],
        ["shell", "-w", "/p"],
        ["export", "--container", "c", "-o", "x.tgz"],
        ["import", "--from", "x.tgz", "--force"],
        ["trust", "--show", "--json"],
        ["-V"],
    ],
)
def test_option_only_command_lines_skip_argparse(argv: list[str]) -> None:
    fast = cli_argv.fast_parse(argv)
    assert fast is not None
    assert vars(fast) == vars(cli_argv.parse(argv, fast=False))


@pytest.mark.parametrize(
    "argv",
    [
        ["list", "--js"],
        ["list", "-h"],
        ["list", "x"],
        ["gc", "--age"],
        ["gc", "--age", "-1d"],
        ["gc", "--age="],
        ["status", "-wX"],
        ["run", "codex"],
        ["import", "x.tgz"],
        ["export", "--container", "c", "--data-volume", "v"],
        ["trust", "--show", "--revoke"],
        ["config", "list"],
        ["ssh", "cleanup"],
        ["-h"],
        ["bogus"],
    ],
)
def test_other_command_lines_go_to_argparse(argv: list[str]) -> None:
    assert cli_argv.fast_parse(argv) is None


def test_the_hot_path_imports_no_argparse(tmp_path: Path) -> None:
    """`cai exec` and `cai list --json` parse without argparse (DESIGN decision 2)."""
    code = (
        "import sys\n"
        "from containai.cli import argv\n"
        "for line in (['exec', '--', 'true'], ['exec', 'true'], ['list', '--json'], []):\n"
        "    argv.parse(line)\n"
        "print(sorted(m for m in ('argparse', 'typing', 're', 'containai.cli.parser')"
        " if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(cli_argv.__file__).parents[2])}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    # `typing` and `re` come with domain.validation and adapters.ssh on the exec path today
    assert "argparse" not in proc.stdout and "containai.cli.parser" not in proc.stdout


def test_main_and_parser_do_not_import_each_other() -> None:
    """No import cycle in the command line: main -> argv -> (parser) -> commands."""
    cli = Path(cli_main.__file__).parent
    imports: dict[str, set[str]] = {}
    for path in [*cli.glob("*.py"), *cli.glob("commands/*.py")]:
        rel = path.relative_to(cli.parent.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        imports[name] = {m for m in found if m.startswith("containai.cli")}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            name = todo.pop()
            if name == goal:
                return True
            if name not in seen:
                seen.add(name)
                todo += imports.get(name, ())
        return False

    assert not reaches("containai.cli.parser", "containai.cli.main")
    assert not reaches("containai.cli.parser", "containai.cli.argv")
    assert not reaches("containai.cli.argv", "containai.cli.main")
    # only the launcher's entry point (the warm exec first, then main) imports main
    assert [n for n, deps in imports.items() if "containai.cli.main" in deps] == [
        "containai.cli.hot"
    ]
    assert imports["containai.cli.hot"] == {"containai.cli.main", "containai.cli.main.entry"}


def test_double_dash_refused_for_commands_that_take_none(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli_main.main(["list", "--", "x"]) == 2
    assert "takes no arguments after '--'" in capsys.readouterr().err


def test_json_output_ends_with_one_newline() -> None:
    buf = io.StringIO()
    Output(stdout=buf).json({"a": [1, 2]})
    text = buf.getvalue()
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert json.loads(text) == {"schema": 1, "a": [1, 2]}


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


def _import_source(argv: list[str], cwd: Path) -> str | None:
    from containai.cli.app import App
    from containai.cli.commands import import_

    return import_.source_of(App(cli_argv.parse(["import", *argv]), cwd=cwd))


def test_import_takes_an_archive_without_from(tmp_path: Path) -> None:
    """`cai import FILE` = `cai import --from FILE` for a .tgz/.tar.gz or an existing
    file; bare `cai import` still imports the host configuration from $HOME."""
    (tmp_path / "backup.bin").write_bytes(b"x")
    (tmp_path / "dir").mkdir()
    assert _import_source([], tmp_path) is None
    assert _import_source(["--from", "dir"], tmp_path) == "dir"
    assert _import_source(["x.tgz"], tmp_path) == "x.tgz"  # need not exist: exit 4 later
    assert _import_source(["old.tar.gz", "--force"], tmp_path) == "old.tar.gz"
    assert _import_source(["backup.bin"], tmp_path) == "backup.bin"
    with pytest.raises(UsageError, match="--from DIR"):
        _import_source(["dir"], tmp_path)
    with pytest.raises(UsageError, match="not an archive"):
        _import_source(["nothing-here"], tmp_path)
    with pytest.raises(UsageError, match="not both"):
        _import_source(["x.tgz", "--from", "y.tgz"], tmp_path)


def test_import_of_a_missing_archive_is_exit_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main.main(["import", "x.tgz"]) == 4
    err = capsys.readouterr().err
    assert "x.tgz does not exist" in err and "unrecognized" not in err


@pytest.mark.parametrize(
    ("word", "candidates", "hint"),
    [
        ("stats", ["setup", "status", "stop"], "status"),
        ("sta", ["setup", "status", "stop"], "status"),  # the only one it abbreviates
        ("st", ["setup", "status", "stop"], None),
        ("--remov", ["--remove", "--force"], "--remove"),
        ("--dry-rn", ["--dry-run", "--json"], "--dry-run"),
        ("--remove", ["--reset", "--restart", "--keep"], None),  # no dangerous near miss
        ("--keep", ["--help", "--json"], None),
        ("bogus", ["run", "list"], None),
    ],
)
def test_did_you_mean(word: str, candidates: list[str], hint: str | None) -> None:
    assert commands.closest(word, candidates) == hint


def _leave(body: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    src = Path(__file__).parents[2] / "src"
    script = "import sys, threading, time\nfrom containai.cli.main import leave\n" + body
    env = {**os.environ, "PYTHONPATH": str(src), "CAI_TEST_OUT": str(tmp_path / "out")}
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )


def test_leaving_flushes_output_and_runs_atexit_then_skips_the_teardown(tmp_path: Path) -> None:
    done = _leave(
        "import atexit, os\n"
        "atexit.register(lambda: open(os.environ['CAI_TEST_OUT'], 'w').write('atexit'))\n"
        "class Torn:\n"  # finalized only by the interpreter's teardown of this module
        "    def __del__(self):\n"
        "        open(os.environ['CAI_TEST_OUT'], 'a').write(' torn down')\n"
        "kept = Torn()\n"
        "sys.stdout.write('buffered, no newline')\n"
        "sys.stderr.write('err')\n"
        "leave(3)\n",
        tmp_path,
    )
    assert (done.returncode, done.stdout, done.stderr) == (3, "buffered, no newline", "err")
    assert (tmp_path / "out").read_text() == "atexit"  # no teardown after it


def test_leaving_waits_for_a_thread_still_at_work(tmp_path: Path) -> None:
    done = _leave(
        "import os\n"
        "def work():\n"
        "    time.sleep(0.3)\n"
        "    open(os.environ['CAI_TEST_OUT'], 'w').write('finished')\n"
        "threading.Thread(target=work).start()\n"
        "leave(0)\n",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out").read_text() == "finished"
