"""The system layer's link-home.sh, run by the local bash on temporary trees.

The entrypoint plans the agent's links as root with bash tests alone and has them made,
as the agent, by one perl (`APPLY_PERL`) or, when the plan says so, by the script's shell
steps. Both must leave the same home and state behind, whatever the agent left there,
and a second plan must find nothing to do (a restart starts no program)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SCRIPT = Path(__file__).parents[2] / "src/containai/templates/system/link-home.sh"
PERL = Path("/usr/bin/perl")
ENTRIES = [".f", ".j.json", ".d/", ".c/x/", ".c/y", ".l/s/t/"]
# what the agent may have left for one entry, before a start
STATES = ["none", "right", "wrong", "dangling-target", "data-in-state", "data-in-home", "home-only"]

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")


def bash(root: Path, body: str) -> subprocess.CompletedProcess[str]:
    links = root / "home-links"
    script = (
        f'. {SCRIPT}\nHOME_LINKS={links}\nlog() {{ printf "LOG %s\\n" "$*"; }}\nset -u\n{body}\n'
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=env, check=False
    )


def prepare(root: Path, states: list[str]) -> tuple[Path, Path, Path]:
    home, state, ws = root / "home", root / "state", root / "ws"
    for d in (home, state, ws):
        d.mkdir(parents=True)
    (root / "home-links").write_text("# test\n" + "\n".join(ENTRIES) + "\n.f/inside\n")
    for entry, how in zip(ENTRIES, states, strict=True):
        name = entry.rstrip("/")
        src, dst = home / name, state / name
        if how != "none":  # else the parents too are for the plan to make
            src.parent.mkdir(parents=True, exist_ok=True)
            dst.parent.mkdir(parents=True, exist_ok=True)
        if how in ("right", "wrong", "data-in-state", "data-in-home"):
            if entry.endswith("/"):
                dst.mkdir()
                (dst / "kept").write_text("state")
            else:
                dst.write_text("state")
        if how == "right":
            src.symlink_to(dst)
        elif how == "wrong":
            src.symlink_to(root / "elsewhere")
        elif how == "dangling-target":
            dst.symlink_to(root / "nowhere")
        if how in ("data-in-home", "home-only"):
            if entry.endswith("/"):
                src.mkdir()
                (src / "mine").write_text("home")
            else:
                src.write_text("home")
    return home, state, ws


def tree(root: Path) -> dict[str, str]:
    """Every path under root: its kind and content or target (with root made `@`)."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            rel = re.sub(r"\.containai-bak\.[0-9]{14}", ".containai-bak.TIME", rel)
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path).replace(str(root), "@")
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = "file " + path.read_text()
    return out


def apply(root: Path, way: str) -> subprocess.CompletedProcess[str]:
    home, state, ws = root / "home", root / "state", root / "ws"
    plan = f'plan_links {home} {state} {ws} "" warn'
    if way == "perl":  # as the entrypoint: perl unless the plan needs the shell steps
        apply_step = (
            f"if ((shell)); then link_home {home} {state} {ws}\n"
            'else /usr/bin/perl -e "$APPLY_PERL" -- "${ops[@]}"; fi'
        )
    else:
        apply_step = f"link_home {home} {state} {ws}"
    body = f"{plan}\n{apply_step}\nexit $failed"
    return bash(root, body)


@pytest.mark.skipif(not PERL.exists(), reason="no /usr/bin/perl")
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(states=st.lists(st.sampled_from(STATES), min_size=len(ENTRIES), max_size=len(ENTRIES)))
def test_perl_and_the_shell_steps_leave_the_same_tree(tmp_path: Path, states: list[str]) -> None:
    trees = {}
    for way in ("perl", "shell"):
        root = tmp_path / f"{way}-{'-'.join(states)}"
        shutil.rmtree(root, ignore_errors=True)
        prepare(root, states)
        res = apply(root, way)
        assert res.returncode == 0, res.stderr
        assert "skipping home-links entry '.f/inside'" in res.stdout
        trees[way] = tree(root)
        # every link is in place: a second plan (a restart) has nothing to do, unless the
        # agent left a dangling link where the state goes (then it is linked to, again)
        again = bash(root, f'plan_links {root}/home {root}/state {root}/ws; echo "${{#ops[@]}}"')
        if "dangling-target" not in states:
            assert again.stdout.split()[-1] == "0", (states, again.stdout)
    assert trees["perl"] == trees["shell"]
    got = trees["perl"]
    for entry, how in zip(ENTRIES, states, strict=True):
        name = entry.rstrip("/")
        target = "-> @/nowhere" if how == "dangling-target" else None
        assert got[f"home/{name}"] == f"-> @/state/{name}", (entry, how)
        if target:
            assert got[f"state/{name}"] == target
        elif how == "none" and not entry.endswith("/"):
            assert got[f"state/{name}"] == ("file {}\n" if name.endswith(".json") else "file ")
        elif how == "data-in-home":  # moved aside: the state had some already
            assert f"home/{name}.containai-bak.TIME" in got
        elif how == "home-only":  # moved to the volume, which had none
            key = f"state/{name}/mine" if entry.endswith("/") else f"state/{name}"
            assert got[key] == "file home"
    assert got["home/workspace"] == "-> @/ws"


