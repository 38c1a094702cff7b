"""Hyperparameter tuning on Optuna: :func:`tune`, search spaces, and durable study storage
in the metadata store shared by parallel workers.

Names are imported on first access, so ``import loopml.hpo`` does not load Optuna. The
function ``tune`` lives in ``loopml.hpo.tuning``: a submodule named ``tune`` would replace
the function on this package as soon as something imported the submodule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopml._lazy import lazy_exports

__all__ = ["Choice", "FloatRange", "IntRange", "SearchSpace", "Trial", "TrialPruned",
           "TuneResult", "open_study_storage", "parse_space", "tune"]

_EXPORTS = {
    **{name: "loopml.hpo.space" for name in ("Choice", "FloatRange", "IntRange", "SearchSpace",
                                             "parse_space")},
    "Trial": "loopml.hpo.trial",
    "TrialPruned": "loopml.hpo.trial",
    "TuneResult": "loopml.hpo.tuning",
    "tune": "loopml.hpo.tuning",
    "open_study_storage": "loopml.hpo.storage",
}

if TYPE_CHECKING:
    from loopml.hpo.space import Choice, FloatRange, IntRange, SearchSpace, parse_space
    from loopml.hpo.storage import open_study_storage
    from loopml.hpo.trial import Trial, TrialPruned
    from loopml.hpo.tuning import TuneResult, tune


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
