from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from containai.domain.archive_rules import Member, check_members, member_problem, normalize
from containai.domain.errors import Failed


def f(name: str) -> Member:
    return Member(name, "file")


def d(name: str) -> Member:
    return Member(name, "dir")


def link(name: str, target: str) -> Member:
    return Member(name, "symlink", target)


def hard(name: str, target: str) -> Member:
    return Member(name, "hardlink", target)


def refused(members: list[Member]) -> str:
    with pytest.raises(Failed) as info:
        check_members(members, source="backup.tgz")
    message = str(info.value)
    assert info.value.exit_code == 1
    assert "\n" not in message
    assert "backup.tgz" in message
    assert "nothing was changed" in message
    return message


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (".", ""),
        ("./", ""),
        ("./a", "a"),
        ("././a/./b/", "a/b"),
        ("a//b", "a/b"),
        ("a/", "a"),
        ("..a/b..", "..a/b.."),
        ("", None),
        ("/etc/passwd", None),
        ("a/../b", None),
        ("..", None),
        ("./../x", None),
        ("a\x00b", None),
    ],
)
def test_normalize(name: str, expected: str | None) -> None:
    assert normalize(name) == expected


def test_typical_export_is_accepted() -> None:
    check_members(
        [
            d("./"),
            d("./.claude"),
            f("./.claude/settings.json"),
            f("./.claude.json"),
            link("./.claude/current", "settings.json"),
            link("./bin/sibling", "../.claude"),
            link("./root-link", "."),
            d("./bin"),
            f("./bin/tool"),
            f("./bin/tool2"),
            d("a"),
            link("a/b/c/up", "../../.."),  # resolves to the root itself: inside
        ]
    )


def test_empty_archive_is_accepted() -> None:
    check_members([])


@pytest.mark.parametrize(
    ("members", "bad", "why"),
    [
        ([f("/etc/passwd")], "'/etc/passwd'", "absolute path"),
        ([d("."), f("a/../../etc/x")], "'a/../../etc/x'", "'..'"),
        ([f("..")], "'..'", "'..'"),
        ([f("")], "''", "empty name"),
        ([f("a\x00b")], "'a\\x00b'", "NUL"),
        ([Member("dev/null", "device")], "'dev/null'", "device"),
        ([Member("pipe", "fifo")], "'pipe'", "FIFO"),
        ([Member("sock", "socket")], "'sock'", "socket"),
        ([Member("odd", "other")], "'odd'", "not a file"),
        ([link("x", "/etc/passwd")], "'x'", "absolute path '/etc/passwd'"),
        ([link("x", "..")], "'x'", "outside"),
        ([link("a/x", "../../etc")], "'a/x'", "outside"),
        ([link("a/x", "b/../../..")], "'a/x'", "outside"),
        ([link("x", "")], "'x'", "empty target"),
        # every hard link, wherever it points (cai export writes them as files)
        ([hard("h", "/etc/shadow")], "'h'", "is a hard link"),
        ([hard("h", "../x")], "'h'", "is a hard link"),
        ([hard("h", "later"), f("later")], "'h'", "is a hard link"),
        ([d("dir"), hard("h", "dir")], "'h'", "is a hard link"),
        ([hard("h", ".")], "'h'", "is a hard link"),
        ([f("a"), hard("h", "a")], "'h'", "hard links are not allowed"),
        ([f("./bin/tool"), hard("./bin/tool2", "./bin/tool")], "'./bin/tool2'", "hard link"),
        ([link(".", "x")], "'.'", "root"),
        ([f("./")], "'./'", "root"),
        # written through a symlink, in either order
        ([link("l", "sub"), f("l/evil")], "'l/evil'", "below the symlink 'l'"),
        ([f("l/evil"), link("l", "sub")], "'l/evil'", "below the symlink 'l'"),
        ([link("./l", "/etc"), f("./l/passwd")], "'./l'", "absolute"),
        # chains: each link stays inside lexically, together they leave
        ([link("x/l1", ".."), link("l2", "x/l1/..")], "'l2'", "outside"),
        ([link("l2", "x/l1/.."), link("x/l1", "..")], "'l2'", "outside"),
        ([link("a", "b"), link("b", "a")], "'a'", "loops"),
        ([link("self", "self")], "'self'", "loops"),
        ([link("up", "../x"), link("ok", "up")], "'up'", "outside"),
    ],
)
def test_refused(members: list[Member], bad: str, why: str) -> None:
    message = refused(members)
    assert f"member {bad}" in message
    assert why in message


