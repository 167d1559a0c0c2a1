"""Host configuration import (``cai import`` / ``--from DIR``, SPEC section 11).

A manifest of entries (the common one plus every agent's ``[[import]]``
entries) names paths relative to the source directory (default ``$HOME``).
Each entry that exists is copied into the data volume at ``home/<path>`` (or
``home-<uid>/<path>`` when another uid owns ``home``: ``rebase``), owned by the
agent's uid, where the container's entrypoint links the agent's ``~/<path>``
(home-links, made from the manifests' `state`), so it survives ``cai --fresh``.

Rules (enforced here, whatever a manifest says):

* ``~/.ssh`` is never imported (nor anything that resolves into it);
* entries marked secret land 0600 (files) in 0700 directories, and are skipped
  with ``--no-secrets``;
* an entry that is itself a symlink (dotfile managers) is followed; symlinks
  inside an entry are kept when they stay inside the entry (absolute ones are
  made relative) and skipped with a warning otherwise; sockets, FIFOs and
  devices are skipped;
* ``filter = "gitconfig"``: credential helpers, signing settings, includes,
  URLs with credentials, extra HTTP headers, ``core.sshCommand`` and
  ``commit.template`` are dropped, and ``safe.directory = *`` is added.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from containai.domain import labels as L
from containai.domain.archive_rules import Member, member_problem
from containai.domain.engine_objects import ContainerInfo, ContainerSpec, Mount
from containai.domain.errors import ConfigError, Failed
from containai.services.ports import Engine

VOLUME_HOME = "home"  # the volume's directory behind the agent's home links
NEVER = (".ssh",)  # never imported, whatever a manifest says
FILTERS = ("gitconfig",)

Action = Literal["copy", "filtered", "skip"]


@dataclass(frozen=True)
class ManifestEntry:
    path: str  # relative to the source directory, normalized (no ./, no trailing /)
    secret: bool = False
    filter: str | None = None


@dataclass(frozen=True)
class TarItem:
    """One entry of the tar cai builds. ``name`` is relative to the volume root."""

    name: str
    kind: Literal["dir", "file", "symlink"]
    mode: int
    mtime: float
    source: Path | None = None  # file content from this host file
    data: bytes | None = None  # or these bytes (a filtered .gitconfig)
    linkname: str = ""


@dataclass(frozen=True)
class PlannedEntry:
    path: str
    action: Action
    detail: str
    secret: bool = False
    items: tuple[TarItem, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)


# ------------------------------------------------------------------ manifest
def normalize_entry(path: str) -> str | None:
    """``~/.claude/`` -> ``.claude``; ``None`` for absolute paths, ``..`` or nothing."""
    text = path.strip()
    if text.startswith("~/"):
        text = text[2:]
    elif text.startswith("~"):  # ~ itself, ~user: not an entry of one home
        return None
    if not text or text.startswith("/") or "\x00" in text:
        return None
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def is_never(path: str) -> bool:
    return any(path == n or path.startswith(n + "/") for n in NEVER)


def manifest_entries(
    groups: Iterable[tuple[str, Iterable[Mapping[str, Any]]]],
) -> list[ManifestEntry]:
    """Merge ``[[import]]`` lists (``(source name, entries)``) into one list, in order.

    The same path twice is one entry (secret if any says so). A bad entry is a
    ``ConfigError`` naming its source.
    """
    merged: dict[str, ManifestEntry] = {}
    for source, entries in groups:
        for raw in entries:
            path = raw.get("path")
            norm = normalize_entry(path) if isinstance(path, str) else None
            if norm is None:
                raise ConfigError(
                    f"import manifest {source}: entry {path!r} is not a path relative to $HOME"
                )
            filt = raw.get("filter")
            if filt is not None and filt not in FILTERS:
                raise ConfigError(
                    f"import manifest {source}: entry {norm!r} has unknown filter {filt!r} "
                    f"(known: {', '.join(FILTERS)})"
                )
            secret = bool(raw.get("secret", False))
            old = merged.get(norm)
            if old is not None:
                secret = secret or old.secret
                filt = filt or old.filter
            merged[norm] = ManifestEntry(norm, secret, filt)
    return list(merged.values())


# ----------------------------------------------------------------- gitconfig
_HEADER = re.compile(r'^\s*\[\s*([A-Za-z0-9.-]+)(?:\s+"((?:[^"\\]|\\.)*)")?\s*\](.*)$', re.S)
_KEY = re.compile(r"^\s*([A-Za-z][A-Za-z0-9-]*)\s*(?:=|$|[#;])")
_URL_WITH_CREDENTIALS = re.compile(r"://[^/@\s]+@")
_DROP_SECTIONS = {"credential", "gpg", "include", "includeif"}
_DROP_KEYS = {
    ("user", "signingkey"),
    ("tag", "forcesignannotated"),
    ("core", "sshcommand"),
    ("commit", "template"),
    ("sendemail", "smtppass"),
    ("http", "extraheader"),
}
SAFE_DIRECTORY = (
    "# added by cai import: the container is a single-user sandbox, and a bind-mounted\n"
    "# workspace may show another owner (rootless engines, gVisor)\n"
    "[safe]\n"
    "\tdirectory = *\n"
)


@dataclass(frozen=True)
class FilteredGitconfig:
    text: str
    dropped: tuple[str, ...]
    added_safe_directory: bool


def _continues(line: str) -> bool:
    body = line.rstrip("\r\n")
    trailing = len(body) - len(body.rstrip("\\"))
    return trailing % 2 == 1


def filter_gitconfig(text: str) -> FilteredGitconfig:
    """Drop credentials, signing and host-path settings from a git config file."""
    out: list[str] = []
    dropped: list[str] = []
    section, subsection, drop_section = "", None, False
    lines = text.splitlines(keepends=True)
    i = 0
    has_safe_star = False
    while i < len(lines):
        line = lines[i]
        i += 1
        header = _HEADER.match(line.rstrip("\r\n"))
        if header:
            name, sub, rest = header.group(1), header.group(2), header.group(3)
            if sub is None and "." in name:  # legacy [section.subsection]
                name, sub = name.split(".", 1)
            section, subsection = name.lower(), sub
            drop_section = section in _DROP_SECTIONS or (
                section == "url" and bool(sub) and bool(_URL_WITH_CREDENTIALS.search(sub or ""))
            )
            if drop_section:
                shown = "<redacted>" if section == "url" else sub
                dropped.append(f"{section}.{shown}" if shown is not None else section)
                continue
            rest = rest.strip()
            if not rest or rest.startswith(("#", ";")):
                out.append(line)
                continue
            # `[user] name = x`: a key on the header line; split it off
            quoted = f' "{header.group(2)}"' if header.group(2) is not None else ""
            out.append(f"[{header.group(1)}{quoted}]\n")
            line = "\t" + rest + "\n"
        block = [line]
        while _continues(block[-1]) and i < len(lines):
            block.append(lines[i])
            i += 1
        if drop_section:
            continue
        key = _KEY.match(line)
        if key is not None:
            name = key.group(1).lower()
            if (section, name) in _DROP_KEYS or name == "gpgsign":
                sub = subsection
                if sub and _URL_WITH_CREDENTIALS.search(sub):
                    sub = "<redacted>"
                label = f"{section}.{sub}.{name}" if sub else f"{section}.{name}"
                dropped.append(label)
                continue
            if section == "safe" and name == "directory" and line.split("=", 1)[-1].strip() == "*":
                has_safe_star = True
        out.extend(block)
    result = "".join(out)
    if result and not result.endswith("\n"):
        result += "\n"
    added = not has_safe_star
    if added:
        result += ("\n" if result else "") + SAFE_DIRECTORY
    unique = tuple(dict.fromkeys(dropped))
    return FilteredGitconfig(result, unique, added)


# ---------------------------------------------------------------------- plan
def _inside(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


def _tree(
    root: Path, dest: str, secret: bool, alias: Path | None = None
) -> tuple[list[TarItem], list[str], int, int]:
    """Items for the directory ``root`` copied to ``dest``: (items, warnings, files, skipped).

    ``alias`` is another path of ``root`` (the entry's path when it is a symlink), for
    absolute symlinks that point inside the entry through it.
    """
    items: list[TarItem] = []
    warnings: list[str] = []
    links: dict[str, str] = {}  # path relative to root -> target (relative)
    files = skipped = 0
    errors: list[OSError] = []

    def dir_mode(st: os.stat_result) -> int:
        return 0o700 if secret else (stat.S_IMODE(st.st_mode) | 0o700)

    def file_mode(st: os.stat_result) -> int:
        return 0o600 if secret else (stat.S_IMODE(st.st_mode) | 0o600)

    top = root.stat()
    items.append(TarItem(dest, "dir", dir_mode(top), top.st_mtime))
    for walked, dirnames, filenames in os.walk(root, onerror=errors.append):
        here = Path(walked)
        rel_dir = here.relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        for name in sorted(dirnames + filenames):
            path = here / name
            rel = f"{rel_dir}/{name}" if rel_dir else name
            try:
                st = path.lstat()
            except OSError as exc:
                warnings.append(f"skipped {path}: {exc.strerror or exc}")
                continue
            if stat.S_ISDIR(st.st_mode):
                items.append(TarItem(f"{dest}/{rel}", "dir", dir_mode(st), st.st_mtime))
            elif stat.S_ISREG(st.st_mode):
                items.append(
                    TarItem(f"{dest}/{rel}", "file", file_mode(st), st.st_mtime, source=path)
                )
                files += 1
            elif stat.S_ISLNK(st.st_mode):
                target = os.readlink(path)
                if target.startswith("/"):
                    absolute = Path(posixpath.normpath(target))
                    for base in (root, Path(os.path.realpath(root)), alias or root):
                        if _inside(base, absolute):
                            target = posixpath.relpath(absolute, (base / rel).parent)
                            break
                links[rel] = target
                items.append(
                    TarItem(f"{dest}/{rel}", "symlink", 0o777, st.st_mtime, linkname=target)
                )
            else:
                skipped += 1
        dirnames[:] = [d for d in dirnames if not (here / d).is_symlink()]
    for error in errors:
        warnings.append(f"skipped {error.filename}: {error.strerror or error}")
    # Symlinks must stay inside the entry, also through each other (archive rules).
    refused: set[str] = set()
    while True:
        kept = {k: v for k, v in links.items() if k not in refused}
        bad = [
            rel
            for rel, target in kept.items()
            if member_problem(Member(rel, "symlink", target), kept) is not None
        ]
        if not bad:
            break
        refused.update(bad)
    for rel in sorted(refused):
        warnings.append(
            f"skipped the symlink {root / rel} -> {links[rel]}: it points outside {root.name}"
        )
    names = {f"{dest}/{rel}" for rel in refused}
    items = [i for i in items if i.name not in names]
    return items, warnings, files, skipped


def _parents(path: str, source: Path) -> list[TarItem]:
    """Directory items for ``home`` and every directory between it and ``path``."""
    items = [TarItem(VOLUME_HOME, "dir", 0o755, time.time())]
    parts = path.split("/")[:-1]
    for end in range(1, len(parts) + 1):
        rel = "/".join(parts[:end])
        try:
            st = (source / rel).stat()
            mode, mtime = stat.S_IMODE(st.st_mode) | 0o700, st.st_mtime
        except OSError:
            mode, mtime = 0o755, time.time()
        items.append(TarItem(f"{VOLUME_HOME}/{rel}", "dir", mode, mtime))
    return items


def plan_entry(entry: ManifestEntry, source: Path, *, no_secrets: bool) -> PlannedEntry:
    """What importing ``entry`` from ``source`` means (reads the host, changes nothing)."""
    path, secret = entry.path, entry.secret
    if is_never(path):
        return PlannedEntry(path, "skip", "never imported (SSH keys stay on the host)", secret)
    src = source / path
    if not os.path.lexists(src):
        return PlannedEntry(path, "skip", "missing", secret)
    if secret and no_secrets:
        return PlannedEntry(path, "skip", "secret (--no-secrets)", secret)
    try:
        real = Path(os.path.realpath(src, strict=True))
        st = real.stat()
    except OSError as exc:
        return PlannedEntry(path, "skip", f"unreadable ({exc.strerror or exc})", secret)
    for never in NEVER:
        ssh = Path(os.path.realpath(source / never))
        if _inside(ssh, real) or _inside(real, ssh):
            return PlannedEntry(path, "skip", f"resolves into ~/{never}: never imported", secret)
    dest = f"{VOLUME_HOME}/{path}"
    parents = _parents(path, source)
    if stat.S_ISDIR(st.st_mode):
        if entry.filter is not None:
            return PlannedEntry(path, "skip", f"a directory; filter {entry.filter} is for files")
        items, warnings, files, skipped = _tree(real, dest, secret, alias=src)
        detail = f"{files} file{'s' if files != 1 else ''} -> {dest}"
        if secret:
            detail += " (secret: files 0600, directories 0700)"
        if skipped:
            detail += f"; {skipped} socket/FIFO/device skipped"
        return PlannedEntry(path, "copy", detail, secret, tuple(parents + items), tuple(warnings))
    if not stat.S_ISREG(st.st_mode):
        return PlannedEntry(path, "skip", "not a file or directory", secret)
    mode = 0o600 if secret else stat.S_IMODE(st.st_mode) | 0o600
    if entry.filter == "gitconfig":
        try:
            text = real.read_bytes().decode("utf-8", "surrogateescape")
        except OSError as exc:
            return PlannedEntry(path, "skip", f"unreadable ({exc.strerror or exc})", secret)
        result = filter_gitconfig(text)
        data = result.text.encode("utf-8", "surrogateescape")
        notes = []
        if result.dropped:
            notes.append("dropped " + ", ".join(result.dropped))
        if result.added_safe_directory:
            notes.append("added safe.directory = *")
        item = TarItem(dest, "file", mode, st.st_mtime, data=data)
        detail = "; ".join(notes) or "nothing to drop"
        return PlannedEntry(path, "filtered", f"{detail} -> {dest}", secret, (*parents, item))
    item = TarItem(dest, "file", mode, st.st_mtime, source=real)
    detail = f"-> {dest}" + (" (secret: 0600)" if secret else "")
    return PlannedEntry(path, "copy", detail, secret, (*parents, item))


def plan_import(
    entries: Sequence[ManifestEntry], source: Path, *, no_secrets: bool
) -> list[PlannedEntry]:
    return [plan_entry(e, source, no_secrets=no_secrets) for e in entries]


def items_of(plans: Sequence[PlannedEntry]) -> list[TarItem]:
    """Every item to write, in order, each name once (shared parents like ``home``)."""
    seen: set[str] = set()
    out: list[TarItem] = []
    for plan in plans:
        for item in plan.items:
            if item.name in seen:
                continue
            seen.add(item.name)
            out.append(item)
    return out


def rebase(items: Sequence[TarItem], home: str) -> list[TarItem]:
    """``items`` with ``home/`` replaced by the volume directory ``home`` (``home-<uid>``
    when another uid owns ``home``: ``host_safety.state_dir``)."""
    from dataclasses import replace

    if home == VOLUME_HOME:
        return list(items)
    out = []
    for item in items:
        if item.name == VOLUME_HOME or item.name.startswith(VOLUME_HOME + "/"):
            item = replace(item, name=home + item.name[len(VOLUME_HOME) :])
        out.append(item)
    return out


def agent_ids_of(info: ContainerInfo | None) -> tuple[int, int] | None:
    """The agent uid/gid an existing container was created with (``CAI_UID``/``CAI_GID``)."""
    env = {} if info is None else info.env
    uid, gid = env.get("CAI_UID", ""), env.get("CAI_GID", "")
    if uid.isdigit() and gid.isdigit():
        return int(uid), int(gid)
    return None


def state_dir_in(engine: Engine, volume: str, uid: int, image: str, running: str | None) -> str:
    """The directory of ``volume`` that holds ``uid``'s agent state, as the entrypoint
    chooses it (``host_safety.STATE_DIR_SCRIPT``): asked in ``running`` (a running
    container that mounts the volume), else in a throw-away helper that mounts it
    read-only. A volume that does not exist yet: ``home``."""
    from containai.domain.host_safety import STATE_DIR_SCRIPT

    command = ["sh", "-c", STATE_DIR_SCRIPT, "containai-state", str(uid)]
    if running is not None:
        proc = engine.exec(running, command, timeout=60, check=False)
    elif engine.volume(volume) is None:
        return VOLUME_HOME
    else:
        helper = ContainerSpec(
            auto_remove=True,
            network="none",
            labels={L.HELPER: L.TRUE},
            entrypoint=command[0],
            mounts=[Mount("volume", volume, L.DATA_MOUNT, readonly=True)],
            image=image,
            command=command[1:],
        )
        proc = engine.run_once(helper, timeout=120)
    name = proc.stdout.strip()
    if proc.returncode != 0 or not re.fullmatch(r"home(-[0-9]+)?", name):
        raise Failed(f"could not read the layout of volume '{volume}': {proc.stderr}")
    return name
