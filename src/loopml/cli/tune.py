"""``loopml tune``: hyperparameter search over a Python function, from the shell."""

from __future__ import annotations

from typing import Any

import click

from loopml.cli.options import json_option, open_client
from loopml.cli.output import print_json, print_table
from loopml.errors import InvalidArgument

__all__ = ["tune"]


def _space(space_file: str | None, params: tuple[str, ...]) -> dict[str, Any]:
    from loopml.hpo.space import load_space_file, parse_param_option

    dims: dict[str, Any] = dict(load_space_file(space_file)) if space_file else {}
    for option in params:
        name, dim = parse_param_option(option)
        dims[name] = dim  # --param overrides the file
    if not dims:
        raise InvalidArgument("no search space: give --space space.yaml or --param NAME=SPEC, "
                              "e.g. --param lr=float:1e-4:1e-1:log --param depth=int:2:10")
    return dims


@click.command()
@click.argument("target")
@click.option("--space", "space_file", type=click.Path(dir_okay=False),
              help="YAML file: NAME: SPEC per line, e.g. 'lr: float:1e-4:1e-1:log'.")
@click.option("--param", "params", multiple=True, metavar="NAME=SPEC",
              help="A dimension: float:LOW:HIGH[:log], int:LOW:HIGH[:step=S], choice:A,B "
                   "(repeatable; overrides --space).")
@click.option("--n-trials", "-n", type=int, default=None, help="Trials to run [default: 20 "
              "without --timeout].")
@click.option("--timeout", type=float, default=None, help="Seconds after which no trial starts.")
@click.option("--direction", type=click.Choice(["minimize", "maximize"]), default="minimize",
              show_default=True)
@click.option("--metric", default=None, help="Metric to optimise when the function returns "
              "a dict of metrics.")
@click.option("--sampler", default="tpe", show_default=True,
              help="tpe, random, qmc, cmaes or gp.")
@click.option("--pruner", default="median", show_default=True,
              help="median, hyperband, successive_halving or none.")
@click.option("--study", default=None, help="Study name; an existing study is continued.")
@click.option("--executor", default=None, help="inline, inline:N, processes:N, ray-local or "
              "ray://host:port [default: the executor setting].")
@click.option("--workers", "n_workers", type=int, default=None,
              help="Parallel workers [default: what the executor runs at once].")
@click.option("--experiment", "-e", default=None, help="Experiment of the tuning run.")
@click.option("--seed", type=int, default=None, help="Seed of the sampler.")
@json_option
def tune(target: str, space_file: str | None, params: tuple[str, ...], n_trials: int | None,
         timeout: float | None, direction: str, metric: str | None, sampler: str, pruner: str,
         study: str | None, executor: str | None, n_workers: int | None,
         experiment: str | None, seed: int | None, as_json: bool) -> None:
    """Tune the hyperparameters of TARGET (FILE.py:NAME or MODULE:NAME), a function taking
    them as keyword arguments and returning the value to optimise."""
    import optuna

    from loopml.hpo.tuning import tune as run_tune
    from loopml.pipelines.loading import load_object

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # loopml prints the summary
    space = _space(space_file, params)
    objective = load_object(target)
    result = run_tune(objective, space=space,
                      n_trials=n_trials if n_trials is not None or timeout else 20,
                      timeout=timeout, direction=direction, metric=metric, sampler=sampler,
                      pruner=pruner, study=study, executor=executor, n_workers=n_workers,
                      experiment=experiment, seed=seed, client=open_client(),
                      progress=not as_json)
    if as_json:
        print_json(result.to_dict())
        return
    total = result.n_complete + result.n_pruned + result.n_failed
    print_table(["field", "value"], [
        ["study", result.study],
        [f"best {metric or 'objective'} ({result.direction})", result.best_value],
        ["best trial", f"{result.best_trial} (run {result.best_run_id})"],
        ["trials", f"{total}: {result.n_complete} complete, {result.n_pruned} pruned, "
                   f"{result.n_failed} failed"],
        ["tuning run", result.run_id]], title="tuning")
    print_table(["param", "best value"], [[k, v] for k, v in result.best_params.items()],
                title="best params")
