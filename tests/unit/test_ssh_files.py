"""adapters/ssh/ (OpenSsh): keys, pins, config entries, the Include line, control sockets.

Real ``ssh-keygen`` and ``ssh -G`` (local and fast); the connection tests
against a real ``sshd`` live in tests/integration/test_ssh_keys.py.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shlex
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from containai.adapters.ssh import (
    CONTROL_PATH_MAX,
    OpenSsh,
    alias,
    quote_remote,
    remote_command,
)
from containai.adapters.ssh.entries import INCLUDE_LINE
from containai.adapters.ssh.layout import conf_quote
from containai.domain.errors import Failed
from containai.paths import resolve_paths

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH")


def files_for(home: Path) -> OpenSsh:
    return OpenSsh(resolve_paths({"HOME": str(home)}))


@pytest.fixture
def files(tmp_path: Path) -> OpenSsh:
    home = tmp_path / "home"
    home.mkdir()
    return files_for(home)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def derived_public(private: Path) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(private)], capture_output=True, text=True, check=True
    )
    return " ".join(out.stdout.split()[:2])


def ssh_g(entry: Path, host: str) -> dict[str, list[str]]:
    out = subprocess.run(
        ["ssh", "-G", "-F", str(entry), host],
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    ).stdout
    parsed: dict[str, list[str]] = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        parsed.setdefault(key, []).append(value)
    return parsed


# -- keys ----------------------------------------------------------------------


def test_alias() -> None:
    assert alias("myapp-main") == "cai-myapp-main"


def test_user_key_created_private_and_idempotent(files: OpenSsh) -> None:
    key = files.ensure_user_key()
    paths = files.paths
    assert key == paths.user_key
    assert mode(key) == 0o600
    for directory in (paths.keys_dir, paths.config_dir, paths.home / ".config", paths.locks_dir):
        assert mode(directory) == 0o700, directory
    public = files.public_key()
    assert public.startswith("ssh-ed25519 ")
    assert public.endswith(" containai")
    assert derived_public(key) == " ".join(public.split()[:2])
    before = key.read_bytes()
    assert files.ensure_user_key() == key
    assert key.read_bytes() == before
    assert files.public_key() == public
    assert [p.name for p in paths.keys_dir.iterdir() if p.name.startswith(".")] == []


def test_user_key_permissions_repaired_and_public_half_rederived(files: OpenSsh) -> None:
    key = files.ensure_user_key()
    public = files.public_key()
    os.chmod(key, 0o644)
    key.with_name(key.name + ".pub").unlink()
    files.ensure_user_key()
    assert mode(key) == 0o600
    assert files.public_key() == public


def _race_user_key(home: str, barrier: object, queue: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    files = files_for(Path(home))
    key = files.ensure_user_key()
    queue.put((files.public_key(), key.read_bytes()))  # type: ignore[attr-defined]


def test_concurrent_processes_get_one_user_key(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    count = 8
    barrier = ctx.Barrier(count)
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_race_user_key, args=(str(tmp_path), barrier, queue))
        for _ in range(count)
    ]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    assert len({public for public, _ in results}) == 1
    assert len({private for _, private in results}) == 1
    final = files_for(tmp_path)
    assert final.public_key() == results[0][0]
    assert derived_public(final.paths.user_key) == " ".join(results[0][0].split()[:2])
    assert [p.name for p in final.paths.keys_dir.iterdir() if p.name.startswith(".")] == []


def test_host_key_generated_once_per_container(files: OpenSsh) -> None:
    private, public = files.ensure_host_key("myapp-main")
    path = files.paths.host_keys_dir / "myapp-main"
    assert private.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    assert path.read_bytes() == private
    assert mode(path) == 0o600
    assert mode(files.paths.host_keys_dir) == 0o700
    assert public.startswith("ssh-ed25519 ")
    assert derived_public(path) == " ".join(public.split()[:2])
    assert files.ensure_host_key("myapp-main") == (private, public)
    other_private, other_public = files.ensure_host_key("other")
    assert other_private != private
    assert other_public != public


def test_host_key_rejects_path_like_names(files: OpenSsh) -> None:
    for bad in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(ValueError):
            files.ensure_host_key(bad)


# -- known_hosts -----------------------------------------------------------------


def test_pin_replaces_the_earlier_line(files: OpenSsh) -> None:
    known = files.paths.known_hosts
    known.parent.mkdir(parents=True)
    known.write_text("# comment kept\nsomehost ssh-ed25519 AAAAfirst\n")
    _, first = files.ensure_host_key("app")
    _, second = files_for(files.paths.home / "elsewhere").ensure_host_key("app")
    _, other = files.ensure_host_key("other")
    files.pin_host_key("other", other)
    files.pin_host_key("app", first)
    files.pin_host_key("app", second)
    lines = known.read_text().splitlines()
    assert lines[:2] == ["# comment kept", "somehost ssh-ed25519 AAAAfirst"]
    app_lines = [line for line in lines if line.split()[0] == "cai-app"]
    assert app_lines == ["cai-app " + " ".join(second.split()[:2])]
    assert "cai-other " + " ".join(other.split()[:2]) in lines
    assert len(lines) == 4
    assert mode(known) == 0o600
    # real OpenSSH finds exactly the pinned key under the alias
    found = subprocess.run(
        ["ssh-keygen", "-F", "cai-app", "-f", str(known)], capture_output=True, text=True
    )
    assert found.returncode == 0
    assert second.split()[1] in found.stdout
    assert first.split()[1] not in found.stdout


def test_pin_same_key_twice_leaves_file_alone(files: OpenSsh) -> None:
    _, public = files.ensure_host_key("app")
    files.pin_host_key("app", public)
    known = files.paths.known_hosts
    before = (known.read_bytes(), os.stat(known).st_ino)
    files.pin_host_key("app", public)
    assert (known.read_bytes(), os.stat(known).st_ino) == before


def test_pin_rejects_garbage(files: OpenSsh) -> None:
    with pytest.raises(ValueError):
        files.pin_host_key("app", "not a key line\n")
    with pytest.raises(ValueError):
        files.pin_host_key("app", "ssh-ed25519")
    with pytest.raises(ValueError):  # valid base64, but not a key of that type
        files.pin_host_key("app", "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIA8KcJ4fPKu9U+pM9BWe")
    assert not files.paths.known_hosts.exists()


# -- config entry ----------------------------------------------------------------


@pytest.mark.parametrize("home_name", ["home", "my home", "per%cent home"])
def test_write_entry_parsed_by_openssh(tmp_path: Path, home_name: str) -> None:
    home = tmp_path / home_name
    home.mkdir()
    files = files_for(home)
    entry = files.write_entry("myapp-main", port=2301, user="agent", workspace="/src/my app")
    assert entry == files.entry_path("myapp-main") == home / ".ssh/containai.d/myapp-main.conf"
    assert mode(entry) == 0o600
    assert mode(entry.parent) == 0o700
    text = entry.read_text()
    assert text.startswith("# Managed by cai")
    assert "# Workspace: /src/my app\n" in text
    assert "\nHost cai-myapp-main\n" in text
    conf = ssh_g(entry, "cai-myapp-main")
    assert conf["hostname"] == ["127.0.0.1"]
    assert conf["port"] == ["2301"]
    assert conf["user"] == ["agent"]
    assert conf["hostkeyalias"] == ["cai-myapp-main"]
    assert conf["stricthostkeychecking"] == ["true"]
    assert conf["userknownhostsfile"] == [str(files.paths.known_hosts)]
    assert conf["globalknownhostsfile"] == ["/dev/null"]
    assert conf["controlpath"] == [str(files.control_path("myapp-main"))]
    assert conf["controlmaster"] == ["auto"]
    assert conf["controlpersist"] == ["600"]
    assert conf["forwardagent"] == ["no"]
    assert conf["forwardx11"] == ["no"]
    assert conf["identitiesonly"] == ["yes"]
    assert conf["passwordauthentication"] == ["no"]
    assert conf["serveraliveinterval"] == ["15"]
    assert conf["serveralivecountmax"] == ["4"]
    assert conf["connecttimeout"] == ["5"]
    assert conf["loglevel"] == ["ERROR"]
    assert "proxycommand" not in conf
    # ssh -G prints IdentityFile before its own %-expansion
    assert conf["identityfile"] == [str(files.paths.user_key).replace("%", "%%")]
    # the socket's directory exists so the first ssh call can create the master
    assert files.control_path("myapp-main").parent.is_dir()


def test_write_entry_options(files: OpenSsh) -> None:
    entry = files.write_entry(
        "app",
        port=2400,
        user="agent",
        hostname="localhost",
        forward_agent=True,
        proxy_jump="me@big-box:2222",
        workspace="/a\nHost evil",
    )
    conf = ssh_g(entry, "cai-app")
    assert conf["forwardagent"] == ["yes"]
    assert conf["hostname"] == ["localhost"]
    assert conf["proxycommand"] == ["ssh -W '[%h]:%p' -- ssh://me@big-box:2222"]
    # a workspace path cannot inject config lines through the header comment
    assert [line for line in entry.read_text().splitlines() if line.startswith("Host")] == [
        "Host cai-app"
    ]
    multi = files.write_entry("app", port=2400, user="agent", proxy_jump="a,ssh://b@c:1")
    assert ssh_g(multi, "cai-app")["proxycommand"] == ["ssh -W '[%h]:%p' -J a -- ssh://b@c:1"]
    plain = files.write_entry("app", port=2400, user="agent")
    assert "proxycommand" not in ssh_g(plain, "cai-app")
    assert ssh_g(plain, "cai-app")["forwardagent"] == ["no"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"port": 0, "user": "agent"},
        {"port": 70000, "user": "agent"},
        {"port": 2300, "user": "a b"},
        {"port": 2300, "user": "agent\nHost *"},
        {"port": 2300, "user": "agent", "hostname": "x y"},
        {"port": 2300, "user": "agent", "proxy_jump": "a b"},
        {"port": 2300, "user": "agent", "proxy_jump": "a;rm -rf /"},
    ],
)
def test_write_entry_rejects_bad_values(files: OpenSsh, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        files.write_entry("app", **kwargs)  # type: ignore[arg-type]
    assert not files.entry_path("app").exists()


def test_conf_quote_round_trips_through_openssh(tmp_path: Path) -> None:
    odd = str(tmp_path / 'q"uo\\te #x=y') + "/kh"
    entry = tmp_path / "e.conf"
    entry.write_text(f"Host h\n  UserKnownHostsFile {conf_quote(odd, percent=True)}\n")
    assert ssh_g(entry, "h")["userknownhostsfile"] == [odd]


# -- ssh_argv / control path ------------------------------------------------------------


def test_ssh_argv(tmp_path: Path) -> None:
    files = files_for(tmp_path / "never-created")
    entry = str(files.entry_path("app"))
    assert files.ssh_argv("app", None, tty=True) == ["ssh", "-F", entry, "-tt", "cai-app"]
    assert files.ssh_argv("app", "echo 'a b'", tty=False, extra=["-o", "X=1"]) == [
        "ssh",
        "-F",
        entry,
        "-T",
        "-o",
        "X=1",
        "cai-app",
        "echo 'a b'",
    ]
    assert files.ssh_argv("app", ["ls", "-l"], tty=False)[-3:] == ["cai-app", "ls", "-l"]
    assert not (tmp_path / "never-created").exists()  # no I/O on the hot path


def test_control_path_short_and_long(tmp_path: Path) -> None:
    short = files_for(Path("/home/u"))
    assert short.control_path("app") == Path("/home/u/.local/state/containai/ssh/app")

    deep = tmp_path / ("d" * 120)
    files = files_for(deep)
    natural = files.paths.ssh_sockets_dir / "app"
    fallback = files.control_path("app")
    digest = hashlib.sha256(os.fsencode(natural)).hexdigest()[:16]
    assert fallback == Path(f"/tmp/cai-{os.getuid()}") / digest
    assert len(os.fsencode(fallback)) <= CONTROL_PATH_MAX
    assert files.control_path("app") == fallback  # deterministic
    assert files.control_path("other") != fallback
    assert not deep.exists()


def test_control_path_boundary_leaves_room_for_ssh_suffix() -> None:
    # OpenSSH binds "<ControlPath>.<16 chars>" first; sun_path holds 107 bytes + NUL
    assert CONTROL_PATH_MAX == 107 - 17
    exact = files_for(Path("/h"))  # control_path does no I/O: HOME need not exist
    base = exact.paths.ssh_sockets_dir / "x"
    pad = CONTROL_PATH_MAX - len(os.fsencode(base))
    name = "x" * (pad + 1)
    assert len(os.fsencode(exact.paths.ssh_sockets_dir / name)) == CONTROL_PATH_MAX
    assert exact.control_path(name) == exact.paths.ssh_sockets_dir / name
    over = name + "y"
    assert exact.control_path(over).parent == Path(f"/tmp/cai-{os.getuid()}")


def test_ensure_control_dir_fallback_is_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = files_for(tmp_path / ("d" * 120))
    path = files.ensure_control_dir("app")
    assert path.parent.is_dir()
    assert mode(path.parent) == 0o700
    assert os.lstat(path.parent).st_uid == os.getuid()
    # a fallback directory owned by someone else is refused, never used
    fake_uid = 4_000_000_000 - os.getpid()
    monkeypatch.setattr(os, "getuid", lambda: fake_uid)
    foreign = Path(f"/tmp/cai-{fake_uid}")
    try:
        with pytest.raises(Failed, match="not a directory owned by you"):
            files.ensure_control_dir("app")
    finally:
        shutil.rmtree(foreign, ignore_errors=True)


# -- control master ---------------------------------------------------------------


def test_master_alive_only_while_someone_listens(files: OpenSsh) -> None:
    path = files.ensure_control_dir("app")
    assert files.master_alive("app") is False  # no socket file
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    try:
        assert files.master_alive("app") is True
    finally:
        listener.close()
    assert path.exists()  # the stale socket file stays behind...
    assert files.master_alive("app") is False  # ...and refuses connections
    files.exit_master("app")
    assert not os.path.lexists(path)
    files.exit_master("app")  # nothing there: no error


def test_wait_ready_times_out_with_ssh_error(files: OpenSsh) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    files.ensure_user_key()
    files.write_entry("app", port=port, user="agent")
    with pytest.raises(Failed) as caught:
        files.wait_ready("app", timeout=0.6)
    message = str(caught.value)
    assert "container 'app'" in message
    assert "Connection refused" in message


def test_wait_ready_fails_fast_on_broken_entry(files: OpenSsh) -> None:
    entry = files.write_entry("app", port=2300, user="agent")
    entry.write_text(entry.read_text() + "  NoSuchOption yes\n")
    with pytest.raises(Failed, match="ssh rejected"):
        files.wait_ready("app", timeout=30)


# -- ensure_include ---------------------------------------------------------------------


def test_include_created_with_private_modes(files: OpenSsh) -> None:
    assert files.ensure_include() is None
    config = files.paths.ssh_config
    assert config.read_bytes() == files.include_line().encode() + b"\n"
    assert INCLUDE_LINE == "Include ~/.ssh/containai.d/*.conf"
    assert mode(config) == 0o600
    assert mode(files.paths.ssh_dir) == 0o700


def test_include_inserted_first_keeping_every_byte(files: OpenSsh) -> None:
    config = files.paths.ssh_config
    config.parent.mkdir(mode=0o700)
    original = b"# mine\r\nHost box\n  User me\n\n\xffbinary\tbytes\nHost *\n  ForwardAgent no"
    config.write_bytes(original)
    os.chmod(config, 0o644)
    assert files.ensure_include() is None
    assert config.read_bytes() == files.include_line().encode() + b"\n" + original
    assert mode(config) == 0o644  # the user's mode is kept
    inode = os.stat(config).st_ino
    assert files.ensure_include() is None  # idempotent: not even rewritten
    assert os.stat(config).st_ino == inode
    assert config.read_bytes() == files.include_line().encode() + b"\n" + original


def test_include_moved_to_the_top(files: OpenSsh) -> None:
    config = files.paths.ssh_config
    config.parent.mkdir(mode=0o700)
    head = b"Host box\n  HostName 10.0.0.1\n"
    tail = b"Host *\n  ServerAliveInterval 30\n"
    config.write_bytes(head + b"  Include ~/.ssh/containai.d/*.conf\n" + tail)
    assert files.ensure_include() is None
    assert config.read_bytes() == files.include_line().encode() + b"\n" + head + tail
    lines = config.read_text().splitlines()
    assert lines.count(files.include_line()) == 1


@pytest.mark.parametrize(
    "first",
    [
        "include=~/.ssh/containai.d/*.conf",
        'Include "~/.ssh/containai.d/*.conf"',
        "Include containai.d/*.conf",
    ],
)
def test_include_equivalent_first_line_is_left_alone(files: OpenSsh, first: str) -> None:
    config = files.paths.ssh_config
    config.parent.mkdir(mode=0o700)
    content = f"{first}\nHost box\n".encode()
    config.write_bytes(content)
    assert files.ensure_include() is None
    assert config.read_bytes() == content


def test_include_follows_a_symlinked_config(files: OpenSsh, tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "ssh_config"
    real.write_bytes(b"Host box\n")
    files.paths.ssh_dir.mkdir(mode=0o700)
    files.paths.ssh_config.symlink_to(real)
    assert files.ensure_include() is None
    assert files.paths.ssh_config.is_symlink()
    assert real.read_bytes() == files.include_line().encode() + b"\nHost box\n"


def test_include_read_only_file_warns_and_keeps_file(files: OpenSsh) -> None:
    # chmod 0444: respected even by root (which would bypass the permission bits)
    config = files.paths.ssh_config
    config.parent.mkdir(mode=0o700)
    config.write_bytes(b"Host box\n")
    os.chmod(config, 0o444)
    warning = files.ensure_include()
    assert warning is not None
    assert "\n" not in warning
    assert str(config) in warning
    assert files.include_line() in warning
    assert config.read_bytes() == b"Host box\n"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
def test_include_unwritable_location_warns(files: OpenSsh) -> None:
    # A real write failure that root cannot bypass: the config is a symlink into
    # /proc/<pid>/, where nobody can create files.
    files.paths.ssh_dir.mkdir(mode=0o700)
    files.paths.ssh_config.symlink_to(f"/proc/{os.getpid()}/containai-ssh-config")
    warning = files.ensure_include()
    assert warning is not None
    assert files.include_line() in warning
    assert files.paths.ssh_config.is_symlink()


# -- remove / entries / stale -----------------------------------------------------------


def test_remove_cleans_everything_for_one_name(files: OpenSsh) -> None:
    for name in ("gone", "kept"):
        files.write_entry(name, port=2300, user="agent")
        files.pin_host_key(name, files.ensure_host_key(name)[1])
    sock = files.control_path("gone")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock))
    listener.close()  # leaves a stale socket file
    assert files.entries() == ["gone", "kept"]
    assert files.stale(["kept"]) == ["gone"]

    removed = files.remove("gone")
    host_key = files.paths.host_keys_dir / "gone"
    assert set(removed) == {
        sock,
        files.entry_path("gone"),
        files.paths.known_hosts,
        host_key,
        host_key.with_name("gone.pub"),
    }
    for path in removed:
        if path != files.paths.known_hosts:
            assert not os.path.lexists(path)
    assert files.paths.known_hosts.read_text().split()[0] == "cai-kept"
    assert files.entries() == ["kept"]
    assert files.stale(["kept"]) == []
    assert files.remove("gone") == []


def test_remove_many_rewrites_known_hosts_once_for_all(
    files: OpenSsh, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cai gc of many containers: every name's files go, other pins stay (a name that is
    a prefix of another's is not taken for it), and known_hosts is written once."""
    names = ["app", "app-2", "b", "c"]
    for name in names:
        files.write_entry(name, port=2300, user="agent")
        files.pin_host_key(name, files.ensure_host_key(name)[1])
    from containai.adapters.ssh import keys

    writes: list[Path] = []
    real = keys.atomic_write
    monkeypatch.setattr(keys, "atomic_write", lambda p, d: (writes.append(p), real(p, d))[1])
    removed = files.remove_many(["app", "b", "c"])
    assert writes == [files.paths.known_hosts]
    assert files.paths.known_hosts in removed
    assert files.entries() == ["app-2"]
    assert [line.split()[0] for line in files.paths.known_hosts.read_text().splitlines()] == [
        "cai-app-2"
    ]
    assert files.remove_many([]) == [] and files.remove_many(["b"]) == []
    assert writes == [files.paths.known_hosts]  # nothing pinned: not even locked


