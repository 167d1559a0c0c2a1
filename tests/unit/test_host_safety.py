"""The pure rules of domain/host_safety.py and the git guard's paths (adapters/git.py,
file reads only): who the agent is, where its state lives, what is mounted read-only."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from containai.adapters.git import guard_paths
from containai.adapters.host import Host
from containai.domain.host_safety import UNPRIVILEGED, GitGuard, agent_ids, state_dir

ids = st.integers(min_value=0, max_value=70000)


@given(ids, ids, st.none() | st.tuples(ids, ids), st.tuples(st.none() | ids, st.none() | ids))
def test_the_agent_is_never_uid_or_gid_0(
    uid: int, gid: int, owner: tuple[int, int] | None, sudo: tuple[int | None, int | None]
) -> None:
    got = agent_ids((uid, gid), owner, sudo)
    assert 0 not in got
    if uid != 0:
        assert got[0] == uid  # a normal caller's files stay theirs


def test_root_caller_prefers_owner_then_sudo_then_unprivileged() -> None:
    assert agent_ids((0, 0), (1000, 1000), (1001, 1001)) == (1000, 1000)
    assert agent_ids((0, 0), (0, 0), (1001, 1002)) == (1001, 1002)
    assert agent_ids((0, 0), (0, 0), (1001, None)) == (1001, 1001)
    assert agent_ids((0, 0), (0, 0), (0, 0)) == (UNPRIVILEGED, UNPRIVILEGED)
    assert agent_ids((0, 0), None) == (UNPRIVILEGED, UNPRIVILEGED)
    assert agent_ids((0, 0), (1000, 0)) == (1000, 1000)  # never group 0
    assert agent_ids((1000, 0), None) == (1000, 1000)


def test_state_dir_never_takes_another_uids_home() -> None:
    assert state_dir(1000, None) == "home"
    assert state_dir(1000, 1000) == "home"
    assert state_dir(1000, 0) == "home"  # root's (an import by root) is adopted
    assert state_dir(1000, 1001) == "home-1000"


def test_config_guard_can_be_lifted_alone() -> None:
    guard = GitGuard(shared=("/r/.git",), readonly=("/r/.git/hooks",), config=("/r/.git/config",))
    assert guard.mounts() == [
        ("/r/.git", False),
        ("/r/.git/config", True),
        ("/r/.git/hooks", True),
    ]
    assert guard.mounts(config_writable=True) == [("/r/.git", False), ("/r/.git/hooks", True)]


def _git(*args: str, cwd: Path) -> None:
    env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(cwd),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@x",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@x",
    }
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    ws = tmp_path / "main"
    ws.mkdir()
    _git("init", "-q", "-b", "main", cwd=ws)
    (ws / "f").write_text("f")
    _git("add", "f", cwd=ws)
    _git("commit", "-qm", "f", cwd=ws)
    return ws


def test_plain_repository(repo: Path) -> None:
    hooks = repo / ".git" / "hooks"
    for sample in hooks.iterdir():
        sample.unlink()
    hooks.rmdir()
    guard = guard_paths(repo)
    git = repo / ".git"
    assert (git / "hooks").is_dir()  # created so that it cannot be created inside
    assert guard.shared == ()
    # .git itself is pinned (a mount point cannot be renamed away and replaced) and a
    # commondir holding "." is created read-only, so none pointing elsewhere can be
    assert guard.pinned == (str(git),)
    assert guard.readonly == (str(git / "commondir"), str(git / "hooks"))
    assert (git / "commondir").read_text() == ".\n"
    assert guard.config == (str(git / "config"),)
    assert guard.warnings == ()
    assert next(p for p, _ in guard.mounts()) == str(git)  # parents before children
    # git 2.39 works with it (also verified: commit, worktree add/list, gc, stash)
    _git("status", "--short", cwd=repo)
    (repo / "g").write_text("g")
    _git("add", "g", cwd=repo)
    _git("commit", "-qm", "g", cwd=repo)
    _git("gc", "-q", cwd=repo)


def test_not_a_repository(tmp_path: Path) -> None:
    assert guard_paths(tmp_path) == GitGuard()


def test_worktree_outside_mounts_the_common_dir_and_guards_its_pointers(
    repo: Path, tmp_path: Path
) -> None:
    wt = tmp_path / "wt"
    _git("worktree", "add", "-q", str(wt), "-b", "feat", cwd=repo)
    _git("config", "extensions.worktreeConfig", "true", cwd=repo)
    guard = guard_paths(wt)
    common = repo / ".git"
    assert guard.shared == (str(common),)
    assert guard.warnings == ()
    assert str(wt / ".git") in guard.readonly
    # the private git dir and its parent cannot be renamed and replaced; the common
    # directory gets its read-only commondir too (it is mounted read-write)
    assert set(guard.pinned) == {str(common / "worktrees"), str(common / "worktrees" / "wt")}
    assert str(common / "commondir") in guard.readonly
    _git("worktree", "list", cwd=repo)
    _git("status", "--short", cwd=wt)
    assert str(common / "hooks") in guard.readonly
    assert str(common / "worktrees" / "wt" / "commondir") in guard.readonly
    assert str(common / "config") in guard.config
    # worktreeConfig on: the per-worktree config files exist and are guarded
    assert str(common / "worktrees" / "wt" / "config.worktree") in guard.config
    assert (common / "config.worktree").is_file()


def test_submodule_git_dirs_are_guarded(repo: Path, tmp_path: Path) -> None:
    sub = tmp_path / "subsrc"
    sub.mkdir()
    _git("init", "-q", "-b", "main", cwd=sub)
    (sub / "s").write_text("s")
    _git("add", "s", cwd=sub)
    _git("commit", "-qm", "s", cwd=sub)
    _git("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub), "lib/s", cwd=repo)
    guard = guard_paths(repo)
    module = repo / ".git" / "modules" / "lib" / "s"
    assert str(module / "hooks") in guard.readonly
    assert str(module / "config") in guard.config
    assert str(repo / "lib" / "s" / ".git") in guard.readonly


# ----------------------------------------------------- what the agent may have written


def _outside_mounts(guard: GitGuard, top: Path) -> list[str]:
    return [p for p, _ in guard.mounts() if not (Path(p) == top or top in Path(p).parents)]


def _fake_git_dir(path: Path) -> Path:
    """A directory that passes for a git directory, with a hook (what an agent plants)."""
    for sub in ("objects", "refs", "hooks"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    (path / "HEAD").write_text("ref: refs/heads/main\n")
    (path / "config").write_text("[core]\n\tfsmonitor = touch /tmp/pwned\n")
    return path


@pytest.mark.parametrize("target", ["/etc", "other"])
def test_commondir_of_a_main_git_dir_is_never_followed(
    repo: Path, tmp_path: Path, target: str
) -> None:
    """C2: an agent wrote .git/commondir (an older container, before it was guarded);
    cai must not mount that directory read-write, nor grant it."""
    other = _fake_git_dir(tmp_path / "other") if target == "other" else Path(target)
    (repo / ".git" / "commondir").write_text(f"{other}\n")
    guard = guard_paths(repo)
    assert guard.shared == ()
    assert _outside_mounts(guard, repo) == []
    assert str(repo / ".git" / "commondir") in guard.readonly  # no further change inside
    assert any("commondir" in w for w in guard.warnings)
    assert (repo / ".git" / "commondir").read_text() == f"{other}\n"  # the user decides


@pytest.mark.parametrize("shape", ["anywhere", "worktree-shaped", "not-named-back"])
def test_a_git_file_naming_a_directory_that_does_not_name_it_back_is_ignored(
    tmp_path: Path, repo: Path, shape: str
) -> None:
    """C2: ``.git`` written as ``gitdir: <anywhere>``: no mount, no grant, a warning."""
    ws = tmp_path / "ws"
    ws.mkdir()
    if shape == "anywhere":
        target = _fake_git_dir(tmp_path / "victim")
    elif shape == "worktree-shaped":  # the shape, but the common dir has no git files
        target = tmp_path / "home" / "worktrees" / "x"
        target.mkdir(parents=True)
        (target / "gitdir").write_text(f"{ws / '.git'}\n")
        (target / "commondir").write_text("../..\n")
    else:  # a real worktree of the user's, which names another checkout
        _git("worktree", "add", "-q", str(tmp_path / "real"), "-b", "x", cwd=repo)
        target = repo / ".git" / "worktrees" / "real"
    (ws / ".git").write_text(f"gitdir: {target}\n")
    guard = guard_paths(ws)
    assert guard.mounts() == []
    assert guard.shared == ()
    assert len(guard.warnings) == 1 and str(ws / ".git") in guard.warnings[0]


def test_a_git_symlink_leading_outside_is_ignored(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / ".git").symlink_to(_fake_git_dir(tmp_path / "victim"))
    guard = guard_paths(ws)
    assert guard.mounts() == [] and len(guard.warnings) == 1


def test_guarded_slots_that_are_symlinks_are_not_mounted(repo: Path, tmp_path: Path) -> None:
    """A hooks or config link would make docker mount what it names (read-only, but
    readable inside: /root/.ssh, /etc/shadow)."""
    git = repo / ".git"
    shutil.rmtree(git / "hooks")
    (git / "hooks").symlink_to(tmp_path)
    (git / "config").rename(git / "config.real")
    (git / "config").symlink_to("/etc/passwd")
    guard = guard_paths(repo)
    assert _outside_mounts(guard, repo) == []
    assert str(git / "hooks") not in guard.readonly and guard.config == ()
    assert len(guard.warnings) == 2


def test_lifecycle_warns_and_grants_nothing_outside(repo: Path, tmp_path: Path) -> None:
    """C2 end to end in the service: the guard's refusal reaches the user once, and
    ``grant`` (cai as root walks and chgrps it) gets the workspace only."""
    from containai.services.container_spec import MountGuard
    from containai.services.run_request import RunRequest
    from containai.services.workspace import Workspace

    (repo / ".git" / "commondir").write_text("/etc\n")
    granted: list[list[str]] = []
    warned: list[str] = []

    class Host:
        def grant(self, paths: list[str], uid: int, gid: int) -> int:
            granted.append(list(paths))
            return 0

    guard_mounts = MountGuard(
        lambda ws: guard_paths(Path(ws)),
        Host(),  # type: ignore[arg-type]
        warned.append,
    )
    args = guard_mounts(RunRequest(Workspace(str(repo), "main")), 1000, 1000)
    guard_mounts(RunRequest(Workspace(str(repo), "main")), 1000, 1000)  # re-created
    assert granted == [[str(repo)], [str(repo)]]
    assert len(warned) == 1 and "/etc" in warned[0]
    assert "/etc" not in " ".join(m.source + m.target for m in args).replace(str(repo), "")


# ------------------------------------------------------------------- host adapter


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown and grant need root")


@needs_root
def test_agent_gid_is_the_owners_primary_group_not_the_directorys(tmp_path: Path) -> None:
    """L1: a workspace owned by alice:docker must not make the agent's gid docker."""
    import pwd

    known = next(p for p in pwd.getpwall() if p.pw_uid not in (0,) and p.pw_gid not in (0, 4321))
    ws = tmp_path / "ws"
    ws.mkdir()
    os.chown(ws, known.pw_uid, 4321)
    assert Host({}).agent_ids(str(ws)) == (known.pw_uid, known.pw_gid)
    unknown = 4242
    while True:
        try:
            pwd.getpwuid(unknown)
        except KeyError:
            break
        unknown += 1
    os.chown(ws, unknown, 4321)
    assert Host({}).agent_ids(str(ws)) == (unknown, unknown)


