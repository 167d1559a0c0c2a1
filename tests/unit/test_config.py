"""`cai config` and the settings precedence: CLI > env > workspace state > repo-local >
global > default; writes keep comments, are 0600 in 0700 dirs; corrupt files are
reported with path and line and never overwritten."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest

from containai.cli import main as cli_main


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "CONTAINAI_CONTEXT", "CONTAINAI_DATA_VOLUME"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    ws = tmp_path / "proj"
    (ws / "sub" / "dir").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(ws)], check=True)
    monkeypatch.chdir(ws / "sub" / "dir")
    return ws


def cai(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli_main.main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def config_file(home: Path) -> Path:
    return home / ".config" / "containai" / "config.toml"


def test_defaults(home: Path, ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cai(capsys, "config", "get", "data_volume") == (0, "containai-data\n", "")
    assert cai(capsys, "config", "get", "agent.default") == (0, "claude\n", "")
    assert cai(capsys, "config", "get", "ssh.port_range_start")[1] == "2300\n"
    assert cai(capsys, "config", "get", "ssh.forward_agent")[1] == "false\n"
    assert not config_file(home).exists(), "a read must not write"


def test_set_get_unset_global_keeps_comments_and_modes(
    home: Path, ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file(home)
    path.parent.mkdir(parents=True)
    path.write_text("# my notes\nunknown_key = 'kept'\n\n[agent]\n# pick\ndefault = 'codex'\n")
    assert cai(capsys, "config", "get", "agent.default")[1] == "codex\n"
    assert cai(capsys, "config", "set", "agent.default", "gemini")[0] == 0
    assert cai(capsys, "config", "set", "ssh.port_range_end", "2400")[0] == 0
    text = path.read_text()
    assert "# my notes" in text and "# pick" in text and "unknown_key = 'kept'" in text
    assert "port_range_end = 2400" in text
    assert cai(capsys, "config", "get", "agent.default")[1] == "gemini\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert cai(capsys, "config", "unset", "agent.default")[0] == 0
    assert cai(capsys, "config", "get", "agent.default")[1] == "claude\n"
    assert "# my notes" in path.read_text()


def test_data_volume_is_workspace_state(
    home: Path, ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cai(capsys, "config", "set", "data_volume", "myvol")[0] == 0
    import tomllib

    doc = tomllib.loads(config_file(home).read_text())
    assert doc["workspace"][str(ws)]["data_volume"] == "myvol"
    assert cai(capsys, "config", "get", "data_volume")[1] == "myvol\n"
    # another workspace does not see it
    other = ws.parent / "other"
    other.mkdir()
    assert cai(capsys, "config", "get", "data_volume", "-w", str(other))[1] == "containai-data\n"
    code, out, _ = cai(capsys, "config", "list", "--json", "-w", str(other))
    rows = {r["key"]: r for r in json.loads(out)["settings"]}
    assert code == 0 and rows["data_volume"]["value"] == "containai-data"


def test_precedence_env_over_state_over_repo_over_global(
    home: Path, ws: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config_file(home)
    cfg.parent.mkdir(parents=True)
    cfg.write_text("data_volume = 'from-global'\ntemplate = 'globaltpl'\n")
    (ws / ".containai").mkdir()
    (ws / ".containai" / "config.toml").write_text(
        "data_volume = 'from-repo'\ntemplate = 'repotpl'\n"
    )

    def effective() -> dict[str, tuple[object, str]]:
        code, out, err = cai(capsys, "config", "list", "--json")
        assert code == 0, err
        return {r["key"]: (r["value"], r["source"]) for r in json.loads(out)["settings"]}

    # data_volume from a repository applies only once its settings are trusted (SPEC 14)
    assert effective()["data_volume"] == ("from-global", "global")
    assert effective()["template"] == ("repotpl", "repo")
    assert cai(capsys, "trust")[0] == 0
    assert effective()["data_volume"] == ("from-repo", "repo")
    cai(capsys, "config", "set", "data_volume", "from-state")
    assert effective()["data_volume"] == ("from-state", "workspace")
    monkeypatch.setenv("CONTAINAI_DATA_VOLUME", "from-env")
    assert effective()["data_volume"] == ("from-env", "env")
    assert effective()["gc.age"] == ("30d", "default")


def test_list_text_has_source_column(
    home: Path, ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cai(capsys, "config", "set", "gc.age", "7d")
    code, out, _ = cai(capsys, "config", "list")
    line = next(x for x in out.splitlines() if x.startswith("gc.age"))
    assert code == 0 and line.split() == ["gc.age", "7d", "global"]


def test_corrupt_config_is_reported_and_never_overwritten(
    home: Path, ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file(home)
    path.parent.mkdir(parents=True)
    broken = "a = 1\n[unclosed\nb = 2\n"
    path.write_text(broken)
    for argv in (
        ["config", "get", "data_volume"],
        ["config", "set", "agent.default", "x"],
        ["config", "list"],
        ["run", "--dry-run"],
    ):
        code, _out, err = cai(capsys, *argv)
        assert code == 1, argv
        assert err.startswith("cai: error: ") and str(path) in err and "line 2" in err
        assert "Traceback" not in err
    assert path.read_text() == broken


def test_wrong_type_in_file_names_file_and_key(
    home: Path, ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file(home)
    path.parent.mkdir(parents=True)
    path.write_text("[ssh]\nport_range_start = 'many'\n")
    code, _, err = cai(capsys, "config", "get", "ssh.port_range_start")
    assert code == 1 and str(path) in err and "ssh.port_range_start" in err


def test_xdg_config_home_is_followed(
    home: Path,
    ws: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    assert cai(capsys, "config", "set", "agent.default", "codex")[0] == 0
    assert (xdg / "containai" / "config.toml").is_file()
    assert not config_file(home).exists()


def test_workspace_states_of_many_workspaces_are_one_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cai gc clears the state of every workspace whose container it removed in one
    read-modify-write of config.toml (comments kept, other fields and workspaces too)."""
    from containai.adapters import config as config_adapter
    from containai.paths import resolve_paths

    files = config_adapter.ConfigFiles(resolve_paths({"HOME": str(tmp_path)}))
    path = files.global_path
    path.parent.mkdir(parents=True)
    path.write_text(
        "# notes\n"
        + "".join(
            f'[workspace."/src/{n}"]\ncontainer_name = "{n}"\ndata_volume = "v"\n'
            for n in ("a", "b", "c")
        )
    )
    writes: list[Path] = []
    real = config_adapter.atomic_write
    monkeypatch.setattr(
        config_adapter, "atomic_write", lambda p, text: (writes.append(p), real(p, text))[1]
    )
    changes = {f"/src/{n}": {"container_name": None} for n in ("a", "b", "absent")}
    assert files.set_workspace_states(changes)
    assert writes == [path]
    states = files.all_workspace_states()
    assert states["/src/a"] == {"data_volume": "v"} and states["/src/b"] == {"data_volume": "v"}
    assert states["/src/c"] == {"container_name": "c", "data_volume": "v"}
    assert "/src/absent" not in states and "# notes" in path.read_text()
    assert not files.set_workspace_states(changes) and writes == [path]  # nothing to change
    assert not files.set_workspace_states({})
