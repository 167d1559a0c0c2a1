"""Image tags (SPEC section 8): ``containai:<template>-<hash>`` per build, the hash over
every build input, and ``containai:<template>``, the alias of the latest build.

A container is created from the hashed tag, so another workspace's build (other agents,
other packages) never moves the image a container was made from; the alias is only a
name for people and other tools. Pure rules, no I/O; on ``cai list``'s path, so no
``re`` or ``typing`` at run time.
"""

from __future__ import annotations

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    from collections.abc import Collection, Mapping
    from typing import Final

REPOSITORY: Final = "containai"
HASH_LENGTH: Final = 16
TAG_MAX: Final = 128  # Docker's limit for the part after the ':'
_HEX: Final = frozenset("0123456789abcdef")


def is_hash(text: str) -> bool:
    """A build hash: 16 lowercase hex digits."""
    return len(text) == HASH_LENGTH and _HEX.issuperset(text)


def looks_hashed(name: str) -> bool:
    """``<something>-<hash>``: a template may not be named so, or its alias would look
    like another template's hashed tag."""
    head, sep, tail = name.rpartition("-")
    return bool(head and sep) and is_hash(tail)


def alias_tag(template: str) -> str:
    """``containai:<template>``: the latest build of ``template``."""
    return f"{REPOSITORY}:{template}"


def hashed_tag(template: str, digest: str) -> str:
    """``containai:<template>-<hash>``: one build of ``template`` with inputs ``digest``."""
    if not is_hash(digest):
        raise ValueError(f"not a build hash: {digest!r}")
    return f"{REPOSITORY}:{template}-{digest}"


def split(reference: str) -> tuple[str, str | None] | None:
    """``containai:<template>-<hash>`` -> ``(template, hash)``, ``containai:<name>`` ->
    ``(name, None)``; ``None`` for any other reference."""
    repo, sep, tag = reference.partition(":")
    if not sep or repo != REPOSITORY or not tag or "/" in tag or ":" in tag:
        return None
    if looks_hashed(tag):
        return tag[: -HASH_LENGTH - 1], tag[-HASH_LENGTH:]
    return tag, None


def is_alias_of(reference: str, templates: Collection[str]) -> bool:
    """Whether ``reference`` is the alias ``containai:<template>`` of a template that
    exists (gc never removes one)."""
    parts = split(reference)
    return parts is not None and parts[1] is None and parts[0] in templates


def is_raw_id(image: str) -> bool:
    """What the engine shows for a container whose image tag moved on: an image id."""
    if image.startswith("sha256:"):
        return True
    return len(image) in (12, 64) and _HEX.issuperset(image)


def display(image: str, labels: Mapping[str, str], template_label: str, hash_label: str) -> str:
    """The image to show for a container: its tag, or, when the engine only knows the id
    (the tag was moved or removed), the hashed tag its build labels name."""
    if not is_raw_id(image):
        return image
    template = labels.get(template_label, "")
    digest = labels.get(hash_label, "")
    if template and is_hash(digest):
        return hashed_tag(template, digest)
    return image