def _swap_on_lstat(
    monkeypatch: pytest.MonkeyPatch, name: str, victim: Path, link_to: Path
) -> list[bool]:
    """Simulate a racing container: right after cai lstat()s ``name``, ``victim`` is
    replaced by a symlink to ``link_to``."""
    done: list[bool] = []
    real_stat, real_lstat = os.stat, os.lstat

    def swap(path: object) -> None:
        if not done and os.path.basename(os.fsdecode(path)) == name:  # type: ignore[arg-type]
            done.append(True)
            victim.rename(victim.with_name(victim.name + ".old"))
            victim.symlink_to(link_to)

    def fake_stat(path: object, *a: object, **kw: object) -> os.stat_result:
        result = real_stat(path, *a, **kw)  # type: ignore[arg-type]
        if kw.get("follow_symlinks") is False:
            swap(path)
        return result

    def fake_lstat(path: object, *a: object, **kw: object) -> os.stat_result:
        result = real_lstat(path, *a, **kw)  # type: ignore[arg-type]
        swap(path)
        return result

    monkeypatch.setattr(os, "stat", fake_stat)
    monkeypatch.setattr(os, "lstat", fake_lstat)
    return done


@needs_root
@pytest.mark.parametrize("what", ["entry", "parent"])
def test_grant_does_not_follow_an_entry_swapped_for_a_symlink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    """M2: a concurrent container swaps a checked entry (or a directory cai is about
    to enter) for a symlink to a host file: its group and mode must not change."""
    uid = gid = 54321
    secret_dir = tmp_path / "etc"
    secret_dir.mkdir(mode=0o700)
    secret = secret_dir / "shadow"
    secret.write_text("root:x\n")
    os.chmod(secret, 0o600)
    os.chown(secret, 0, gid)  # group already the agent's: a path-based grant goes to chmod
    ws = tmp_path / "ws"
    (ws / "sub").mkdir(parents=True)
    (ws / "sub" / "f").write_text("f")
    os.chown(ws / "sub" / "f", 0, gid)
    (ws / "a").write_text("a")
    if what == "entry":
        done = _swap_on_lstat(monkeypatch, "f", ws / "sub" / "f", secret)
    else:  # sub, checked to be no symlink, is one when cai descends into it
        done = _swap_on_lstat(monkeypatch, "sub", ws / "sub", secret_dir)
    Host({}).grant([str(ws)], uid, gid)
    monkeypatch.undo()
    assert done, "the race was not staged"
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(secret_dir).st_mode) == 0o700
    assert os.stat(secret_dir).st_gid == 0


