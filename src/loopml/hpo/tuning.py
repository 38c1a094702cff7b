"""``tune``: hyperparameter optimisation with Optuna, every trial a tracked child run.

A call of :func:`tune` is a *tuning run* (the parent) that continues or starts the study
named ``study`` in the durable storage of :mod:`loopml.hpo.storage`; each trial is a child
run carrying the trial's params, the reported intermediate values as the history of the
optimised metric, the final metrics and three tags::

    loopml.hpo.study         the study name
    loopml.hpo.trial_number  0, 1, 2, … in the study
    loopml.hpo.state         RUNNING, then COMPLETE, PRUNED or FAIL (Optuna's trial state)

The run status follows what MLflow users read from it: COMPLETE → FINISHED, PRUNED → KILLED
(stopped early from outside, on the pruner's decision; the tag says why), FAIL → FAILED
(with the error in ``loopml.hpo.error``). The optimised metric is named by ``metric``
(default ``objective``); inside the objective the trial's run is the active run, so
``loopml.log_metric`` logs to it. The tuning run logs the settings and the space as params,
and at the end the best params (``best.<name>``), ``best_value`` and the counts. A trial's run
costs two transactions (:mod:`loopml.hpo.trial_runs`); its metric points are buffered and
durable when :func:`tune` returns.

Workers: with ``executor="inline:4"``, ``"processes:4"`` or a Ray spec, N workers each run
trials on the shared study, taking them one at a time from the call's budget in the metadata
store (:mod:`loopml.hpo.budget`), so exactly ``n_trials`` run. A worker outside this process
opens its own client from the same settings: the store must be reachable from it (any local
process can use the embedded SQLite file; machines elsewhere need PostgreSQL).
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import sqlalchemy as sa
from optuna.distributions import check_distribution_compatibility
from optuna.trial import TrialState

from loopml.client.active_run import ActiveRun
from loopml.client.fluent import default_client, run_in_context
from loopml.config import Settings
from loopml.errors import Conflict, InvalidArgument
from loopml.hpo import budget
from loopml.hpo.algorithms import (
    Direction,
    Pruner,
    Sampler,
    check_direction,
    make_pruner,
    make_sampler,
)
from loopml.hpo.progress import TuneProgress
from loopml.hpo.space import SearchSpace, parse_space
from loopml.hpo.storage import check_study_name, study_storage
from loopml.hpo.trial import Objective, Trial, TrialPruned, objective_value
from loopml.hpo.trial_runs import TAG_STUDY, finish_trial_run, start_trial_run
from loopml.pipelines.executors.base import Executor, open_executor
from loopml.tracking.context import current_user
from loopml.tracking.entities import Metric, RunStatus
from loopml.tracking.validation import check_key, param_value

if TYPE_CHECKING:
    from loopml.client.embedded import Client

__all__ = ["TuneResult", "tune"]

TAG_BEST_RUN = "loopml.hpo.best_run_id"
RUN_ID_ATTR = "loopml.run_id"  # Optuna user attr of each trial: its child run


@dataclass(frozen=True)
class TuneResult:
    """What a :func:`tune` call found. Counts and best values cover the whole study (earlier
    calls on the same study included); ``run_id`` is this call's tuning run."""

    study: str
    direction: str
    best_params: dict[str, Any]
    best_value: float
    best_trial: int
    best_run_id: str | None
    run_id: str
    n_complete: int
    n_pruned: int
    n_failed: int

    def to_dict(self) -> dict[str, Any]:
        return {"study": self.study, "direction": self.direction,
                "best_params": self.best_params, "best_value": self.best_value,
                "best_trial": self.best_trial, "best_run_id": self.best_run_id,
                "run_id": self.run_id, "n_complete": self.n_complete,
                "n_pruned": self.n_pruned, "n_failed": self.n_failed}


