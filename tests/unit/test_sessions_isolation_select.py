"""Pure rules: session parsing, the isolation ladder, engine/context selection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from containai.domain.errors import EngineUnreachable, Failed
from containai.domain.isolation import (
    GVISOR,
    ISOLATING,
    LADDER,
    PLAIN,
    SYSBOX,
    choose_runtime,
    isolates,
    tier,
)
from containai.domain.sessions import count_established, count_terminals, parse_probe
from containai.services.engine_select import select_context

TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:08AE 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1
   1: 0200000A:08AE 0100000A:C350 01 00000000:00000000 00:00000000 00000000     0        0 2
   2: 0200000A:08AE 0100000A:C351 01 00000000:00000000 00:00000000 00000000     0        0 3
   3: 0200000A:1F90 0100000A:C352 01 00000000:00000000 00:00000000 00000000     0        0 4
   4: 0200000A:08AE 0100000A:C353 06 00000000:00000000 00:00000000 00000000     0        0 5
"""
TCP6 = """\
  sl  local_address                         remote_address                        st
   0: 00000000000000000000000001000000:08AE 00000000000000000000000001000000:D000 01 0
"""


def test_counts_only_established_connections_to_the_ssh_port() -> None:
    assert count_established(TCP.splitlines()) == 2  # listen, other port, TIME_WAIT excluded
    assert count_established(TCP6.splitlines()) == 1
    assert count_established(TCP.splitlines(), port=0x1F90) == 1


def test_terminals_exclude_ptmx() -> None:
    assert count_terminals(["ptmx", "0", "1", "", "3"]) == 3
    assert count_terminals(["ptmx"]) == 0
    assert count_terminals(["*"]) == 0  # an unmatched glob


def test_parse_probe() -> None:
    found = parse_probe(TCP + TCP6 + "--pts--\nptmx\n0\n1\n")
    assert (found.ssh_connections, found.active_terminals, found.any) == (3, 2, True)
    none = parse_probe("--pts--\nptmx\n")
    assert not none.any


@given(st.text())
def test_parse_probe_never_raises(text: str) -> None:
    found = parse_probe(text)
    assert found.ssh_connections >= 0 and found.active_terminals >= 0


@pytest.mark.parametrize(
    ("available", "expected"),
    [
        ({"runc", "runsc", "sysbox-runc"}, "sysbox-runc"),
        ({"runc", "runsc"}, "runsc"),
        ({"runc"}, "runc"),
    ],
)
def test_auto_picks_the_strongest(available: set[str], expected: str) -> None:
    runtime, warning = choose_runtime("auto", available)
    assert runtime == expected
    assert (warning is not None) == (expected == "runc")
    assert tier(available) == expected


def test_the_ladders_rungs_by_name() -> None:
    assert (SYSBOX, GVISOR, PLAIN) == LADDER == ("sysbox-runc", "runsc", "runc")
    assert ISOLATING == ("sysbox-runc", "runsc")
    assert [r for r in (*LADDER, "kata", "") if isolates(r)] == list(ISOLATING)


def test_explicit_runtime_must_exist() -> None:
    assert choose_runtime("runc", {"runc", "runsc"}) == ("runc", None)
    with pytest.raises(Failed, match=r"runsc.*not available"):
        choose_runtime("runsc", {"runc"})
    with pytest.raises(Failed):
        choose_runtime("auto", set())


def _select(
    flag: str | None = None,
    env: dict[str, str] | None = None,
    configured: str | None = None,
    existing: set[str] | None = None,
) -> tuple[str | None, str]:
    existing = existing if existing is not None else {"default"}
    sel = select_context(flag, env or {}, configured, lambda n: n in existing, lambda: "dflt")
    return sel.context, sel.source


def test_context_selection_order() -> None:
    everything = {"a", "b", "c", "containai-docker"}
    assert _select("a", {"CONTAINAI_CONTEXT": "b"}, "c", everything) == ("a", "flag")
    assert _select(None, {"CONTAINAI_CONTEXT": "b"}, "c", everything) == ("b", "env")
    assert _select(None, {}, "c", everything) == ("c", "config")
    assert _select(None, {}, None, everything) == ("containai-docker", "dedicated")
    assert _select(None, {}, None, {"default"}) == ("dflt", "docker")


def test_unknown_context_is_exit_3_naming_it() -> None:
    with pytest.raises(EngineUnreachable, match=r"'nope'.*--context"):
        _select("nope")
    with pytest.raises(EngineUnreachable, match="CONTAINAI_CONTEXT"):
        _select(None, {"CONTAINAI_CONTEXT": "nope"})
    assert EngineUnreachable("x").exit_code == 3
