"""Image tags (SPEC section 8): containai:<template>-<hash> per build, containai:<template>
the latest; what `cai list` shows for a container whose tag moved on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from containai.adapters.engine.shapes import build_step
from containai.domain import image_tags
from containai.domain.errors import UsageError
from containai.domain.validation import validate_template_name

TEMPLATE = "ai.containai.template"
HASH = "ai.containai.template-hash"

template_names = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,40}", fullmatch=True).filter(
    lambda n: not image_tags.looks_hashed(n)
)
hashes = st.text("0123456789abcdef", min_size=16, max_size=16)


@given(template_names, hashes)
def test_hashed_tag_splits_back(template: str, digest: str) -> None:
    tag = image_tags.hashed_tag(template, digest)
    assert tag == f"containai:{template}-{digest}"
    assert image_tags.split(tag) == (template, digest)
    assert len(tag.partition(":")[2]) <= image_tags.TAG_MAX
    # a build is never taken for the alias of a template that exists
    assert not image_tags.is_alias_of(tag, {template, f"{template}-{digest}"})


@given(template_names)
def test_alias_is_not_a_build(template: str) -> None:
    validate_template_name(template)  # every name the strategy makes is a valid template
    alias = image_tags.alias_tag(template)
    assert image_tags.split(alias) == (template, None)
    assert image_tags.is_alias_of(alias, {template})
    assert not image_tags.is_alias_of(alias, set())


@given(hashes)
def test_a_template_name_that_looks_like_a_build_is_refused(digest: str) -> None:
    with pytest.raises(UsageError, match="build hash"):
        validate_template_name(f"default-{digest}")


def test_longest_template_name_still_makes_a_valid_tag() -> None:
    name = validate_template_name("a" * 111)
    assert len(image_tags.hashed_tag(name, "0" * 16).partition(":")[2]) == 128
    with pytest.raises(UsageError):
        validate_template_name("a" * 112)


@pytest.mark.parametrize("digest", ["", "0123", "0123456789ABCDEF", "0123456789abcdeg", "0" * 17])
def test_hashed_tag_refuses_what_is_not_a_hash(digest: str) -> None:
    with pytest.raises(ValueError, match="build hash"):
        image_tags.hashed_tag("default", digest)


@pytest.mark.parametrize(
    "ref", ["debian:bookworm", "containai", "containai-template:default", "containai:a/b", ""]
)
def test_split_other_references(ref: str) -> None:
    assert image_tags.split(ref) is None


@pytest.mark.parametrize(
    ("image", "labels", "shown"),
    [
        ("containai:default-0123456789abcdef", {}, "containai:default-0123456789abcdef"),
        (
            "sha256:" + "ab" * 32,
            {TEMPLATE: "default", HASH: "0123456789abcdef"},
            "containai:default-0123456789abcdef",
        ),
        (
            "788affd1fb86",
            {TEMPLATE: "web", HASH: "fedcba9876543210"},
            "containai:web-fedcba9876543210",
        ),
        ("sha256:" + "ab" * 32, {}, "sha256:" + "ab" * 32),  # nothing better is known
        ("sha256:" + "ab" * 32, {TEMPLATE: "x", HASH: "bad"}, "sha256:" + "ab" * 32),
        ("debian:bookworm", {TEMPLATE: "x", HASH: "0123456789abcdef"}, "debian:bookworm"),
    ],
)
def test_list_shows_a_tag_not_a_raw_id(image: str, labels: dict[str, str], shown: str) -> None:
    assert image_tags.display(image, labels, TEMPLATE, HASH) == shown


@given(st.text(), st.dictionaries(st.sampled_from([TEMPLATE, HASH]), st.text()))
def test_display_never_invents_a_raw_id(image: str, labels: dict[str, str]) -> None:
    shown = image_tags.display(image, labels, TEMPLATE, HASH)
    assert shown == image or image_tags.split(shown) is not None


@pytest.mark.parametrize(
    ("line", "step"),
    [
        ("Step 3/12 : RUN apt-get update", (3, 12)),
        ("Step 1/1 : FROM x", (1, 1)),
        ("#7 [2/4] RUN make", (2, 4)),
        ("#9 [stage-1 3/5] COPY . .", (3, 5)),
        (" ---> Running in 1234", None),
        ("Step 13/12 : nonsense", None),
        ("Step ³/4 : x", None),
        ("Step 0/4 : x", None),
        ("Get:1 http://deb.debian.org bookworm InRelease", None),
    ],
)
def test_build_step(line: str, step: tuple[int, int] | None) -> None:
    assert build_step(line) == step
