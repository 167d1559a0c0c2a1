"""Properties of how remoteEnv is rendered (domain/devcontainer_run.py): for any names
and values a repository writes, the file sshd's SetEnv line is made from holds one
entry a line and nothing else, and the lifecycle commands' ``env`` prefix sets exactly
the values given, through the real ``env`` program."""

from __future__ import annotations

import os
import subprocess

from hypothesis import given, settings
from hypothesis import strategies as st

from containai.domain import devcontainer_run as R

SRC = "/w/.devcontainer/devcontainer.json"
NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)
ANY_NAMES = st.one_of(NAMES, st.text(max_size=12))
VALUES = st.one_of(st.none(), st.text(max_size=40))


def parse_like_the_entrypoint(data: bytes) -> dict[str, str | None]:
    """What the entrypoint's loop reads back (first entry of a name wins)."""
    out: dict[str, str | None] = {}
    for line in data.decode().split("\n")[:-1]:
        if line.startswith("-"):
            out.setdefault(line[1:], None)
        else:
            name, _, value = line.partition("=")
            out.setdefault(name, value)
    return out


@given(st.dictionaries(ANY_NAMES, VALUES, max_size=8))
def test_the_file_holds_exactly_the_applied_entries(env: dict[str, str | None]) -> None:
    data, warnings = R.render_remote_env(SRC, env)
    applied = R.applied_remote_env(env)
    assert parse_like_the_entrypoint(data) == applied
    assert data.count(b"\n") == len(applied)  # one line per entry: no value breaks a line
    for ch in (b'"', b"\\", b"\r", b"\0"):
        assert ch not in data
    assert len(warnings) == len(env) - len(applied)
    assert all("\n" not in w for w in warnings)


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(
        NAMES.filter(lambda n: n not in ("PATH", "HOME", "DROP")),
        st.one_of(
            st.none(),
            st.text(
                alphabet=st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)),
                max_size=30,
            ),
        ),
        max_size=6,
    )
)
def test_env_prefix_sets_exactly_these_values(env: dict[str, str | None]) -> None:
    base = {"PATH": os.environ["PATH"], "DROP": "keep", **{k: "before" for k in env}}
    proc = subprocess.run(
        R.env_argv(env, ["env", "-0"]), env=base, capture_output=True, check=True, timeout=10
    )
    seen = dict(
        item.split("=", 1)
        for item in proc.stdout.decode("utf-8", "surrogateescape").split("\0")
        if item
    )
    for name, value in env.items():
        if value is None:
            assert name not in seen
        else:
            assert seen[name] == value
    assert seen["DROP"] == "keep"


@given(st.text(min_size=1, max_size=10).filter(lambda s: "\0" not in s))
def test_a_program_name_with_an_equals_sign_is_still_the_program(name: str) -> None:
    argv = R.env_argv({"A": "1"}, [f"x={name}", "arg"])
    assert argv[-2:] == [f"x={name}", "arg"]
    assert 'exec "$@"' in argv