def test_entries_from_each_source(files: OpenSsh) -> None:
    assert files.entries() == []
    files.write_entry("entry-only", port=2300, user="agent")
    files.pin_host_key("pin-only", files_for(files.paths.home / "x").ensure_host_key("p")[1])
    files.ensure_host_key("key-only")
    files.ensure_host_key("dotted.pub")
    (files.paths.ssh_include_dir / "notes.txt").write_text("not an entry")
    (files.paths.ssh_include_dir / ".tmp.conf.abc.tmp").write_text("temp")
    assert files.entries() == ["dotted.pub", "entry-only", "key-only", "pin-only"]
    assert files.stale(["key-only", "unrelated"]) == ["dotted.pub", "entry-only", "pin-only"]


# -- remote command ---------------------------------------------------------------------

TRICKY = ["a b", "it's", 'say "hi"', "$HOME", "`id`", "$(id)", "semi;colon", "*", "", "\\n"]


def run_remote(line: str, shell_env: dict[str, str] | None = None) -> str:
    env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent-home", **(shell_env or {})}
    return subprocess.run(
        ["bash", "-c", line], capture_output=True, text=True, check=True, env=env
    ).stdout


def test_remote_command_runs_exactly_the_argv(tmp_path: Path) -> None:
    workspace = tmp_path / "my 'work' $pace"
    workspace.mkdir()
    env = {"CAI_ONE": "x y 'z' $HOME", "CAI_TWO": '"`id`"'}
    script = "import json,os,sys; print(json.dumps([os.getcwd(), sys.argv[1:], "
    script += "os.environ.get('CAI_ONE'), os.environ.get('CAI_TWO')]))"
    line = remote_command(str(workspace), [sys.executable, "-c", script, *TRICKY], env)
    cwd, args, one, two = json.loads(run_remote(line))
    assert cwd == str(workspace)
    assert args == TRICKY
    assert (one, two) == (env["CAI_ONE"], env["CAI_TWO"])
    # without env: no `env` in the line at all
    bare = remote_command(str(workspace), ["true"], {})
    assert bare == f"cd {shlex.quote(str(workspace))} && exec true"


