from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from containai.domain.errors import Failed
from containai.domain.naming import (
    UNMANAGED,
    Owner,
    branch_leaf,
    choose_name,
    collision_candidates,
    container_name,
    hostname_for,
    name_parts,
    reset_volume_name,
    sanitize_part,
)
from containai.domain.validation import validate_volume_name

NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
VOLUME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}")

# text that exercises the interesting characters: ASCII, dashes, separators, unicode
name_text = st.text(
    alphabet=st.sampled_from(list("aZ09-_./ É€ßİKz-")) | st.characters(),
    max_size=80,
)


@pytest.mark.parametrize(
    ("text", "fallback", "expected"),
    [
        ("MyApp", "repo", "myapp"),
        ("my_app", "repo", "myapp"),
        ("Café", "repo", "caf"),
        ("my.app", "repo", "myapp"),
        ("a--b---c", "repo", "a-b-c"),
        ("--a--", "repo", "a"),
        ("a_-_b", "repo", "a-b"),  # dropping '_' makes a run of '-' that collapses
        ("---", "repo", "repo"),
        ("", "branch", "branch"),
        ("___...", "branch", "branch"),
        ("日本語", "repo", "repo"),
        ("Ünïcödé-Ok", "repo", "ncd-ok"),
        ("\u212a", "repo", "k"),  # KELVIN SIGN lowercases to ASCII 'k'
    ],
)
def test_sanitize_part(text: str, fallback: str, expected: str) -> None:
    assert sanitize_part(text, fallback) == expected


@pytest.mark.parametrize(
    ("branch", "leaf"),
    [
        ("feature/oauth", "oauth"),
        ("main", "main"),
        ("a/b/c", "c"),
        ("feature/", ""),
        ("detached", "detached"),
    ],
)
def test_branch_leaf(branch: str, leaf: str) -> None:
    assert branch_leaf(branch) == leaf


@pytest.mark.parametrize(
    ("repo", "branch", "expected"),
    [
        ("myapp", "main", "myapp-main"),
        ("myapp", "feature/oauth", "myapp-oauth"),
        ("my_app", "main", "myapp-main"),
        ("Café", "main", "caf-main"),
        ("myapp", "detached", "myapp-detached"),
        ("myapp", "nogit", "myapp-nogit"),
        ("MyApp", "Feature/OAuth_2", "myapp-oauth2"),
        ("my.app.v2", "release/1.2.3", "myappv2-123"),
        ("___", "main", "repo-main"),
        ("myapp", "feature/", "myapp-branch"),
        ("", "", "repo-branch"),
        ("---", "---", "repo-branch"),
        ("日本", "機能", "repo-branch"),
        # exactly 24: no shortening
        ("a" * 11, "b" * 12, "a" * 11 + "-" + "b" * 12),
        # long repo, short branch: only the repo is cut
        ("a" * 40, "main", "a" * 19 + "-main"),
        # short repo, long branch: only the leaf is cut
        ("app", "feature/" + "b" * 40, "app-" + "b" * 20),
        # both long and equal: alternate, the tie goes against the repo -> 11 + 12
        ("a" * 30, "b" * 30, "a" * 11 + "-" + "b" * 12),
        # both long, repo longer
        ("a" * 50, "b" * 20, "a" * 11 + "-" + "b" * 12),
        # both long, branch longer
        ("a" * 20, "b" * 50, "a" * 11 + "-" + "b" * 12),
        # a cut that ends on '-' is trimmed again
        ("abcdefghijklmnopqrs-tuvwxyz", "main", "abcdefghijklmnopqrs-main"),
        ("abcdefghijklmnopqr-stuvwx", "main", "abcdefghijklmnopqr-main"),
        ("app", "fix/abcdefghijklmnopqrs-tuvwx", "app-abcdefghijklmnopqrs"),
    ],
)
def test_container_name_examples(repo: str, branch: str, expected: str) -> None:
    assert container_name(repo, branch) == expected


