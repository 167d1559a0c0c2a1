"""What the agent may not do to the host (SPEC section 14, issue 12 items 3-5), each
harm tried for real from inside a container and checked on the host:

* git metadata that makes the host's git run code is read-only inside (plain
  repository and worktree), while commit, branch, log and fetch work;
* the agent never has root: no sudo, no setuid-root file left in the workspace
  (the tests run as root, so this is the case where cai must pick another uid);
* containers of two uids sharing a data volume never chown each other's state.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Sandbox, docker, new_volume_name

pytestmark = pytest.mark.usefixtures("engine")

IDENTITY = [
    "-e",
    "GIT_AUTHOR_NAME=agent",
    "-e",
    "GIT_AUTHOR_EMAIL=agent@example.invalid",
    "-e",
    "GIT_COMMITTER_NAME=agent",
    "-e",
    "GIT_COMMITTER_EMAIL=agent@example.invalid",
]


def runtimes() -> list[str]:
    info = docker("info", "--format", "{{json .Runtimes}}")
    have = json.loads(info.stdout or "{}") if info.returncode == 0 else {}
    return [r for r in ("runsc", "runc") if r in have] or ["runc"]


def git(sandbox: Sandbox, *args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=sandbox.env, check=True, capture_output=True, text=True
    ).stdout


def repo_with_remote(sandbox: Sandbox, name: str) -> Path:
    """A repository with one commit and a bare remote inside the workspace (the
    container sees only the workspace)."""
    ws = sandbox.workspace(name, "main")
    (ws / "a.txt").write_text("a\n")
    git(sandbox, "add", "a.txt", cwd=ws)
    git(sandbox, "commit", "-qm", "init", cwd=ws)
    git(sandbox, "init", "-q", "--bare", str(ws / "remote.git"), cwd=ws)
    git(sandbox, "remote", "add", "origin", str(ws / "remote.git"), cwd=ws)
    git(sandbox, "push", "-q", "origin", "main", cwd=ws)
    return ws


def agent_sh(sandbox: Sandbox, ws: Path, script: str) -> subprocess.CompletedProcess[str]:
    res = sandbox.cai("exec", *IDENTITY, "--", "sh", "-c", script, cwd=ws)
    return subprocess.CompletedProcess([], res.returncode, res.stdout, res.stderr)


def assert_metadata_guarded(sandbox: Sandbox, ws: Path, gitdir: Path) -> None:
    """From inside: no hook, no config key; on the host: nothing changed."""
    config_before = (gitdir / "config").read_text()
    hook = gitdir / "hooks" / "post-commit"
    res = agent_sh(sandbox, ws, f"printf '#!/bin/sh\\ntouch /tmp/pwned\\n' > '{hook}'")
    assert res.returncode != 0, "the agent wrote a hook"
    res = agent_sh(sandbox, ws, "git config core.fsmonitor 'touch /tmp/pwned'")
    assert res.returncode != 0, "the agent wrote core.fsmonitor"
    res = agent_sh(sandbox, ws, "git config alias.st '!touch /tmp/pwned'")
    assert res.returncode != 0, "the agent wrote an alias"
    assert not hook.exists()
    assert (gitdir / "config").read_text() == config_before
    assert "fsmonitor" not in git(sandbox, "config", "--list", cwd=ws)


@pytest.mark.parametrize("runtime", runtimes())
def test_git_hooks_and_config_are_read_only_but_git_works(sandbox: Sandbox, runtime: str) -> None:
    ws = repo_with_remote(sandbox, f"guard{runtime}")
    res = sandbox.cai("run", "--detached", "--runtime", runtime, cwd=ws)
    assert res.returncode == 0, res.stderr
    assert (ws / ".git" / "hooks").is_dir()

    work = agent_sh(
        sandbox,
        ws,
        "set -e; echo b > b.txt; git add b.txt; git commit -qm b; git branch topic; "
        "git log --oneline | wc -l; git fetch -q origin; git push -q origin HEAD:main; "
        "git status --short",
    )
    assert work.returncode == 0, work.stderr
    assert work.stdout.split()[0] == "2"
    assert "topic" in git(sandbox, "branch", "--list", cwd=ws)
    assert git(sandbox, "rev-parse", "HEAD", cwd=ws) == git(
        sandbox, "--git-dir", str(ws / "remote.git"), "rev-parse", "main", cwd=ws
    )
    assert_metadata_guarded(sandbox, ws, ws / ".git")


def test_git_guard_in_a_worktree(sandbox: Sandbox) -> None:
    main = repo_with_remote(sandbox, "wtmain")
    wt = sandbox.root / "ws" / "wtfeat"
    git(sandbox, "worktree", "add", "-q", str(wt), "-b", "feat", cwd=main)
    res = sandbox.cai("run", "--detached", cwd=wt)
    assert res.returncode == 0, res.stderr

    work = agent_sh(
        sandbox,
        wt,
        "set -e; echo c > c.txt; git add c.txt; git commit -qm c; git branch feat2; "
        "git log --oneline | wc -l",
    )
    assert work.returncode == 0, work.stderr
    assert work.stdout.split()[0] == "2"
    assert "feat2" in git(sandbox, "branch", "--list", cwd=main)
    assert_metadata_guarded(sandbox, wt, main / ".git")
    # The worktree's .git file and its commondir would let the agent swap in a git
    # directory (and config) of its own.
    gitfile = (wt / ".git").read_text()
    res = agent_sh(sandbox, wt, f"echo 'gitdir: {wt}/evil' > .git")
    assert res.returncode != 0 and (wt / ".git").read_text() == gitfile
    commondir = main / ".git" / "worktrees" / "wtfeat" / "commondir"
    res = agent_sh(sandbox, wt, f"echo {wt}/evil > '{commondir}'")
    assert res.returncode != 0 and commondir.read_text().strip() == "../.."
    # H4 for a worktree: its .git file, its private git dir and the common dir's own
    # commondir cannot be moved away or created
    private = commondir.parent
    res = agent_sh(
        sandbox,
        wt,
        f"mv .git .git-old; rm -f .git; mv '{private}' '{private}.old'; "
        f"mv '{private.parent}' '{private.parent}.old'; echo {wt}/evil > '{main}/.git/commondir'",
    )
    assert (wt / ".git").read_text() == gitfile and not (wt / ".git-old").exists()
    assert private.is_dir() and commondir.read_text().strip() == "../.."
    assert (main / ".git" / "commondir").read_text() == ".\n"


def test_two_worktrees_two_containers(sandbox: Sandbox) -> None:
    """Parallel branches (issue 16): one container per worktree directory; git works
    in each (status, commit, log), each commit lands on its own branch of the one
    repository, and neither container sees the other's worktree."""
    main = repo_with_remote(sandbox, "wtpair")
    trees: dict[str, Path] = {}
    for branch in ("left", "right"):
        wt = sandbox.root / "ws" / f"wtpair-{branch}"
        git(sandbox, "worktree", "add", "-q", str(wt), "-b", branch, cwd=main)
        res = sandbox.cai("run", "--detached", cwd=wt)
        assert res.returncode == 0, res.stderr
        trees[branch] = wt
    names = {
        b: sandbox.cai("status", "--json", cwd=wt).json["container"] for b, wt in trees.items()
    }
    assert len(set(names.values())) == 2, names
    for branch, wt in trees.items():
        other = trees["right" if branch == "left" else "left"]
        work = agent_sh(
            sandbox,
            wt,
            f"set -e; git status --short; echo {branch} > {branch}.txt; git add {branch}.txt; "
            f"git commit -qm {branch}; git log --format=%s -1; git rev-parse --abbrev-ref HEAD; "
            f"test ! -e '{other}'",
        )
        assert work.returncode == 0, work.stderr
        assert work.stdout.split()[-2:] == [branch, branch]
    for branch in trees:
        assert git(sandbox, "log", "--format=%s", "-1", branch, cwd=main).strip() == branch
    assert git(sandbox, "log", "--format=%s", "-1", "main", cwd=main).strip() == "init"


