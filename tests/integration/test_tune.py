"""loopml.tune on the embedded store: the optimum, trials as child runs, pruning, failures,
resumed studies, parallel workers (threads and processes), the CLI and bad input."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

import loopml
from loopml.client import Client
from loopml.errors import Conflict, InvalidArgument, LoopmlError
from loopml.hpo import FloatRange, Trial, tune
from loopml.tracking.entities import Run, RunStatus

SPACE = {"x": ("float", -10, 10), "y": ("float", -10, 10)}


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def client(tmp_path: Path) -> Any:
    client = Client(loopml.load_settings(home=tmp_path / ".loopml", progress=False))
    yield client
    client.close()


def quadratic(x: float, y: float) -> float:
    return (x - 2) ** 2 + (y + 1) ** 2


def trial_runs(client: Client, study: str) -> list[Run]:
    found = client.search_runs(filter=f"tags.`loopml.hpo.study` = '{study}' and "
                               "tags.`loopml.hpo.trial_number` != ''", max_results=1000)
    return sorted(found, key=lambda r: int(r.tags["loopml.hpo.trial_number"]))  # type: ignore


def test_finds_the_optimum_and_feeds_it_back(client: Client) -> None:
    result = tune(quadratic, space=SPACE, n_trials=50, seed=0, client=client, study="quad")
    assert result.best_value < 0.5
    assert abs(result.best_params["x"] - 2) < 0.75 and abs(result.best_params["y"] + 1) < 0.75
    assert quadratic(**result.best_params) == pytest.approx(result.best_value)  # a plain dict
    assert (result.n_complete, result.n_pruned, result.n_failed) == (50, 0, 0)
    parent = client.get_run(result.run_id)
    assert parent.status is RunStatus.FINISHED and parent.name == "quad"
    assert parent.params["space.x"] == "float:-10.0:10.0"
    assert parent.params["best.x"] == str(result.best_params["x"])
    assert parent.metrics["best_value"] == pytest.approx(result.best_value)
    assert parent.tags["loopml.hpo.best_run_id"] == result.best_run_id
    runs = trial_runs(client, "quad")
    assert len(runs) == 50 and all(r.parent_run_id == result.run_id for r in runs)
    best = client.get_run(result.best_run_id or "")
    assert best.params == {"x": str(result.best_params["x"]), "y": str(result.best_params["y"])}
    assert best.metrics == {"objective": pytest.approx(result.best_value)}
    assert best.tags["loopml.hpo.state"] == "COMPLETE"


def test_intermediate_values_and_pruned_trials_are_recorded(client: Client) -> None:
    def train(x: float, trial: Trial) -> float:
        for epoch in range(4):
            trial.report(x + 1 / (epoch + 1), step=epoch)
            trial.log_metric("lr_seen", x, step=epoch)
            if x > 0.5:
                trial.prune()
            if trial.should_prune():  # the median pruner on the reported values
                trial.prune()
        loopml.log_metric("extra", 1.0)  # the trial's run is the active run
        return x

    result = tune(train, space={"x": ("float", 0, 1)}, n_trials=30, seed=1, client=client,
                  study="pruning", sampler="random")
    runs = trial_runs(client, "pruning")
    pruned = [r for r in runs if r.tags["loopml.hpo.state"] == "PRUNED"]
    complete = [r for r in runs if r.tags["loopml.hpo.state"] == "COMPLETE"]
    assert result.n_pruned == len(pruned) > 0 and result.n_complete == len(complete) > 0
    assert all(r.status is RunStatus.KILLED for r in pruned)
    assert all(float(r.params["x"]) <= 0.5 for r in complete)
    assert all(r.status is RunStatus.FINISHED and r.metrics["extra"] == 1.0 for r in complete)
    history = client.get_metric_history(complete[0].id, "objective")
    x = float(complete[0].params["x"])
    # four reports, then the final value at the last step, written last (the latest value)
    assert [(m.step, m.value) for m in history] == [
        (e, pytest.approx(x + 1 / (e + 1))) for e in range(4)] + [(3, pytest.approx(x))]
    assert complete[0].metrics["objective"] == pytest.approx(x)


def test_failed_trials_stop_the_tuning_unless_caught(client: Client) -> None:
    def fragile(x: float) -> float:
        if x > 0.5:
            raise ValueError(f"diverged at x={x:.2f}")
        return math.nan if x < 0.1 else x

    result = tune(fragile, space={"x": ("float", 0, 1)}, n_trials=20, seed=3, client=client,
                  study="caught", sampler="random", catch=(ValueError,))
    runs = trial_runs(client, "caught")
    failed = [r for r in runs if r.tags["loopml.hpo.state"] == "FAIL"]
    assert result.n_failed == len(failed) > 0 and result.n_complete + result.n_failed == 20
    assert all(r.status is RunStatus.FAILED for r in failed)
    errors = {r.tags["loopml.hpo.error"].split(":")[0] for r in failed}
    assert errors <= {"ValueError", "the objective returned NaN"}

    with pytest.raises(ValueError, match="diverged"):
        tune(fragile, space={"x": ("float", 0.6, 1)}, n_trials=5, client=client,
             study="uncaught")
    [run] = trial_runs(client, "uncaught")
    assert run.status is RunStatus.FAILED and run.tags["loopml.hpo.state"] == "FAIL"
    parent = client.get_run(run.parent_run_id or "")
    assert parent.status is RunStatus.FAILED


def test_a_study_resumes_by_name(client: Client) -> None:
    first = tune(quadratic, space=SPACE, n_trials=6, seed=0, client=client, study="resumed")
    second = tune(quadratic, space=SPACE, n_trials=4, seed=1, client=client, study="resumed")
    assert (first.n_complete, second.n_complete) == (6, 10)
    assert second.best_value <= first.best_value and second.run_id != first.run_id
    numbers = [int(r.tags["loopml.hpo.trial_number"]) for r in trial_runs(client, "resumed")]
    assert numbers == list(range(10))
    with pytest.raises(Conflict, match="created to minimize"):
        tune(quadratic, space=SPACE, n_trials=1, client=client, study="resumed",
             direction="maximize")
    with pytest.raises(Conflict, match="the space now says 'int:-10:10'"):
        tune(quadratic, space={**SPACE, "x": ("int", -10, 10)}, n_trials=1, client=client,
             study="resumed")
    narrower = tune(quadratic, space={**SPACE, "x": ("float", 0, 4)}, n_trials=1,
                    client=client, study="resumed")  # new bounds are fine
    assert narrower.n_complete == 11


@pytest.mark.parametrize("executor", ["inline:3", "processes:2"])
def test_parallel_workers_share_the_study(client: Client, executor: str) -> None:
    result = tune(quadratic, space=SPACE, n_trials=13, seed=0, client=client, study="par",
                  executor=executor)
    assert result.n_complete == 13
    runs = trial_runs(client, "par")
    assert [int(r.tags["loopml.hpo.trial_number"]) for r in runs] == list(range(13))
    assert client.get_run(result.run_id).params["n_workers"] in ("3", "2")


def test_workers_share_a_study_on_every_metadata_backend(database_url: str,
                                                        tmp_path: Path) -> None:
    settings = loopml.load_settings(home=tmp_path / "home", database_url=database_url,
                                    progress=False)
    client = Client(settings)
    try:
        result = tune(quadratic, space=SPACE, n_trials=9, seed=0, client=client,
                      study="backends", executor="inline:3")
        assert result.n_complete == 9
        assert len(trial_runs(client, "backends")) == 9
    finally:
        client.close()


def test_dict_of_metrics_with_metric_to_maximize(client: Client) -> None:
    def evaluate(depth: int, kind: str) -> dict[str, float]:
        return {"auc": depth / 10 + (kind == "b") * 0.05, "loss": 1 - depth / 10}

    result = tune(evaluate, space={"depth": ("int", 1, 8), "kind": ["a", "b"]}, n_trials=25,
                  direction="maximize", metric="auc", seed=0, client=client, study="dict")
    assert result.best_params == {"depth": 8, "kind": "b"}
    best = client.get_run(result.best_run_id or "")
    assert set(best.metrics) == {"auc", "loss"}

    with pytest.raises(InvalidArgument, match="returned the metrics"):
        tune(evaluate, space={"depth": ("int", 1, 8), "kind": ["a", "b"]}, n_trials=1,
             client=client)


def test_conditional_params_a_timeout_and_a_pipeline_step(client: Client) -> None:
    from loopml.pipelines import step

    @step
    def fit(model: str, trial: Trial) -> float:
        if model == "tree":
            return trial.suggest("depth", ("int", 1, 4)) / 10
        time.sleep(0.01)
        return 1 - trial.suggest("alpha", FloatRange(0.0, 1.0))

    started = time.monotonic()
    result = tune(fit, space={"model": ["tree", "linear"]}, n_trials=None, timeout=0.5,
                  client=client, study="steps", seed=0)
    assert result.n_complete >= 1 and time.monotonic() - started < 5
    best = result.best_params  # the step's own params plus those it suggested
    replayed = fit(model=best["model"], trial=_FixedTrial(best))  # type: ignore[arg-type]
    assert replayed == pytest.approx(result.best_value)
    runs = trial_runs(client, "steps")
    assert {frozenset(r.params) for r in runs} <= {frozenset({"model", "depth"}),
                                                   frozenset({"model", "alpha"})}


class _FixedTrial:
    """Stands in for a Trial when the best params are replayed outside tuning."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def suggest(self, name: str, spec: Any) -> Any:
        return self.params[name]


