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
  through the link).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from containai.domain.errors import Failed

MemberKind = Literal["file", "dir", "symlink", "hardlink", "device", "fifo", "socket", "other"]

SYMLINK_HOPS_MAX: Final = 40  # like the kernel's ELOOP limit
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
                f"refusing to import {source}: member {member.name!r} {problem}; "
                "nothing was changed (use an archive made by 'cai export')"
            )
