"""containai/jsonfast.py gives exactly what the json module gives."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from containai import jsonfast

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
DOCS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _same(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=300, deadline=None)
@given(DOCS)
def test_dumps_is_json_dumps_indent_2(doc: Any) -> None:
    assert jsonfast.dumps(doc) == json.dumps(doc, indent=2, default=str)


@settings(max_examples=300, deadline=None)
@given(DOCS, st.sampled_from(["", " ", "\n", " \t\r\n "]))
def test_loads_is_json_loads(doc: Any, pad: str) -> None:
    text = pad + json.dumps(doc) + pad
    assert _same(jsonfast.loads(text), json.loads(text))


def test_other_objects_are_written_as_their_str_and_tuples_as_lists() -> None:
    class Thing:
        def __str__(self) -> str:
            return "thing é"

    doc = {"a": Thing(), "b": (1, 2), "c": {1: "int key"}}
    assert jsonfast.dumps(doc) == json.dumps(doc, indent=2, default=str)


@pytest.mark.parametrize("text", ["", "  ", "{", "[1,]", "1 2", '{"a": 1} x', "nul", "'a'"])
def test_bad_json_raises_json_s_own_error(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as ours:
        jsonfast.loads(text)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(text)
    assert str(ours.value) == str(theirs.value)
