"""adapters/rootfs/: the offline base image. The apt configuration as apt reads it,
the plan as data, and the whole bootstrap run against stand-in ``debootstrap`` and
``docker`` executables (real processes, real ``tar``; no engine, no network)."""

from __future__ import annotations

import json
import os
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from containai.adapters import rootfs
from containai.adapters.rootfs import apt_sources, bootstrap, plan
from containai.domain.errors import Failed

MIRROR = "http://deb.example.org/debian"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# -- apt configuration -----------------------------------------------------------------


def test_one_line_sources_skip_deb_src_comments_and_options() -> None:
    text = """\
    # a comment
    deb-src http://src.example.org/debian bookworm main
    deb [arch=amd64 signed-by=/k.gpg] http://a.example.org/debian bookworm main contrib
    deb http://b.example.org/debian bookworm-updates main # trailing comment
    deb http://broken.example.org
    """
    found = list(apt_sources.one_line_sources(textwrap.dedent(text)))
    assert found == [
        apt_sources.Source("http://a.example.org/debian", ("bookworm",), ("main", "contrib")),
        apt_sources.Source("http://b.example.org/debian", ("bookworm-updates",), ("main",)),
    ]


def test_deb822_sources_one_per_uri_and_disabled_stanzas_skipped() -> None:
    text = """\
    # header comment
    Types: deb deb-src
    URIs: http://a.example.org/debian http://b.example.org/debian
    Suites: bookworm bookworm-updates
    Components: main
    Signed-By:
     -----BEGIN PGP PUBLIC KEY BLOCK-----
     .
     -----END PGP PUBLIC KEY BLOCK-----

    Types: deb
    URIs: http://off.example.org/debian
    Suites: bookworm
    Components: main
    Enabled: no

    Types: deb-src
    URIs: http://src.example.org/debian
    Suites: bookworm
    Components: main
    """
    found = list(apt_sources.deb822_sources(textwrap.dedent(text)))
    suites = ("bookworm", "bookworm-updates")
    assert found == [
        apt_sources.Source("http://a.example.org/debian", suites, ("main",)),
        apt_sources.Source("http://b.example.org/debian", suites, ("main",)),
    ]


def test_apt_mirror_reads_files_in_apts_order_and_ignores_what_apt_ignores(
    tmp_path: Path,
) -> None:
    write(tmp_path / "sources.list", "deb cdrom:[Debian]/ bookworm main\n")  # not fetchable
    write(tmp_path / "sources.list.d/a.list.disabled", f"deb {MIRROR}-disabled bookworm main\n")
    write(
        tmp_path / "sources.list.d/b.sources",
        f"Types: deb\nURIs: {MIRROR}/\nSuites: bookworm\nComponents: main\n",
    )
    write(tmp_path / "sources.list.d/c.list", "deb http://late.example.org/debian bookworm main\n")
    assert rootfs.apt_mirror(tmp_path) == MIRROR  # trailing slash dropped


def test_apt_mirror_prefers_the_suite_then_another_release_never_security(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "sources.list",
        """\
        deb http://security.example.org/debian-security trixie-security main
        deb http://updates.example.org/debian trixie-updates main
        deb http://contrib.example.org/debian trixie contrib
        deb http://release.example.org/debian trixie main
        deb http://exact.example.org/debian bookworm main
        """,
    )
    assert rootfs.apt_mirror(tmp_path, suite="bookworm") == "http://exact.example.org/debian"
    assert rootfs.apt_mirror(tmp_path, suite="forky") == "http://release.example.org/debian"


def test_apt_mirror_none_without_a_usable_entry(tmp_path: Path) -> None:
    assert rootfs.apt_mirror(tmp_path) is None  # no files at all
    write(tmp_path / "sources.list", "deb http://x.example.org/ubuntu jammy main\n")
    assert rootfs.apt_mirror(tmp_path) is None  # not a Debian release


