"""One trial as the objective sees it, and how the objective is called.

The objective is a plain function whose keyword parameters are the hyperparameters, so the
function that trains a model is the objective, and the best params feed it (or a pipeline's
training step) unchanged::

    def train(lr, depth, trial):          # `trial` is optional
        for epoch in range(20):
            loss = ...
            trial.report(loss, step=epoch)  # intermediate value: pruning + metric history
            if trial.should_prune():
                trial.prune()
        return loss                         # or a dict of metrics with tune(metric="...")

A parameter named ``trial`` receives the :class:`Trial`; every other parameter the function
needs must be in the search space or have a default (checked before any trial runs).
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import optuna

from loopml.errors import InvalidArgument
from loopml.hpo.space import SearchSpace, parse_dimension

if TYPE_CHECKING:
    from loopml.client.active_run import ActiveRun

__all__ = ["Objective", "Trial", "TrialPruned", "objective_value"]

#: Raise it (or call :meth:`Trial.prune`) to stop a trial the pruner gave up on.
TrialPruned = optuna.TrialPruned
TRIAL_ARGUMENT = "trial"


class Trial:
    """The running trial: report intermediate values, ask whether to stop, log more metrics.

    Intermediate values go to the study (for the pruner) and to the trial's child run as the
    history of the optimised metric; :meth:`log_metric` adds other metrics to that run.
    """

    def __init__(self, optuna_trial: optuna.Trial, run: ActiveRun, *, metric: str,
                 study: str, params: dict[str, Any]) -> None:
        self._trial = optuna_trial
        self._run = run
        self._metric = metric
        self.study = study
        #: The values of this trial's hyperparameters (those of :meth:`suggest` included).
        self.params = params
        #: The step of the last :meth:`report`, or None.
        self.last_step: int | None = None

    @property
    def number(self) -> int:
        """0, 1, 2, … in the order the study created its trials."""
        return self._trial.number

    @property
    def run_id(self) -> str:
        """The id of the child run that records this trial."""
        return self._run.id

    @property
    def optuna_trial(self) -> optuna.Trial:
        """The underlying Optuna trial, for what this class does not cover."""
        return self._trial

    def report(self, value: float, step: int) -> None:
        """Record the objective's value at ``step`` (an epoch, say) for pruning and plotting."""
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise InvalidArgument(f"trial.report step must be an integer >= 0, got {step!r}; "
                                  "pass the epoch or iteration number")
        number = _as_float(value, what=f"trial.report value at step {step}")
        self._trial.report(number, step)
        self._run.log_metric(self._metric, number, step=step)
        self.last_step = step if self.last_step is None else max(self.last_step, step)

    def should_prune(self) -> bool:
        """True when the pruner judges this trial unpromising given the reported values."""
        return self._trial.should_prune()

    def prune(self, message: str = "") -> NoReturn:
        """Stop this trial: it is recorded as PRUNED and its run as KILLED."""
        raise TrialPruned(message or f"trial {self.number} pruned at step {self.last_step}")

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        """Another metric on the trial's run (buffered, microseconds)."""
        self._run.log_metric(key, value, step=step)

    def suggest(self, name: str, spec: Any) -> Any:
        """A value for a hyperparameter outside the search space (conditional spaces):
        ``trial.suggest("units_2", ("int", 8, 256))`` accepts any form of :mod:`.space`."""
        if name in self.params:
            raise InvalidArgument(f"trial {self.number} already has param {name!r} = "
                                  f"{self.params[name]!r}; suggest each name once")
        value = parse_dimension(name, spec).suggest(self._trial, name)
        self._run.log_params({name: value})
        self.params[name] = value
        return value


@dataclass(frozen=True)
class Objective:
    """The user's function and how to call it: hyperparameters as keywords, plus ``trial``
    when it declares that parameter."""

    function: Callable[..., Any]
    takes_trial: bool

    @classmethod
    def inspect(cls, function: Any, space: SearchSpace) -> Objective:
        """Check that ``function`` can take every parameter of ``space``; say what to fix."""
        if not callable(function):
            raise InvalidArgument(f"the objective must be a function, got "
                                  f"{type(function).__name__} {function!r}")
        label = getattr(function, "__name__", type(function).__name__)
        if TRIAL_ARGUMENT in space:
            raise InvalidArgument(f"the search space may not define {TRIAL_ARGUMENT!r}: that "
                                  "name is the objective's Trial; rename the hyperparameter")
        try:
            params = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):  # builtins and some C callables: trust the caller
            return cls(function, False)
        named = {p.name: p for p in params
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
        unknown = [name for name in space if name not in named and not takes_any]
        if unknown:
            raise InvalidArgument(
                f"objective {label}() has no parameter {unknown[0]!r} of the search space; "
                f"add it to the signature (def {label}({', '.join(space)}, trial): ...) or "
                "remove it from the space")
        needed = [p.name for p in params if p.default is p.empty
                  and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
                  and p.name not in space and p.name != TRIAL_ARGUMENT]
        if needed:
            raise InvalidArgument(
                f"objective {label}() needs argument {needed[0]!r}, which the search space "
                f"does not define; add {needed[0]!r} to the space or give it a default")
        return cls(function, TRIAL_ARGUMENT in named)

    def __call__(self, params: Mapping[str, Any], trial: Trial) -> Any:
        if self.takes_trial:
            return self.function(**params, trial=trial)
        return self.function(**params)


def objective_value(result: Any, metric: str | None) -> tuple[float, dict[str, float]]:
    """The value to optimise and the metrics to log, from what the objective returned:
    a number, or a mapping of metric name to number with ``metric`` naming the optimised one."""
    name = metric or "objective"
    if isinstance(result, Mapping):
        metrics = {str(k): _as_float(v, what=f"metric {k!r} returned by the objective")
                   for k, v in result.items()}
        if metric is None and len(metrics) == 1:
            return next(iter(metrics.values())), metrics
        if metric is None or metric not in metrics:
            raise InvalidArgument(
                f"the objective returned the metrics {sorted(metrics)} and "
                f"{'no metric= was given' if metric is None else f'not {metric!r}'}; pass "
                "tune(metric=NAME) naming the one to optimise, or return it")
        return metrics[metric], metrics
    value = _as_float(result, what="the objective's return value")
    return value, {name: value}


def _as_float(value: Any, *, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidArgument(f"{what} must be a number, got {type(value).__name__} "
                              f"{value!r}; return a float (or a dict of metrics)")
    return float(value)

