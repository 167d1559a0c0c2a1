"""What the offline bootstrap runs and writes, as data (no I/O): the debootstrap
argv, which of its output lines to show, the files that keep the image slim like
Debian's ``-slim`` images, and the ``tar | docker import`` argv with the image's
metadata. ``bootstrap.py`` carries it out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

#: Environment PATH of the imported image (the one Debian's official images use).
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: debootstrap's per-package progress lines ("I: Extracting bash...", "I: Retrieving
#: libc6 2.36-9") are too many to show; stage lines ("I: Retrieving InRelease",
#: "I: Unpacking the base system...") pass through.
_PER_PACKAGE = re.compile(
    r"^I: (Retrieving|Validating|Extracting|Unpacking|Configuring) "
    r"[a-z0-9][a-z0-9.+:-]*(\.\.\.| \S+)$"
)

#: Keeps the image lean, like Debian's official slim images: no manuals, no docs
#: (copyright files stay), no translations.
DPKG_EXCLUDES = """\
# containai: keep the image small (same idea as Debian's -slim images)
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
"""

_APT_CLEAN = (
    '"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb'
    ' /var/cache/apt/*.bin || true"'
)
APT_CONF = f"""\
// containai: no recommends, no cached .deb files in image layers
APT::Install-Recommends "false";
APT::Install-Suggests "false";
DPkg::Post-Invoke {{ {_APT_CLEAN}; }};
APT::Update::Post-Invoke {{ {_APT_CLEAN}; }};
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
"""

#: Host-specific files emptied in the image (kept as empty files).
EMPTIED = ("etc/hostname", "etc/resolv.conf")
#: Cache directories whose files are dropped from the image.
CACHES = ("var/cache/apt/archives", "var/lib/apt/lists", "var/log/apt")
#: Directories emptied like ``DPKG_EXCLUDES`` keeps them empty in later installs.
PRUNED = ("usr/share/man", "usr/share/info", "usr/share/groff", "usr/share/lintian")


def debootstrap_argv(
    debootstrap: str, suite: str, target: Path, mirror: str, include: Iterable[str]
) -> list[str]:
    """``debootstrap --variant=minbase [--include=a,b] SUITE TARGET MIRROR``."""
    argv = [debootstrap, "--variant=minbase"]
    packages = ",".join(include)
    if packages:
        argv.append(f"--include={packages}")
    return [*argv, suite, str(target), mirror]


def shows(line: str) -> bool:
    """Whether a line of debootstrap's output is worth showing (not per package)."""
    return bool(line) and not _PER_PACKAGE.match(line)


def tar_argv(target: Path) -> list[str]:
    """``tar`` of the root file system at ``target`` to stdout, owners as numbers."""
    return [
        "tar",
        "--numeric-owner",
        "--xattrs",
        "-C",
        str(target),
        # /dev, /proc, /sys are provided by the container runtime.
        "--exclude=./dev/*",
        "--exclude=./proc/*",
        "--exclude=./sys/*",
        "-cf",
        "-",
        ".",
    ]


def import_argv(docker: Sequence[str], tag: str, suite: str) -> list[str]:
    """``docker import`` of a tar on stdin as ``tag``, with the image's metadata."""
    changes: list[str] = []
    for change in (
        f"ENV PATH={IMAGE_PATH}",
        "ENV LANG=C.UTF-8",
        f"LABEL ai.containai.base=debootstrap-{suite}-minbase",
        'CMD ["/bin/bash"]',
    ):
        changes += ["--change", change]
    return [*docker, "import", *changes, "-", tag]
