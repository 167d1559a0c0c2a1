"""cli/hot.py against the reference: whenever the warm-exec shortcut answers, its ``ssh``
argv is exactly the one the full path (``cli/main.py`` -> ``services/run.py``'s fast
path) execs into for the same command line, directory, environment and files; and it
does answer in the ordinary cases (a git work tree, a subdirectory, a worktree, a
directory outside git, a long state path)."""

from __future__ import annotations

import os
import shlex
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from containai.adapters import hotcache
from containai.adapters.ssh import layout
from containai.cli import hot, main
from containai.paths import resolve_paths
from containai.services import run as run_service

_CLEARED = ("XDG_", "CONTAINAI_", "CAI_", "GIT_", "SUDO_", "DOCKER_")


class _Stdin:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


class _FullPath(Exception):
    """The reference went past its fast path (it would ask the engine)."""


def _refuse(*_a: object, **_k: object) -> None:
    raise _FullPath


def reference(argv: list[str], env: dict[str, str], cwd: Path, tty: bool) -> list[str] | None:
    """What ``cli/main.py`` execs into without asking the engine (``None``: it would go
    on to converge, or it failed)."""
    execs: list[list[str]] = []
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith(_CLEARED) or key == "HOME":
                mp.delenv(key)
        for key, value in env.items():
            mp.setenv(key, value)
        mp.chdir(cwd)
        mp.setattr(sys, "stdin", _Stdin(tty))
        mp.setattr(run_service, "build_request", _refuse)
        mp.setattr(os, "execvp", lambda _f, a: execs.append(list(a)))
        main.main(argv)
    return execs[0] if execs else None


