"""Running the offline bootstrap: ``debootstrap`` into a temporary directory, the
slim defaults written into the new root file system, ``tar | docker import``, and
the temporary directory removed afterwards (never across a mount), also on failure.

stdlib only; every external program is called with an argv list, never a shell.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from containai.adapters.rootfs import plan
from containai.adapters.rootfs.apt_sources import apt_mirror, clean_uri, image_sources_list
from containai.domain.errors import Failed


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
    """The last ``lines`` non-blank lines of ``path``, joined by `` | ``; ``""`` if unreadable."""
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            last = deque((ln.rstrip() for ln in fh if ln.strip()), maxlen=lines)
    except OSError:
        return ""
    return " | ".join(last)


def mounts_under(root: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> list[str]:
    """Mount points at or below ``root`` (deepest first), from ``mountinfo``."""
    prefix = str(root).rstrip("/")
    points: list[str] = []
    try:
        text = mountinfo.read_text(encoding="utf-8")
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
    for point in mounts_under(root):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    left = mounts_under(root)
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
            if log is not None and plan.shows(text):
                log(text)
        return proc.wait()


def configure_rootfs(target: Path, sources_list: str) -> None:
    """Small, image-friendly defaults inside the new root file system."""
    (target / "etc/apt/sources.list").write_text(sources_list, encoding="utf-8")
    dpkg_d = target / "etc/dpkg/dpkg.cfg.d"
    dpkg_d.mkdir(parents=True, exist_ok=True)
    (dpkg_d / "containai-excludes").write_text(plan.DPKG_EXCLUDES, encoding="utf-8")
    apt_d = target / "etc/apt/apt.conf.d"
    apt_d.mkdir(parents=True, exist_ok=True)
    (apt_d / "90containai").write_text(plan.APT_CONF, encoding="utf-8")
    # Host-specific or cache files that must not be baked into an image.
    for rel in plan.EMPTIED:
        path = target / rel
        if path.is_file() or path.is_symlink():
            path.unlink()
            path.touch()
    for rel in plan.CACHES:
        directory = target / rel
        if directory.is_dir():
            for entry in directory.iterdir():
                if entry.is_file() or entry.is_symlink():
                    entry.unlink()
    prune_docs(target)
    machine_id = target / "etc/machine-id"
    if machine_id.exists():
        machine_id.write_text("", encoding="utf-8")
    debootstrap_dir = target / "debootstrap"
    if debootstrap_dir.is_dir():
        shutil.rmtree(debootstrap_dir, ignore_errors=True)


def prune_docs(target: Path) -> None:
    """Drop what ``plan.DPKG_EXCLUDES`` keeps out of later installs from the bootstrap too."""
    for rel in plan.PRUNED:
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
    """``tar`` the root file system into ``docker import``; ``Failed`` names the one that failed."""
    with tempfile.TemporaryFile() as tar_err, tempfile.TemporaryFile() as imp_err:
        tar = subprocess.Popen(plan.tar_argv(target), stdout=subprocess.PIPE, stderr=tar_err)
        assert tar.stdout is not None
        try:
            imp = subprocess.run(
                plan.import_argv(docker, tag, suite),
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
    mirror = clean_uri(mirror)
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
        argv = plan.debootstrap_argv(debootstrap, suite, target, mirror, include)
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
            configure_rootfs(target, image_sources_list(sources_dir, suite, mirror))
        except OSError as exc:
            raise Failed(f"cannot finish the bootstrapped root file system: {exc}") from exc
        say(f"importing as {tag}")
        _import(docker, tag, target, suite)
        say(f"base image {tag} ready in {time.monotonic() - started:.0f}s")
    finally:
        _remove_tree(tmp)
