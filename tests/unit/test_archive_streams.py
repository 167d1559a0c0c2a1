"""The tar-stream adapter (adapters/archive/) against a scripted stand-in for ``docker``.

The stand-in is a real executable, so the real ``DockerEngine`` plumbing (popen,
error translation) runs: only the engine itself is replaced.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import sys
import tarfile
import textwrap
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from containai.adapters.archive import DockerArchive, member_of, repack
from containai.adapters.archive.streams import ThreadedGzip
from containai.adapters.engine import DockerEngine
from containai.adapters.files import atomic_write_stream as atomic_write
from containai.domain.archive_rules import Member
from containai.domain.errors import Failed, NotFound

MTIME = 1_600_000_000


def tar_bytes(
    entries: list[tuple[str, str, bytes | str, int]], fmt: int = tarfile.PAX_FORMAT
) -> bytes:
    """(name, kind, data-or-linkname, mode) -> an uncompressed tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, kind, payload, mode in entries:
            info = tarfile.TarInfo(name)
            info.mode = mode
            info.mtime = MTIME
            info.uid, info.gid = 1234, 2345
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind in ("sym", "hard"):
                info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                assert isinstance(payload, str)
                info.linkname = payload
                tar.addfile(info)
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
                tar.addfile(info)
            else:
                assert isinstance(payload, bytes)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


LONG = "./home/" + "d" * 120 + "/" + "f" * 120
VOLUME = [
    ("./", "dir", b"", 0o755),
    ("./home/", "dir", b"", 0o755),
    ("./home/.claude/", "dir", b"", 0o700),
    ("./home/.claude/secret.json", "file", b'{"token": 1}\n', 0o600),
    ("./home/.claude/tool", "file", b"#!/bin/sh\n" * 1000, 0o751),
    ("./home/.claude/current", "sym", "secret.json", 0o777),
    ("./home/.claude/again", "hard", "./home/.claude/tool", 0o751),
    ("./home/.claude/again2", "hard", "./home/.claude/tool", 0o751),
    (LONG, "file", b"long", 0o644),
]


def read_tgz(data: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes | None]]:
    out: dict[str, tuple[tarfile.TarInfo, bytes | None]] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for info in tar:
            f = tar.extractfile(info) if info.isreg() else None
            out[info.name] = (info, f.read() if f else None)
    return out


def fetch_from(entries: dict[str, bytes]) -> Callable[[str], object]:
    import contextlib

    fetched: list[str] = []

    @contextlib.contextmanager
    def fetch(name: str):  # type: ignore[no-untyped-def]
        fetched.append(name)
        info = tarfile.TarInfo(name.rsplit("/", 1)[-1])
        info.size = len(entries[name])
        yield info, io.BytesIO(entries[name])

    fetch.calls = fetched  # type: ignore[attr-defined]
    return fetch


# ------------------------------------------------------------------ repack
def test_repack_keeps_everything_and_turns_hard_links_into_files() -> None:
    src = tar_bytes(VOLUME)
    out = io.BytesIO()
    tool = b"#!/bin/sh\n" * 1000
    fetch = fetch_from({"./home/.claude/tool": tool})
    members, links = repack(io.BytesIO(src), out, fetch=fetch)  # type: ignore[arg-type]
    assert (members, links) == (len(VOLUME), 2)
    assert fetch.calls == ["./home/.claude/tool"]  # type: ignore[attr-defined]  # once per target
    got = read_tgz(out.getvalue())
    # the hard links come last (their content is fetched after the stream)
    expected = [n.rstrip("/") or "." for n, kind, *_ in VOLUME if kind != "hard"]
    expected += [n for n, kind, *_ in VOLUME if kind == "hard"]
    assert list(got) == expected
    for name, kind, payload, mode in VOLUME:
        info, data = got[name.rstrip("/") or "."]
        assert info.mode == mode, name
        assert info.mtime == MTIME, name
        assert (info.uid, info.gid) == (1234, 2345), name
        if kind == "file":
            assert info.isreg() and data == payload
        elif kind == "hard":
            assert info.isreg() and not info.islnk() and data == tool
        elif kind == "sym":
            assert info.issym() and info.linkname == payload
        elif kind == "dir":
            assert info.isdir()
    # every member passes cai's own import checks (no hard links left)
    from containai.domain.archive_rules import check_members

    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        check_members([member_of(i) for i in tar])


