"""Finding a Python object from text: ``path/to/file.py:name`` or ``package.module:name``.

A file is imported as a module of its own (its directory put first on ``sys.path``, as
``python file.py`` would), and registered with cloudpickle to be sent by value, so worker
processes and Ray workers that cannot import the file still get its functions.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import traceback
from types import ModuleType
from typing import Any

from loopml.errors import InvalidArgument, LoopmlError, NotFound

__all__ = ["load_object"]


def _load_file(path: str) -> ModuleType:
    absolute = os.path.abspath(path)
    if not os.path.isfile(absolute):
        raise NotFound(f"no file {path!r}; give the path of a Python file, e.g. "
                       "pipeline.py:train")
    name = "loopml_pipeline_" + hashlib.blake2b(absolute.encode(), digest_size=6).hexdigest()
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, absolute)
    if spec is None or spec.loader is None:
        raise InvalidArgument(f"{path!r} cannot be imported as Python; give a .py file")
    module = importlib.util.module_from_spec(spec)
    directory = os.path.dirname(absolute)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except LoopmlError:
        del sys.modules[name]
        raise
    except Exception as exc:
        del sys.modules[name]
        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if os.path.abspath(f.filename) == absolute]
        where = f"{path}, line {frames[-1].lineno}" if frames else path
        raise InvalidArgument(f"importing {path} failed at {where}: "
                              f"{type(exc).__name__}: {exc}; fix the file") from None
    try:
        import cloudpickle

        cloudpickle.register_pickle_by_value(module)
    except ImportError:  # pragma: no cover - cloudpickle is a dependency
        pass
    return module


def load_object(spec: str) -> Any:
    """The object named by ``spec`` (``file.py:name`` or ``module:name``)."""
    target, sep, attribute = spec.rpartition(":")
    if not sep or not target or not attribute:
        raise InvalidArgument(f"{spec!r} does not name an object; write FILE.py:NAME or "
                              "MODULE:NAME, e.g. pipeline.py:churn")
    if target.endswith(".py") or os.sep in target or "/" in target:
        module = _load_file(target)
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            raise NotFound(f"cannot import module {target!r} ({exc}); give FILE.py:NAME or "
                           "an importable MODULE:NAME") from None
    found: Any = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            names = sorted(n for n in vars(module) if not n.startswith("_"))
            raise NotFound(f"{target} has no {attribute!r}; it defines: "
                           f"{', '.join(names[:20]) or 'nothing'}")
        found = getattr(found, part)
    return found