def test_a_restart_plans_nothing_and_a_planted_link_is_only_named(tmp_path: Path) -> None:
    """Root's plan reads through the agent's links but only names paths: with ~/.c a
    link to a directory outside, it plans a mkdir there (to be tried as the agent) and
    writes nothing itself."""
    home, state, ws = prepare(tmp_path, ["none"] * len(ENTRIES))
    outside = tmp_path / "outside"
    outside.mkdir()
    (home / ".c").symlink_to(outside)
    before = tree(tmp_path)
    res = bash(tmp_path, f"plan_links {home} {state} {ws}; printf '%s\\n' \"${{ops[@]}}\"")
    assert res.returncode == 0, res.stderr
    assert f"l:{home}/.c/y" in res.stdout.splitlines()
    assert tree(tmp_path) == before  # planning wrote nothing
    if PERL.exists():
        assert apply(tmp_path, "perl").returncode == 0
        assert (outside / "y").is_symlink()  # made through the link, by the caller
        res = bash(tmp_path, f'plan_links {home} {state} {ws}; echo "${{#ops[@]}} $shell"')
        assert res.stdout.split()[-2:] == ["0", "0"]


ENTRYPOINT = SCRIPT.with_name("entrypoint.sh")


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A folder another uid can reach (pytest's own sit in a 0700 one)."""
    path = Path(tempfile.mkdtemp(prefix="cai-link-home-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def as_agent_perl() -> str:
    """The entrypoint's root prelude of the links' perl, as the entrypoint defines it."""
    text = ENTRYPOINT.read_text()
    found = re.search(r"^readonly AS_AGENT_PERL='(.*?)'$", text, re.S | re.M)
    assert found is not None
    apply = re.search(r"^readonly APPLY_PERL='(.*?)'$", SCRIPT.read_text(), re.S | re.M)
    assert apply is not None
    return found.group(1) + apply.group(1)


@pytest.mark.skipif(os.geteuid() != 0 or not PERL.exists(), reason="needs root and perl")
def test_one_perl_makes_the_agents_directories_as_root_then_acts_only_as_the_agent(
    open_tmp: Path,
) -> None:
    """The first start's one program: root makes the new directories (the agent's, 0755),
    then everything else runs as the agent, for good: a root-only folder stays closed
    and a link the agent planted there leads nowhere it could not go itself."""
    tmp_path = open_tmp
    home, data_home = tmp_path / "home", tmp_path / "data-home"
    closed = tmp_path / "root-only"
    closed.mkdir(mode=0o755)
    (tmp_path / "planted").symlink_to(closed)  # as an agent's ~/.local -> /etc
    argv = [
        str(PERL), "-e", as_agent_perl(), "--", "4242", "4243", str(home), str(data_home), "--",
        f"f:{home}/mine", f"d:{home}/.config", f"f:{closed}/root-file",
        f"f:{tmp_path}/planted/through-link", f"l:{home}/workspace", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 1, done.stderr  # the agent's ops ran; two could not
    for path in (home, data_home, home / "mine", home / ".config", home / "workspace"):
        info = path.lstat()
        assert (info.st_uid, info.st_gid) == (4242, 4243), path
    assert home.stat().st_mode & 0o7777 == 0o755
    assert not (closed / "root-file").exists()
    assert not (closed / "through-link").exists()
    assert done.stderr.count("cannot create") == 2


@pytest.mark.skipif(os.geteuid() != 0 or not PERL.exists(), reason="needs root and perl")
def test_the_prelude_stops_before_the_agents_paths_when_a_directory_cannot_be_made(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    argv = [str(PERL), "-e", as_agent_perl(), "--", "4242", "4242", str(blocker / "home"),
            "--", f"f:{tmp_path}/never"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 3
    assert "containai: error: cannot create" in done.stderr
    assert not (tmp_path / "never").exists()


@pytest.mark.skipif(os.geteuid() != 0 or not PERL.exists(), reason="needs root and perl")
def test_the_agents_new_directory_is_never_a_link_and_its_parents_stay_roots(
    open_tmp: Path,
) -> None:
    """A link where the new home is to be (swapped in, or left by an older container on
    the volume) is refused: the target keeps its owner. Missing parents are made
    root's, as `install -d` made them."""
    target = open_tmp / "etc-like"
    target.mkdir(mode=0o755)
    (open_tmp / "home").symlink_to(target)
    argv = [str(PERL), "-e", as_agent_perl(), "--", "4242", "4242", str(open_tmp / "home"),
            "--", f"f:{open_tmp}/never"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 3, done.stderr
    assert "not a directory of its own" in done.stderr
    assert target.stat().st_uid == 0
    assert not (open_tmp / "never").exists()
    deep = open_tmp / "a" / "b" / "home"
    argv = [str(PERL), "-e", as_agent_perl(), "--", "4242", "4242", str(deep), "--"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert (deep.stat().st_uid, deep.parent.stat().st_uid, deep.parent.parent.stat().st_uid) == (
        4242,
        0,
        0,
    )