def test_repack_makes_names_relative_to_the_stream_root() -> None:
    # what `docker cp C:/mnt/agent-data -` (no trailing /.) would give
    src = tar_bytes(
        [
            ("agent-data/", "dir", b"", 0o755),
            ("agent-data/home/", "dir", b"", 0o755),
            ("agent-data/home/x", "file", b"x", 0o600),
        ]
    )
    out = io.BytesIO()
    repack(io.BytesIO(src), out, fetch=fetch_from({}))  # type: ignore[arg-type]
    assert list(read_tgz(out.getvalue())) == [".", "./home", "./home/x"]


def test_repack_refuses_a_member_outside_the_root() -> None:
    src = tar_bytes([("agent-data/", "dir", b"", 0o755), ("other/x", "file", b"x", 0o600)])
    with pytest.raises(Failed, match="outside the stream's root"):
        repack(io.BytesIO(src), io.BytesIO(), fetch=fetch_from({}))  # type: ignore[arg-type]


@pytest.mark.parametrize("cut", [3000, 1536, 1024, 100])
def test_repack_of_a_truncated_stream_fails(cut: int) -> None:
    src = tar_bytes(VOLUME)
    with pytest.raises((tarfile.TarError, Failed)):
        repack(io.BytesIO(src[:cut]), io.BytesIO(), fetch=fetch_from({}))  # type: ignore[arg-type]


def test_repack_of_a_stream_with_garbage_after_a_member_fails() -> None:
    one = tar_bytes([("./", "dir", b"", 0o755), ("./a", "file", b"a", 0o600)])
    # keep the two members (3 blocks: dir header, file header, data), then garbage
    with pytest.raises(tarfile.TarError, match="end-of-archive"):
        repack(io.BytesIO(one[:1536] + b"x" * 2048), io.BytesIO(), fetch=fetch_from({}))  # type: ignore[arg-type]


# ------------------------------------------------------------------- gzip
def test_threaded_gzip_round_trip_and_batching() -> None:
    raw = io.BytesIO()
    z = ThreadedGzip(raw, level=2)
    payload = [os.urandom(700) for _ in range(5000)] + [b"a" * (3 << 20)]
    for chunk in payload:
        z.write(chunk)
    z.finish()
    assert gzip.decompress(raw.getvalue()) == b"".join(payload)
    assert z.written == len(raw.getvalue())
    assert z.tell() == sum(map(len, payload))


def test_threaded_gzip_reports_a_write_error() -> None:
    class Broken(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: object) -> int:
            raise OSError(28, "No space left on device")

    z = ThreadedGzip(Broken(), level=1)  # type: ignore[arg-type]
    with pytest.raises(OSError, match="No space left"):
        for _ in range(200):
            z.write(os.urandom(1 << 16))
        z.finish()


# ----------------------------------------------------------- atomic write
def test_atomic_write_is_0600_and_complete(tmp_path: Path) -> None:
    target = tmp_path / "a.tgz"
    atomic_write(target, lambda f: f.write(b"data"))
    assert target.read_bytes() == b"data"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["a.tgz"]


@pytest.mark.parametrize("error", [OSError("disk"), KeyboardInterrupt()])
def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path, error: BaseException) -> None:
    target = tmp_path / "a.tgz"

    def write(f: object) -> None:
        f.write(b"half")  # type: ignore[attr-defined]
        raise error

    with pytest.raises(type(error)):
        atomic_write(target, write)
    assert os.listdir(tmp_path) == []


def test_atomic_write_keeps_an_existing_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "a.tgz"
    target.write_bytes(b"old")

    def write(f: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, write)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["a.tgz"]


