"""Properties of the devcontainer.json normalisation (hypothesis): lifecycle commands,
forwarded ports, variables, and the parser's only failure being a ConfigError."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from containai.adapters import devcontainer_file as F
from containai.domain import devcontainer as D
from containai.domain.devcontainer_vars import Substitution, container_substitute
from containai.domain.errors import ConfigError

SRC = "/w/.devcontainer/devcontainer.json"
# no NUL, no lone surrogate: both are refused (test_devcontainer_attacks, _apply)
text = st.text(st.characters(exclude_characters="\0", exclude_categories=("Cs",)), max_size=30)
program = text.filter(bool)
argv = st.lists(text, min_size=1, max_size=5).filter(lambda a: bool(a[0]))
single = st.one_of(text, argv)


def norm(value: Any) -> list[list[str]]:
    return D.normalize_command(value, source=SRC, where="postCreateCommand")


@given(text)
def test_a_string_runs_in_sh_or_not_at_all(command: str) -> None:
    expected = [[D.SHELL, "-c", command]] if command.strip() else []
    assert norm(command) == expected


@given(argv)
def test_an_array_is_the_argv_itself(args: list[str]) -> None:
    assert norm(args) == [args]


@given(st.dictionaries(text, single, max_size=5))
def test_an_object_is_its_entries_in_order(commands: dict[str, Any]) -> None:
    expected = [argv for value in commands.values() for argv in norm(value)]
    assert norm(commands) == expected
    assert all(isinstance(a, list) and all(isinstance(s, str) for s in a) for a in expected)


@given(
    st.one_of(
        st.integers(),
        st.floats(),
        st.booleans(),
        st.lists(st.one_of(st.integers(), st.none()), min_size=1),
        st.dictionaries(text, st.one_of(st.integers(), st.dictionaries(text, text)), min_size=1),
    )
)
def test_anything_else_is_a_config_error(value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        norm(value)
    assert "\n" not in str(info.value) and SRC in str(info.value)


ports = st.integers(1, 65535)


@given(st.lists(st.one_of(ports, ports.map(str), ports.map(lambda p: f"localhost:{p}"))))
def test_ports_keep_order_without_duplicates(items: list[int | str]) -> None:
    got, warnings = D.normalize_ports(items, source=SRC)
    wanted: list[int] = []
    for item in items:
        port = int(str(item).rpartition(":")[2])
        if port not in wanted:
            wanted.append(port)
    assert got == wanted and warnings == []


hosts = st.text("abcdxyz0123-", min_size=1, max_size=10)


@given(st.lists(hosts, min_size=1, max_size=5), ports)
def test_other_hosts_are_warned_not_forwarded(hosts: list[str], port: int) -> None:
    got, warnings = D.normalize_ports([f"{h}:{port}" for h in hosts], source=SRC)
    assert got == [] and len(warnings) == len(hosts)


@given(st.one_of(st.integers(max_value=0), st.integers(min_value=65536)))
def test_out_of_range_ports_are_refused(port: int) -> None:
    with pytest.raises(ConfigError):
        D.normalize_ports([port], source=SRC)


@given(text.filter(lambda s: "${" not in s))
def test_values_without_variables_are_untouched(value: str) -> None:
    sub = Substitution(source=SRC, workspace="/w")
    assert sub(value, "containerEnv.X") == value
    assert container_substitute(value, {"A": "b"}) == value
    assert sub.warnings == []


@given(st.text("ABCXYZ_019", min_size=1, max_size=12).map(lambda s: "V" + s), st.text(min_size=8))
def test_local_env_never_yields_the_host_value(name: str, secret: str) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(name, secret.replace("\0", "") or "x" * 8)
        sub = Substitution(source=SRC, workspace="/w")
        assert sub(f"<${{localEnv:{name}}}>", "containerEnv.X") == "<>"
        assert sub(f"<${{localEnv:{name}:d}}>", "containerEnv.X") == "<d>"
        assert len(sub.warnings) == 1


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_the_parser_fails_only_with_a_config_error(data: str | bytes) -> None:
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    try:
        F.parse(SRC, raw)
    except ConfigError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=60, deadline=None)
@given(
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=10,
    ),
    st.sampled_from(
        ["image", "build", "containerEnv", "remoteEnv", "postCreateCommand", "forwardPorts"]
    ),
)
def test_interpret_fails_only_with_a_config_error(value: Any, key: str) -> None:
    try:
        spec = D.interpret({key: value}, source=SRC, workspace="/w")
    except ConfigError as exc:
        assert "\n" not in str(exc) and SRC in str(exc)
    else:
        assert all("\n" not in w for w in spec.warnings)
