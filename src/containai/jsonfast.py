"""JSON for the hot path, on CPython's C accelerator (``_json``) alone.

``import json`` costs ~8 ms here: its Python layer imports ``re`` (and ``enum``) and
compiles six patterns, although parsing and string quoting run in ``_json``. ``cai
list`` (budget: three times one ``docker ps``) uses these two functions instead;
their output and errors are those of ``json.loads`` and ``json.dumps(obj, indent=2,
default=str)`` (tests/unit/test_jsonfast.py checks that with hypothesis). Anything
unusual (no ``_json``, a non-string key) goes to the ``json`` module itself.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

try:
    _c: Any = importlib.import_module("_json")
except ImportError:  # pragma: no cover - not CPython
    _c = None

_WHITESPACE = " \t\n\r"
_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


class _Context:
    """What the C scanner reads from ``json.JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_CONSTANTS.__getitem__)


_quote: Callable[[str], str] | None = None if _c is None else _c.encode_basestring_ascii
_scan: Callable[[str, int], tuple[Any, int]] | None = (
    None if _c is None else _c.make_scanner(_Context())
)


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WHITESPACE:
        i += 1
    return i


def loads(text: str) -> Any:
    """``json.loads(text)`` for ``str`` input."""
    if _scan is None:
        import json

        return json.loads(text)
    start = _skip(text, 0)
    try:
        value, end = _scan(text, start)
    except StopIteration:
        value, end = None, -1
    if end < 0 or _skip(text, end) != len(text):
        import json

        return json.loads(text)  # raises json's own JSONDecodeError, with its message
    return value


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


class _Unusual(Exception):
    pass


def _encode(obj: Any, level: int, out: list[str], quote: Callable[[str], str]) -> None:
    if isinstance(obj, str):
        out.append(quote(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, int):
        out.append(int.__repr__(obj))
    elif isinstance(obj, float):
        out.append(_float(obj))
    elif isinstance(obj, dict):
        if not obj:
            out.append("{}")
            return
        inner = "\n" + "  " * (level + 1)
        out.append("{")
        first = True
        for key, value in obj.items():
            if not isinstance(key, str):
                raise _Unusual
            out.append(inner if first else "," + inner)
            first = False
            out.append(quote(key))
            out.append(": ")
            _encode(value, level + 1, out, quote)
        out.append("\n" + "  " * level + "}")
    elif isinstance(obj, (list, tuple)):
        if not obj:
            out.append("[]")
            return
        inner = "\n" + "  " * (level + 1)
        out.append("[")
        for index, value in enumerate(obj):
            out.append(inner if index == 0 else "," + inner)
            _encode(value, level + 1, out, quote)
        out.append("\n" + "  " * level + "]")
    else:
        out.append(quote(str(obj)))  # default=str


def dumps(obj: Any) -> str:
    """``json.dumps(obj, indent=2, default=str)``."""
    if _quote is not None:
        out: list[str] = []
        try:
            _encode(obj, 0, out, _quote)
        except _Unusual:
            pass
        else:
            return "".join(out)
    import json

    return json.dumps(obj, indent=2, default=str)