# ------------------------------------------------------ against fake docker
FAKE_DOCKER = textwrap.dedent(
    """\
    #!{python}
    import os, sys, shutil, time
    args = sys.argv[1:]
    mode = os.environ.get("FAKE_MODE", "ok")
    log = os.environ.get("FAKE_LOG")
    if log:
        with open(log, "a") as f:
            f.write(" ".join(args) + "\\n")
    assert args[0] == "cp", args
    out = sys.stdout.buffer
    if args[1] == "-":  # copy in: capture stdin
        with open(os.environ["FAKE_OUT"], "wb") as f:
            shutil.copyfileobj(sys.stdin.buffer, f)
        if mode == "fail-in":
            sys.stderr.write("Error response from daemon: no space left on device\\n")
            sys.exit(1)
        sys.exit(0)
    src = args[1].split(":", 1)[1]
    if mode == "nosuch":
        sys.stderr.write("Error response from daemon: No such container: " + args[1] + "\\n")
        sys.exit(1)
    if src.endswith("/."):
        data = open(os.environ["FAKE_TAR"], "rb").read()
    else:
        data = open(os.environ["FAKE_TAR"] + "." + os.path.basename(src), "rb").read()
    if mode == "fail-mid":
        out.write(data[: len(data) // 2]); out.flush()
        sys.stderr.write("Error response from daemon: the volume went away\\n")
        sys.exit(1)
    if mode == "slow":
        for i in range(0, len(data), 512):
            out.write(data[i : i + 512]); out.flush(); time.sleep(0.01)
        sys.exit(0)
    out.write(data)
    """
)


@dataclass
class Fake:
    archive: DockerArchive
    env: dict[str, str]
    dir: Path

    def mode(self, mode: str) -> None:
        self.env["FAKE_MODE"] = mode


@pytest.fixture
def fake(tmp_path: Path) -> Fake:
    script = tmp_path / "docker"
    script.write_text(FAKE_DOCKER.format(python=sys.executable))
    script.chmod(0o755)
    data = tmp_path / "stream.tar"
    data.write_bytes(tar_bytes(VOLUME))
    # `docker cp C:/mnt/agent-data/home/.claude/tool -` for the hard links
    (tmp_path / "stream.tar.tool").write_bytes(
        tar_bytes([("tool", "file", b"#!/bin/sh\n" * 1000, 0o751)])
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "FAKE_TAR": str(data),
        "FAKE_OUT": str(tmp_path / "copied.tar"),
        "FAKE_LOG": str(tmp_path / "log"),
        "FAKE_MODE": "ok",
    }
    engine = DockerEngine(None, docker=str(script), env=env)
    out = tmp_path / "out"
    out.mkdir()
    fake = Fake(DockerArchive(engine), engine.env, tmp_path)
    return fake


def test_export_volume_writes_a_0600_gzip_archive(fake: Fake) -> None:
    target = fake.dir / "out" / "v.tgz"
    seen: list[int] = []
    stats = fake.archive.export_volume(
        "c1", "/mnt/agent-data", target, progress=lambda d, t: seen.append(d)
    )
    assert stats.members == len(VOLUME) and stats.hardlinks == 2
    assert stats.bytes_out == target.stat().st_size
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(fake.dir / "out") == ["v.tgz"]
    got = read_tgz(target.read_bytes())
    assert got["./home/.claude/again"][1] == b"#!/bin/sh\n" * 1000
    assert seen and seen[-1] == stats.bytes_in
    log = (fake.dir / "log").read_text().splitlines()
    assert log[0] == "cp c1:/mnt/agent-data/. -"
    assert log[1:] == ["cp c1:/mnt/agent-data/home/.claude/tool -"]


@pytest.mark.parametrize(
    ("mode", "error", "text"),
    [
        ("nosuch", NotFound, "No such container"),
        ("fail-mid", Failed, "the volume went away"),
    ],
)
def test_export_failure_leaves_no_file(
    fake: Fake, mode: str, error: type[Exception], text: str
) -> None:
    fake.mode(mode)
    target = fake.dir / "out" / "v.tgz"
    with pytest.raises(error, match=text):
        fake.archive.export_volume("c1", "/mnt/agent-data", target)
    assert os.listdir(fake.dir / "out") == []


def test_export_interrupted_leaves_no_file(fake: Fake) -> None:
    fake.mode("slow")
    target = fake.dir / "out" / "v.tgz"

    def progress(done: int, total: int | None) -> None:
        if done > 2048:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fake.archive.export_volume("c1", "/mnt/agent-data", target, progress=progress)
    assert os.listdir(fake.dir / "out") == []


def write_tgz(path: Path, entries: list[tuple[str, str, bytes | str, int]]) -> Path:
    path.write_bytes(gzip.compress(tar_bytes(entries)))
    return path