def test_remote_command_command_with_equals_sign(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    tool = workspace / "a=b"
    tool.write_text('#!/bin/sh\necho "ran $CAI_X $1"\n')
    tool.chmod(0o755)
    line = remote_command(str(workspace), ["./a=b", "arg 1"], {"CAI_X": "v"})
    assert run_remote(line) == "ran v arg 1\n"


def test_remote_command_empty_argv_starts_login_shell(tmp_path: Path) -> None:
    workspace = tmp_path / "w s"
    workspace.mkdir()
    fake_shell = tmp_path / "fake shell"
    fake_shell.write_text('#!/bin/sh\necho "$(pwd)|$*|$CAI_Y"\n')
    fake_shell.chmod(0o755)
    line = remote_command(str(workspace), [], {"CAI_Y": "1 2"})
    assert run_remote(line, {"SHELL": str(fake_shell)}) == f"{workspace}|-l|1 2\n"


def test_remote_command_rejects_bad_env_names() -> None:
    with pytest.raises(ValueError):
        remote_command("/w", ["true"], {"A=B": "x"})


@given(st.lists(st.text(alphabet=st.characters(exclude_characters="\0")), max_size=6))
def test_quote_remote_round_trips(argv: list[str]) -> None:
    assert shlex.split(quote_remote(argv)) == argv


def test_include_line_uses_tilde_only_for_the_accounts_home(tmp_path: Path) -> None:
    import pwd

    real = OpenSsh(resolve_paths({"HOME": pwd.getpwuid(os.getuid()).pw_dir}))
    assert real.include_line() == INCLUDE_LINE
    sandboxed = OpenSsh(resolve_paths({"HOME": str(tmp_path)}))
    assert sandboxed.include_line() == f"Include {tmp_path}/.ssh/containai.d/*.conf"


def _server(reply: bytes | None, *, closed_first: int = 0) -> tuple[int, object, list[int]]:
    """A local TCP server that answers each connection with ``reply`` (None: closes),
    after closing the first ``closed_first`` at once; the list counts connections."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    seen: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            seen.append(1)
            with conn:
                if reply is not None and len(seen) > closed_first:
                    conn.sendall(reply)
                    threading.Event().wait(0.5)  # open while the client reads

    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1], srv, seen


def test_the_dialer_hands_over_the_greeted_connection_with_the_banner_unread() -> None:
    from containai.adapters.ssh.dialer import dial

    banner = b"SSH-2.0-OpenSSH_9.2\r\n"
    port, srv, _seen = _server(banner)
    try:
        conn = dial("127.0.0.1", port, 1.0)
        assert conn is not None
        try:
            assert conn.gettimeout() is None  # blocking, as ssh expects it
            assert conn.recv(64) == banner  # peeked, not consumed: ssh reads it
        finally:
            conn.close()
    finally:
        srv.close()  # type: ignore[attr-defined]


def test_the_dialer_tells_sshd_from_a_proxy_with_nothing_behind() -> None:
    import time

    from containai.adapters.ssh.dialer import dial

    port, srv, _seen = _server(None)  # docker-proxy while the container boots: accept, close
    try:
        start = time.monotonic()
        assert dial("127.0.0.1", port, 0.3) is None
        assert 0.25 <= time.monotonic() - start < 2  # polled until the deadline
    finally:
        srv.close()  # type: ignore[attr-defined]
    assert dial("127.0.0.1", port, 0.1) is None  # nothing listens any more


def test_the_dialer_keeps_polling_until_sshd_greets() -> None:
    """A server that closes its first connections and greets on a later one: the
    dialer's connection is the greeted one."""
    from containai.adapters.ssh.dialer import dial

    port, srv, seen = _server(b"SSH-2.0-x\r\n", closed_first=2)
    try:
        conn = dial("127.0.0.1", port, 5.0)
        assert conn is not None
        try:
            assert conn.recv(4) == b"SSH-"
        finally:
            conn.close()
        assert len(seen) == 3
    finally:
        srv.close()  # type: ignore[attr-defined]


def test_the_dialer_proxy_quotes_paths_for_the_shell_and_percent_for_ssh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from containai.adapters.ssh import sessions

    monkeypatch.setattr(sys, "executable", "/opt/my py%d/bin/python3")
    options = sessions._dialer_proxy(12.3456)
    assert options[:2] == ["-o", "ProxyUseFdpass=yes"]
    command = options[3].removeprefix("ProxyCommand=")
    assert command.startswith("'/opt/my py%%d/bin/python3' -I -S ")
    assert command.endswith("dialer.py %h %p 12.346")


def test_entry_records_the_context_of_a_remote_container(files: OpenSsh) -> None:
    entry = files.write_entry(
        "far", port=2300, user="agent", proxy_jump="me@box", context="box\nHost evil"
    )
    assert files.entry_context("far") == "box\\x0aHost evil"  # one comment line, escaped
    assert [line for line in entry.read_text().splitlines() if line.startswith("Host")] == [
        "Host cai-far"
    ]
    files.write_entry("near", port=2301, user="agent")
    assert files.entry_context("near") == ""  # this machine's engine
    assert files.entry_context("absent") is None
