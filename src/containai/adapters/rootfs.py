"""Offline base image: bootstrap a minimal Debian root file system and import it.

Used when the configured base image (``image.base``) is neither present in the
engine nor pullable (an air-gapped machine, SPEC section 8). ``debootstrap``
fetches packages from the package mirror the machine's own apt configuration
names, so no registry and no hard-coded mirror host are involved.

stdlib only; every external program is called with an argv list, never a shell.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from containai.domain.errors import Failed

__all__ = [
    "apt_mirror",
    "bootstrap_base_image",
    "debootstrap_available",
]

#: Environment PATH of the imported image (the one Debian's official images use).
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Suites of one Debian release that are not the release itself.
_SECONDARY_SUFFIXES = ("-security", "-updates", "-backports", "-proposed-updates")

#: Suite names debootstrap knows as Debian releases (used only as a fallback
#: when no entry names the requested suite exactly).
_DEBIAN_SUITES = frozenset(
    {
        "buster",
        "bullseye",
        "bookworm",
        "trixie",
        "forky",
        "sid",
        "oldoldstable",
        "oldstable",
        "stable",
        "testing",
        "unstable",
    }
)

#: URI schemes debootstrap can fetch from.
_FETCHABLE = ("http://", "https://", "ftp://", "file:/")

#: debootstrap's per-package progress lines ("I: Extracting bash...", "I: Retrieving
#: libc6 2.36-9") are too many to show; stage lines ("I: Retrieving InRelease",
#: "I: Unpacking the base system...") pass through.
_PER_PACKAGE = re.compile(
    r"^I: (Retrieving|Validating|Extracting|Unpacking|Configuring) "
    r"[a-z0-9][a-z0-9.+:-]*(\.\.\.| \S+)$"
)

#: Keeps the image lean, like Debian's official slim images: no manuals, no docs
#: (copyright files stay), no translations.
_DPKG_EXCLUDES = """\
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
_APT_CONF = f"""\
// containai: no recommends, no cached .deb files in image layers
APT::Install-Recommends "false";
APT::Install-Suggests "false";
DPkg::Post-Invoke {{ {_APT_CLEAN}; }};
APT::Update::Post-Invoke {{ {_APT_CLEAN}; }};
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
"""


@dataclass(frozen=True)
class _Source:
    """One ``deb`` entry of the apt configuration (one URI, its suites, components)."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


# --------------------------------------------------------------------------- #
# apt configuration
# --------------------------------------------------------------------------- #


def _source_files(sources_dir: Path) -> Iterator[Path]:
    """The files apt itself reads, in apt's order (disabled/other suffixes skipped)."""
    main = sources_dir / "sources.list"
    if main.is_file():
        yield main
    parts = sources_dir / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.is_file() and path.suffix in (".list", ".sources"):
                yield path


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _one_line_sources(text: str) -> Iterator[_Source]:
    """``deb [opt=val ...] URI suite [component ...]`` lines (``deb-src`` skipped)."""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        # Options in brackets may contain spaces: remove them before splitting.
        line = re.sub(r"\[[^\]]*\]", " ", line)
        fields = line.split()
        if len(fields) < 3 or fields[0] != "deb":
            continue
        yield _Source(fields[1], (fields[2],), tuple(fields[3:]))


def _deb822_stanzas(text: str) -> Iterator[dict[str, str]]:
    """Paragraphs of a deb822 file as ``{lowercased field: value}`` (comments dropped)."""
    stanza: dict[str, str] = {}
    last: str | None = None
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if stanza:
                yield stanza
            stanza, last = {}, None
            continue
        if raw[0] in " \t":
            if last is not None:  # continuation line (e.g. an inline Signed-By key)
                stanza[last] += "\n" + raw.strip()
            continue
        key, sep, value = raw.partition(":")
        if not sep:
            continue
        last = key.strip().lower()
        stanza[last] = value.strip()
    if stanza:
        yield stanza


def _deb822_sources(text: str) -> Iterator[_Source]:
    for stanza in _deb822_stanzas(text):
        if stanza.get("enabled", "yes").strip().lower() in ("no", "false", "0"):
            continue
        if "deb" not in stanza.get("types", "").split():
            continue
        suites = tuple(stanza.get("suites", "").split())
        components = tuple(stanza.get("components", "").split())
        for uri in stanza.get("uris", "").split():
            yield _Source(uri, suites, components)


def _sources(sources_dir: Path) -> list[_Source]:
    found: list[_Source] = []
    for path in _source_files(sources_dir):
        text = _read(path)
        parse = _deb822_sources if path.suffix == ".sources" else _one_line_sources
        found.extend(parse(text))
    return [s for s in found if s.uri.startswith(_FETCHABLE)]


def _is_secondary(suite: str) -> bool:
    return suite.endswith(_SECONDARY_SUFFIXES)


def _clean_uri(uri: str) -> str:
    return uri.rstrip("/") if uri.count("/") > 2 else uri