def test_read_members_lists_kinds(fake: Fake) -> None:
    archive = write_tgz(
        fake.dir / "a.tgz",
        [
            ("./", "dir", b"", 0o755),
            ("a", "file", b"1", 0o600),
            ("l", "sym", "a", 0o777),
            ("h", "hard", "a", 0o600),
            ("p", "fifo", b"", 0o600),
        ],
    )
    assert fake.archive.read_members(archive) == [
        Member(".", "dir"),
        Member("a", "file", size=1),  # sizes: the import's space check adds them up
        Member("l", "symlink", "a"),
        Member("h", "hardlink", "a"),
        Member("p", "fifo"),
    ]
    plain = fake.dir / "a.tar"
    plain.write_bytes(tar_bytes([("a", "file", b"1", 0o600)]))
    assert fake.archive.read_members(plain) == [Member("a", "file", size=1)]


def test_read_members_errors(fake: Fake) -> None:
    with pytest.raises(NotFound):
        fake.archive.read_members(fake.dir / "missing.tgz")
    junk = fake.dir / "junk.tgz"
    junk.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(Failed, match="not a tar archive"):
        fake.archive.read_members(junk)
    damaged = fake.dir / "damaged.tgz"
    damaged.write_bytes(gzip.compress(tar_bytes(VOLUME))[:-200])
    with pytest.raises(Failed, match="damaged"):
        fake.archive.read_members(damaged)


def test_copy_archive_in_stages_and_marks_completion(fake: Fake) -> None:
    entries = [
        ("./", "dir", b"", 0o711),
        ("./home/", "dir", b"", 0o755),
        ("./home/x", "file", b"x", 0o640),
        ("./home/l", "sym", "x", 0o777),
    ]
    archive = write_tgz(fake.dir / "a.tgz", entries)
    members = fake.archive.read_members(archive)
    fake.archive.copy_archive_in(
        "h1", "/mnt/agent-data", archive, members, staging=".s", marker=".s.done"
    )
    with tarfile.open(fake.env["FAKE_OUT"]) as tar:
        infos = tar.getmembers()
    names = [i.name for i in infos]
    assert names == [".s", ".s", ".s/home", ".s/home/x", ".s/home/l", ".s.done"]
    assert infos[1].mode == 0o711  # the archive's root attributes land on the staging dir
    assert infos[3].mode == 0o640 and (infos[3].uid, infos[3].gid) == (1234, 2345)
    assert infos[4].linkname == "x"
    assert (fake.dir / "log").read_text().splitlines() == ["cp - h1:/mnt/agent-data"]


def test_copy_archive_in_without_marker_when_the_archive_changed(fake: Fake) -> None:
    archive = write_tgz(fake.dir / "a.tgz", [("a", "file", b"1", 0o600)])
    members = fake.archive.read_members(archive)
    write_tgz(archive, [("a", "file", b"1", 0o600), ("b", "hard", "a", 0o600)])
    with pytest.raises(Failed, match="changed while it was imported"):
        fake.archive.copy_archive_in(
            "h1", "/mnt/agent-data", archive, members, staging=".s", marker=".s.done"
        )
    out = Path(fake.env["FAKE_OUT"])
    assert b".s.done" not in (out.read_bytes() if out.exists() else b"")


def test_copy_archive_in_reports_the_engine_error(fake: Fake) -> None:
    fake.mode("fail-in")
    archive = write_tgz(fake.dir / "a.tgz", [("a", "file", b"1", 0o600)])
    members = fake.archive.read_members(archive)
    with pytest.raises(Failed, match="no space left"):
        fake.archive.copy_archive_in(
            "h1", "/mnt/agent-data", archive, members, staging=".s", marker=".s.done"
        )


def test_copy_items_in_owns_everything_by_uid_gid(fake: Fake, tmp_path: Path) -> None:
    from containai.services.host_import import TarItem

    src = tmp_path / "f"
    src.write_bytes(b"content")
    items = [
        TarItem("home", "dir", 0o755, MTIME),
        TarItem("home/.f", "file", 0o600, MTIME, source=src),
        TarItem("home/.g", "file", 0o644, MTIME, data=b"filtered"),
        TarItem("home/.l", "symlink", 0o777, MTIME, linkname=".f"),
        TarItem("home/.gone", "file", 0o600, MTIME, source=tmp_path / "missing"),
    ]
    warnings = fake.archive.copy_items_in("c1", "/mnt/agent-data", items, uid=1001, gid=1002)
    assert len(warnings) == 1 and "missing" in warnings[0]
    with tarfile.open(fake.env["FAKE_OUT"]) as tar:
        infos = {i.name: i for i in tar.getmembers()}
        assert tar.extractfile(infos["home/.f"]).read() == b"content"  # type: ignore[union-attr]
        assert tar.extractfile(infos["home/.g"]).read() == b"filtered"  # type: ignore[union-attr]
    assert set(infos) == {"home", "home/.f", "home/.g", "home/.l"}
    assert all((i.uid, i.gid) == (1001, 1002) for i in infos.values())
    assert infos["home/.f"].mode == 0o600 and infos["home/.l"].linkname == ".f"