@dataclass(frozen=True)
class _Plan:
    """Everything a worker needs, picklable (sent to processes and Ray workers)."""

    objective: Objective
    space: SearchSpace
    study: str
    n_trials: int | None
    timeout: float | None
    metric: str | None
    sampler: str | Sampler
    pruner: str | Pruner | None
    seed: int | None
    catch: tuple[type[Exception], ...]
    settings: Settings
    experiment_id: str = ""
    run_id: str = ""
    shared_budget: bool = False
    user: str = ""


def tune(objective: Callable[..., Any], *, space: Mapping[str, Any] | SearchSpace,
         n_trials: int | None = None, direction: str = "minimize", metric: str | None = None,
         sampler: str | Sampler = "tpe", pruner: str | Pruner | None = "median",
         study: str | None = None, executor: str | Executor | None = None,
         n_workers: int | None = None, experiment: str | None = None,
         timeout: float | None = None, seed: int | None = None,
         catch: Sequence[type[Exception]] = (), client: Client | None = None,
         progress: bool | None = None) -> TuneResult:
    """Search ``space`` for the hyperparameters that minimise (or maximise) ``objective``.

    ``objective(**params)`` returns a number, or a dict of metrics with ``metric`` naming
    the one to optimise; a parameter named ``trial`` receives a :class:`~loopml.hpo.Trial`
    to report intermediate values and prune (see :mod:`loopml.hpo.trial`). ``space`` maps
    names to specs (see :mod:`loopml.hpo.space`). ``n_trials`` and/or ``timeout`` (seconds,
    no new trial after it) bound the call. ``study`` names the study: a call with an existing
    name continues it. ``sampler``: tpe, random, qmc, cmaes, gp or an Optuna sampler;
    ``pruner``: median, hyperband, successive_halving, none or an Optuna pruner. An exception
    of the objective stops the tuning (after recording the trial as FAIL) unless its type is
    in ``catch``. ``progress`` shows a bar on a terminal (default: the ``progress`` setting).
    Returns the best params as a plain dict, ready for the training step.
    """
    client = client or default_client()
    plan, n_workers = _check(objective, space=space, n_trials=n_trials, metric=metric,
                             sampler=sampler, pruner=pruner, study=study, n_workers=n_workers,
                             timeout=timeout, seed=seed, catch=catch, settings=client.settings)
    direction = check_direction(direction)
    runner = _open_runner(executor, n_workers, client.settings)
    try:
        with (client.start_run(experiment, name=plan.study,
                               tags={TAG_STUDY: plan.study}) as parent,
              study_storage(client.meta, plan.study) as storage):
            parent.log_params(_run_params(plan, direction, runner))
            plan = _with_run(plan, parent.experiment_id, parent.id, runner is not None)
            budget.open_budget(client.meta, run_id=parent.id, study=plan.study,
                               n_trials=plan.n_trials)
            _create_or_load(storage, plan.study, direction, plan.space)
            watched = optuna.load_study(study_name=plan.study, storage=storage)
            shown = client.settings.progress if progress is None else progress
            with TuneProgress(watched, plan.n_trials, enabled=shown) as bar:
                if runner is None:
                    _run_trials(plan, client, storage, worker=0, on_trial=bar.update)
                else:
                    _run_workers(plan, client, storage, runner[0], runner[1],
                                 on_tick=bar.update)
            result = _summarize(plan, storage, direction)
            _log_result(parent, result)
    finally:
        if runner is not None and not isinstance(executor, Executor):
            runner[0].close()
    return result


