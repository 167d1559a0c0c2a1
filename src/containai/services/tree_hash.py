"""The build hash of a set of folders: sha256 over every file's relative path, its
executable bit and its content, then any extra inputs (``Images.current_hash``). The
files' part can be taken first and finished with different extras (``files_digest``,
``with_extra``): ``Images`` hashes the files while the engine is asked for the base."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path


def _files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            yield path


def tree_hash(roots: Sequence[Path], extra: Sequence[str] = ()) -> str:
    """sha256 over every file (relative path, mode bit x, content) of ``roots`` and ``extra``."""
    return with_extra(files_digest(roots), extra)


def files_digest(roots: Sequence[Path]) -> hashlib._Hash:
    """``tree_hash``'s sha256 after the files of ``roots`` (before any ``extra``)."""
    digest = hashlib.sha256()
    for root in roots:
        digest.update(f"root:{root.name}\0".encode())
        for path in _files(root):
            rel = path.relative_to(root).as_posix()
            executable = "x" if path.stat().st_mode & 0o111 else "-"
            digest.update(f"{rel}\0{executable}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest


def with_extra(files: hashlib._Hash, extra: Sequence[str]) -> str:
    digest = files.copy()
    for item in extra:
        digest.update(f"extra:{item}\0".encode())
    return digest.hexdigest()[:16]
