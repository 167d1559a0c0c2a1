"""Deferred imports for the hot path (DESIGN decision 2).

``shutil = lazy_module("shutil")`` binds a stand-in that imports the real module on
first attribute access, so a module can keep writing ``shutil.rmtree(...)`` while
``cai exec`` on a running container never pays for modules it does not touch.
Type checkers see the real import (``if TYPE_CHECKING: import shutil``).
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any


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