@pytest.mark.parametrize("runtime", runtimes())
def test_git_dir_cannot_be_renamed_away_nor_redirected(sandbox: Sandbox, runtime: str) -> None:
    """H4: ``mv .git .git-old`` would take every read-only guard mount with it, and a
    fresh ``.git`` (or a ``.git/commondir``) of the agent's would then be what the
    host's git uses. The ``.git`` directory is a mount point (EBUSY), commondir is a
    read-only "." ; git still works."""
    ws = repo_with_remote(sandbox, f"pin{runtime}")
    res = sandbox.cai("run", "--detached", "--runtime", runtime, cwd=ws)
    assert res.returncode == 0, res.stderr
    res = agent_sh(sandbox, ws, "mv .git .git-old")
    assert res.returncode != 0, "the agent renamed .git"
    res = agent_sh(sandbox, ws, f"echo {ws}/evil > .git/commondir")
    assert res.returncode != 0, "the agent wrote .git/commondir"
    res = agent_sh(sandbox, ws, "mv .git/commondir .git/x; mv .git/hooks .git/h; true")
    assert (ws / ".git" / "commondir").read_text() == ".\n"
    assert not (ws / ".git-old").exists() and (ws / ".git" / "HEAD").is_file()
    assert (ws / ".git" / "hooks").is_dir() and not (ws / ".git" / "h").exists()
    work = agent_sh(
        sandbox,
        ws,
        "set -e; echo c > c.txt; git add c.txt; git commit -qm c; git gc -q; git status",
    )
    assert work.returncode == 0, work.stderr
    assert "c.txt" in git(sandbox, "log", "--stat", "-1", cwd=ws)
    assert "c.txt" not in git(sandbox, "status", "--short", cwd=ws)


