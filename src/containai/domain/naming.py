"""Container, hostname and volume names (SPEC sections 3 and 5).

Pure functions: the caller supplies the raw repo directory name and branch
(``detached`` on a detached HEAD, ``nogit`` outside git) and, for collisions,
a lookup callable that asks the engine who owns a name.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final, Literal, TypeAlias

from containai.domain.errors import Failed

NAME_MAX: Final = 24
REPO_FALLBACK: Final = "repo"
BRANCH_FALLBACK: Final = "branch"
HOSTNAME_MAX: Final = 63
HOSTNAME_FALLBACK: Final = "cai"
VOLUME_NAME_MAX: Final = 255
COLLISION_SUFFIX_MAX: Final = 99

_NOT_NAME_CHARS: Final = re.compile(r"[^a-z0-9-]+")
_DASH_RUNS: Final = re.compile(r"-{2,}")
_HEX6: Final = re.compile(r"[0-9a-f]{6}")


class NameTaken(enum.Enum):
    """What ``owner_of`` returns for a container that cai must not reuse or claim."""

    UNMANAGED = "unmanaged"


UNMANAGED: Final = NameTaken.UNMANAGED

Owner: TypeAlias = "str | Literal[NameTaken.UNMANAGED] | None"
"""Answer of an ``owner_of`` lookup for one container name:

* ``None`` -- no container has that name: the name is free;
* ``UNMANAGED`` -- a container has that name but lacks ``containai.managed=true``;
* a ``str`` -- a managed container has that name; the value is its
  ``containai.workspace`` label (``""`` when the label is missing).
"""


def sanitize_part(text: str, fallback: str) -> str:
    """Lowercase, keep only ``[a-z0-9-]``, collapse ``-`` runs, trim ``-``; empty -> fallback."""
    kept = _NOT_NAME_CHARS.sub("", text.lower())
    return _DASH_RUNS.sub("-", kept).strip("-") or fallback


def branch_leaf(branch: str) -> str:
    """The part of a branch name after its last ``/`` (``feature/oauth`` -> ``oauth``)."""
    return branch.rsplit("/", 1)[-1]


def _shorten(first: str, second: str, budget: int) -> tuple[str, str]:
    """Drop characters from the end of the longer part (``first`` on a tie) until
    ``len(first) + 1 + len(second) <= budget``; neither part goes below one character."""
    while len(first) + 1 + len(second) > budget:
        if len(first) >= len(second) and len(first) > 1:
            first = first[:-1]
        elif len(second) > 1:
            second = second[:-1]
        else:
            break
    return first, second


def name_parts(repo: str, branch: str) -> tuple[str, str]:
    """The two parts of :func:`container_name` (``repo``, ``leaf``) after the 24-character rule."""
    repo_part = sanitize_part(repo, REPO_FALLBACK)
    leaf_part = sanitize_part(branch_leaf(branch), BRANCH_FALLBACK)
    repo_part, leaf_part = _shorten(repo_part, leaf_part, NAME_MAX)
    # A sanitized part starts with [a-z0-9], so trimming a cut-off trailing '-' never
    # empties it; the fallbacks are re-applied anyway, as SPEC section 3 says.
    return repo_part.rstrip("-") or REPO_FALLBACK, leaf_part.rstrip("-") or BRANCH_FALLBACK


def container_name(repo: str, branch: str) -> str:
    """``{repo}-{branch_leaf}``, at most 24 characters of ``[a-z0-9-]`` (SPEC section 3).

    ``repo`` is the raw last component of the workspace path; ``branch`` is the raw
    branch name, ``detached`` or ``nogit``.
    """
    repo_part, leaf_part = name_parts(repo, branch)
    return f"{repo_part}-{leaf_part}"


def collision_candidates(base: str) -> list[str]:
    """``base``, then ``base-2`` .. ``base-99``, each cut so it fits in 24 characters.

    The base is cut before the suffix and trailing ``-`` trimmed. A candidate equal
    to an earlier one (``…-2`` cut back to itself) is listed once.
    """
    candidates = [base]
    for k in range(2, COLLISION_SUFFIX_MAX + 1):
        suffix = f"-{k}"
        candidate = base[: NAME_MAX - len(suffix)].rstrip("-") + suffix
        if candidate not in candidates:
            candidates.append(candidate)
    return candidates


def choose_name(base: str, workspace: str, owner_of: Callable[[str], Owner]) -> str:
    """First candidate of :func:`collision_candidates` that is free or owned by ``workspace``.

    ``owner_of(name)`` reports who holds ``name`` (see :data:`Owner`): ``None`` means
    free, a string equal to ``workspace`` means this workspace's own container
    (reused), anything else (another path, ``""``, ``UNMANAGED``) means taken.
    """
    for candidate in collision_candidates(base):
        owner = owner_of(candidate)
        if owner is None or owner == workspace:
            return candidate
    raise Failed(
        f"no free container name for workspace {workspace!r}: {base!r} and its suffixes "
        f"-2 .. -{COLLISION_SUFFIX_MAX} are all taken by other workspaces or unmanaged "
        "containers; choose a name with --container NAME"
    )


def hostname_for(name: str) -> str:
    """An RFC 1123 host label for a container name: ``[a-z0-9-]``, no edge ``-``, <= 63."""
    label = _NOT_NAME_CHARS.sub("-", name.lower())
    label = _DASH_RUNS.sub("-", label).strip("-")
    return label[:HOSTNAME_MAX].rstrip("-") or HOSTNAME_FALLBACK


def reset_volume_name(repo: str, branch: str, now: datetime, rand_hex: str) -> str:
    """``{repo}-{branch}-{UTC yyyymmddHHMMSS}-{6 hex}`` for ``--reset`` (SPEC section 5).

    ``repo`` and ``branch`` are sanitized like container-name parts (the branch's
    leaf) but not cut to 24 characters; they are cut only if the whole name would
    exceed the 255 characters a volume name may have. ``now`` must be timezone-aware.
    """
    if _HEX6.fullmatch(rand_hex) is None:
        raise ValueError(f"rand_hex must be 6 lowercase hex characters, got {rand_hex!r}")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    utc = now.astimezone(UTC)
    stamp = f"{utc.year:04d}{utc:%m%d%H%M%S}"  # %Y is not zero-padded before year 1000
    tail = f"-{stamp}-{rand_hex}"
    repo_part = sanitize_part(repo, REPO_FALLBACK)
    branch_part = sanitize_part(branch_leaf(branch), BRANCH_FALLBACK)
    repo_part, branch_part = _shorten(repo_part, branch_part, VOLUME_NAME_MAX - len(tail))
    repo_part = repo_part.rstrip("-") or REPO_FALLBACK
    branch_part = branch_part.rstrip("-") or BRANCH_FALLBACK
    return f"{repo_part}-{branch_part}{tail}"