def apt_mirror(sources_dir: Path = Path("/etc/apt"), *, suite: str = "bookworm") -> str | None:
    """The first Debian ``main`` mirror the machine's apt configuration names.

    Reads ``sources.list`` (one-line format) and ``sources.list.d/*.list`` and
    ``*.sources`` (deb822), in apt's order, skipping ``deb-src``, stanzas with
    ``Enabled: no`` and files apt would ignore (e.g. ``*.disabled``). An entry
    for ``suite`` itself wins; failing that, the first entry of another Debian
    release that is not a security/updates/backports suite. ``None`` when the
    configuration names no usable mirror.
    """
    sources = [s for s in _sources(sources_dir) if "main" in s.components]
    for source in sources:
        if suite in source.suites:
            return _clean_uri(source.uri)
    for source in sources:
        if "security" in source.uri:
            continue
        if any(s in _DEBIAN_SUITES and not _is_secondary(s) for s in source.suites):
            return _clean_uri(source.uri)
    return None


def _image_sources_list(sources_dir: Path, suite: str, mirror: str) -> str:
    """``sources.list`` for the image: the host's own entries for this release.

    ``suite`` from ``mirror``, plus ``suite-updates`` and ``suite-security``
    from whichever URIs the host uses for them (only when it has them), so
    packages installed in templates get security fixes exactly as on the host.
    """
    lines = [f"deb {mirror} {suite} main"]
    for extra in (f"{suite}-updates", f"{suite}-security"):
        for source in _sources(sources_dir):
            if extra in source.suites and "main" in source.components:
                lines.append(f"deb {_clean_uri(source.uri)} {extra} main")
                break
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- #
# bootstrap
# --------------------------------------------------------------------------- #


def debootstrap_available() -> bool:
    """True when the offline bootstrap can run here: root and ``debootstrap`` on PATH."""
    return hasattr(os, "geteuid") and os.geteuid() == 0 and _which("debootstrap") is not None


def _which(name: str) -> str | None:
    found = shutil.which(name)
    if found is None:
        # root's tools live in sbin, which a user's PATH may lack.
        found = shutil.which(name, path="/usr/local/sbin:/usr/sbin:/sbin")
    return found


def _tail(path: Path, lines: int = 5) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            last = deque((ln.rstrip() for ln in fh if ln.strip()), maxlen=lines)
    except OSError:
        return ""
    return " | ".join(last)


