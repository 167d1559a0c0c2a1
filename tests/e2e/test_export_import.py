"""Export and import through the installed ``cai`` on the real engine (SPEC section 11).

Volumes are named with the test prefix and removed by finalizers (or the sandbox's
own CONTAINAI_DATA_VOLUME sweep); containers carry a workspace label under the
test's tmp root, so the sandbox sweep removes them; helper containers must be
removed by cai itself, and each test checks that none is left.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from containai.domain.host_safety import agent_ids
from tests.conftest import Sandbox, docker, new_volume_name

pytestmark = pytest.mark.engine

IMAGE = "containai-base:bookworm"
POPULATE = r"""
set -e
cd /mnt/agent-data
mkdir -p home/.claude/nested/deeper home/.codex
printf 'secret\n' > home/.claude/.credentials.json
chmod 600 home/.claude/.credentials.json
printf '#!/bin/sh\necho hi\n' > home/.claude/nested/tool
chmod 751 home/.claude/nested/tool
chmod 700 home/.claude/nested
printf 'deep' > home/.claude/nested/deeper/file
ln -s nested/tool home/.claude/tool-link
ln -s ../.claude home/.codex/claude
ln home/.claude/nested/deeper/file home/.claude/hard-copy
head -c 300000 /dev/urandom > home/.claude/blob
printf 'x' > home/.claude/owned
chown 1234:2345 home/.claude/owned
touch -h -d '2021-02-03 04:05:06' home/.claude/tool-link
touch -d '2020-01-02 03:04:05' home/.claude/nested/tool home/.claude/.credentials.json
touch -d '2019-05-06 07:08:09' home/.claude/nested/deeper home/.claude/nested
"""
# type perms owner mtime(s) size path -> target, then a checksum of each file
LISTING = r"""
cd /mnt/agent-data
find . -printf '%y %m %U:%G %Ts %s %p -> %l\n' | sort -k6
find . -type f -exec sha256sum {} + | sort -k2
"""


def run_in_volume(volume: str, script: str, *, readonly: bool = False) -> str:
    mount = f"type=volume,source={volume},target=/mnt/agent-data" + (
        ",readonly" if readonly else ""
    )
    proc = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--mount", mount, IMAGE, "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def listing(volume: str) -> str:
    return run_in_volume(volume, LISTING, readonly=True)


def with_agents_root(text: str, cwd: Path) -> str:
    """``listing`` text with the volume root owned by cai (root), as an import leaves it
    (issue 13: the root is cai's, whatever the archive's root entry says)."""
    uid, gid = 0, 0
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        fields = line.split(" ")
        if fields[0] == "d" and fields[5:7] == [".", "->"]:  # d MODE U:G MTIME SIZE . ->
            fields[2] = f"{uid}:{gid}"
            lines[i] = " ".join(fields)
    return "".join(lines)


def volume_exists(name: str) -> bool:
    return docker("volume", "inspect", name).returncode == 0


def helpers() -> set[str]:
    out = docker("ps", "-a", "--filter", "label=containai.helper=true", "--format", "{{.ID}}")
    return set(out.stdout.split())


@pytest.fixture
def volumes() -> Iterator[Callable[[], str]]:
    made: list[str] = []

    def make() -> str:
        name = new_volume_name()
        made.append(name)
        return name

    yield make
    if made:
        docker("volume", "rm", "-f", *made)


@pytest.fixture
def no_helpers_left(engine: None) -> Iterator[None]:
    before = helpers()
    yield
    assert helpers() - before == set(), "cai left a helper container behind"


@pytest.fixture
def populated(sandbox: Sandbox, engine: None) -> str:
    volume = sandbox.env["CONTAINAI_DATA_VOLUME"]
    assert docker("volume", "create", volume).returncode == 0
    run_in_volume(volume, POPULATE)
    return volume


def fake_container(sandbox: Sandbox, ws: Path, volume: str, *, running: bool) -> str:
    """A container that looks managed by cai for ``ws`` (swept by label with the sandbox)."""
    name = "cai-exp-" + volume.removeprefix("cai-test-")
    proc = docker(
        "create",
        "--name",
        name,
        "--init",
        "--network",
        "none",
        "--label",
        "containai.managed=true",
        "--label",
        f"containai.workspace={ws}",
        "--label",
        f"containai.data-volume={volume}",
        "--mount",
        f"type=volume,source={volume},target=/mnt/agent-data",
        IMAGE,
        "sleep",
        "600",
    )
    assert proc.returncode == 0, proc.stderr
    if running:
        assert docker("start", name).returncode == 0
    return name


def members(archive: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(archive, "r:gz") as tar:
        return tar.getmembers()


def export(sandbox: Sandbox, ws: Path, out: Path, *extra: str) -> Path:
    out.mkdir(exist_ok=True)
    res = sandbox.cai("export", "-w", str(ws), "--output", str(out), *extra)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    lines = res.stdout.splitlines()
    assert len(lines) == 1
    path = Path(lines[0])
    assert path.parent == out and path.name.startswith("containai-export-")
    assert path.name.endswith(".tgz")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(out) == [path.name]  # no temp file left next to it
    return path


# --------------------------------------------------------------- round trip
def test_round_trip_into_a_new_volume(
    sandbox: Sandbox, populated: str, volumes: Callable[[], str], no_helpers_left: None
) -> None:
    ws = sandbox.workspace("exp")
    archive = export(sandbox, ws, sandbox.root / "out")  # no container: a stopped helper streams it
    assert f"containai-export-{populated}-" in archive.name
    infos = members(archive)
    assert infos[0].name in (".", "./")
    assert all(i.name == "." or i.name.startswith("./") for i in infos)
    assert not any(i.islnk() for i in infos)  # hard links became regular files
    copy = next(i for i in infos if i.name == "./home/.claude/hard-copy")
    assert copy.isreg() and copy.size == 4

    target = volumes()
    # a volume with other content: the import replaces it
    assert docker("volume", "create", target).returncode == 0
    run_in_volume(target, "mkdir -p /mnt/agent-data/stale && touch /mnt/agent-data/stale/x")
    res = sandbox.cai("import", "--from", str(archive), "--data-volume", target, "--force")
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""  # one line on stderr for the one volume changed (SPEC section 2)
    assert res.stderr.startswith(f"restored volume {target} from {archive} (")
    assert res.stderr.endswith(" entries)\n") and res.stderr.count("\n") == 1
    expected = listing(populated)
    assert "stale" not in listing(target)
    assert listing(target) == with_agents_root(expected, sandbox.root)
    # spot checks of what the listing compares
    assert "l 777 0:0 1612325106 " in expected  # symlink mtime kept
    assert "f 751 0:0 1577934245 " in expected and "d 700 0:0 1557126489 " in expected
    assert "f 644 1234:2345 " in expected  # uid/gid as they are


def test_import_creates_a_missing_volume(
    sandbox: Sandbox, populated: str, volumes: Callable[[], str], no_helpers_left: None
) -> None:
    ws = sandbox.workspace("exp")
    archive = export(sandbox, ws, sandbox.root / "out")
    target = volumes()
    assert not volume_exists(target)
    res = sandbox.cai("import", "--from", str(archive), "--data-volume", target)  # no TTY, new
    assert res.returncode == 0, res.stderr
    assert listing(target) == with_agents_root(listing(populated), sandbox.root)


@pytest.mark.parametrize("running", [False, True])
def test_export_from_the_workspace_container_stopped_or_running(
    sandbox: Sandbox, populated: str, running: bool, no_helpers_left: None
) -> None:
    ws = sandbox.workspace("exp")
    name = fake_container(sandbox, ws, populated, running=running)
    out = sandbox.root / "out"
    out.mkdir()
    by_workspace = export(sandbox, ws, out)  # the workspace's container is found by label
    by_workspace.rename(sandbox.root / "a.tgz")
    res = sandbox.cai("export", "--container", name, "--output", str(out / "named.tgz"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(out / "named.tgz")
    a = [(i.name, i.mode, i.type, i.linkname) for i in members(sandbox.root / "a.tgz")]
    b = [(i.name, i.mode, i.type, i.linkname) for i in members(out / "named.tgz")]
    assert a == b and len(a) > 10
    state = docker("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
    assert state == ("running" if running else "created")  # export never starts or stops it


# ----------------------------------------------------------- hostile input
def _entry(
    name: str, kind: bytes, linkname: str = "", data: bytes = b""
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o644
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    if kind == tarfile.CHRTYPE:
        info.devmajor, info.devminor = 1, 3
    return info, data


def hostile(path: Path, entries: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    path.write_bytes(buf.getvalue())
    return path


F, L, H = tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
HOSTILE = {
    "traversal": ([_entry("home/ok", F, data=b"ok"), _entry("../x", F, data=b"x")], "'../x'"),
    "absolute": ([_entry("/etc/x", F, data=b"x")], "'/etc/x'"),
    "escaping-symlink": ([_entry("home/l", L, "../../etc")], "'home/l'"),
    "below-symlink": ([_entry("l", L, "home"), _entry("l/evil", F, data=b"e")], "'l/evil'"),
    "device": ([_entry("dev/null", tarfile.CHRTYPE)], "'dev/null'"),
    "fifo": ([_entry("pipe", tarfile.FIFOTYPE)], "'pipe'"),
    "hard-link": ([_entry("a", F, data=b"a"), _entry("b", H, "a")], "'b'"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused_and_change_nothing(
    sandbox: Sandbox, populated: str, case: str, no_helpers_left: None
) -> None:
    entries, named = HOSTILE[case]
    archive = hostile(sandbox.root / f"{case}.tgz", entries)
    before_volume = listing(populated)
    before_files = sorted(p.name for p in sandbox.root.rglob("*"))
    res = sandbox.cai("import", "--from", str(archive), "--data-volume", populated, "--force")
    assert res.returncode == 1, res.stderr
    assert f"member {named}" in res.stderr and "nothing was changed" in res.stderr
    assert res.stderr.startswith("cai: error: ") and res.stderr.count("\n") == 1
    assert res.stdout == ""
    assert listing(populated) == before_volume
    assert sorted(p.name for p in sandbox.root.rglob("*")) == before_files


def test_a_copy_that_fails_midway_leaves_the_content_as_it_was(
    sandbox: Sandbox, populated: str, no_helpers_left: None
) -> None:
    # Passes the checks, but the engine cannot extract it: `a` is a file, then `a/b`.
    archive = hostile(
        sandbox.root / "conflict.tgz",
        [
            _entry("home/new", F, data=b"n"),
            _entry("a", F, data=b"file"),
            _entry("a/b", F, data=b"x"),
        ],
    )

    def content() -> list[str]:  # everything but the root's own mtime (staging came and went)
        return [line for line in listing(populated).splitlines() if not line.endswith(" . -> ")]

    before = content()
    res = sandbox.cai("import", "--from", str(archive), "--data-volume", populated, "--force")
    assert res.returncode == 1
    assert "not a directory" in res.stderr
    after = content()
    assert after == before
    assert not any(".containai-" in line for line in after)


def test_import_without_tty_or_force_is_exit_6(
    sandbox: Sandbox, populated: str, no_helpers_left: None
) -> None:
    ws = sandbox.workspace("exp")
    archive = export(sandbox, ws, sandbox.root / "out")
    run_in_volume(populated, "rm -rf /mnt/agent-data/home/.codex")
    before = listing(populated)
    res = sandbox.cai("import", "--from", str(archive), "-w", str(ws))
    assert res.returncode == 6
    assert "--force" in res.stderr and f"'{populated}'" in res.stderr
    assert listing(populated) == before
    missing = sandbox.cai("import", "--from", str(sandbox.root / "nope.tgz"), "--force")
    assert missing.returncode == 4 and "nope.tgz" in missing.stderr


# --------------------------------------------------------------- atomicity
def test_failed_export_leaves_no_file_and_creates_no_volume(
    sandbox: Sandbox, volumes: Callable[[], str], engine: None, no_helpers_left: None
) -> None:
    out = sandbox.root / "out"
    out.mkdir()
    ghost = volumes()
    res = sandbox.cai("export", "--data-volume", ghost, "--output", str(out / "x.tgz"))
    assert res.returncode == 4 and f"'{ghost}'" in res.stderr
    assert os.listdir(out) == []
    assert not volume_exists(ghost)


# ------------------------------------------------------------- stop --export
def test_stop_export_exports_first_and_aborts_on_failure(
    sandbox: Sandbox, populated: str, no_helpers_left: None
) -> None:
    ws = sandbox.workspace("exp")
    name = fake_container(sandbox, ws, populated, running=True)

    def state() -> str:
        return docker("inspect", "--format", "{{.State.Status}}", name).stdout.strip()

    bad = sandbox.cai(
        "stop", "--container", name, "--export", "--output", str(sandbox.root / "missing" / "x.tgz")
    )
    assert bad.returncode == 4, bad.stderr
    assert "nothing was stopped" in bad.stderr
    assert state() == "running"

    out = sandbox.root / "out"
    out.mkdir()
    res = sandbox.cai("stop", "--container", name, "--export", "--output", str(out), "--force")
    assert res.returncode == 0, res.stderr
    [archive] = out.iterdir()
    assert res.stdout.strip() == str(archive)
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert any(i.name == "./home/.claude/blob" for i in members(archive))
    assert state() == "exited"

    assert docker("start", name).returncode == 0
    forced = sandbox.cai(
        "stop",
        "--container",
        name,
        "--export",
        "--output",
        str(sandbox.root / "missing" / "x.tgz"),
        "--force",
    )
    assert forced.returncode == 0, forced.stderr
    assert "cai: warning: exporting volume" in forced.stderr
    assert state() == "exited"


# ------------------------------------------------------------- host import
@pytest.fixture
def host_home(sandbox: Sandbox) -> Path:
    home = sandbox.home
    (home / ".gitconfig").write_text(
        "[user]\n\tname = T\n\tsigningkey = ABCDEF\n[credential]\n\thelper = store\n"
        "[commit]\n\tgpgsign = true\n[alias]\n\tco = checkout\n"
    )
    (home / ".claude").mkdir()
    (home / ".claude" / "settings.json").write_text('{"theme": "dark"}')
    (home / ".claude.json").write_text('{"oauth": "token"}')
    os.chmod(home / ".claude.json", 0o644)
    (home / ".ssh").mkdir(mode=0o700)
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY")
    (home / ".vimrc").write_text("set number\n")
    return home


HOST_LISTING = r"""
cd /mnt/agent-data
find . -printf '%y %m %U:%G %p\n' | sort -k4
echo ---
cat home/.gitconfig
"""


def test_host_import(
    sandbox: Sandbox, host_home: Path, engine: None, no_helpers_left: None
) -> None:
    ws = sandbox.workspace("hi")
    volume = sandbox.env["CONTAINAI_DATA_VOLUME"]

    dry = sandbox.cai("import", "--dry-run", "-w", str(ws))
    assert dry.returncode == 0, dry.stderr
    lines = {line.split()[1]: line.split()[0] for line in dry.stdout.splitlines()}
    assert lines[".gitconfig"] == "filtered" and lines[".claude.json"] == "copy"
    assert lines[".codex"] == "skip"
    assert ".ssh" not in dry.stdout
    assert not volume_exists(volume)  # --dry-run changed nothing

    res = sandbox.cai("import", "--no-secrets", "-w", str(ws))
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    assert f"into volume {volume}\n" in res.stderr and res.stderr.startswith("imported ")
    first = run_in_volume(volume, HOST_LISTING, readonly=True)
    assert "./home/.gitconfig" in first and "./home/.vimrc" in first
    assert ".claude" not in first.split("---")[0]

    res = sandbox.cai("import", "-w", str(ws))
    assert res.returncode == 0, res.stderr
    out = run_in_volume(volume, HOST_LISTING, readonly=True)
    tree, gitconfig = out.split("---\n")
    # owned by the agent that reads it: the caller, or when cai runs as root (the
    # workspace is root's here) the unprivileged uid (SPEC section 14)
    uid, gid = agent_ids((os.getuid(), os.getgid()), (os.stat(ws).st_uid, os.stat(ws).st_gid))
    me = f"{uid}:{gid}"
    assert f"f 600 {me} ./home/.claude.json" in tree
    assert f"d 700 {me} ./home/.claude\n" in tree
    assert f"f 600 {me} ./home/.claude/settings.json" in tree
    assert ".ssh" not in tree and "id_ed25519" not in tree
    assert "signingkey" not in gitconfig and "helper" not in gitconfig
    assert "gpgsign" not in gitconfig
    assert "name = T" in gitconfig and "co = checkout" in gitconfig
    assert "directory = *" in gitconfig
    # the host's files are untouched
    assert stat.S_IMODE((host_home / ".claude.json").stat().st_mode) == 0o644
    assert "signingkey" in (host_home / ".gitconfig").read_text()