def test_first_bad_member_is_named() -> None:
    message = refused([f("ok"), f("/abs"), Member("dev", "device")])
    assert "'/abs'" in message and "'dev'" not in message


def test_member_problem_directly() -> None:
    assert member_problem(f("a/b"), {}) is None
    assert member_problem(f("a/b"), {"a": "elsewhere"}) == "lies below the symlink 'a'"
    assert member_problem(link("a", "elsewhere"), {"a": "elsewhere"}) is None
    assert member_problem(hard("h", "a"), {}) == (
        "is a hard link (to 'a'); hard links are not allowed"
    )


def test_check_members_accepts_any_iterable() -> None:
    check_members(iter([d("."), f("a")]))
    check_members(m for m in [f("x")])


segment = st.sampled_from(["a", "b", ".", "..", "", "x.y", "..z", "c d"])
paths = st.lists(segment, min_size=1, max_size=6).map("/".join)
kinds = st.sampled_from(["file", "dir", "symlink", "hardlink"])


@given(path=paths, prefix=st.sampled_from(["", "./", "/"]), kind=kinds)
def test_dotdot_or_absolute_is_always_refused(path: str, prefix: str, kind: str) -> None:
    name = prefix + path
    member = Member(name, kind, "a")  # type: ignore[arg-type]
    unsafe = name == "" or name.startswith("/") or ".." in name.split("/")
    if unsafe:
        with pytest.raises(Failed):
            check_members([f("a"), member])
        assert member_problem(member, {}) is not None
    else:
        assert normalize(name) is not None


@given(
    directory=st.lists(st.sampled_from(["a", "b", "c"]), max_size=4),
    target=st.lists(st.sampled_from(["a", "b", "..", "."]), min_size=1, max_size=6),
)
def test_symlink_target_inside_iff_lexically_inside(
    directory: list[str], target: list[str]
) -> None:
    name = "/".join([*directory, "link"])
    depth = len(directory)
    escapes = False
    for part in target:
        if part == "..":
            depth -= 1
            if depth < 0:
                escapes = True
                break
        elif part != ".":
            depth += 1
    problem = member_problem(link(name, "/".join(target)), {})
    assert (problem is not None) == escapes, (name, target, problem)


@given(st.lists(st.tuples(paths, kinds, paths), max_size=8))
def test_accepted_archives_have_only_safe_members(raw: list[tuple[str, str, str]]) -> None:
    members = [Member(n, k, t) for n, k, t in raw]  # type: ignore[arg-type]
    try:
        check_members(members)
    except Failed:
        return
    for member in members:
        assert not member.name.startswith("/")
        assert ".." not in member.name.split("/")
        assert member.kind != "hardlink"
        if member.kind == "symlink":
            assert not member.linkname.startswith("/")


# Issue 13 items 6 and 8: names a file system cannot hold are refused before the copy;
# the space an archive takes once expanded is checked against the engine's free space.
def test_names_longer_than_a_file_system_holds_are_refused() -> None:
    from containai.domain.archive_rules import NAME_BYTES_MAX, PATH_BYTES_MAX

    with pytest.raises(Failed, match="nothing was changed") as err:
        check_members([Member("./", "dir"), Member("a" * 10_000, "file")], source="x.tgz")
    assert len(str(err.value)) < 400 and "\n" not in str(err.value)
    assert "longer than" in str(err.value)
    with pytest.raises(Failed, match="name component longer"):
        check_members([Member("d/" + "b" * (NAME_BYTES_MAX + 1), "file")])
    deep = "/".join(["c" * 200] * (PATH_BYTES_MAX // 201 + 1))
    with pytest.raises(Failed, match="path longer"):
        check_members([Member(deep, "file")])
    check_members([Member("d/" + "b" * NAME_BYTES_MAX, "file")])


def test_expanded_size_and_the_space_check() -> None:
    from containai.domain.archive_rules import expanded_bytes, space_problem

    members = [Member("./", "dir"), Member("a", "file", size=1), Member("b", "file", size=8193)]
    assert expanded_bytes(members) == 4096 + 4096 + 3 * 4096
    gib = 1024**3
    assert space_problem(gib, 10 * gib, 20 * gib) is None
    problem = space_problem(2 * gib, 2 * gib, 20 * gib)
    assert problem is not None and "2.0GB" in problem and "must stay free" in problem


def test_staging_names() -> None:
    from containai.domain.archive_rules import is_staging

    assert is_staging("./.containai-import-abc/x")
    assert is_staging(".containai-import-abc.done")
    assert not is_staging("./home/.containai-import-abc")
    assert not is_staging("./")