def test_tie_shortens_repo_first() -> None:
    # 12 + 1 + 12 = 25 > 24: the tie goes against the repo part
    assert container_name("r" * 12, "b" * 12) == "r" * 11 + "-" + "b" * 12
    # 13 + 1 + 11 = 25: repo is longer, it is cut
    assert container_name("r" * 13, "b" * 11) == "r" * 12 + "-" + "b" * 11
    # 11 + 1 + 13 = 25: branch is longer, it is cut
    assert container_name("r" * 11, "b" * 13) == "r" * 11 + "-" + "b" * 12


@given(repo=name_text, branch=name_text)
def test_container_name_properties(repo: str, branch: str) -> None:
    name = container_name(repo, branch)
    assert 1 <= len(name) <= 24
    assert NAME_RE.fullmatch(name), name
    assert "--" not in name
    assert container_name(repo, branch) == name  # deterministic
    repo_part, leaf_part = name_parts(repo, branch)
    assert name == f"{repo_part}-{leaf_part}"
    assert repo_part and leaf_part
    # idempotent: naming again from the result's own parts changes nothing
    assert container_name(repo_part, leaf_part) == name
    # a part is only ever cut, never changed otherwise
    assert sanitize_part(repo, "repo").startswith(repo_part)
    assert sanitize_part(branch_leaf(branch), "branch").startswith(leaf_part)


@given(repo=name_text, branch=name_text)
def test_container_name_keeps_short_names_whole(repo: str, branch: str) -> None:
    full_repo = sanitize_part(repo, "repo")
    full_leaf = sanitize_part(branch_leaf(branch), "branch")
    if len(full_repo) + 1 + len(full_leaf) <= 24:
        assert container_name(repo, branch) == f"{full_repo}-{full_leaf}"
    else:
        assert len(container_name(repo, branch)) >= 23  # cut to 24, maybe one '-' trimmed


def test_collision_candidates_short_base() -> None:
    candidates = collision_candidates("myapp-main")
    assert candidates[:3] == ["myapp-main", "myapp-main-2", "myapp-main-3"]
    assert candidates[-1] == "myapp-main-99"
    assert len(candidates) == 99


def test_collision_candidates_long_base_is_cut_and_trimmed() -> None:
    base = "abcdefghijklmnopqrstu-xy"  # 24 characters
    candidates = collision_candidates(base)
    assert candidates[0] == base
    # cut to 22 characters ('...u-'), trailing '-' trimmed, then the suffix
    assert candidates[1] == "abcdefghijklmnopqrstu-2"
    assert candidates[10] == "abcdefghijklmnopqrstu-11"  # cut to 21, nothing to trim
    assert candidates[-1] == "abcdefghijklmnopqrstu-99"


def test_collision_candidates_never_repeat_the_base() -> None:
    base = "a" * 21 + "-2"  # its own '-2' candidate would be itself
    candidates = collision_candidates(base)
    assert candidates[0] == base
    assert candidates.count(base) == 1
    assert candidates[1] == "a" * 21 + "-3"
    assert len(candidates) == 98


@given(repo=name_text, branch=name_text)
def test_collision_candidates_properties(repo: str, branch: str) -> None:
    base = container_name(repo, branch)
    candidates = collision_candidates(base)
    assert candidates[0] == base
    assert len(set(candidates)) == len(candidates)
    assert len(candidates) >= 98
    for candidate in candidates:
        assert 1 <= len(candidate) <= 24
        assert NAME_RE.fullmatch(candidate), candidate
        assert "--" not in candidate


def test_choose_name_free_base() -> None:
    asked: list[str] = []

    def owner_of(name: str) -> Owner:
        asked.append(name)
        return None

    assert choose_name("myapp-main", "/src/myapp", owner_of) == "myapp-main"
    assert asked == ["myapp-main"]


def test_choose_name_reuses_own_container() -> None:
    table: dict[str, Owner] = {"myapp-main": "/src/myapp"}
    assert choose_name("myapp-main", "/src/myapp", table.get) == "myapp-main"


def test_choose_name_skips_other_workspace_and_unmanaged() -> None:
    table: dict[str, Owner] = {
        "myapp-main": "/other/myapp",
        "myapp-main-2": UNMANAGED,
        "myapp-main-3": "",  # managed but without a workspace label
    }
    assert choose_name("myapp-main", "/src/myapp", table.get) == "myapp-main-4"


