"""`cai completion bash|zsh|fish` (SPEC section 17): a static script from the parser;
bash completes command names, options and, for --container, the names `cai list`
shows (asked at TAB time)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from containai.cli import commands
from containai.cli import main as cli_main
from containai.cli.commands import completion

FAKE_CAI = """#!/bin/sh
# `cai list` as the completion script calls it: a header line, then one row each.
[ "$1" = list ] || exit 1
printf 'NAME        STATUS   WORKSPACE\\n'
printf 'myapp-main  running  /src/myapp\\n'
printf 'other-x     exited   /src/other\\n'
"""

Complete = Callable[..., list[str]]  # words on the line -> what bash offers for the last


@pytest.fixture
def bash_complete(tmp_path: Path) -> Complete:
    if shutil.which("bash") is None:  # pragma: no cover - bash is on every CI image
        pytest.skip("no bash")
    script = tmp_path / "cai.bash"
    script.write_text(completion.script("bash"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "cai").write_text(FAKE_CAI)
    (bin_dir / "cai").chmod(0o755)

    def complete(*words: str) -> list[str]:
        line = " ".join(f"'{w}'" for w in words)
        program = (
            f"source {script}\n"
            f"COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; COMPREPLY=()\n"
            '"$(complete -p cai | sed -E "s/.* -F ([^ ]+) .*/\\1/")"\n'
            'printf "%s\\n" "${COMPREPLY[@]}"\n'
        )
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
        proc = subprocess.run(
            ["bash", "--norc", "--noprofile", "-c", program],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=True,
        )
        return [line for line in proc.stdout.splitlines() if line]

    return complete


def test_bash_registers_a_completion_for_cai(tmp_path: Path) -> None:
    script = tmp_path / "cai.bash"
    script.write_text(completion.script("bash"))
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", f"source {script}; complete -p cai"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.startswith("complete ") and proc.stdout.rstrip().endswith(" cai")


def test_bash_completes_command_names(bash_complete: Complete) -> None:
    assert bash_complete("cai", "st") == ["status", "stop"]
    assert sorted(bash_complete("cai", "")) == commands.names()
    assert bash_complete("cai", "--context", "x", "ver") == ["version"]
    assert bash_complete("cai", "ssh", "") == ["cleanup"]


def test_bash_completes_options(bash_complete: Complete) -> None:
    assert bash_complete("cai", "stop", "--rem") == ["--remove"]
    assert "--root" in bash_complete("cai", "exec", "--")
    assert "--root" not in bash_complete("cai", "run", "--")


def test_bash_completes_container_names(bash_complete: Complete) -> None:
    assert bash_complete("cai", "status", "--container", "") == ["myapp-main", "other-x"]
    assert bash_complete("cai", "exec", "--container", "my") == ["myapp-main"]
    assert bash_complete("cai", "stop", "-q", "--container", "o") == ["other-x"]


@pytest.mark.parametrize(
    ("shell", "marker"), [("zsh", "#compdef cai"), ("fish", "complete -c cai")]
)
def test_zsh_and_fish_scripts(shell: str, marker: str) -> None:
    text = completion.script(shell)
    assert marker in text and text.endswith("\n")
    assert "cai list 2>/dev/null" in text  # container names for --container
    for name in commands.names():
        assert name in text


def test_completion_prints_the_script(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["completion", "bash"]) == 0
    assert capsys.readouterr().out == completion.script("bash")


def test_an_unknown_shell_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["completion", "tcsh"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cai: error: ") and "bash" in err and err.count("\n") == 1


def test_bash_completes_the_port_editor_and_log_commands(bash_complete: Complete) -> None:
    assert bash_complete("cai", "fo") == ["forward"]
    assert bash_complete("cai", "lo") == ["logs"]
    assert "code" in bash_complete("cai", "co")
    assert bash_complete("cai", "forward", "--ba") == ["--background"]
    assert bash_complete("cai", "logs", "--ta") == ["--tail"]
    assert bash_complete("cai", "code", "--ed") == ["--editor"]
    for command in ("forward", "logs", "code"):
        assert bash_complete("cai", command, "--container", "") == ["myapp-main", "other-x"]