@contextmanager
def master(path: str) -> Iterator[None]:
    """A listening Unix socket where the control master's would be."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(4)
    try:
        yield
    finally:
        sock.close()
        os.unlink(path)


def make_tree(root: Path, ws_name: str, git: str, sub: bool) -> tuple[Path, Path]:
    """A workspace (``git``: dir, worktree, garbage, none) and the directory cai runs in."""
    ws = root / ws_name
    ws.mkdir(parents=True)
    if git == "dir":
        (ws / ".git").mkdir()
        (ws / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    elif git == "worktree":
        (ws / ".git").write_text(f"gitdir: {root}/main/.git/worktrees/x\n")
    elif git == "garbage":
        (ws / ".git").write_text("not a gitdir line\n")
    cwd = ws / "sub dir" if sub else ws
    cwd.mkdir(exist_ok=True)
    return ws, cwd


def both(
    argv: list[str], env: dict[str, str], cwd: Path, tty: bool
) -> tuple[list[str] | None, list[str] | None]:
    ours = hot.plan(argv, env, str(cwd), tty)
    return ours, reference(argv, env, cwd, tty) if ours is not None else None


@pytest.fixture
def root() -> Iterator[Path]:
    # short: the control socket must fit sun_path (a long one is tested on its own)
    with tempfile.TemporaryDirectory(prefix="cai-hot-", dir="/tmp") as tmp:
        yield Path(tmp)


def _setup(root: Path, ws: Path, name: str, env: dict[str, str]) -> str:
    paths = resolve_paths(env)
    key = hotcache.engine_key(paths, env, None)
    hotcache.write(paths, str(ws.resolve()), name, key)
    return str(layout.control_path(paths, name))


@pytest.mark.parametrize("git", ["dir", "worktree", "none"])
@pytest.mark.parametrize("sub", [False, True])
@pytest.mark.parametrize("tty", [False, True])
def test_ordinary_cases_answer_as_the_full_path(root: Path, git: str, sub: bool, tty: bool) -> None:
    ws, cwd = make_tree(root / "work", "proj", git, sub)
    if git == "none" and sub:
        ws = cwd  # outside git, the directory itself is the workspace
    env = {"HOME": str(root / "home"), "PATH": os.environ.get("PATH", "")}
    with master(_setup(root, ws, "proj-main", env)):
        argv = ["exec", "--", "sh", "-c", "echo 'a b' $HOME"]
        ours, theirs = both(argv, env, cwd, tty)
        assert ours is not None
        assert ours == theirs
        assert ours[-1] == f"cd {shlex.quote(str(ws))} && exec sh -c 'echo '\"'\"'a b'\"'\"' $HOME'"
        # without `--`
        ours, theirs = both(["exec", "ls", "-la"], env, cwd, tty)
        assert ours is not None
        assert ours == theirs


def test_a_long_state_path_uses_the_hashed_socket(root: Path) -> None:
    ws, cwd = make_tree(root / "work", "proj", "dir", False)
    env = {"HOME": str(root / "home"), "XDG_STATE_HOME": str(root / ("s" * 80))}
    path = _setup(root, ws, "proj-main", env)
    assert path.startswith(f"/tmp/cai-{os.getuid()}/")
    with master(path):
        ours, theirs = both(["exec", "true"], env, cwd, False)
        assert ours is not None
        assert ours == theirs


@pytest.mark.parametrize(
    ("argv", "env", "why"),
    [
        (["exec", "-e", "A=1", "true"], {}, "an option"),
        (["exec", "--root", "--", "true"], {}, "an option"),
        (["--verbose", "exec", "true"], {}, "a global option"),
        (["exec"], {}, "no command"),
        (["exec", "--"], {}, "no command"),
        (["run"], {}, "another command"),
        (["exec", "true"], {"CONTAINAI_VERBOSE": "1"}, "verbose says how it attaches"),
        (["exec", "true"], {"GIT_DIR": "/x"}, "git decides the work tree"),
        (["exec", "true"], {"SUDO_UID": "1000"}, "another home to refuse"),
    ],
)
def test_it_declines_what_it_does_not_own(
    root: Path, argv: list[str], env: dict[str, str], why: str
) -> None:
    ws, cwd = make_tree(root / "work", "proj", "dir", False)
    env = {"HOME": str(root / "home"), **env}
    with master(_setup(root, ws, "proj-main", env)):
        assert hot.plan(argv, env, str(cwd), False) is None, why


def test_no_cache_entry_or_no_master_declines(root: Path) -> None:
    ws, cwd = make_tree(root / "work", "proj", "dir", False)
    env = {"HOME": str(root / "home")}
    assert hot.plan(["exec", "true"], env, str(cwd), False) is None  # no entry
    _setup(root, ws, "proj-main", env)
    assert hot.plan(["exec", "true"], env, str(cwd), False) is None  # no master


def test_a_refused_workspace_declines(root: Path) -> None:
    home = root / "home"
    home.mkdir()
    env = {"HOME": str(home)}
    with master(_setup(root, home, "home-nogit", env)):
        assert hot.plan(["exec", "true"], env, str(home), False) is None


_WORD = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\0"), max_size=8)
_DIR = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="/\0"), min_size=1, max_size=12
).filter(lambda s: s not in (".", "..") and len(s.encode()) < 100)
_NAME = st.one_of(
    st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,20}", fullmatch=True),
    st.text(max_size=6).filter(lambda s: "\n" not in s and "\0" not in s and "/" not in s),
)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ws_name=_DIR,
    git=st.sampled_from(["dir", "worktree", "garbage", "none"]),
    sub=st.booleans(),
    name=_NAME,
    lead=st.sampled_from([["exec", "--"], ["exec"], ["exec", "-e", "A=b"], ["exec", "-d"]]),
    words=st.lists(_WORD, max_size=4),
    tty=st.booleans(),
    verbose=st.sampled_from(["", "0", "1"]),
)
def test_whenever_it_answers_the_full_path_agrees(
    ws_name: str,
    git: str,
    sub: bool,
    name: str,
    lead: list[str],
    words: list[str],
    tty: bool,
    verbose: str,
) -> None:
    with tempfile.TemporaryDirectory(prefix="cai-hot-", dir="/tmp") as tmp:
        root = Path(tmp)
        ws, cwd = make_tree(root / "w", ws_name, git, sub)
        if git in ("none", "garbage") and sub:
            ws = cwd
        env = {"HOME": str(root / "home")}
        if verbose:
            env["CONTAINAI_VERBOSE"] = verbose
        paths = resolve_paths(env)
        hotcache.write(paths, str(ws.resolve()), name, hotcache.engine_key(paths, env, None))
        try:
            control = str(layout.control_path(paths, name))
        except (ValueError, OSError):
            control = ""
        argv = [*lead, *words]
        if not control or len(os.fsencode(control)) > 100:
            assert hot.plan(argv, env, str(cwd), tty) is None
            return
        with master(control):
            ours, theirs = both(argv, env, cwd, tty)
        event("answered" if ours is not None else "declined")
        if ours is not None:
            assert ours == theirs
            assert shlex.split(ours[-1])[4:] == words


@given(st.text(st.characters(exclude_categories=["Cs"])))
def test_quote_is_shlex_quote(word: str) -> None:
    assert hot.quote(word) == shlex.quote(word)


@given(st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}", fullmatch=True) | st.text(max_size=70))
def test_names_and_sockets_as_the_ssh_layout_has_them(name: str) -> None:
    assert hot._valid_name(name) == (layout.NAME_RE.fullmatch(name) is not None)
    paths = resolve_paths({"HOME": "/home/u"})
    if hot._valid_name(name):
        assert hot.control_path(paths.state_text, name) == str(layout.control_path(paths, name))


def test_attach_becomes_ssh_or_returns(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ws, cwd = make_tree(root / "work", "proj", "dir", False)
    env = {"HOME": str(root / "home"), "PATH": "/nonexistent"}
    monkeypatch.chdir(cwd)
    hot.attach(["exec", "true"], env)  # no entry: returns
    with master(_setup(root, ws, "proj-main", env)):
        execs: list[list[str]] = []

        def fake_execvp(file: str, argv: list[str]) -> None:
            execs.append(argv)
            raise FileNotFoundError(file)  # no ssh: returns to the full path

        monkeypatch.setattr(os, "execvp", fake_execvp)
        hot.attach(["exec", "true"], env)
        assert execs and execs[0][0] == "ssh"


def test_an_interrupt_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*_a: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(hot, "plan", interrupted)
    with pytest.raises(SystemExit) as exc:
        hot.attach(["exec", "true"], {})
    assert exc.value.code == 130
    assert capsys.readouterr().err == "cai: interrupted\n"