def test_clean_uri_keeps_a_bare_scheme() -> None:
    assert apt_sources.clean_uri("http://m.example.org/debian///") == "http://m.example.org/debian"
    assert apt_sources.clean_uri("file:/") == "file:/"


def test_image_sources_list_takes_the_hosts_updates_and_security_entries(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "sources.list",
        f"""\
        deb {MIRROR} bookworm main
        deb http://sec.example.org/debian-security/ bookworm-security main
        deb http://other.example.org/debian bookworm-updates contrib
        """,
    )
    text = apt_sources.image_sources_list(tmp_path, "bookworm", MIRROR)
    assert text == (
        f"deb {MIRROR} bookworm main\n"
        "deb http://sec.example.org/debian-security bookworm-security main\n"
    )


# -- the plan ---------------------------------------------------------------------------


def test_debootstrap_argv() -> None:
    target = Path("/var/tmp/x/rootfs")
    assert plan.debootstrap_argv("/usr/sbin/debootstrap", "bookworm", target, MIRROR, ()) == [
        "/usr/sbin/debootstrap",
        "--variant=minbase",
        "bookworm",
        str(target),
        MIRROR,
    ]
    with_packages = plan.debootstrap_argv("d", "trixie", target, MIRROR, ["a", "b"])
    assert with_packages[:3] == ["d", "--variant=minbase", "--include=a,b"]


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("I: Retrieving InRelease", True),
        ("I: Unpacking the base system...", True),
        ("I: Base system installed successfully.", True),
        ("I: Retrieving libc6 2.36-9", False),
        ("I: Extracting bash...", False),
        ("I: Configuring ca-certificates...", False),
        ("", False),
    ],
)
def test_only_stage_lines_of_debootstrap_are_shown(line: str, shown: bool) -> None:
    assert plan.shows(line) is shown


def test_tar_and_import_argv() -> None:
    tar = plan.tar_argv(Path("/r"))
    assert tar[:5] == ["tar", "--numeric-owner", "--xattrs", "-C", "/r"]
    assert {"--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*"} <= set(tar)
    argv = plan.import_argv(["docker", "--context", "c"], "base:1", "bookworm")
    assert argv[:4] == ["docker", "--context", "c", "import"]
    assert argv[-2:] == ["-", "base:1"]
    changes = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--change"]
    assert changes == [
        f"ENV PATH={plan.IMAGE_PATH}",
        "ENV LANG=C.UTF-8",
        "LABEL ai.containai.base=debootstrap-bookworm-minbase",
        'CMD ["/bin/bash"]',
    ]


# -- running it -------------------------------------------------------------------------


def fake_tree(target: Path) -> None:
    """What a debootstrap run leaves, in miniature."""
    for rel, data in {
        "etc/apt/sources.list": "deb http://builder.example.org/debian bookworm main\n",
        "etc/hostname": "builder\n",
        "etc/machine-id": "0123456789abcdef\n",
        "usr/share/doc/bash/copyright": "GPL\n",
        "usr/share/doc/bash/changelog.gz": "x",
        "usr/share/doc/bash/examples/e": "x",
        "usr/share/man/man1/bash.1": "x",
        "usr/share/locale/locale.alias": "x",
        "usr/share/locale/de/LC_MESSAGES/bash.mo": "x",
        "var/cache/apt/archives/bash.deb": "x",
        "var/lib/apt/lists/x_Packages": "x",
        "debootstrap/debootstrap.log": "log\n",
        "bin/sh": "#!\n",
    }.items():
        write(target / rel, data)
    (target / "etc/resolv.conf").symlink_to("/run/systemd/resolve/stub-resolv.conf")