def _check(objective: Any, *, space: Any, n_trials: Any, metric: Any, sampler: Any,
           pruner: Any, study: Any, n_workers: Any, timeout: Any, seed: Any, catch: Any,
           settings: Settings) -> tuple[_Plan, int | None]:
    """Every argument checked before any run is created; a clear error for each bad one."""
    checked_space = parse_space(space)
    for param in checked_space:  # each is logged as a param of the trial runs
        check_key(param, kind="hyperparameter")
    call = Objective.inspect(objective, checked_space)
    if not checked_space and not call.takes_trial:
        raise InvalidArgument("the search space is empty; give space={'lr': ('float', 1e-4, "
                              "1e-1, {'log': True}), ...}")
    for name, value, low in (("n_trials", n_trials, 1), ("n_workers", n_workers, 1),
                             ("seed", seed, 0)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < low):
            raise InvalidArgument(f"{name} must be an integer >= {low} or None, got {value!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                or not timeout > 0):
        raise InvalidArgument(f"timeout must be a number of seconds > 0 or None, got {timeout!r}")
    if n_trials is None and timeout is None:
        raise InvalidArgument("give n_trials (e.g. n_trials=50) or timeout (seconds), or both; "
                              "without either the tuning would never end")
    if metric is not None and (not isinstance(metric, str) or not metric):
        raise InvalidArgument(f"metric must be a metric name or None, got {metric!r}")
    catch = tuple(catch)
    if not all(isinstance(c, type) and issubclass(c, Exception) for c in catch):
        raise InvalidArgument(f"catch must list exception classes, e.g. catch=(ValueError,), "
                              f"got {catch!r}")
    make_sampler(sampler, seed)  # a bad name fails here, not in a worker
    make_pruner(pruner)
    name = check_study_name(study) if study is not None else _new_study_name(objective)
    plan = _Plan(objective=call, space=checked_space, study=name, n_trials=n_trials,
                 timeout=None if timeout is None else float(timeout), metric=metric,
                 sampler=sampler, pruner=pruner, seed=seed, catch=catch, settings=settings)
    return plan, n_workers


def _new_study_name(objective: Any) -> str:
    label = getattr(objective, "__name__", "objective").strip("<>") or "objective"
    return f"{label}-{uuid.uuid4().hex[:8]}"


def _open_runner(spec: str | Executor | None, n_workers: int | None,
                 settings: Settings) -> tuple[Executor, int] | None:
    """None: trials run in the calling thread. Else the executor and its number of workers."""
    if not isinstance(spec, Executor):
        text = (spec if spec is not None else settings.executor or "inline")
        if not isinstance(text, str):
            raise InvalidArgument(f"executor must be a spec such as 'processes:4' or an "
                                  f"Executor, got {text!r}")
        if text.strip().lower() == "inline" and n_workers in (None, 1):
            return None
        _check_reachable(text, settings)
    executor = open_executor(spec if spec is not None else settings.executor, settings=settings)
    return executor, n_workers or max(1, executor.max_parallel)


def _check_reachable(spec: str, settings: Settings) -> None:
    """Workers on other machines cannot open this machine's SQLite file: say so up front."""
    host = spec.removeprefix("ray://").split(":")[0].strip("[]")
    if spec.startswith("ray://") and settings.is_embedded and host not in _LOCAL_HOSTS:
        raise InvalidArgument(
            f"executor {spec!r} runs trials on other machines, which cannot reach the embedded "
            f"store {settings.database_url}; set LOOPML_DATABASE_URL=postgresql://… (a "
            "database the workers can reach) or tune with a local executor")


_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "0.0.0.0")


def _with_run(plan: _Plan, experiment_id: str, run_id: str, shared: bool) -> _Plan:
    return replace(plan, experiment_id=experiment_id, run_id=run_id, shared_budget=shared,
                   user=current_user())


def _run_params(plan: _Plan, direction: str, runner: tuple[Executor, int] | None
                ) -> dict[str, Any]:
    params: dict[str, Any] = {
        "direction": direction, "n_trials": plan.n_trials, "timeout": plan.timeout,
        "metric": plan.metric or "objective", "sampler": _label(plan.sampler),
        "pruner": _label(plan.pruner), "seed": plan.seed,
        "executor": runner[0].spec if runner else "inline",
        "n_workers": runner[1] if runner else 1}
    params.update({f"space.{name}": text for name, text in plan.space.describe().items()})
    return {k: v for k, v in params.items() if v is not None}