def test_no_completed_trial_is_a_clear_error(client: Client) -> None:
    def never(x: float) -> float:
        raise ValueError("no")

    with pytest.raises(Conflict, match=r"no trial of study 'never' completed \(2 failed"):
        tune(never, space={"x": FloatRange(0, 1)}, n_trials=2, client=client, study="never",
             catch=(ValueError,))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"space": {"z": ("float", 0, 1)}}, "has no parameter 'z' of the search space"),
    ({"space": {"x": ("float", 0, 1)}}, "needs argument 'y', which the search space"),
    ({"space": {"x": ("float", 1, 0), "y": ("float", 0, 1)}}, "low 1 is above high 0"),
    ({"n_trials": 0}, "n_trials must be an integer >= 1"),
    ({"n_trials": None}, "give n_trials"),
    ({"timeout": -1}, "timeout must be a number of seconds > 0"),
    ({"direction": "up"}, "direction must be 'minimize' or 'maximize'"),
    ({"sampler": "tpee"}, "unknown sampler 'tpee'; use one of tpe, random"),
    ({"pruner": "medain"}, "unknown pruner 'medain'"),
    ({"study": ""}, "study name '' is not valid"),
    ({"executor": "threads:2"}, "unknown executor 'threads:2'"),
    ({"catch": (42,)}, "catch must list exception classes"),
    ({"space": {"x": ("float", 0, 1), "y": ("float", 0, 1), "trial": [1]}},
     "may not define 'trial'"),
])
def test_bad_input_fails_before_any_run(client: Client, kwargs: dict[str, Any],
                                        message: str) -> None:
    arguments: dict[str, Any] = {"space": SPACE, "n_trials": 3, "client": client, **kwargs}
    with pytest.raises(InvalidArgument) as caught:
        tune(quadratic, **arguments)
    assert message in str(caught.value)
    assert client.search_runs() == []
    with pytest.raises(InvalidArgument, match="must be a function"):
        tune(42, space=SPACE, n_trials=1, client=client)  # type: ignore[arg-type]


