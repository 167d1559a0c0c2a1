"""``cai gc --images``: which of cai's image tags no container uses any more.

Runs after gc removed its containers. An image is used when any remaining container
(running or stopped, managed or not) was made from it, compared by image id: every
container's id (``container_ids``), then ``find_many`` of them all. Only cai's tags are candidates
(``containai:*``, ``ghcr.io/containai/*``). The alias of each template that exists
(``containai:<template>``, the latest build, ``domain/image_tags.py``) is never
removed, nor any other tag of the image it names. Old egress gateway builds
(``containai-gateway:<hash>``, one per change of the gateway's inputs) are candidates
too, but for the build today's cai uses (``keep``), so that the next cold create does
not rebuild it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Final, Protocol

from containai.domain import image_tags
from containai.domain.engine_objects import ContainerInfo, ImageInfo
from containai.domain.errors import InUse, NotFound
from containai.record import Record

IMAGE_REPOSITORIES: Final = ("containai", "containai-gateway")
IMAGE_PREFIXES: Final = ("ghcr.io/containai/",)


class ImageEngine(Protocol):
    """What ``--images`` needs from the engine (``DockerEngine`` satisfies it)."""

    def container_ids(
        self, labels: Mapping[str, str | None], *, states: Sequence[str] = ()
    ) -> list[str]: ...

    def find_many(self, refs: Iterable[str]) -> list[ContainerInfo]: ...

    def list_images(self, reference: str | None = None) -> list[ImageInfo]: ...

    def remove_image(self, ref: str) -> None: ...


class UnusedImage(Record):
    __slots__ = ("id", "reference")

    def __init__(self, reference: str, id: str) -> None:
        self._set(reference=reference, id=id)

    reference: str  # containai:old
    id: str

    def to_json(self) -> dict[str, Any]:
        return {"reference": self.reference, "id": self.id}


def is_cai_image(reference: str) -> bool:
    """``containai:<tag>`` or ``ghcr.io/containai/<anything>:<tag>``."""
    repo, _, tag = reference.rpartition(":")
    if not repo or not tag or "/" in tag:
        return False
    return repo in IMAGE_REPOSITORIES or repo.startswith(IMAGE_PREFIXES)


def full_id(image_id: str) -> str:
    return image_id if image_id.startswith("sha256:") else f"sha256:{image_id}"


def used_image_ids(engine: ImageEngine, exclude: Collection[str]) -> set[str]:
    """Image ids of every container (managed or not), but those in ``exclude``."""
    ids = [i for i in engine.container_ids({}) if i not in exclude]
    infos = engine.find_many(ids) if ids else []
    return {info.image_id for info in infos if info.image_id}


def unused_images(
    engine: ImageEngine,
    templates: Collection[str],
    exclude: Collection[str] = (),
    keep: Collection[str] = (),
) -> list[UnusedImage]:
    """cai's tags whose image no container uses (but the containers in ``exclude``: the
    ones a plan is about to remove), sorted by reference. ``templates``: the names whose
    alias ``containai:<name>`` is kept, with every other tag of its image; ``keep``:
    references kept likewise (today's gateway build)."""
    used = {full_id(i) for i in used_image_ids(engine, exclude)}
    images = engine.list_images()
    wanted = set(templates)
    kept = set(keep)
    for image in images:
        ref = image.reference
        if ref and image.id and (ref in kept or image_tags.is_alias_of(ref, wanted)):
            used.add(full_id(image.id))
    out: set[UnusedImage] = set()
    for image in images:
        ref = image.reference
        image_id = image.id
        if ref is None or not is_cai_image(ref) or not image_id:
            continue
        if full_id(image_id) in used:
            continue
        out.add(UnusedImage(ref, image_id))
    return sorted(out, key=lambda i: i.reference)


def remove_unused(engine: ImageEngine, image: UnusedImage) -> bool:
    """Remove ``image``'s tag: ``True`` when removed, ``False`` when it is gone or a
    container created meanwhile uses it (not unused any more). Other refusals of the
    engine raise (``CaiError``)."""
    try:
        engine.remove_image(image.reference)
    except (NotFound, InUse):
        return False
    return True
