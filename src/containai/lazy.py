"""Deferred imports for the hot path (DESIGN decision 2).

``shutil = lazy_module("shutil")`` binds a stand-in that imports the real module on
first attribute access, so a module can keep writing ``shutil.rmtree(...)`` while
``cai exec`` on a running container never pays for modules it does not touch.
Type checkers see the real import (``if TYPE_CHECKING: import shutil``).
"""

from __future__ import annotations

import importlib
import sys

TYPE_CHECKING = False  # `typing` costs ~4 ms with `re`; mypy and ruff read these
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any


def sha256_hex(text: str | bytes) -> str:
    """``hashlib.sha256(data).hexdigest()`` (``str`` as UTF-8) from the C module alone:
    ``hashlib`` loads OpenSSL (~3 ms) for what names a lock, a context or a socket."""
    try:
        sha256 = importlib.import_module("_sha256").sha256
    except ImportError:  # pragma: no cover - CPython always has it
        from hashlib import sha256
    digest: str = sha256(text if isinstance(text, bytes) else text.encode()).hexdigest()
    return digest


class _LazyModule:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        module: ModuleType = sys.modules.get(self._name) or importlib.import_module(self._name)
        return getattr(module, attr)


def lazy_module(name: str) -> Any:
    """A stand-in for module ``name`` that imports it on first use."""
    return _LazyModule(name)


if TYPE_CHECKING:
    from functools import cached_property

    once = cached_property
else:

    class once:
        """``functools.cached_property`` without importing functools (and collections,
        ~2 ms): the first access computes the value and stores it on the instance."""

        def __init__(self, fn):
            self.fn = fn
            self.name = fn.__name__
            self.__doc__ = fn.__doc__

        def __set_name__(self, owner, name):
            self.name = name

        def __get__(self, obj, owner=None):
            if obj is None:
                return self
            value = obj.__dict__[self.name] = self.fn(obj)
            return value