def test_a_planted_commondir_is_not_mounted(sandbox: Sandbox) -> None:
    """C2: a ``.git/commondir`` naming a host directory (left by an older, unguarded
    container) must not make cai mount that directory read-write in the next one."""
    ws = repo_with_remote(sandbox, "planted")
    secret = sandbox.root / "hostsecret"
    secret.mkdir()
    (secret / "key").write_text("s3cret\n")
    (ws / ".git" / "commondir").write_text(f"{secret}\n")
    res = sandbox.cai("run", "--detached", cwd=ws)
    assert res.returncode == 0, res.stderr
    warned = res.stderr
    res = agent_sh(sandbox, ws, f"cat {secret}/key; touch {secret}/x")
    assert "s3cret" not in res.stdout and not (secret / "x").exists()
    assert warned.count("points the host's git") == 1, warned  # warned, once
    (ws / ".git" / "commondir").unlink()


def test_git_config_writable_lifts_only_the_config_guard(sandbox: Sandbox) -> None:
    ws = repo_with_remote(sandbox, "cfgw")
    res = sandbox.cai("config", "set", "git.config_writable", "true", "--global", cwd=ws)
    assert res.returncode == 0, res.stderr
    assert sandbox.cai("run", "--detached", cwd=ws).returncode == 0
    res = agent_sh(sandbox, ws, "git config branch.main.description hello")
    assert res.returncode == 0, res.stderr
    assert "hello" in (ws / ".git" / "config").read_text()
    res = agent_sh(sandbox, ws, "echo x > .git/hooks/post-commit")
    assert res.returncode != 0


def test_agent_is_never_root_on_the_host(sandbox: Sandbox) -> None:
    """cai runs as root here: the agent must get another uid, no sudo, and a setuid
    copy of a program it leaves in the workspace is not setuid root on the host."""
    assert os.geteuid() == 0, "this test is about cai running as root"
    ws = sandbox.workspace("noroot", "main")
    assert sandbox.cai("run", "--detached", cwd=ws).returncode == 0
    info = json.loads(docker("container", "inspect", "noroot-main").stdout)[0]
    assert "no-new-privileges" in (info["HostConfig"].get("SecurityOpt") or [])

    ids = agent_sh(sandbox, ws, "id -u; id -g; id -G")
    assert ids.returncode == 0, ids.stderr
    uid, gid, *groups = ids.stdout.split()
    assert uid != "0" and gid != "0" and "0" not in groups[0].split()

    sudo = agent_sh(sandbox, ws, "sudo -n id -u")
    assert sudo.returncode != 0 and sudo.stdout.strip() != "0"
    assert "NOPASSWD" not in agent_sh(sandbox, ws, "cat /etc/sudoers.d/* 2>/dev/null").stdout

    res = agent_sh(
        sandbox,
        ws,
        "cp /bin/ls suid-ls && chmod 6755 suid-ls; chown 0:0 suid-ls; chgrp 0 suid-ls; "
        "touch made-here",
    )
    assert res.returncode == 0, res.stderr
    made = os.stat(ws / "made-here")
    assert made.st_uid == int(uid) and made.st_uid != 0
    st = os.stat(ws / "suid-ls")
    assert not (st.st_uid == 0 and st.st_mode & stat.S_ISUID), "setuid root on the host"
    assert not (st.st_gid == 0 and st.st_mode & stat.S_ISGID), "setgid root on the host"

    # The user still installs packages: as root through the engine, not the agent.
    root = sandbox.cai("exec", "--root", "--", "id", "-u", cwd=ws)
    assert root.returncode == 0 and root.stdout.strip() == "0", root.stderr
    again = agent_sh(sandbox, ws, "id -u; sudo -n true")
    assert again.stdout.split()[0] == uid and again.returncode != 0

    # The entrypoint refuses a root agent however it is written (it appends the passwd
    # line itself: "00" would be uid 0 there), and ids beyond what useradd accepted.
    image = info["Config"]["Image"]
    for ids in (("00", "1000"), ("1000", "000"), ("4294967295", "1000")):
        env = ["-e", f"CAI_UID={ids[0]}", "-e", f"CAI_GID={ids[1]}"]
        refused = docker("run", "--rm", "--runtime", "runc", *env, image, "true")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert refused.stderr.startswith("containai: error: "), refused.stderr


