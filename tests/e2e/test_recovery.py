"""Issue 13: faults found by a hostile run recover by themselves, with one clear line.

The installed ``cai`` against the real engine: killed imports and exports, an archive
bomb, a hostile archive root, a 10,000-character member name, damaged caches and an
unusable lock path. Volumes carry the test prefix and are removed by finalizers;
helper containers a killed ``cai`` leaves are removed by cai itself (that is the test)
or, when a test fails, by the finalizer of ``own_helpers``.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import CAI, Sandbox, docker
from tests.e2e.test_export_import import listing, run_in_volume, volumes  # noqa: F401

pytestmark = pytest.mark.engine
STAGING = "containai.helper.staging"


def helpers_of(volume: str, *labels: str) -> list[str]:
    filters = [
        f"--filter=label={label}" for label in (f"containai.helper.volume={volume}", *labels)
    ]
    return docker("ps", "-a", *filters, "--format", "{{.Names}}").stdout.split()


@pytest.fixture
def own_helpers() -> Iterator[list[str]]:
    """Volumes whose helpers are removed at the end whatever happened."""
    watched: list[str] = []
    yield watched
    for volume in watched:
        names = helpers_of(volume)
        if names:
            docker("rm", "-f", *names)


def popen_cai(sandbox: Sandbox, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CAI, *args],
        cwd=sandbox.root,
        env=sandbox.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)


def random_archive(path: Path, megabytes: int) -> Path:
    """An export-like archive of incompressible data (a copy of it takes a while)."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        root = tarfile.TarInfo(".")
        root.type = tarfile.DIRTYPE
        root.mode = 0o755
        tar.addfile(root)
        for i in range(megabytes // 16):
            info = tarfile.TarInfo(f"./blob{i}")
            info.size = 16 << 20
            tar.addfile(info, io.BytesIO(os.urandom(16 << 20)))
    return path


def staging_in(volume: str) -> list[str]:
    out = run_in_volume(volume, "cd /mnt/agent-data && ls -a")
    return [name for name in out.split() if name.startswith(".containai-import-")]


# ----------------------------------------------------------- item 4: killed import
@pytest.mark.parametrize("repair", ["gc", "import"])
def test_a_killed_import_is_cleaned_up_by_gc_or_the_next_import(
    sandbox: Sandbox,
    engine: None,
    volumes: Callable[[], str],  # noqa: F811
    own_helpers: list[str],
    repair: str,
) -> None:
    volume = volumes()
    own_helpers.append(volume)
    assert docker("volume", "create", volume).returncode == 0
    run_in_volume(volume, "mkdir -p /mnt/agent-data/home && echo keep > /mnt/agent-data/home/f")
    big = random_archive(sandbox.root / "big.tgz", 160)
    proc = popen_cai(sandbox, "import", "--from", str(big), "--data-volume", volume, "--force")
    # Killed in the middle of the copy: a staging directory with some data in it (seen
    # from the host through the local engine's volume directory).
    data = Path(docker("volume", "inspect", "-f", "{{.Mountpoint}}", volume).stdout.strip())

    def copying() -> bool:
        staged = [p for p in data.glob(".containai-import-*") if p.is_dir()]
        return any(p.stat().st_size > 0 for d in staged for p in d.iterdir())

    wait_for(lambda: copying() or proc.poll() is not None)
    kill(proc)
    left = helpers_of(volume, STAGING)
    assert left, "the killed import left no helper (it finished too early?)"
    assert staging_in(volume), "the killed import left no staging directory (too early?)"

    # gc lists the leftover; an export never includes the staging directory
    res = sandbox.cai("gc", "--dry-run")
    assert res.returncode == 0, res.stderr
    assert f"would remove helper container {left[0]}" in res.stdout
    out = sandbox.root / "out"
    out.mkdir()
    res = sandbox.cai("export", "--data-volume", volume, "--output", str(out))
    assert res.returncode == 0, res.stderr
    with tarfile.open(res.stdout.strip(), "r:gz") as tar:
        assert not [n for n in tar.getnames() if ".containai-import-" in n]

    if repair == "gc":
        res = sandbox.cai("gc", "--force")
        assert res.returncode == 0, res.stderr
        assert f"removed helper container {left[0]}" in res.stderr  # a state change (SPEC 2)
        assert run_in_volume(volume, "cat /mnt/agent-data/home/f").strip() == "keep"
    else:
        small = random_archive(sandbox.root / "small.tgz", 16)
        res = sandbox.cai("import", "--from", str(small), "--data-volume", volume, "--force")
        assert res.returncode == 0, res.stderr
        assert "blob0" in run_in_volume(volume, "ls /mnt/agent-data")
    assert helpers_of(volume) == []
    assert staging_in(volume) == []


# ----------------------------------------------------------- item 5: killed export
def test_a_killed_export_leaves_a_temp_file_that_gc_lists_and_the_next_export_sweeps(
    sandbox: Sandbox,
    engine: None,
    volumes: Callable[[], str],  # noqa: F811
    own_helpers: list[str],
) -> None:
    volume = volumes()
    own_helpers.append(volume)
    assert docker("volume", "create", volume).returncode == 0
    run_in_volume(volume, "head -c 200000000 /dev/urandom > /mnt/agent-data/blob")
    out = sandbox.root / "out"
    out.mkdir()
    proc = popen_cai(sandbox, "export", "--data-volume", volume, "--output", str(out))

    def temps() -> list[Path]:
        return [p for p in out.iterdir() if p.name.endswith(".tmp")]

    wait_for(lambda: any(p.stat().st_size > 1 << 20 for p in temps()) or proc.poll() is not None)
    kill(proc)
    (temp,) = temps()
    past = time.time() - 120  # older than the grace a just-made temp file gets
    os.utime(temp, (past, past))

    res = sandbox.cai("gc", "--dry-run")
    assert res.returncode == 0, res.stderr
    assert f"would remove file {temp}" in res.stdout
    assert temp.exists()

    res = sandbox.cai("export", "--data-volume", volume, "--output", str(out))
    assert res.returncode == 0, res.stderr
    assert [p.name for p in out.iterdir()] == [Path(res.stdout.strip()).name]
    res = sandbox.cai("gc", "--force")  # and the killed export's helper goes with gc
    assert res.returncode == 0, res.stderr
    assert helpers_of(volume) == []


# ------------------------------------------------- items 6, 7, 8: hostile archives
def test_an_archive_that_expands_beyond_the_engine_disk_is_refused_before_the_copy(
    sandbox: Sandbox,
    engine: None,
    volumes: Callable[[], str],  # noqa: F811
    own_helpers: list[str],
) -> None:
    volume = volumes()
    own_helpers.append(volume)
    assert docker("volume", "create", volume).returncode == 0
    before = listing(volume)
    src = sandbox.root / "sparse"
    src.mkdir()
    subprocess.run(["truncate", "-s", "1T", str(src / "zeros")], check=True)
    bomb = sandbox.root / "bomb.tgz"
    subprocess.run(["tar", "-C", str(src), "--sparse", "-czf", str(bomb), "."], check=True)
    (src / "zeros").unlink()
    assert bomb.stat().st_size < 10_000
    res = sandbox.cai("import", "--from", str(bomb), "--data-volume", volume, "--force")
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "refusing to import" in res.stderr
    assert "expands to 1.0TB" in res.stderr and "nothing was changed" in res.stderr
    assert listing(volume) == before
    assert helpers_of(volume) == []


def _archive(path: Path, root_mode: int, uid: int, name: str = "./f") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        root = tarfile.TarInfo(".")
        root.type = tarfile.DIRTYPE
        root.mode = root_mode
        root.uid = root.gid = uid
        tar.addfile(root)
        info = tarfile.TarInfo(name)
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    return path


def test_the_volume_root_stays_cais_whatever_the_archive_root_says(
    sandbox: Sandbox,
    engine: None,
    volumes: Callable[[], str],  # noqa: F811
    own_helpers: list[str],
) -> None:
    volume = volumes()
    own_helpers.append(volume)
    archive = _archive(sandbox.root / "root000.tgz", 0o000, 12345)
    res = sandbox.cai("import", "--from", str(archive), "--data-volume", volume, "--force")
    assert res.returncode == 0, res.stderr
    root = run_in_volume(volume, "stat -c '%a %u:%g' /mnt/agent-data").strip()
    # cai's (root, 0755), as on a volume cai creates (SPEC 14: agents get their own
    # directory inside; no container chowns the root)
    assert root == "755 0:0"
    assert run_in_volume(volume, "cat /mnt/agent-data/f") == "x"


def test_a_10000_character_member_name_is_one_short_line_and_changes_nothing(
    sandbox: Sandbox,
    engine: None,
    volumes: Callable[[], str],  # noqa: F811
    own_helpers: list[str],
) -> None:
    volume = volumes()
    own_helpers.append(volume)
    assert docker("volume", "create", volume).returncode == 0
    before = listing(volume)
    archive = _archive(sandbox.root / "long.tgz", 0o755, 0, name="./" + "n" * 10_000)
    res = sandbox.cai("import", "--from", str(archive), "--data-volume", volume, "--force")
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and len(res.stderr) < 400, res.stderr
    assert "nothing was changed" in res.stderr and "10002 characters" in res.stderr
    assert listing(volume) == before


# ------------------------------------------------- items 1, 2: caches and locks
def test_damaged_caches_are_ignored_and_rewritten(sandbox: Sandbox, engine: None) -> None:
    state = sandbox.home / ".local" / "state" / "containai"
    state.mkdir(parents=True)
    (state / "selection").write_bytes(os.urandom(300) + b"\xff\xfe")
    for command in (["list"], ["gc", "--dry-run"]):
        res = sandbox.cai(*command)
        assert res.returncode == 0, res.stderr
        assert "bug" not in res.stderr
    assert (state / "selection").read_bytes().decode().count("\n") == 3  # rewritten


def test_a_directory_in_place_of_the_ports_lock_is_one_line(sandbox: Sandbox, engine: None) -> None:
    ws = sandbox.workspace("locked")
    lock = sandbox.home / ".local" / "state" / "containai" / "locks" / "ports.lock"
    (lock / "inside").mkdir(parents=True)
    res = sandbox.cai("run", "--", "true", cwd=ws)
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and str(lock) in res.stderr and "rm -r" in res.stderr
    assert "bug" not in res.stderr