def test_choose_name_reuses_own_suffixed_container() -> None:
    table: dict[str, Owner] = {"myapp-main": "/other/myapp", "myapp-main-2": "/src/myapp"}
    assert choose_name("myapp-main", "/src/myapp", table.get) == "myapp-main-2"


def test_choose_name_unmanaged_with_matching_label_is_taken() -> None:
    # the caller reports an unmanaged container as UNMANAGED whatever its labels say
    table: dict[str, Owner] = {"myapp-main": UNMANAGED}
    assert choose_name("myapp-main", "/src/myapp", table.get) == "myapp-main-2"


def test_choose_name_all_taken() -> None:
    with pytest.raises(Failed) as info:
        choose_name("myapp-main", "/src/myapp", lambda _name: "/other")
    message = str(info.value)
    assert "'myapp-main'" in message
    assert "--container NAME" in message
    assert "\n" not in message
    assert info.value.exit_code == 1


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("myapp-main", "myapp-main"),
        ("My_App.v2", "my-app-v2"),
        ("a__b", "a-b"),
        ("-x-", "x"),
        ("___", "cai"),
        ("", "cai"),
        ("Ünï", "n"),
        ("a" * 62 + "_b", "a" * 62),
        ("b" * 70, "b" * 63),
    ],
)
def test_hostname_for(name: str, expected: str) -> None:
    assert hostname_for(name) == expected


@given(st.text(max_size=100))
def test_hostname_is_rfc1123_label(name: str) -> None:
    label = hostname_for(name)
    assert 1 <= len(label) <= 63
    assert NAME_RE.fullmatch(label), label


def test_reset_volume_name_example() -> None:
    now = datetime(2026, 11, 27, 9, 34, 31, 999_999, tzinfo=timezone(timedelta(hours=1)))
    assert (
        reset_volume_name("MyApp", "feature/OAuth", now, "0a1b2c")
        == "myapp-oauth-20261127083431-0a1b2c"
    )


def test_reset_volume_name_is_not_cut_to_24() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    name = reset_volume_name("a" * 30, "b" * 30, now, "ffffff")
    assert name == "a" * 30 + "-" + "b" * 30 + "-20260102030405-ffffff"


def test_reset_volume_name_fallbacks() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert reset_volume_name("___", "nogit", now, "abcdef") == "repo-nogit-20260102030405-abcdef"
    assert reset_volume_name("x", "", now, "abcdef") == "x-branch-20260102030405-abcdef"


def test_reset_volume_name_cut_to_255() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    name = reset_volume_name("a" * 300, "b" * 300, now, "abcdef")
    assert len(name) == 255
    assert name.endswith("-20260102030405-abcdef")
    assert validate_volume_name(name) == name


@pytest.mark.parametrize("rand_hex", ["", "abcde", "abcdefa", "ABCDEF", "ghijkl", "12345\n"])
def test_reset_volume_name_rejects_bad_hex(rand_hex: str) -> None:
    with pytest.raises(ValueError):
        reset_volume_name("a", "b", datetime.now(UTC), rand_hex)


def test_reset_volume_name_rejects_naive_time() -> None:
    with pytest.raises(ValueError):
        reset_volume_name("a", "b", datetime(2026, 1, 1), "abcdef")


@given(
    repo=name_text,
    branch=name_text | st.text(min_size=200, max_size=400),
    now=st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7, minutes=-30))]),
    ),
    rand_hex=st.text(alphabet="0123456789abcdef", min_size=6, max_size=6),
)
def test_reset_volume_name_properties(repo: str, branch: str, now: datetime, rand_hex: str) -> None:
    name = reset_volume_name(repo, branch, now, rand_hex)
    assert VOLUME_RE.fullmatch(name), name
    assert ".." not in name
    stamp = now.astimezone(UTC)
    assert name.endswith(f"-{stamp.year:04d}{stamp:%m%d%H%M%S}-{rand_hex}")
    assert reset_volume_name(repo, branch, now, rand_hex) == name
