"""Imports on demand: re-exports resolved on first access (PEP 562), and modules the program
has loaded, taken only once their import has finished."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports", "loaded_module"]


def lazy_exports(package: str, exports: Mapping[str, str], namespace: dict[str, Any], *,
                 subpackages: tuple[str, ...] = ()) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``exports[name]`` (a module path) on first access
    and keeps the value in ``namespace``; ``subpackages`` resolve to ``package.name``."""

    def __getattr__(name: str) -> Any:
        if name in subpackages:
            return importlib.import_module(f"{package}.{name}")
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__


def loaded_module(name: str) -> Any:
    """The module ``name`` if the program has imported it, else None (nothing is imported).

    A module another thread is still importing (loopml prefetches skops in the background)
    is waited for: ``sys.modules`` alone could hand out a half-initialised module."""
    if name not in sys.modules:
        return None
    return importlib.import_module(name)