OBJECTIVE_FILE = """
def objective(lr, depth=3, kind="a"):
    return (lr - 0.01) ** 2 + depth / 100 + (kind == "b")
"""


def loopml_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loopml.cli.main", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def in_process_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from loopml.cli.main import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_tunes_a_file_function(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "train.py").write_text(textwrap.dedent(OBJECTIVE_FILE))
    (tmp_path / "space.yaml").write_text("lr: float:1e-4:1e-1:log\ndepth: int:1:5\n")
    done = loopml_cli(tmp_path, "tune", "train.py:objective", "--space", "space.yaml",
                      "--param", "kind=choice:a,b", "-n", "12", "--seed", "0", "--study", "cli",
                      "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["study"] == "cli" and result["n_complete"] == 12
    assert set(result["best_params"]) == {"lr", "depth", "kind"}
    code, out, err = in_process_cli(capsys, "tune", "train.py:objective", "--param",
                                    "lr=float:1e-3:1e-1:log", "-n", "3", "--study", "cli")
    assert code == 0, err  # continues the study
    assert "best params" in out and "15 complete" in out
    for args, message in (
            (["missing.py:objective", "--param", "lr=float:0:1"], "no file 'missing.py'"),
            (["train.py:nothing", "--param", "lr=float:0:1"], "no 'nothing'"),
            (["train.py:objective"], "no search space"),
            (["train.py:objective", "--param", "lr=float:1:0"], "low 1 is above high 0")):
        code, out, err = in_process_cli(capsys, "tune", *args)
        assert code == 1
        assert err.startswith("error: ") and message in err and "Traceback" not in err, err


def test_errors_are_loopml_errors() -> None:
    assert issubclass(InvalidArgument, LoopmlError)
