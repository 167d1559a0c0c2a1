"""Image builds with an in-memory engine (SPEC section 8): each set of build inputs gets its
own containai:<template>-<hash>, containai:<template> follows the latest build, and a
build for one workspace never moves the image another's container was made from."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from containai.domain.engine_objects import ImageInfo
from containai.domain.image_tags import split
from containai.services.images import Images
from tests.fakes import FakeEngine


def engine_with_base(base_id: str = "sha256:base1") -> FakeEngine:
    return FakeEngine(images=[ImageInfo(base_id, "debian", "bookworm-slim")])


def images(
    engine: FakeEngine, tmp_path: Path, agents: Sequence[str] = ("claude",), **kw: Any
) -> Images:
    templates = tmp_path / "templates"
    dockerfile = templates / "web" / "Dockerfile"
    if not dockerfile.exists():
        dockerfile.parent.mkdir(parents=True)
        dockerfile.write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    options: dict[str, Any] = {
        "agent_packages": lambda names: [f"@example/{n}" for n in names],
        "home_links": lambda: ".claude/\n",
        "ca_dir": tmp_path / "ca",
        **kw,
    }
    return Images(engine, user_templates=templates, agents=agents, **options)


def refs(engine: FakeEngine) -> dict[str, str]:
    return {i.reference or "": i.id for i in engine.images}


def test_a_build_is_tagged_by_its_hash_and_the_alias_follows(tmp_path: Path) -> None:
    engine = engine_with_base()
    ref = images(engine, tmp_path).ensure("web")
    assert split(ref.tag) == ("web", ref.template_hash)
    have = refs(engine)
    assert have["containai:web"] == have[ref.tag]
    assert not any(r.startswith("containai-template:") for r in have)  # intermediate untagged
    builds = [c[1] for c in engine.calls_of("build")]
    assert builds == [f"containai-template:web-{ref.template_hash}", ref.tag]
    # nothing changed: no build, the same tag
    assert images(engine, tmp_path).ensure("web") == ref
    assert len(engine.calls_of("build")) == 2


def test_other_agents_get_their_own_image_and_leave_the_first_alone(tmp_path: Path) -> None:
    engine = engine_with_base()
    first = images(engine, tmp_path, agents=["claude", "codex"]).ensure("web")
    first_id = refs(engine)[first.tag]
    second = images(engine, tmp_path, agents=["claude"]).ensure("web")
    assert second.tag != first.tag
    have = refs(engine)
    assert have[first.tag] == first_id  # the first workspace's image was not touched
    assert have["containai:web"] == have[second.tag]  # the alias is the latest build
    # back to the first agent set: its image is reused as it is, nothing is built
    builds = len(engine.calls_of("build"))
    assert images(engine, tmp_path, agents=["claude", "codex"]).ensure("web") == first
    assert len(engine.calls_of("build")) == builds


@pytest.mark.parametrize(
    "change",
    [
        {"agents": ["codex"]},
        {"packages": ["jq"]},
        {"pypi_agents": lambda names: ["aider-chat==1"]},
        {"agent_binaries": lambda names: ["claude-next"]},
        {"home_links": lambda: ".codex/\n"},
        {"base_image": "debian:trixie-slim"},
    ],
)
def test_every_build_input_is_in_the_hash(tmp_path: Path, change: dict[str, object]) -> None:
    engine = engine_with_base()
    engine.images.append(ImageInfo("sha256:trixie", "debian", "trixie-slim"))
    plain = images(engine, tmp_path).current_hash("web")
    kw = dict(change)
    agents = kw.pop("agents", ("claude",))
    assert images(engine, tmp_path, agents=agents, **kw).current_hash("web") != plain


def test_the_template_build_gets_the_npm_agents_and_their_commands(tmp_path: Path) -> None:
    from containai import agents

    engine = engine_with_base()
    names = ["claude", "aider", "codex"]  # aider is a PyPI agent: no npm command
    ref = images(
        engine,
        tmp_path,
        agents=names,
        agent_packages=agents.npm_packages,
        agent_binaries=agents.npm_binaries,
    ).ensure("web")
    args = engine.build_args[f"containai-template:web-{ref.template_hash}"]
    assert args["AGENT_PACKAGES"] == "@anthropic-ai/claude-code @openai/codex"
    # the commands whose files decide whether the image keeps node (templates/default)
    assert args["AGENT_BINARIES"] == "claude codex"


def test_a_new_base_image_id_is_a_new_build(tmp_path: Path) -> None:
    engine = engine_with_base("sha256:base1")
    before = images(engine, tmp_path).current_hash("web")
    engine.images = [ImageInfo("sha256:base2", "debian", "bookworm-slim")]
    assert images(engine, tmp_path).current_hash("web") != before


def test_template_files_are_in_the_hash(tmp_path: Path) -> None:
    engine = engine_with_base()
    before = images(engine, tmp_path).current_hash("web")
    (tmp_path / "templates" / "web" / "Dockerfile").write_text("FROM x\nRUN true\n")
    assert images(engine, tmp_path).current_hash("web") != before


def test_the_plan_names_the_tag_ensure_uses(tmp_path: Path) -> None:
    engine = engine_with_base()
    service = images(engine, tmp_path)
    planned = service.planned_tag("web")
    assert planned is not None and planned == service.ensure("web").tag
    assert service.planned_tag("nosuch") is None
    engine.up = False
    assert images(engine, tmp_path).planned_tag("web") is None  # no engine: not known


def test_build_progress_sees_each_build_and_its_lines(tmp_path: Path) -> None:
    from collections.abc import Iterator
    from contextlib import contextmanager

    engine = engine_with_base()
    engine.build_output = ["Step 1/2 : FROM x", "Step 2/2 : RUN y"]
    seen: list[str] = []

    @contextmanager
    def display(title: str) -> Iterator[object]:
        seen.append(f"begin {title}")
        yield lambda line, step: seen.append(f"{line} {step}")
        seen.append("end")

    images(engine, tmp_path, build_display=display).build("web")
    assert seen[0].startswith("begin building template 'web' on debian:bookworm-slim")
    assert seen[1:4] == ["Step 1/2 : FROM x None", "Step 2/2 : RUN y None", "end"]
    assert seen[4].startswith("begin adding cai's system layer -> containai:web-")


def test_the_base_id_is_asked_of_both_bases_at_once_and_the_first_present_wins(
    tmp_path: Path,
) -> None:
    """Every cold create and restart checks the base (image.base, else the offline one):
    both in one round trip, image.base preferred when both are here."""
    engine = FakeEngine(
        images=[
            ImageInfo("sha256:offline", "containai-base", "bookworm"),
            ImageInfo("sha256:base1", "debian", "bookworm-slim"),
        ]
    )
    service = images(engine, tmp_path)
    both_in_flight = threading.Barrier(2, timeout=2)  # broken if asked one after the other
    engine.hooks["image"] = lambda _e, n: both_in_flight.wait() if n <= 2 else None
    with_both = service.current_hash("web")
    engine.hooks.clear()
    asked = [c[1] for c in engine.calls_of("image")]
    assert sorted(asked) == ["containai-base:bookworm", "debian:bookworm-slim"]
    engine.images = [i for i in engine.images if i.repository == "containai-base"]
    assert service.current_hash("web") != with_both  # the offline base: another build
    assert service.current_hash("web", "sha256:base1") == with_both


def test_the_hash_used_last_time_is_asked_for_beside_the_bases(tmp_path: Path) -> None:
    """A cold create's image check: the base ids and the image of the hash this machine
    used last time in one round trip (three images in flight at once), no fourth."""
    engine = engine_with_base()
    memo = tmp_path / "memo"
    ref = images(engine, tmp_path, memo_dir=memo).ensure("web")  # built; remembered
    assert (memo / "containai_web.hash").read_text().strip() == ref.template_hash
    engine.calls.clear()
    three_in_flight = threading.Barrier(3, timeout=2)  # broken if one waits for another
    engine.hooks["image"] = lambda _e, _n: three_in_flight.wait()
    assert images(engine, tmp_path, memo_dir=memo).ensure("web") == ref
    engine.hooks.clear()
    asked = sorted(c[1] for c in engine.calls_of("image"))
    assert asked == sorted(["containai-base:bookworm", "debian:bookworm-slim", ref.tag])
    assert not engine.calls_of("build")


@pytest.mark.parametrize(
    "memo_text", ["0" * 16, "not a hash!", "", "\xff", "abc", "ABCDEF0123456789", "z" * 64]
)
def test_a_wrong_or_broken_memo_costs_a_round_trip_never_a_wrong_image(
    tmp_path: Path, memo_text: str
) -> None:
    engine = engine_with_base()
    ref = images(engine, tmp_path).ensure("web")  # built without a memo
    memo = tmp_path / "memo"
    memo.mkdir()
    (memo / "containai_web.hash").write_bytes(memo_text.encode("latin-1"))
    engine.images.append(ImageInfo("sha256:stale", "containai", "web-" + "0" * 16))
    engine.calls.clear()
    assert images(engine, tmp_path, memo_dir=memo).ensure("web") == ref
    assert ref.tag in [c[1] for c in engine.calls_of("image")]  # the engine decided
    assert not engine.calls_of("build")
    assert (memo / "containai_web.hash").read_text().strip() == ref.template_hash


def test_a_guessed_image_without_the_hash_label_is_not_current(tmp_path: Path) -> None:
    """The memo names a tag, but the image there is not cai's build of that hash (a
    retag by hand): built, not taken."""
    engine = engine_with_base()
    memo = tmp_path / "memo"
    ref = images(engine, tmp_path, memo_dir=memo).ensure("web")
    engine.images = [i for i in engine.images if i.reference != ref.tag]
    engine.images.append(ImageInfo("sha256:other", "containai", ref.tag.split(":")[1]))
    builds = len(engine.calls_of("build"))
    assert images(engine, tmp_path, memo_dir=memo).ensure("web") == ref
    assert len(engine.calls_of("build")) == builds + 2  # template and system layer again
