"""Checks on an archive before ``cai import`` changes anything (SPEC section 11).

The whole member list is checked first; one bad member refuses the archive.
Paths are judged lexically, relative to the archive root (= the volume root):

* names: not empty, no NUL, not absolute, no ``..`` component; leading ``./``,
  ``.`` components, repeated and trailing ``/`` are normalized away; the root
  entry (``.`` or ``./``) is allowed as a directory;
* kinds: files, directories and symlinks only (no hard links, devices, FIFOs,
  sockets or anything else; ``cai export`` writes hard-linked files as regular
  files, so its own archives always pass);
* symlinks: a relative target that stays inside the root when resolved from
  the link's directory, following the archive's other symlinks (absolute
  targets, escapes and loops are refused);
* no member may sit below a symlink of the archive (it would be written
  through the link);
* names the file system can hold (a component of at most 255 bytes, a path of at
  most ``PATH_BYTES_MAX``), so the engine never refuses one half-way through a copy.

Also here: the names of an import's staging directory inside the volume (never
exported, swept when stale) and the free space an import needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from containai.domain.errors import Failed

MemberKind = Literal["file", "dir", "symlink", "hardlink", "device", "fifo", "socket", "other"]

SYMLINK_HOPS_MAX: Final = 40  # like the kernel's ELOOP limit
NAME_BYTES_MAX: Final = 255  # NAME_MAX of every Linux file system cai meets
PATH_BYTES_MAX: Final = 4096 - 128  # PATH_MAX, less the mount point and the staging prefix
STAGING_PREFIX: Final = ".containai-import-"  # + token; its completion marker adds ".done"
BLOCK: Final = 4096  # a file takes whole blocks; a directory or symlink at least one
SPACE_MARGIN_MIN: Final = 256 * 1024 * 1024
SPACE_MARGIN_SHARE: Final = 20  # keep 1/20 (5 %) of the file system free, at least the above
_REFUSED_KINDS: Final = {
    "hardlink": "is a hard link",
    "device": "is a device node",
    "fifo": "is a FIFO",
    "socket": "is a socket",
    "other": "is not a file, directory or link",
}


@dataclass(frozen=True)
class Member:
    """One archive entry: its path, its type and, for links, the link target."""

    name: str
    kind: MemberKind
    linkname: str = ""
    size: int = 0  # bytes of content (files)


class _Escape(Exception):
    """A path resolution left the archive root (or looped)."""


def normalize(name: str) -> str | None:
    """Archive path -> canonical relative form (``""`` is the root); ``None`` when unsafe.

    Unsafe: empty, NUL, absolute, or a ``..`` component.
    """
    if not name or "\x00" in name or name.startswith("/"):
        return None
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        return None
    return "/".join(parts)


def _resolve(
    directory: list[str], target: str, symlinks: Mapping[str, str], hops: list[int]
) -> list[str]:
    """Resolve ``target`` from ``directory`` inside the archive, following its symlinks."""
    if target.startswith("/"):
        raise _Escape("absolute")
    stack = list(directory)
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                raise _Escape("outside")
            stack.pop()
            continue
        stack.append(part)
        link = symlinks.get("/".join(stack))
        if link is not None:
            hops[0] += 1
            if hops[0] > SYMLINK_HOPS_MAX:
                raise _Escape("loop")
            stack = _resolve(stack[:-1], link, symlinks, hops)
    return stack


def _under_symlink(path: str, symlinks: Mapping[str, str]) -> str | None:
    parts = path.split("/")
    for end in range(1, len(parts)):
        prefix = "/".join(parts[:end])
        if prefix in symlinks:
            return prefix
    return None


def member_problem(member: Member, symlinks: Mapping[str, str]) -> str | None:
    """Why ``member`` is refused, or ``None`` when it is fine.

    ``symlinks`` maps the normalized path of every symlink member of the archive
    to its target (all of them, not only earlier ones: the final tree is what
    counts).
    """
    path = normalize(member.name)
    if path is None:
        if not member.name:
            return "has an empty name"
        if "\x00" in member.name:
            return "has a NUL character in its name"
        if member.name.startswith("/"):
            return "has an absolute path"
        return "has a '..' path component"
    if len(path.encode("utf-8", "surrogateescape")) > PATH_BYTES_MAX:
        return f"has a path longer than {PATH_BYTES_MAX} bytes, more than a file system holds"
    longest = max(len(part.encode("utf-8", "surrogateescape")) for part in path.split("/"))
    if longest > NAME_BYTES_MAX:
        return (
            f"has a name component longer than {NAME_BYTES_MAX} bytes, more than a file "
            "system holds"
        )
    if member.kind in _REFUSED_KINDS:
        problem = _REFUSED_KINDS[member.kind]
        if member.kind == "hardlink":
            problem += f" (to {member.linkname!r}); hard links are not allowed"
        return problem
    if path == "":
        return None if member.kind == "dir" else "is the archive root but not a directory"
    parent = _under_symlink(path, symlinks)
    if parent is not None:
        return f"lies below the symlink '{parent}'"
    if member.kind == "symlink":
        if not member.linkname:
            return "is a symlink with an empty target"
        if member.linkname.startswith("/"):
            return f"is a symlink to the absolute path {member.linkname!r}"
        own = {**symlinks, path: member.linkname}
        try:
            _resolve(path.split("/")[:-1], member.linkname, own, [0])
        except _Escape as escape:
            if str(escape) == "loop":
                return f"is a symlink to {member.linkname!r}, which loops"
            return f"is a symlink to {member.linkname!r}, which leads outside the archive"
    return None


def check_members(members: Iterable[Member], source: str = "archive") -> None:
    """Raise :class:`Failed` naming the first refused member; return when all are fine.

    ``source`` names the archive in the message (e.g. its path).
    """
    listed = list(members)
    symlinks: dict[str, str] = {}
    for member in listed:
        path = normalize(member.name)
        if member.kind == "symlink" and path:
            symlinks[path] = member.linkname
    for member in listed:
        problem = member_problem(member, symlinks)
        if problem is not None:
            raise Failed(
                f"refusing to import {source}: member {_shown(member.name)} {problem}; "
                "nothing was changed (use an archive made by 'cai export')"
            )


def _shown(name: str) -> str:
    """A member name for a one-line message: a very long one keeps its head and tail."""
    if len(name) <= 100:
        return repr(name)
    return f"{name[:40]!r}...{name[-20:]!r} ({len(name)} characters)"


def is_staging(name: str) -> bool:
    """Whether archive/volume path ``name`` is (inside) an import's staging directory or
    its completion marker: never part of an export."""
    path = normalize(name)
    return path is not None and path.split("/", 1)[0].startswith(STAGING_PREFIX)


def expanded_bytes(members: Iterable[Member]) -> int:
    """Disk space the members take once extracted (whole blocks; one per entry at least)."""
    total = 0
    for member in members:
        total += max(BLOCK, -(-member.size // BLOCK) * BLOCK)
    return total


def space_problem(needed: int, free: int, fs_size: int) -> str | None:
    """Why an import of ``needed`` bytes must not start on a file system with ``free`` of
    ``fs_size`` bytes available (a margin stays free), or ``None`` when it fits."""
    margin = max(SPACE_MARGIN_MIN, fs_size // SPACE_MARGIN_SHARE)
    if needed <= free - margin:
        return None
    return (
        f"it expands to {_size(needed)} but the engine's disk has {_size(free)} free "
        f"(and {_size(margin)} must stay free)"
    )


def _size(n: int) -> str:
    from containai.domain.validation import format_bytes

    return format_bytes(n)