def test_configure_rootfs_leaves_a_slim_image_friendly_tree(tmp_path: Path) -> None:
    target = tmp_path / "rootfs"
    fake_tree(target)
    bootstrap.configure_rootfs(target, "deb http://m.example.org/debian bookworm main\n")
    assert (target / "etc/apt/sources.list").read_text().startswith("deb http://m.example.org")
    assert (target / "etc/dpkg/dpkg.cfg.d/containai-excludes").read_text() == plan.DPKG_EXCLUDES
    assert (target / "etc/apt/apt.conf.d/90containai").read_text() == plan.APT_CONF
    for rel in ("etc/hostname", "etc/resolv.conf", "etc/machine-id"):
        path = target / rel
        assert path.is_file() and not path.is_symlink() and path.read_text() == ""
    assert not (target / "debootstrap").exists()
    assert list((target / "var/cache/apt/archives").iterdir()) == []
    assert list((target / "var/lib/apt/lists").iterdir()) == []
    assert list((target / "usr/share/man").iterdir()) == []
    assert sorted(p.name for p in (target / "usr/share/doc/bash").iterdir()) == ["copyright"]
    assert [p.name for p in (target / "usr/share/locale").iterdir()] == ["locale.alias"]
    assert (target / "bin/sh").read_text() == "#!\n"


def test_mounts_under_reads_mountinfo_deepest_first(tmp_path: Path) -> None:
    info = write(
        tmp_path / "mountinfo",
        """\
        22 1 8:1 / / rw - ext4 /dev/sda1 rw
        30 22 0:5 / /var/tmp/r rw - tmpfs tmpfs rw
        31 30 0:6 / /var/tmp/r/rootfs/proc rw - proc proc rw
        32 30 0:7 / /var/tmp/r/rootfs/dev\\040x rw - devtmpfs udev rw
        33 22 0:8 / /var/tmp/rr rw - tmpfs tmpfs rw
        """,
    )
    assert bootstrap.mounts_under(Path("/var/tmp/r/"), info) == [
        "/var/tmp/r/rootfs/dev x",
        "/var/tmp/r/rootfs/proc",
        "/var/tmp/r",
    ]
    assert bootstrap.mounts_under(Path("/elsewhere"), info) == []
    assert bootstrap.mounts_under(Path("/var/tmp/r"), tmp_path / "missing") == []


FAKE_DEBOOTSTRAP = """\
#!{python}
import json, os, sys
target = sys.argv[-2]
with open(os.environ["FAKE_LOG"], "w") as fh:
    json.dump(sys.argv[1:], fh)
print("I: Retrieving InRelease")
print("I: Retrieving libc6 2.36-9")
print("I: Extracting bash...")
os.makedirs(os.path.join(target, "debootstrap"))
if os.environ.get("FAKE_FAIL"):
    with open(os.path.join(target, "debootstrap", "debootstrap.log"), "w") as fh:
        fh.write("gpgv: Signature made\\nE: Couldn't download dists/bookworm/Release\\n")
    print("E: Failed getting release file")
    sys.exit(1)
for rel in ("etc/apt", "etc/dpkg", "bin"):
    os.makedirs(os.path.join(target, rel), exist_ok=True)
with open(os.path.join(target, "etc/hostname"), "w") as fh:
    fh.write("builder\\n")
with open(os.path.join(target, "bin/sh"), "w") as fh:
    fh.write("#!\\n")
print("I: Base system installed successfully.")
"""

FAKE_DOCKER = """\
import json, sys
out = sys.argv[1]
with open(out + "/argv.json", "w") as fh:
    json.dump(sys.argv[2:], fh)
data = sys.stdin.buffer.read()
with open(out + "/image.tar", "wb") as fh:
    fh.write(data)
sys.exit(3 if "fail:tag" in sys.argv else 0)
"""


@pytest.fixture
def stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A ``debootstrap`` on PATH and a ``docker`` argv prefix, both real executables; cai
    taken for root (``debootstrap_available``) without being it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "debootstrap"
    script.write_text(FAKE_DEBOOTSTRAP.format(python=sys.executable))
    script.chmod(0o755)
    docker = tmp_path / "docker.py"
    docker.write_text(FAKE_DOCKER)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "debootstrap-argv.json"))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    sources = write(tmp_path / "apt/sources.list", f"deb {MIRROR} bookworm main\n").parent
    work = tmp_path / "work"
    return {"docker": docker, "out": out, "sources": sources, "work": work, "root": tmp_path}