def _mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root`` (deepest first), from /proc/self/mountinfo."""
    prefix = str(root).rstrip("/")
    points: list[str] = []
    try:
        text = Path("/proc/self/mountinfo").read_text(encoding="utf-8")
    except OSError:
        return points
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 4:
            point = fields[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def _remove_tree(root: Path) -> None:
    """Remove the bootstrap directory, after unmounting anything a failed run left.

    Never removes while something is still mounted below it: a bind-mounted
    ``/dev`` or ``/proc`` inside would otherwise be emptied on the host.
    """
    if not root.exists():
        return
    for point in _mounts_under(root):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    left = _mounts_under(root)
    if left:
        raise Failed(
            f"bootstrap directory {root} still has mounts ({left[0]}); unmount and remove it"
        )
    shutil.rmtree(root, ignore_errors=True)


def _run_debootstrap(argv: Sequence[str], out_path: Path, log: Callable[[str], None] | None) -> int:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C")
    with out_path.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
            errors="replace",
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            text = line.rstrip()
            if log is not None and text and not _PER_PACKAGE.match(text):
                log(text)
        return proc.wait()


def _configure_rootfs(target: Path, sources_list: str) -> None:
    """Small, image-friendly defaults inside the new root file system."""
    (target / "etc/apt/sources.list").write_text(sources_list, encoding="utf-8")
    dpkg_d = target / "etc/dpkg/dpkg.cfg.d"
    dpkg_d.mkdir(parents=True, exist_ok=True)
    (dpkg_d / "containai-excludes").write_text(_DPKG_EXCLUDES, encoding="utf-8")
    apt_d = target / "etc/apt/apt.conf.d"
    apt_d.mkdir(parents=True, exist_ok=True)
    (apt_d / "90containai").write_text(_APT_CONF, encoding="utf-8")
    # Host-specific or cache files that must not be baked into an image.
    for rel in ("etc/hostname", "etc/resolv.conf"):
        path = target / rel
        if path.is_file() or path.is_symlink():
            path.unlink()
            path.touch()
    for rel in ("var/cache/apt/archives", "var/lib/apt/lists", "var/log/apt"):
        directory = target / rel
        if directory.is_dir():
            for entry in directory.iterdir():
                if entry.is_file() or entry.is_symlink():
                    entry.unlink()
    _prune_docs(target)
    machine_id = target / "etc/machine-id"
    if machine_id.exists():
        machine_id.write_text("", encoding="utf-8")
    debootstrap_dir = target / "debootstrap"
    if debootstrap_dir.is_dir():
        shutil.rmtree(debootstrap_dir, ignore_errors=True)


def _prune_docs(target: Path) -> None:
    """Drop what ``_DPKG_EXCLUDES`` keeps out of later installs from the bootstrap too."""
    for rel in ("usr/share/man", "usr/share/info", "usr/share/groff", "usr/share/lintian"):
        directory = target / rel
        if directory.is_dir():
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir()
    docs = target / "usr/share/doc"
    if docs.is_dir():
        for package in docs.iterdir():
            if package.is_dir() and not package.is_symlink():
                for entry in package.iterdir():
                    if entry.name == "copyright":
                        continue
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink()
    locale = target / "usr/share/locale"
    if locale.is_dir():
        for entry in locale.iterdir():
            if entry.name == "locale.alias":
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink()


def _import(docker: Sequence[str], tag: str, target: Path, suite: str) -> None:
    changes: list[str] = []
    for change in (
        f"ENV PATH={IMAGE_PATH}",
        "ENV LANG=C.UTF-8",
        f"LABEL ai.containai.base=debootstrap-{suite}-minbase",
        'CMD ["/bin/bash"]',
    ):
        changes += ["--change", change]
    tar_argv = [
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
    import_argv = [*docker, "import", *changes, "-", tag]
    with tempfile.TemporaryFile() as tar_err, tempfile.TemporaryFile() as imp_err:
        tar = subprocess.Popen(tar_argv, stdout=subprocess.PIPE, stderr=tar_err)
        assert tar.stdout is not None
        try:
            imp = subprocess.run(
                import_argv,
                stdin=tar.stdout,
                stdout=subprocess.DEVNULL,
                stderr=imp_err,
                check=False,
            )
        except OSError as exc:
            tar.kill()
            tar.wait()
            raise Failed(f"cannot run {docker[0]!r} to import the base image: {exc}") from exc
        finally:
            tar.stdout.close()
        tar_rc = tar.wait()
        if imp.returncode != 0:
            imp_err.seek(0)
            msg = _last_line(imp_err.read())
            raise Failed(f"docker import of {tag} failed: {msg or f'exit {imp.returncode}'}")
        if tar_rc != 0:
            tar_err.seek(0)
            msg = _last_line(tar_err.read())
            raise Failed(
                f"tar of the bootstrapped root file system failed: {msg or f'exit {tar_rc}'}"
            )


def _last_line(data: bytes) -> str:
    lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def bootstrap_base_image(
    docker: Sequence[str],
    tag: str,
    *,
    suite: str = "bookworm",
    mirror: str | None = None,
    workdir: Path | None = None,
    log: Callable[[str], None] | None = None,
    sources_dir: Path = Path("/etc/apt"),
    include: Iterable[str] = ("ca-certificates",),
) -> None:
    """Bootstrap a minimal Debian ``suite`` and import it into the engine as ``tag``.

    ``docker`` is the argv prefix for the docker CLI (e.g. ``["docker",
    "--context", "default"]``). ``mirror`` defaults to :func:`apt_mirror`.
    The root file system is built in a temporary directory under ``workdir``
    (default ``/var/tmp``: it needs device nodes and exec, which a ``/tmp``
    tmpfs may forbid) and removed afterwards, also on failure.

    Raises :class:`Failed` naming the step that failed (with the tail of
    debootstrap's output).
    """
    say = log if log is not None else (lambda _msg: None)
    if not docker:
        raise Failed("no docker command given for the base image import")
    if not debootstrap_available():
        raise Failed("offline base image needs root and debootstrap (apt-get install debootstrap)")
    debootstrap = _which("debootstrap")
    assert debootstrap is not None
    if mirror is None:
        mirror = apt_mirror(sources_dir, suite=suite)
        if mirror is None:
            raise Failed(
                f"no Debian mirror for {suite!r} in {sources_dir}/sources.list(.d); "
                "configure apt or set the mirror explicitly"
            )
    mirror = _clean_uri(mirror)
    base = workdir if workdir is not None else Path("/var/tmp")
    try:
        base.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="containai-rootfs-", dir=base))
    except OSError as exc:
        raise Failed(f"cannot create a bootstrap directory under {base}: {exc}") from exc
    target = tmp / "rootfs"
    out_path = tmp / "debootstrap.out"
    started = time.monotonic()
    try:
        argv = [debootstrap, "--variant=minbase"]
        packages = ",".join(include)
        if packages:
            argv.append(f"--include={packages}")
        argv += [suite, str(target), mirror]
        say(f"debootstrap {suite} (minbase) from {mirror}")
        try:
            rc = _run_debootstrap(argv, out_path, log)
        except OSError as exc:
            raise Failed(f"cannot run debootstrap: {exc}") from exc
        if rc != 0:
            detail = " | ".join(
                part
                for part in (
                    _tail(out_path, 2),
                    _tail(target / "debootstrap" / "debootstrap.log", 3),
                )
                if part
            )
            raise Failed(f"debootstrap {suite} from {mirror} failed (exit {rc}): {detail}")
        try:
            _configure_rootfs(target, _image_sources_list(sources_dir, suite, mirror))
        except OSError as exc:
            raise Failed(f"cannot finish the bootstrapped root file system: {exc}") from exc
        say(f"importing as {tag}")
        _import(docker, tag, target, suite)
        say(f"base image {tag} ready in {time.monotonic() - started:.0f}s")
    finally:
        _remove_tree(tmp)