def _label(spec: Any) -> str:
    return spec if isinstance(spec, str) else type(spec).__name__ if spec is not None else "none"


def _create_or_load(storage: Any, name: str, direction: Direction,
                    space: SearchSpace) -> None:
    """Create the study, or check that an existing one can continue with these settings."""
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        optuna.create_study(study_name=name, storage=storage, direction=direction,
                            load_if_exists=True)
        return
    existing = study.direction.name.lower()
    if existing != direction:
        raise Conflict(f"study {name!r} was created to {existing} and cannot continue to "
                       f"{direction}; pass direction={existing!r}, or a new study name")
    known: dict[str, Any] = {}
    for frozen in study.get_trials(deepcopy=False):
        known.update(frozen.distributions)
    for param, dim in space.items():
        if param not in known:
            continue
        try:
            check_distribution_compatibility(known[param], dim.distribution())
        except ValueError as exc:
            raise Conflict(f"study {name!r} sampled {param!r} from {known[param]!r}; the space "
                           f"now says {dim.describe()!r}, which Optuna cannot mix ({exc}); "
                           "keep the kind and scale of the study's space (bounds may change), "
                           "or use a new study name") from None


# -- workers ---------------------------------------------------------------------------


def _run_workers(plan: _Plan, client: Client, storage: Any, executor: Executor,
                 n_workers: int, on_tick: Callable[[], None]) -> None:
    """Start ``n_workers`` workers on ``executor``; wait for all (calling ``on_tick`` twice a
    second meanwhile); raise the first error."""
    futures: list[cf.Future[int]] = []
    shipped = replace(plan, settings=_portable(plan.settings))
    try:
        for worker in range(n_workers):
            if executor.in_process:
                futures.append(executor.submit(_run_trials, plan, client, storage, worker))
            else:
                futures.append(executor.submit(_remote_worker, shipped, worker))
        while cf.wait(futures, timeout=0.5).not_done:
            on_tick()
    except BaseException:
        budget.close_budget(client.meta, plan.run_id)  # the others stop after their trial
        cf.wait(futures)
        raise
    for future in futures:
        error = future.exception()
        if error is not None:
            raise error


def _portable(settings: Settings) -> Settings:
    """``settings`` with the embedded store's paths made absolute: a worker process may
    start in another directory (Ray's workers do), where a relative path names another file."""
    if not settings.is_embedded:
        return settings
    database = sa.make_url(settings.database_url).database or ""
    if not database or database == ":memory:":
        return settings
    absolute = Path(database).expanduser().absolute()
    return replace(settings, home=settings.home.absolute(),
                   database_url=f"sqlite:///{absolute}")


def _remote_worker(plan: _Plan, worker: int) -> int:
    """A worker in another process or machine: its own client and storage, same settings."""
    from loopml.client.embedded import Client

    client = Client(plan.settings)
    try:
        with study_storage(client.meta, plan.study) as storage:
            return _run_trials(plan, client, storage, worker)
    finally:
        client.close()


def _run_trials(plan: _Plan, client: Client, storage: Any, worker: int,
                on_trial: Callable[[], None] | None = None) -> int:
    """Run trials until the budget, the timeout or an uncaught error; return how many ran."""
    seed = None if plan.seed is None else plan.seed + worker
    study = optuna.load_study(study_name=plan.study, storage=storage,
                              sampler=make_sampler(plan.sampler, seed),
                              pruner=make_pruner(plan.pruner))
    deadline = None if plan.timeout is None else time.monotonic() + plan.timeout
    ran = 0
    try:
        while deadline is None or time.monotonic() < deadline:
            if plan.shared_budget:
                if not budget.claim_trial(client.meta, plan.run_id):
                    break
            elif plan.n_trials is not None and ran >= plan.n_trials:
                break
            _run_one(plan, client, study)
            ran += 1
            if on_trial is not None:
                on_trial()
    except BaseException:
        if plan.shared_budget:
            budget.close_budget(client.meta, plan.run_id)
        raise
    finally:
        client.flush()  # the trials' metric points, buffered across trials
    return ran


