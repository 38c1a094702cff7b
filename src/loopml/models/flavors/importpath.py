"""Classes named by import path (``package.module:Class``) in a model package.

The python_function and pytorch flavors rebuild a model from the user's class, found by the
path recorded at save time. Importing a module runs its top-level code, so only modules
already installed in the environment are imported (never code from the package), and the
object found must be a class of the expected kind before anything calls it: a tampered
manifest naming ``subprocess:Popen`` is refused, not run.
"""

from __future__ import annotations

import importlib
from typing import Any

from loopml.errors import InvalidArgument, NotFound

__all__ = ["import_path_of", "resolve_class"]


def import_path_of(cls: type) -> str:
    """``module:QualName`` of a class; refused for classes that cannot be imported again."""
    module, qualname = cls.__module__, cls.__qualname__
    if module == "__main__" or "<locals>" in qualname:
        where = "in __main__" if module == "__main__" else "inside a function"
        raise InvalidArgument(
            f"class {qualname} is defined {where}, so it cannot be imported when the model is "
            "loaded elsewhere; move it to an importable module (or give its import path as "
            "options={'module': 'package.module:Class'})")
    return f"{module}:{qualname}"


def resolve_class(path: str, *, base: type | None = None, needs: tuple[str, ...] = ()) -> type:
    """The class at ``path``; it must subclass ``base`` and have the methods in ``needs``."""
    module_name, sep, qualname = path.partition(":")
    if not sep or not module_name or not qualname:
        raise InvalidArgument(f"import path {path!r} must read 'package.module:Class'")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise NotFound(f"cannot import module '{module_name}' named by the model package "
                       f"({exc}); install the package that provides {path} or add its "
                       "directory to PYTHONPATH") from exc
    for part in qualname.split("."):
        if not hasattr(target, part):
            raise NotFound(f"module '{module_name}' has no '{qualname}' (named by the model "
                           "package); install the version of the code the model was saved with")
        target = getattr(target, part)
    if not isinstance(target, type):
        raise InvalidArgument(f"{path} is a {type(target).__name__}, not a class; the model "
                              "package must name a class")
    if base is not None and not issubclass(target, base):
        raise InvalidArgument(f"{path} is not a subclass of {base.__module__}."
                              f"{base.__qualname__}; the model package must name one")
    missing = [name for name in needs if not callable(getattr(target, name, None))]
    if missing:
        raise InvalidArgument(f"{path} has no method {', '.join(missing)}; the model package "
                              "must name a class that has")
    return target
