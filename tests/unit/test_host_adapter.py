"""adapters/host.py: facts about this machine (ports, memory, CPUs, ids), the agent's
ids for a workspace, the default ACL ``grant`` writes, and the host's npm registry
(asked of a stand-in ``npm`` on PATH). The race-proof ``grant`` walk has its own tests
in test_host_safety.py."""

from __future__ import annotations

import os
import socket
import stat
import struct
import sys
from pathlib import Path

import pytest

from containai.adapters import host as host_mod
from containai.adapters.host import Host
from containai.adapters.netconf import npm_registry


def test_a_listening_port_is_taken_and_free_again_once_closed() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        assert Host({}).port_is_free(port) is False
    assert Host({}).port_is_free(port) is True


def test_a_port_a_host_service_has_on_ipv6_loopback_only_is_taken() -> None:
    """A forward on 127.0.0.1:P next to a host service on [::1]:P would take the
    host's IPv4 clients of localhost:P to the container."""
    try:
        server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        server.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with server:
        server.listen()
        port = server.getsockname()[1]
        assert Host({}).port_is_free(port) is False


def test_machine_facts_are_plausible() -> None:
    host = Host({})
    assert host.memory_bytes() >= 64 * 1024**2
    assert 1 <= host.cpu_count() <= (os.cpu_count() or 1)
    assert host.uid_gid() == (os.getuid(), os.getgid())


def test_env_defaults_to_the_process_environment() -> None:
    assert Host().env is os.environ
    assert Host({"A": "1"}).env == {"A": "1"}


def test_agent_ids_are_never_root_even_when_nothing_is_known(tmp_path: Path) -> None:
    uid, gid = Host({}).agent_ids(str(tmp_path / "missing"))
    assert uid != 0 and gid != 0


def test_agent_ids_of_an_unprivileged_caller_are_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.getuid() == 0:
        monkeypatch.setattr(os, "getuid", lambda: 1234)
        monkeypatch.setattr(os, "getgid", lambda: 1235)
    ids = Host({"SUDO_UID": "77", "SUDO_GID": "78"}).agent_ids(str(tmp_path))
    assert ids == (os.getuid(), os.getgid())


@pytest.mark.skipif(os.geteuid() != 0, reason="a root caller")
def test_root_caller_on_a_root_owned_workspace_takes_sudos_ids(tmp_path: Path) -> None:
    os.chown(tmp_path, 0, 0)
    assert Host({"SUDO_UID": "1500", "SUDO_GID": "1501"}).agent_ids(str(tmp_path)) == (
        1500,
        1501,
    )
    assert Host({"SUDO_UID": "1500"}).agent_ids(str(tmp_path)) == (1500, 1500)
    # garbage in SUDO_UID is no id at all: the unprivileged default
    default = Host({}).agent_ids(str(tmp_path))
    assert Host({"SUDO_UID": "x1", "SUDO_GID": "2"}).agent_ids(str(tmp_path)) == default
    assert 0 not in default


def test_number() -> None:
    assert host_mod._number("42") == 42
    assert host_mod._number(None) is None
    assert host_mod._number("") is None
    assert host_mod._number("-1") is None
    assert host_mod._number("4x") is None


def test_default_acl_layout() -> None:
    data = host_mod._default_acl(0o755)
    version, *rest = struct.unpack("<I" + "HHI" * 3, data)
    assert version == 2
    entries = [tuple(rest[i : i + 3]) for i in range(0, 9, 3)]
    undefined = 0xFFFFFFFF
    assert entries == [(0x01, 7, undefined), (0x04, 7, undefined), (0x20, 5, undefined)]
    assert host_mod._default_acl(0o750)[-8:] == struct.pack("<HHI", 0x20, 0, undefined)


def test_grant_changes_nothing_unless_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "f").write_text("x")
    os.chmod(tmp_path / "f", 0o600)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert Host({}).grant([str(tmp_path)], 54321, 54321) == 0
    assert stat.S_IMODE(os.stat(tmp_path / "f").st_mode) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="grant needs root")
def test_grant_leaves_trees_the_agent_owns_and_missing_ones_alone(tmp_path: Path) -> None:
    owned = tmp_path / "owned"
    (owned / "d").mkdir(parents=True)
    os.chown(owned, 54321, 54321)
    os.chmod(owned / "d", 0o700)
    assert Host({}).grant([str(owned), str(tmp_path / "missing")], 54321, 54321) == 0
    assert stat.S_IMODE(os.stat(owned / "d").st_mode) == 0o700


FAKE_NPM = """\
#!{python}
import os, sys
with open(os.environ["NPM_SEEN"], "w") as fh:
    fh.write(os.getcwd() + "\\n" + " ".join(sys.argv[1:]))
print(os.environ.get("NPM_ANSWER", ""))
sys.exit(int(os.environ.get("NPM_EXIT", "0")))
"""


@pytest.fixture
def npm_env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(FAKE_NPM.format(python=sys.executable))
    npm.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(home),
        "NPM_SEEN": str(tmp_path / "seen"),
    }


def test_npm_registry_is_asked_from_home_never_the_current_directory(
    npm_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.chdir(repo)  # a repository's own .npmrc must not choose the registry
    env = {**npm_env, "NPM_ANSWER": "https://npm.example.org/"}
    assert npm_registry(env) == "https://npm.example.org/"
    cwd, args = Path(npm_env["NPM_SEEN"]).read_text().split("\n")
    assert cwd == npm_env["HOME"]
    assert args == "config get registry"


@pytest.mark.parametrize(
    ("answer", "code"),
    [("undefined", "0"), ("ftp://npm.example.org/", "0"), ("https://npm.example.org/", "1")],
)
def test_npm_registry_none_unless_npm_names_an_http_registry(
    npm_env: dict[str, str], answer: str, code: str
) -> None:
    assert npm_registry({**npm_env, "NPM_ANSWER": answer, "NPM_EXIT": code}) is None


def test_npm_registry_without_npm_or_home(npm_env: dict[str, str], tmp_path: Path) -> None:
    assert npm_registry({"PATH": str(tmp_path / "empty"), "HOME": npm_env["HOME"]}) is None
    env = {**npm_env, "HOME": str(tmp_path / "no-home"), "NPM_ANSWER": "http://r.example.org"}
    assert npm_registry(env) == "http://r.example.org"
    assert Path(npm_env["NPM_SEEN"]).read_text().split("\n")[0] == "/"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://pypi.example.org/simple", "https://pypi.example.org/simple"),
        ("file:///opt/pypi/simple", None),  # on this disk only: no image build reaches it
        ("/opt/wheels", None),
    ],
)
def test_pip_index_only_an_http_index_reaches_builds(value: str, expected: str | None) -> None:
    from containai.adapters.netconf import pip_index

    assert pip_index({"PIP_INDEX_URL": value, "PATH": "/nonexistent"}) == expected
