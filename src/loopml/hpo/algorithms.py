"""Samplers and pruners by name: ``sampler="tpe"``, ``pruner="median"``, or Optuna objects.

Names keep scripts and the CLI short; an Optuna sampler or pruner object passes through for
everything else. Each worker of a parallel study gets its own sampler, seeded ``seed + i``
so that workers do not all propose the same first points.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, cast

import optuna

from loopml.errors import InvalidArgument, MissingDependency

__all__ = ["PRUNERS", "SAMPLERS", "Direction", "check_direction", "make_pruner", "make_sampler"]

Sampler = optuna.samplers.BaseSampler
Pruner = optuna.pruners.BasePruner


def _cmaes(seed: int | None) -> Sampler:
    try:
        import cmaes  # noqa: F401
    except ImportError:
        raise MissingDependency("sampler='cmaes'", package="cmaes") from None
    return optuna.samplers.CmaEsSampler(seed=seed)


def _gp(seed: int | None) -> Sampler:
    try:
        import scipy  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        raise MissingDependency("sampler='gp'", package="torch scipy") from None
    return optuna.samplers.GPSampler(seed=seed)


#: name → sampler factory taking a seed.
SAMPLERS: dict[str, Callable[[int | None], Sampler]] = {
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    "qmc": lambda seed: optuna.samplers.QMCSampler(seed=seed),
    "cmaes": _cmaes,
    "gp": _gp,
}

#: name → pruner factory. ``median`` waits for 5 finished trials before it prunes.
PRUNERS: dict[str, Callable[[], Pruner]] = {
    "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5),
    "hyperband": lambda: optuna.pruners.HyperbandPruner(),
    "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(),
    "none": lambda: optuna.pruners.NopPruner(),
}


def make_sampler(spec: str | Sampler, seed: int | None = None) -> Sampler:
    """The sampler named ``spec`` seeded with ``seed``, or ``spec`` itself if it is one."""
    if isinstance(spec, Sampler):
        return spec
    factory = SAMPLERS.get(spec.strip().lower()) if isinstance(spec, str) else None
    if factory is None:
        raise InvalidArgument(f"unknown sampler {spec!r}; use one of {', '.join(SAMPLERS)} "
                              "or an optuna.samplers object")
    return factory(seed)


def make_pruner(spec: str | Pruner | None) -> Pruner:
    """The pruner named ``spec`` (None: no pruning), or ``spec`` itself if it is one."""
    if isinstance(spec, Pruner):
        return spec
    factory = PRUNERS.get(spec.strip().lower()) if isinstance(spec, str) else (
        PRUNERS["none"] if spec is None else None)
    if factory is None:
        raise InvalidArgument(f"unknown pruner {spec!r}; use one of {', '.join(PRUNERS)} "
                              "or an optuna.pruners object")
    return factory()


Direction = Literal["minimize", "maximize"]


def check_direction(direction: Any) -> Direction:
    """``"minimize"`` or ``"maximize"`` (also from ``"min"``/``"max"``), else a clear error."""
    text = direction.strip().lower() if isinstance(direction, str) else None
    text = {"min": "minimize", "max": "maximize"}.get(text or "", text)
    if text not in ("minimize", "maximize"):
        raise InvalidArgument(f"direction must be 'minimize' or 'maximize', got "
                              f"{direction!r}; e.g. direction='maximize' for an accuracy")
    return cast(Direction, text)