def test_gzip_level_is_fast_and_valid() -> None:
    from containai.adapters import archive

    assert 1 <= archive.GZIP_LEVEL <= 6
    assert zlib.decompress(zlib.compress(b"x", archive.GZIP_LEVEL)) == b"x"


# ------------------------------------------------ issue 13: leftovers of killed runs
def test_repack_leaves_an_import_staging_directory_out() -> None:
    src = tar_bytes(
        [
            ("agent-data/", "dir", b"", 0o755),
            ("agent-data/.containai-import-abc/", "dir", b"", 0o755),
            ("agent-data/.containai-import-abc/big", "file", b"x" * 5000, 0o600),
            ("agent-data/.containai-import-abc.done", "file", b"", 0o600),
            ("agent-data/home/", "dir", b"", 0o755),
            ("agent-data/home/.containai-import-kept", "file", b"y", 0o600),
        ]
    )
    out = io.BytesIO()
    count, _ = repack(io.BytesIO(src), out, fetch=fetch_from({}))  # type: ignore[arg-type]
    assert list(read_tgz(out.getvalue())) == [".", "./home", "./home/.containai-import-kept"]
    assert count == 3


HOLD_FLOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(60)
"""


def test_stale_export_temp_files_are_found_and_live_ones_are_not(tmp_path: Path) -> None:
    import subprocess
    import sys

    from containai.adapters.files import stale_temps

    old = time.time() - 3600
    dead = tmp_path / ".containai-export-v-1.tgz.abcd1234.tmp"
    live = tmp_path / ".containai-export-v-2.tgz.efgh5678.tmp"
    foreign = tmp_path / ".notes.txt.ijkl9012.tmp"
    young = tmp_path / ".containai-export-v-3.tgz.mnop3456.tmp"
    for path in (dead, live, young):
        path.write_bytes(b"\x1f\x8b" + b"\0" * 100)
    foreign.write_bytes(b"my notes")
    for path in (dead, live, foreign):
        os.utime(path, (old, old))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_FLOCK, str(live)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert stale_temps(tmp_path, magic=b"\x1f\x8b") == [dead]
        assert stale_temps(tmp_path, target="other.tgz", magic=b"\x1f\x8b") == []
    finally:
        holder.kill()
        holder.wait()
    assert stale_temps(tmp_path, magic=b"\x1f\x8b") == [dead, live]


def test_an_export_sweeps_the_temp_files_of_killed_exports_and_gc_finds_them(
    fake: Fake,
) -> None:
    journal = fake.dir / "journal"
    archive = DockerArchive(fake.archive.engine, journal=journal)
    out_dir = fake.dir / "out"
    old = time.time() - 3600
    # a killed export: its temp file and its journal record (a pid that is gone)
    stale = out_dir / ".containai-export-v-1.tgz.abcd1234.tmp"
    stale.write_bytes(b"\x1f\x8b\x08")
    os.utime(stale, (old, old))
    journal.mkdir()
    (journal / "1-dead").write_text(f"{out_dir / 'containai-export-v-1.tgz'}\nvm/999999999/1\n")
    assert archive.stale_exports() == [stale]
    assert archive.remove_files([stale]) == [stale]
    assert not stale.exists() and not (journal / "1-dead").exists()

    # the next export to that directory removes a killed one's temp file by itself
    stale.write_bytes(b"\x1f\x8b\x08")
    os.utime(stale, (old, old))
    archive.export_volume("c1", "/mnt/agent-data", out_dir / "v.tgz")
    assert not stale.exists() and (out_dir / "v.tgz").is_file()
    assert list(journal.iterdir()) == []  # a finished export leaves no record
