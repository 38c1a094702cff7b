"""Warm the imports a model save will need while the user's code still trains.

Importing skops (scikit-learn's safe serializer) costs a second or more: it walks every
scikit-learn estimator. A run that has scikit-learn loaded starts that import in a
background thread, so ``log_model`` at the end of training does not pay for it.
"""

from __future__ import annotations

import importlib
import sys
import threading

__all__ = ["prefetch_model_imports"]

#: Library already loaded by the user -> modules its flavor needs to save a model.
_NEEDS = {"sklearn": ("skops.io",)}
_started: set[str] = set()
_lock = threading.Lock()


def _import_quietly(names: tuple[str, ...]) -> None:
    for name in names:
        try:
            if name == "skops.io":  # the way the flavor imports it: without torch
                from loopml.models.flavors.sklearn import import_skops

                import_skops()
            else:
                importlib.import_module(name)
        except Exception:  # the save will report a missing package clearly; nothing to do now
            return


def prefetch_model_imports() -> None:
    """Start importing, in the background, what saving the user's models will need."""
    with _lock:
        for library, needed in _NEEDS.items():
            if library in sys.modules and library not in _started \
                    and not all(n in sys.modules for n in needed):
                _started.add(library)
                threading.Thread(target=_import_quietly, args=(needed,), daemon=True,
                                 name=f"loopml-prefetch-{library}").start()
