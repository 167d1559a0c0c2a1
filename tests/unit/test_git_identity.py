"""The host's git identity for a new container: user.name/user.email only, one line of
printable text each, or nothing."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from containai.domain.git_identity import EMAIL_ENV, MAX_LENGTH, NAME_ENV, clean, identity_env
from containai.services.identity import git_identity_env
from tests.fakes import FakeHost

UNSAFE_CATEGORIES = ("Cc", "Zl", "Zp", "Cs")


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("Jo Tester", "Jo Tester"),
        ("  Jo Tester \t", "Jo Tester"),
        ('Jo "Q" O\'Brien \\ x', 'Jo "Q" O\'Brien \\ x'),
        ("Zoë Ångström 山田", "Zoë Ångström 山田"),
        ("-n", "-n"),  # an option-like value is a value (git gets it as one argument)
        ("jo@example.invalid", "jo@example.invalid"),
        ("Jo\nTester", None),
        ("Jo\rTester", None),
        ("Jo\x00", None),
        ("Jo\x1b[31mRed", None),
        ("Jo\x85x", None),
        ("Jo\u2028x", None),
        ("Jo\u202eoT", None),
        ("Jo <jo@evil>", None),
        ("", None),
        ("   ", None),
        (None, None),
        ("x" * (MAX_LENGTH + 1), None),
    ],
)
def test_clean(value: str | None, kept: str | None) -> None:
    assert clean(value) == kept


@given(st.text())
def test_clean_never_lets_a_control_character_through(value: str) -> None:
    out = clean(value)
    if out is not None:
        assert out == out.strip() and 0 < len(out) <= MAX_LENGTH
        assert not any(unicodedata.category(c) in UNSAFE_CATEGORIES for c in out)
        assert "<" not in out and ">" not in out
        assert out in value


@given(st.text(st.characters(blacklist_categories=("Cc", "Zl", "Zp", "Cs", "Zs")), min_size=1))
def test_clean_keeps_printable_text(value: str) -> None:
    value = value[:MAX_LENGTH]
    expect = (
        None
        if any(c in "<>\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069" for c in value)
        else value.strip() or None
    )
    assert clean(value) == expect


def test_identity_env_leaves_out_what_is_missing_or_unsafe() -> None:
    assert identity_env("Jo", "jo@x") == {NAME_ENV: "Jo", EMAIL_ENV: "jo@x"}
    assert identity_env(None, "jo@x") == {EMAIL_ENV: "jo@x"}
    assert identity_env("Jo\nEvil", None) == {}


def test_service_reads_the_host() -> None:
    host = FakeHost(identity=("Jo Tester", "jo@example.invalid"))
    assert git_identity_env(host) == {NAME_ENV: "Jo Tester", EMAIL_ENV: "jo@example.invalid"}
    assert git_identity_env(FakeHost()) == {}