def test_bootstrap_runs_debootstrap_trims_imports_and_cleans_up(
    stand_ins: dict[str, Path],
) -> None:
    lines: list[str] = []
    docker = [sys.executable, str(stand_ins["docker"]), str(stand_ins["out"])]
    rootfs.bootstrap_base_image(
        docker,
        "cai-base:test",
        log=lines.append,
        sources_dir=stand_ins["sources"],
        workdir=stand_ins["work"],
    )
    argv = json.loads((stand_ins["root"] / "debootstrap-argv.json").read_text())
    assert argv[:2] == ["--variant=minbase", "--include=ca-certificates"]
    assert argv[2] == "bookworm" and argv[-1] == MIRROR
    assert Path(argv[3]).name == "rootfs" and Path(argv[3]).parent.parent == stand_ins["work"]
    assert lines[0] == f"debootstrap bookworm (minbase) from {MIRROR}"
    assert "I: Retrieving InRelease" in lines and "I: Extracting bash..." not in lines
    assert lines[-2] == "importing as cai-base:test" and lines[-1].startswith("base image")
    docker_argv = json.loads((stand_ins["out"] / "argv.json").read_text())
    assert docker_argv[0] == "import" and docker_argv[-2:] == ["-", "cai-base:test"]
    with tarfile.open(stand_ins["out"] / "image.tar") as tar:
        names = set(tar.getnames())
        hostname = tar.extractfile("./etc/hostname")
        assert hostname is not None and hostname.read() == b""
    assert {"./bin/sh", "./etc/apt/sources.list", "./etc/apt/apt.conf.d/90containai"} <= names
    assert not any(name.startswith("./debootstrap") for name in names)
    assert list(stand_ins["work"].iterdir()) == []  # the temporary directory is gone


def test_a_failed_debootstrap_names_its_output_and_log_and_cleans_up(
    stand_ins: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_FAIL", "1")
    docker = [sys.executable, str(stand_ins["docker"]), str(stand_ins["out"])]
    with pytest.raises(Failed) as caught:
        rootfs.bootstrap_base_image(
            docker, "t", sources_dir=stand_ins["sources"], workdir=stand_ins["work"]
        )
    message = str(caught.value)
    assert message.startswith(f"debootstrap bookworm from {MIRROR} failed (exit 1): ")
    assert "E: Failed getting release file" in message
    assert "E: Couldn't download dists/bookworm/Release" in message
    assert not (stand_ins["out"] / "argv.json").exists()  # nothing imported
    assert list(stand_ins["work"].iterdir()) == []


def test_a_failed_import_names_docker_import(stand_ins: dict[str, Path]) -> None:
    docker = [sys.executable, str(stand_ins["docker"]), str(stand_ins["out"])]
    with pytest.raises(Failed, match=r"docker import of fail:tag failed: exit 3"):
        rootfs.bootstrap_base_image(
            docker, "fail:tag", sources_dir=stand_ins["sources"], workdir=stand_ins["work"]
        )
    assert list(stand_ins["work"].iterdir()) == []


def test_bootstrap_refuses_what_it_cannot_do(stand_ins: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(Failed, match="no docker command"):
        rootfs.bootstrap_base_image([], "t")
    with pytest.raises(Failed, match="no Debian mirror for 'bookworm'"):
        rootfs.bootstrap_base_image(["docker"], "t", sources_dir=tmp_path / "no-apt")


def test_debootstrap_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert rootfs.debootstrap_available() is False
    with pytest.raises(Failed, match="needs root and debootstrap"):
        rootfs.bootstrap_base_image(["docker"], "t")