@needs_root
def test_grant_still_reaches_every_entry(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "d" / "e").mkdir(parents=True)
    (ws / "d" / "e" / "f").write_text("f")
    os.chmod(ws / "d" / "e" / "f", 0o700)
    (ws / "x").write_text("x")
    (ws / "link").symlink_to("/etc/passwd")
    before = os.stat("/etc/passwd")
    assert Host({}).grant([str(ws)], 54321, 54321) == 5
    for path in (ws, ws / "d", ws / "d" / "e"):
        st = os.stat(path)
        assert st.st_gid == 54321 and st.st_mode & 0o2070 == 0o2070
    st = os.stat(ws / "d" / "e" / "f")
    assert st.st_gid == 54321 and stat.S_IMODE(st.st_mode) == 0o770
    after = os.stat("/etc/passwd")
    assert (after.st_gid, after.st_mode) == (before.st_gid, before.st_mode)
    assert Host({}).grant([str(ws)], 54321, 54321) == 0


@needs_root
def test_grant_leaves_a_shared_sticky_directory_and_its_contents_alone(tmp_path: Path) -> None:
    """A workspace holding a /tmp-like directory: other people's files there keep their
    group and mode (the grant once walked all of /tmp when cai ran there as root)."""
    ws = tmp_path / "ws"
    shared = ws / "shared"
    shared.mkdir(parents=True)
    os.chmod(shared, 0o1777)
    theirs = shared / "theirs"
    theirs.write_text("x")
    os.chmod(theirs, 0o600)
    (ws / "mine").write_text("m")
    assert Host({}).grant([str(ws)], 54321, 54321) == 2  # ws and mine
    st = os.stat(shared)
    assert st.st_gid != 54321 and stat.S_IMODE(st.st_mode) == 0o1777
    st = os.stat(theirs)
    assert st.st_gid != 54321 and stat.S_IMODE(st.st_mode) == 0o600