def test_root_owned_workspace_is_writable_by_the_agent(sandbox: Sandbox) -> None:
    ws = sandbox.workspace("rootws", "main")
    (ws / "sub").mkdir()
    (ws / "sub" / "f").write_text("x\n")
    assert os.stat(ws).st_uid == 0
    assert sandbox.cai("run", "--detached", cwd=ws).returncode == 0
    res = agent_sh(sandbox, ws, "echo y >> sub/f && mkdir -p sub/new && echo z > sub/new/g")
    assert res.returncode == 0, res.stderr
    assert (ws / "sub" / "f").read_text() == "x\ny\n"
    assert os.stat(ws).st_uid == 0  # owners are left alone: the host's git still trusts it
    assert "git" not in git(sandbox, "status", "--short", cwd=ws)


def test_two_uids_sharing_a_volume_do_not_chown_each_others_state(sandbox: Sandbox) -> None:
    volume = new_volume_name()
    sandbox.env["CONTAINAI_DATA_VOLUME"] = volume
    first = sandbox.workspace("uid1", "main")
    second = sandbox.workspace("uid2", "main")
    try:
        subprocess.run(["chown", "-R", "1001:1001", str(first)], check=True)
        subprocess.run(["chown", "-R", "1002:1002", str(second)], check=True)

        assert sandbox.cai("run", "--detached", cwd=first).returncode == 0
        res = agent_sh(sandbox, first, "id -u; printf secret > ~/.claude.json")
        assert res.returncode == 0 and res.stdout.split()[0] == "1001", res.stderr
        assert sandbox.cai("run", "--detached", cwd=second).returncode == 0
        res = agent_sh(sandbox, second, "id -u; printf mine > ~/.claude.json")
        assert res.returncode == 0 and res.stdout.split()[0] == "1002", res.stderr
        # the first container, restarted, still has its own state, untouched
        assert sandbox.cai("stop", cwd=first).returncode == 0
        assert sandbox.cai("run", "--detached", cwd=first).returncode == 0
        res = agent_sh(sandbox, first, "cat ~/.claude.json")
        assert res.returncode == 0 and res.stdout == "secret", res.stderr
        # cai import writes where the receiving agent reads: home-1002 for the second
        source = sandbox.root / "hosthome"
        source.mkdir()
        (source / ".vimrc").write_text("set number\n")
        res = sandbox.cai("import", "--from", str(source), "-w", str(second))
        assert res.returncode == 0, res.stderr
        res = agent_sh(sandbox, second, "cat ~/.vimrc")
        assert res.returncode == 0 and res.stdout == "set number\n", res.stderr

        listing = docker(
            "run",
            "--rm",
            "--entrypoint",
            "find",
            "-v",
            f"{volume}:/mnt/agent-data",
            "containai:default",
            "/mnt/agent-data",
            "-mindepth",
            "1",
            "-maxdepth",
            "2",
            "-printf",
            "%P %U %m\\n",
        )
        rows = {
            p: (u, m)
            for p, u, m in (
                line.split() for line in listing.stdout.splitlines() if line.count(" ") == 2
            )
        }
        root = docker(
            "run",
            "--rm",
            "--entrypoint",
            "stat",
            "-v",
            f"{volume}:/mnt/agent-data",
            "containai:default",
            "-c",
            "%u %a",
            "/mnt/agent-data",
        ).stdout.split()
        assert root == ["0", "755"], "the volume root was given to an agent"
        assert rows["home"][0] == "1001" and rows["home/.claude.json"][0] == "1001"
        assert rows["home-1002"][0] == "1002" and rows["home-1002/.claude.json"][0] == "1002"
        assert rows["home-1002/.vimrc"][0] == "1002" and rows["home/.vimrc"][0] == "1001"
    finally:
        # this test's two containers only: `stop --all` would take every managed
        # container of the engine, the user's own among them
        for ws in (first, second):
            sandbox.cai("stop", "--remove", "--force", cwd=ws)
        docker("volume", "rm", "-f", volume)