def _run_one(plan: _Plan, client: Client, study: optuna.Study) -> None:
    """One trial: ask, open its child run, call the objective, tell, close the run."""
    asked = study.ask()
    run: ActiveRun | None = None
    try:
        params = plan.space.suggest(asked)
        with client.meta.write() as conn:
            record = start_trial_run(conn, experiment_id=plan.experiment_id,
                                     parent_run_id=plan.run_id, study=plan.study,
                                     number=asked.number, user=plan.user,
                                     params={k: param_value(k, v) for k, v in params.items()})
        run = ActiveRun(client, record)
        asked.set_user_attr(RUN_ID_ATTR, run.id)
        trial = Trial(asked, run, metric=plan.metric or "objective", study=plan.study,
                      params=dict(params))
        with run_in_context(run):  # loopml.log_metric() in the objective logs to the trial
            value, metrics = objective_value(plan.objective(params, trial), plan.metric)
    except TrialPruned:
        study.tell(asked, state=TrialState.PRUNED)
        _finish(client, run, "PRUNED", RunStatus.KILLED)
        return
    except BaseException as exc:
        study.tell(asked, state=TrialState.FAIL)
        status = RunStatus.FAILED if isinstance(exc, Exception) else RunStatus.KILLED
        _finish(client, run, "FAIL", status, error=f"{type(exc).__name__}: {exc}")
        if isinstance(exc, plan.catch):
            return
        raise
    for key, number in metrics.items():  # buffered after the reports: the latest values
        run.log_metric(key, number, step=trial.last_step or 0)
    if math.isnan(value):  # Optuna records a NaN objective as a failed trial
        study.tell(asked, state=TrialState.FAIL)
        _finish(client, run, "FAIL", RunStatus.FAILED, error="the objective returned NaN")
        return
    study.tell(asked, value)
    _finish(client, run, "COMPLETE", RunStatus.FINISHED)


def _finish(client: Client, run: ActiveRun | None, state: str, status: RunStatus, *,
            error: str | None = None) -> None:
    if run is not None:
        run.ended = True
        with client.meta.write() as conn:
            finish_trial_run(conn, run.id, state=state, status=status, error=error)


# -- result ----------------------------------------------------------------------------


def _summarize(plan: _Plan, storage: Any, direction: str) -> TuneResult:
    study = optuna.load_study(study_name=plan.study, storage=storage)
    counts = {state: 0 for state in TrialState}
    for frozen in study.get_trials(deepcopy=False):
        counts[frozen.state] += 1
    if not counts[TrialState.COMPLETE]:
        raise Conflict(
            f"no trial of study {plan.study!r} completed ({counts[TrialState.FAIL]} failed, "
            f"{counts[TrialState.PRUNED]} pruned); look at the child runs of tuning run "
            f"{plan.run_id}, fix the objective or raise n_trials/timeout")
    best = study.best_trial
    assert best.value is not None
    return TuneResult(study=plan.study, direction=direction, best_params=dict(best.params),
                      best_value=float(best.value), best_trial=best.number,
                      best_run_id=best.user_attrs.get(RUN_ID_ATTR), run_id=plan.run_id,
                      n_complete=counts[TrialState.COMPLETE],
                      n_pruned=counts[TrialState.PRUNED], n_failed=counts[TrialState.FAIL])


def _log_result(parent: ActiveRun, result: TuneResult) -> None:
    stamp = int(time.time() * 1000)
    metrics = [Metric(key, float(value), 0, stamp) for key, value in (
        ("best_value", result.best_value), ("n_complete", result.n_complete),
        ("n_pruned", result.n_pruned), ("n_failed", result.n_failed))]
    parent.log_batch(metrics=metrics,
                     params={f"best.{name}": value for name, value in result.best_params.items()},
                     tags={TAG_BEST_RUN: result.best_run_id or "",
                           "loopml.hpo.best_trial": result.best_trial})
